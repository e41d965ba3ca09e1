"""What the LinkedIn stand-in refuses or mangles, as LinkedIn does: a stand-in that took
anything would prove nothing about the transport."""

from __future__ import annotations

import pytest
import requests

from tests.support.linkedin_server import LinkedInServer, render_little

ORG = "urn:li:organization:2414183"


@pytest.fixture
def server():
    with LinkedInServer(organization=ORG) as s:
        yield s


def headers(server, **changes) -> dict:
    h = {"Authorization": f"Bearer {server.token}", "LinkedIn-Version": "202410",
         "X-Restli-Protocol-Version": "2.0.0"}
    h.update(changes)
    return {k: v for k, v in h.items() if v is not None}


def body(**changes) -> dict:
    b = {"author": ORG, "commentary": "Hello", "visibility": "PUBLIC",
         "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
         "content": {"article": {"source": "https://lnn.example/a", "title": "A"}},
         "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False}
    b.update(changes)
    return b


def create(server, h=None, **changes):
    return requests.post(f"{server.url}/rest/posts", json=body(**changes), headers=h or headers(server), timeout=5)


def test_a_good_post_is_created_with_its_urn_in_x_restli_id(server):
    resp = create(server)
    assert resp.status_code == 201
    assert resp.headers["x-restli-id"].startswith("urn:li:share:")
    assert server.refused() == []


@pytest.mark.parametrize("change, status, code", [
    ({"Authorization": "Bearer wrong"}, 401, "INVALID_ACCESS_TOKEN"),
    ({"Authorization": None}, 401, "INVALID_ACCESS_TOKEN"),
    ({"LinkedIn-Version": None}, 400, "VERSION_MISSING"),
    ({"LinkedIn-Version": "202201"}, 426, "NONEXISTENT_VERSION"),
    ({"X-Restli-Protocol-Version": None}, 400, None),
])
def test_headers_linkedin_requires(server, change, status, code):
    resp = create(server, headers(server, **change))
    assert resp.status_code == status
    if code:
        assert resp.json()["code"] == code
    assert server.posts == {} and len(server.refused()) == 1


def test_posting_as_another_organization_is_denied(server):
    resp = create(server, author="urn:li:organization:1")
    assert resp.status_code == 403 and resp.json()["code"] == "ACCESS_DENIED"


def test_commentary_over_3000_utf16_units_is_refused(server):
    assert create(server, commentary="a" * 3000).status_code == 201
    # 1,500 emoji are 1,500 characters to a person and 3,000 UTF-16 units; one more is too many.
    assert create(server, commentary="🎉" * 1500).status_code == 201
    resp = create(server, commentary="🎉" * 1500 + "a")
    assert resp.status_code == 422 and "3001" in resp.json()["message"]


@pytest.mark.parametrize("field, value", [("visibility", "CONNECTIONS_ONLY"), ("lifecycleState", "DRAFT"),
                                          ("distribution", None), ("isReshareDisabledByAuthor", None)])
def test_malformed_posts_are_refused(server, field, value):
    assert create(server, **{field: value}).status_code == 422


def test_a_thumbnail_that_was_never_uploaded_is_refused(server):
    resp = create(server, content={"article": {"source": "https://lnn.example/a", "title": "A",
                                               "thumbnail": "urn:li:image:nope"}})
    assert resp.status_code == 422


def test_unescaped_reserved_characters_cut_the_text_as_linkedin_does(server):
    resp = create(server, commentary="Rates held (for now) at 4% #Economy")
    assert resp.status_code == 201  # LinkedIn does not refuse it...
    post = server.posts[resp.headers["x-restli-id"]]
    assert post.rendered == "Rates held "  # ...readers see the text up to the first "("
    assert render_little("Rates held \\(for now\\) at 4% #Economy") == "Rates held (for now) at 4% #Economy"
    assert render_little("Hi @[Acme](urn:li:organization:1) {hashtag|#|Tech} a\\_b") == \
        "Hi @[Acme](urn:li:organization:1) {hashtag|#|Tech} a_b"
    assert render_little("ends with a \\") == "ends with a "


def test_urns_in_paths_must_be_encoded_and_updates_need_their_method(server):
    urn = create(server).headers["x-restli-id"]
    patch = {"patch": {"$set": {"commentary": "Edited"}}}
    raw = requests.post(f"{server.url}/rest/posts/{urn}", json=patch,
                        headers=headers(server, **{"X-RestLi-Method": "PARTIAL_UPDATE"}), timeout=5)
    assert raw.status_code == 400
    encoded = urn.replace(":", "%3A")
    no_method = requests.post(f"{server.url}/rest/posts/{encoded}", json=patch, headers=headers(server), timeout=5)
    assert no_method.status_code == 400
    other_field = requests.post(f"{server.url}/rest/posts/{encoded}", json={"patch": {"$set": {"author": ORG}}},
                                headers=headers(server, **{"X-RestLi-Method": "PARTIAL_UPDATE"}), timeout=5)
    assert other_field.status_code == 422
    ok = requests.post(f"{server.url}/rest/posts/{encoded}", json=patch,
                       headers=headers(server, **{"X-RestLi-Method": "PARTIAL_UPDATE"}), timeout=5)
    assert ok.status_code == 204 and server.posts[urn].commentary == "Edited"


def test_listing_posts_needs_the_read_permission():
    with LinkedInServer(organization=ORG, scopes=("w_organization_social",)) as server:
        resp = requests.get(f"{server.url}/rest/posts", params={"author": ORG, "q": "author"},
                            headers=headers(server), timeout=5)
        assert resp.status_code == 403


def test_an_upload_url_works_once_and_needs_the_token(server):
    init = requests.post(f"{server.url}/rest/images?action=initializeUpload",
                         json={"initializeUploadRequest": {"owner": ORG}}, headers=headers(server), timeout=5)
    value = init.json()["value"]
    assert requests.put(value["uploadUrl"], data=b"img", timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {server.token}"}
    assert requests.put(value["uploadUrl"], data=b"img", headers=auth, timeout=5).status_code == 201
    assert requests.put(value["uploadUrl"], data=b"img", headers=auth, timeout=5).status_code == 400
    assert server.images[value["image"]] == b"img"
    other = requests.post(f"{server.url}/rest/images?action=initializeUpload",
                          json={"initializeUploadRequest": {"owner": "urn:li:organization:1"}},
                          headers=headers(server), timeout=5)
    assert other.status_code == 403


def test_a_lost_answer_still_makes_the_post(server):
    server.lose_answer("create")
    with pytest.raises(requests.ConnectionError):
        create(server)
    assert len(server.posts) == 1
