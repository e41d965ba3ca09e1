"""What the stand-in X API refuses, as X does: bad OAuth 1.0a signatures, replayed nonces,
stale timestamps, over-long text as X counts it, duplicates, malformed requests."""

import json
import time

import pytest
from oauthlib.oauth1 import Client

from tests.support import x_server
from tests.support.x_server import XStandIn


@pytest.fixture(scope="module")
def server():
    with XStandIn() as standin:
        yield standin


@pytest.fixture
def api(server):
    server.clear()
    yield server


def signed(url, method="POST", *, consumer_secret=x_server.CONSUMER_SECRET, token=x_server.ACCESS_TOKEN,
           timestamp=None, nonce=None, body=None, content_type="application/json"):
    client = Client(x_server.CONSUMER_KEY, client_secret=consumer_secret, resource_owner_key=token,
                    resource_owner_secret=x_server.ACCESS_TOKEN_SECRET, timestamp=timestamp, nonce=nonce)
    headers = {"content-type": content_type} if content_type else {}
    _, headers, _ = client.sign(url, http_method=method, body=body, headers=headers)
    return headers


def post(http, api, body, headers=None, raw: bytes | None = None):
    url = api.url + "/2/tweets"
    headers = headers or signed(url)
    if raw is not None:
        return http.request("POST", url, timeout=5, allow_private=True, headers=headers, body=raw)
    return http.request("POST", url, timeout=5, allow_private=True, headers=headers, json_body=body)


def test_a_signed_post_is_accepted(http, api):
    resp = post(http, api, {"text": "Hello from the newsroom"})
    assert resp.status == 201 and resp.json()["data"]["text"] == "Hello from the newsroom"
    assert api.refused() == []


def test_unsigned_and_wrongly_signed_requests_are_refused(http, api):
    url = api.url + "/2/tweets"
    unsigned = http.request("POST", url, timeout=5, allow_private=True, json_body={"text": "hi"})
    wrong_secret = post(http, api, {"text": "hi"}, signed(url, consumer_secret="not-the-secret"))
    wrong_token = post(http, api, {"text": "hi"}, signed(url, token="370773112-someoneElsesTokenXXXXXXXXXXXXXXX"))
    for resp in (unsigned, wrong_secret, wrong_token):
        assert resp.status == 401 and resp.json()["title"] == "Unauthorized"
    assert api.tweets == {}


def test_a_signature_for_another_url_or_method_is_refused(http, api):
    headers = signed(api.url + "/2/tweets/123", method="DELETE")
    assert post(http, api, {"text": "hi"}, headers).status == 401


def test_a_replayed_nonce_and_a_stale_timestamp_are_refused(http, api):
    url = api.url + "/2/tweets"
    headers = signed(url)
    assert post(http, api, {"text": "first"}, headers).status == 201
    assert post(http, api, {"text": "second"}, headers).status == 401
    stale = signed(url, timestamp=str(int(time.time()) - 3600))
    assert post(http, api, {"text": "third"}, stale).status == 401
    assert [t["text"] for t in api.tweets.values()] == ["first"]


def test_a_signed_form_body_must_match_its_signature(http, api):
    # Form bodies are part of the signature base string: a changed body is refused.
    url = api.url + "/2/tweets"
    headers = signed(url, body="text=original", content_type="application/x-www-form-urlencoded")
    resp = post(http, api, None, headers, raw=b"text=tampered")
    assert resp.status == 401


def test_text_over_280_as_x_counts_it_is_refused(http, api):
    # 141 CJK characters weigh 282; 280 ASCII characters weigh 280.
    resp = post(http, api, {"text": "字" * 141})
    assert resp.status == 400 and "too long" in resp.json()["errors"][0]["message"]
    assert post(http, api, {"text": "a" * 280}).status == 201
    # A URL weighs 23 whatever its length.
    assert post(http, api, {"text": "b" * 250 + " https://example.com/" + "c" * 200}).status == 201
    # Emoji weigh 2 each, a ZWJ family too.
    assert post(http, api, {"text": "👨‍👩‍👧‍👦" * 141}).status == 400


def test_duplicate_text_is_refused_with_xs_body(http, api):
    assert post(http, api, {"text": "Same words"}).status == 201
    resp = post(http, api, {"text": "Same words"})
    assert resp.status == 403 and resp.json() == x_server.DUPLICATE
    assert len(api.tweets) == 1


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": 5}, ["text"]])
def test_malformed_posts_are_refused(http, api, body):
    resp = post(http, api, body)
    assert resp.status == 400 and resp.json()["title"] == "Invalid Request"


def test_a_form_encoded_post_is_refused(http, api):
    url = api.url + "/2/tweets"
    headers = signed(url, body="text=hello", content_type="application/x-www-form-urlencoded")
    assert post(http, api, None, headers, raw=b"text=hello").status == 400


def test_delete_of_an_unknown_post_is_404(http, api):
    url = api.url + "/2/tweets/42"
    resp = http.request("DELETE", url, timeout=5, allow_private=True, headers=signed(url, "DELETE", content_type=None))
    assert resp.status == 404


def test_timeline_without_access_is_forbidden(http, api):
    api.timeline_access = False
    url = api.url + f"/2/users/{x_server.USER_ID}/tweets?max_results=10"
    resp = http.request("GET", url, timeout=5, allow_private=True, headers=signed(url, "GET", content_type=None))
    assert resp.status == 403 and resp.json()["reason"] == "client-not-enrolled"


def test_timeline_shows_links_as_tco_and_escapes_text(http, api):
    post(http, api, {"text": "Fish & chips <3 https://example.com/story"})
    url = api.url + f"/2/users/{x_server.USER_ID}/tweets?max_results=5&tweet.fields=entities"
    [tweet] = http.request("GET", url, timeout=5, allow_private=True,
                           headers=signed(url, "GET", content_type=None)).json()["data"]
    assert tweet["text"].startswith("Fish &amp; chips &lt;3 https://t.co/")
    assert tweet["entities"]["urls"][0]["expanded_url"] == "https://example.com/story"


def test_rate_limit_answers_429_with_reset(http, api):
    reset = api.rate_limit(reset_in=30)
    resp = post(http, api, {"text": "hi"})
    assert resp.status == 429 and resp.header("x-rate-limit-reset") == str(reset)
    assert json.loads(resp.body)["title"] == "Too Many Requests"
