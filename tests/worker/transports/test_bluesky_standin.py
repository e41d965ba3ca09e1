"""What the stand-in PDS refuses, as the reference PDS does (so the transport tests mean
something): bad auth, text too long as Bluesky counts it, bad facets, taken keys, bad blobs."""

from __future__ import annotations

import time

import pytest

from tests.support.bluesky_server import (
    CREATE_RECORD,
    BlueskyServer,
    ImageServer,
    png,
)
from worker.transports.http import RequestFailed

PASSWORD = "abcd-efgh-ijkl-mnop"
RKEY = "3lbcdefghij22"


@pytest.fixture
def pds():
    server = BlueskyServer(handle="news.example.com", password=PASSWORD, session_budget=3).start()
    yield server
    server.stop()


class Client:
    def __init__(self, pds, http):
        self.pds, self.http = pds, http
        self.session = self.call("com.atproto.server.createSession",
                                 {"identifier": "news.example.com", "password": PASSWORD}).json()

    def call(self, nsid, body=None, *, token=None, method="POST", data=None, ctype=None, query=""):
        headers = {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if ctype:
            headers["content-type"] = ctype
        return self.http.request(method, f"{self.pds.url}/xrpc/{nsid}{query}", timeout=5, allow_private=True,
                                 headers=headers, json_body=body, body=data)

    def create(self, record, rkey=RKEY, token=None, nsid="com.atproto.repo.createRecord"):
        body = {"repo": self.pds.did, "collection": "app.bsky.feed.post", "record": record}
        if rkey is not None:
            body["rkey"] = rkey
        return self.call(nsid, body, token=token or self.session["accessJwt"])


@pytest.fixture
def client(pds, http):
    return Client(pds, http)


def post(text="Hello", **extra):
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-26T09:00:00.000Z", **extra}


def link_facet(start, end, uri):
    return {"index": {"byteStart": start, "byteEnd": end},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]}


def error(resp):
    return resp.status, resp.json()["error"]


# --- sessions and auth -----------------------------------------------------------------

def test_sign_in_needs_the_right_password_and_is_rate_limited(pds, http):
    c = Client(pds, http)
    assert c.session["did"] == pds.did and c.session["accessJwt"] != c.session["refreshJwt"]
    wrong = c.call("com.atproto.server.createSession", {"identifier": "news.example.com", "password": "nope"})
    assert error(wrong) == (401, "AuthenticationRequired")
    malformed = c.call("com.atproto.server.createSession", {"identifier": "news.example.com"})
    assert error(malformed) == (400, "InvalidRequest")
    over = c.call("com.atproto.server.createSession", {"identifier": "news.example.com", "password": PASSWORD})
    assert error(over) == (429, "RateLimitExceeded")
    assert over.header("ratelimit-remaining") == "0"
    assert time.time() < int(over.header("ratelimit-reset")) <= time.time() + 301


def test_repo_calls_need_a_live_access_token(pds, client):
    assert error(client.call("com.atproto.repo.createRecord", {})) == (401, "AuthenticationRequired")
    assert error(client.create(post(), token="eyJ.forged.token")) == (400, "InvalidToken")
    assert error(client.create(post(), token=client.session["refreshJwt"])) == (400, "InvalidToken")
    pds.expire_access_tokens()
    assert error(client.create(post())) == (400, "ExpiredToken")
    assert pds.records == {}


def test_refresh_rotates_tokens_and_refuses_access_tokens(pds, client):
    old = client.session
    assert error(client.call("com.atproto.server.refreshSession", token=old["accessJwt"])) == (400, "InvalidToken")
    fresh = client.call("com.atproto.server.refreshSession", token=old["refreshJwt"]).json()
    assert fresh["accessJwt"] not in (old["accessJwt"], old["refreshJwt"])
    again = client.call("com.atproto.server.refreshSession", token=old["refreshJwt"])
    assert error(again) == (400, "ExpiredToken")
    assert client.create(post(), token=fresh["accessJwt"]).status == 200


def test_writes_to_another_repo_or_collection_are_refused(pds, client):
    token = client.session["accessJwt"]
    other = client.call("com.atproto.repo.createRecord", {"repo": "did:plc:someoneelse", "collection":
                        "app.bsky.feed.post", "record": post()}, token=token)
    assert error(other) == (401, "AuthenticationRequired")
    assert error(client.call("com.atproto.repo.createRecord", {"repo": pds.did, "collection": "app.bsky.feed.like",
                                                               "record": post()}, token=token))[0] == 400
    assert error(client.create(post(), rkey="not-a-tid")) == (400, "InvalidRequest")


# --- the post lexicon ------------------------------------------------------------------

@pytest.mark.parametrize("text, ok", [
    ("a" * 300, True),
    ("a" * 301, False),
    ("👍🏽" * 300, True),  # 300 graphemes of 8 bytes
    ("🇺🇦" * 301, False),
    ("e\u0301" * 300, True),  # combining marks: 300 graphemes, 600 code points
    ("👨‍👩‍👧‍👦" * 120, True),  # 3000 bytes
    ("👨‍👩‍👧‍👦" * 121, False),  # 121 graphemes but 3025 bytes
])
def test_text_is_limited_to_300_graphemes_and_3000_bytes(pds, client, text, ok):
    resp = client.create(post(text))
    assert (resp.status == 200) is ok, resp.text
    if not ok:
        assert error(resp) == (400, "InvalidRequest")


@pytest.mark.parametrize("record", [
    {"$type": "app.bsky.feed.post", "createdAt": "2026-11-26T09:00:00Z"},  # no text
    post(createdAt="yesterday"),
    post(createdAt="2026-11-26T09:00:00"),  # no timezone
    post(langs=["en", "fr", "de", "es"]),
    post(langs=["english language"]),
    post(**{"$type": "app.bsky.feed.like"}),
])
def test_malformed_records_are_refused(client, record):
    assert error(client.create(record)) == (400, "InvalidRequest")


def test_facets_must_cover_their_link_and_tag_exactly_in_utf8_bytes(pds, client):
    text = "Café ☕ news https://example.com/a #Coffee"
    start = len(text[:text.index("https")].encode())
    end = start + len("https://example.com/a")
    tag_start = len(text[:text.index("#")].encode())
    good = [link_facet(start, end, "https://example.com/a"),
            {"index": {"byteStart": tag_start, "byteEnd": tag_start + 7},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Coffee"}]}]
    assert client.create(post(text, facets=good)).status == 200
    char_offsets = link_facet(text.index("https"), text.index("https") + 21, "https://example.com/a")
    past_end = link_facet(start, len(text.encode()) + 5, "https://example.com/a")
    mid_char = link_facet(3, 5, "https://example.com/a")  # inside "é"
    wrong_tag = {"index": {"byteStart": tag_start, "byteEnd": tag_start + 7},
                 "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "Tea"}]}
    for facets in ([char_offsets], [past_end], [mid_char], [wrong_tag]):
        resp = client.create(post(text, facets=facets), rkey=None)
        assert error(resp) == (400, "InvalidRequest"), facets
    assert len(pds.records) == 1


def test_a_taken_key_is_a_500_on_create_and_a_no_op_on_put(pds, client):
    first = client.create(post("one"))
    assert first.status == 200
    again = client.create(post("one"))
    assert error(again) == (500, "InternalServerError")
    put = client.create(post("one"), nsid="com.atproto.repo.putRecord")
    assert put.status == 200 and put.json()["cid"] == first.json()["cid"]
    assert list(pds.records) == [RKEY]


def test_get_and_delete_records(pds, client):
    query = f"?repo={pds.did}&collection=app.bsky.feed.post&rkey={RKEY}"
    missing = client.call("com.atproto.repo.getRecord", method="GET", query=query)
    assert error(missing) == (400, "RecordNotFound")
    client.create(post("one"))
    found = client.call("com.atproto.repo.getRecord", method="GET", query=query).json()
    assert found["uri"] == pds.post_uri(RKEY) and found["value"]["text"] == "one"
    body = {"repo": pds.did, "collection": "app.bsky.feed.post", "rkey": RKEY}
    token = client.session["accessJwt"]
    assert client.call("com.atproto.repo.deleteRecord", body, token=token).status == 200
    assert client.call("com.atproto.repo.deleteRecord", body, token=token).status == 200  # already gone: fine
    assert pds.records == {} and pds.deleted == [RKEY]


# --- blobs and link cards --------------------------------------------------------------

def test_blobs_need_a_type_and_at_most_a_megabyte(pds, client):
    token = client.session["accessJwt"]
    small, big = png(4, 4), png(640, 560, noise=True)
    ok = client.call("com.atproto.repo.uploadBlob", data=small, ctype="image/png", token=token)
    assert ok.status == 200 and ok.json()["blob"]["size"] == len(small)
    assert error(client.call("com.atproto.repo.uploadBlob", data=small, token=token)) == (400, "InvalidRequest")
    assert error(client.call("com.atproto.repo.uploadBlob", data=big, ctype="image/png", token=token))[0] == 400
    assert error(client.call("com.atproto.repo.uploadBlob", data=b"", ctype="image/png", token=token))[0] == 400


def test_a_card_thumbnail_must_be_an_uploaded_image(pds, client):
    token = client.session["accessJwt"]
    blob = client.call("com.atproto.repo.uploadBlob", data=png(4, 4), ctype="image/png", token=token).json()["blob"]
    text_blob = client.call("com.atproto.repo.uploadBlob", data=b"hello", ctype="text/plain",
                            token=token).json()["blob"]

    def card(thumb):
        external = {"uri": "https://example.com/a", "title": "A", "description": "B"}
        if thumb:
            external["thumb"] = thumb
        return post(embed={"$type": "app.bsky.embed.external", "external": external})

    assert client.create(card(blob), rkey=None).status == 200
    assert client.create(card(None), rkey=None).status == 200
    unknown = dict(blob, ref={"$link": "bafkreinotuploaded"})
    for thumb in (unknown, text_blob):
        assert error(client.create(card(thumb), rkey=None)) == (400, "InvalidRequest")
    no_title = post(embed={"$type": "app.bsky.embed.external", "external": {"uri": "https://e.com", "description": ""}})
    assert error(client.create(no_title, rkey=None)) == (400, "InvalidRequest")


def test_a_lost_answer_carries_the_write_out(pds, client):
    pds.lose_answer(CREATE_RECORD)
    with pytest.raises(RequestFailed):
        client.create(post("one"))
    assert list(pds.records) == [RKEY]


def test_image_server_serves_a_small_and_an_oversized_png(http):
    with ImageServer() as images:
        small = http.fetch(images.image_url("small.png"), timeout=5, allow_private=True, max_bytes=1_000_000)
        assert small.status == 200 and small.body.startswith(b"\x89PNG") and small.header("content-type") == "image/png"
        with pytest.raises(RequestFailed) as too_big:
            http.fetch(images.image_url("big.png"), timeout=5, allow_private=True, max_bytes=1_000_000)
        assert too_big.value.error_class == "too_large"
