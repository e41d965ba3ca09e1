"""What the stand-in Graph API refuses, as Graph does: missing or wrong tokens (104, 190),
another page, posts without message or link, over-long messages in UTF-16 units,
duplicates, edits and deletes of posts that do not exist."""

import pytest

from tests.support import facebook_server as fb
from tests.support.facebook_server import FacebookStandIn


@pytest.fixture(scope="module")
def server():
    with FacebookStandIn() as standin:
        yield standin


@pytest.fixture
def api(server):
    server.clear()
    yield server


def call(http, api, method, path, *, form=None, token=fb.PAGE_TOKEN, header=True):
    headers = {"authorization": f"Bearer {token}"} if token and header else {}
    if token and not header:
        form = {**(form or {}), "access_token": token}
    return http.request(method, api.base_url + path, timeout=5, allow_private=True, headers=headers, form=form)


def error(resp) -> dict:
    return resp.json()["error"]


def test_a_post_with_the_token_in_a_header_or_the_body_is_accepted(http, api):
    a = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "one", "link": "https://example.com/1"})
    b = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "two"}, header=False)
    assert a.status == b.status == 200 and len(api.posts) == 2
    assert a.json()["id"].startswith(fb.PAGE_ID + "_")
    assert api.refused() == []


def test_missing_and_wrong_tokens_are_refused_as_graph_does(http, api):
    none = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "x"}, token=None)
    assert none.status == 400 and error(none)["code"] == 104 and error(none)["type"] == "OAuthException"
    wrong = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "x"}, token="EAAwrong")
    assert wrong.status == 400 and error(wrong)["code"] == 190 and error(wrong)["fbtrace_id"]
    assert api.posts == {}


def test_a_token_in_the_query_works_but_is_noted(http, api):
    url = api.base_url + f"/{fb.PAGE_ID}/feed?access_token={fb.PAGE_TOKEN}"
    assert http.request("GET", url, timeout=5, allow_private=True).status == 200
    assert len(api.token_in_query()) == 1


def test_another_page_is_refused(http, api):
    resp = call(http, api, "POST", "/999999/feed", form={"message": "x"})
    assert resp.status == 400 and error(resp)["code"] == 100 and error(resp)["error_subcode"] == 33


def test_a_post_needs_a_message_or_a_link(http, api):
    resp = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"published": "true"})
    assert resp.status == 400 and error(resp)["code"] == 100
    bad_link = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"link": "javascript:alert(1)"})
    assert bad_link.status == 400 and error(bad_link)["code"] == 100


def test_the_message_limit_is_counted_in_utf16_units(http, api):
    # 31,604 astral emoji are 63,208 UTF-16 units (only 31,604 code points): refused.
    over = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "😀" * 31_604})
    assert over.status == 400 and "too long" in error(over)["message"]
    at_limit = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "😀" * 31_603})
    assert at_limit.status == 200


def test_the_same_post_twice_in_a_row_is_a_duplicate(http, api):
    form = {"message": "same", "link": "https://example.com/same"}
    assert call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form=form).status == 200
    dup = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form=form)
    assert dup.status == 400 and error(dup)["code"] == 506 and len(api.posts) == 1


def test_edit_and_delete_need_an_existing_post_of_this_page(http, api):
    post_id = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "v1"}).json()["id"]
    assert call(http, api, "POST", f"/{post_id}", form={}).status == 400  # no message
    assert call(http, api, "POST", f"/{post_id}", form={"message": "v2"}).json() == {"success": True}
    assert api.posts[post_id]["message"] == "v2"
    assert call(http, api, "DELETE", f"/{post_id}").json() == {"success": True}
    again = call(http, api, "DELETE", f"/{post_id}")
    assert again.status == 400 and error(again)["code"] == 100 and error(again)["error_subcode"] == 33
    other = call(http, api, "POST", "/123_456", form={"message": "x"})
    assert other.status == 400 and error(other)["error_subcode"] == 33


def test_feed_lists_newest_first_with_the_fields_asked(http, api):
    for n in range(3):
        call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": f"m{n}", "link": f"https://e.com/{n}"})
    resp = call(http, api, "GET", f"/{fb.PAGE_ID}/feed?fields=id,link&limit=2")
    data = resp.json()["data"]
    assert [d["link"] for d in data] == ["https://e.com/2", "https://e.com/1"]
    assert all(set(d) == {"id", "link"} for d in data)


def test_planned_graph_faults_are_graph_shaped(http, api):
    api.graph_fault(fb.FEED, 4, "(#4) Application request limit reached", status=403, regain_minutes=5)
    resp = call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "x"})
    assert resp.status == 403 and error(resp)["code"] == 4
    assert '"estimated_time_to_regain_access": 5' in resp.header("x-business-use-case-usage")
    # Checks still come first: a wrong token is refused even when a fault is planned.
    api.graph_fault(fb.FEED, 4, "(#4) Application request limit reached")
    assert error(call(http, api, "POST", f"/{fb.PAGE_ID}/feed", form={"message": "x"}, token="bad"))["code"] == 190
