"""What the stand-in Mastodon instance refuses and does, as a real instance would: so the
transport's tests passing means something."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from tests.support.mastodon_server import DELETE, POST, MastodonServer, mastodon_count

TOKEN = "standin-token"


@pytest.fixture
def server():
    s = MastodonServer(TOKEN).start()
    yield s
    s.stop()


def post(server, status="Hello", *, token=TOKEN, key=None, **fields):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{server.url}/api/v1/statuses", json={"status": status, **fields}, headers=headers,
                         timeout=5)


def auth():
    return {"Authorization": f"Bearer {TOKEN}"}


# -- auth ----------------------------------------------------------------------------------

def test_a_wrong_or_missing_token_is_refused_like_mastodon(server):
    wrong = post(server, token="nope")
    assert wrong.status_code == 401 and wrong.json() == {"error": "The access token is invalid"}
    missing = post(server, token=None)
    assert missing.status_code == 401 and missing.json() == {"error": "This method requires an authenticated user"}
    basic = requests.post(f"{server.url}/api/v1/statuses", data={"status": "x"},
                          headers={"Authorization": f"Basic {TOKEN}"}, timeout=5)
    assert basic.status_code == 401
    assert server.statuses == {} and len(server.refused()) == 3


def test_a_token_without_the_scope_is_refused():
    with MastodonServer(TOKEN, scopes=("read",)) as server:
        resp = post(server)
        assert resp.status_code == 403 and resp.json() == {"error": "This action is outside the authorized scopes"}
        me = requests.get(f"{server.url}/api/v1/accounts/verify_credentials", headers=auth(), timeout=5)
        assert me.status_code == 200 and server.statuses == {}


def test_the_instance_endpoint_is_public(server):
    resp = requests.get(f"{server.url}/api/v2/instance", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["configuration"]["statuses"] == {"max_characters": 500, "max_media_attachments": 4,
                                                        "characters_reserved_per_url": 23}


# -- length as Mastodon counts ---------------------------------------------------------------

def test_500_graphemes_pass_and_501_are_refused(server):
    family = "👨‍👩‍👧‍👦"  # one grapheme, seven code points, eleven UTF-16 units
    assert post(server, family * 500).status_code == 200
    over = post(server, family * 501)
    assert over.status_code == 422
    assert over.json() == {"error": "Validation failed: Text character limit of 500 exceeded"}


def test_combining_marks_and_flags_count_once_each(server):
    assert mastodon_count("e\u0301" * 10 + "🇺🇦" * 10 + "👍🏽" * 10) == 30
    assert post(server, "e\u0301\u0302" * 500).status_code == 200


def test_a_linked_url_counts_23_however_long_and_an_unlinked_one_in_full(server):
    long_url = "https://news.co.uk/" + "x" * 1000
    assert mastodon_count(f"{'a' * 476} {long_url}") == 500
    assert post(server, f"{'a' * 476} {long_url}").status_code == 200
    assert post(server, f"{'a' * 477} {long_url}").status_code == 422
    # No real top-level domain: Mastodon does not link it, so every character counts.
    assert mastodon_count("https://lnn.example/" + "x" * 100) == 120
    assert post(server, "https://lnn.example/" + "x" * 490).status_code == 422
    # A remote mention counts as its local part.
    assert mastodon_count("@editor@news.social.example hi") == len("@editor hi")


def test_a_1000_character_instance():
    with MastodonServer(TOKEN, max_characters=1000) as server:
        limits = requests.get(f"{server.url}/api/v2/instance", timeout=5).json()["configuration"]["statuses"]
        assert limits["max_characters"] == 1000
        assert post(server, "a" * 1000).status_code == 200
        assert post(server, "a" * 1001).json()["error"] == "Validation failed: Text character limit of 1000 exceeded"


# -- malformed requests ------------------------------------------------------------------------

def test_blank_text_bad_visibility_and_broken_json_are_refused(server):
    assert post(server, "   ").json() == {"error": "Validation failed: Text can't be blank"}
    assert post(server, "hi", visibility="everyone").status_code == 422
    broken = requests.post(f"{server.url}/api/v1/statuses", data=b"{not json", timeout=5,
                           headers={**auth(), "Content-Type": "application/json"})
    assert broken.status_code == 400
    assert server.statuses == {}


def test_form_bodies_are_accepted_as_mastodon_accepts_them(server):
    resp = requests.post(f"{server.url}/api/v1/statuses", timeout=5, headers=auth(),
                         data={"status": "From a form", "visibility": "unlisted", "language": "de-AT"})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["visibility"], body["language"]) == ("unlisted", "de")
    assert body["url"] == f"https://social.example/@lnn/{body['id']}"


# -- idempotency -----------------------------------------------------------------------------

def test_the_same_key_answers_the_same_status_and_posts_once(server):
    first = post(server, "Once", key="k-1").json()
    again = post(server, "Once, changed text", key="k-1").json()
    assert again["id"] == first["id"] and server.texts() == ["Once"]
    other = post(server, "Once", key="k-2").json()
    assert other["id"] != first["id"] and len(server.statuses) == 2


def test_a_key_past_its_window_posts_again():
    with MastodonServer(TOKEN, idempotency_window=0) as server:
        post(server, "Once", key="k-1")
        post(server, "Once", key="k-1")
        assert len(server.statuses) == 2


def test_a_lost_answer_still_made_the_status(server):
    server.lose_answer(POST)
    with pytest.raises(requests.ConnectionError):
        post(server, "Lost", key="k-1")
    assert server.texts() == ["Lost"]
    assert post(server, "Lost", key="k-1").status_code == 200 and len(server.statuses) == 1


# -- edit, delete, rate limit ------------------------------------------------------------------

def test_edits_keep_history_and_only_own_known_statuses_are_edited_or_deleted(server):
    status = post(server, "First", language="en").json()
    url = f"{server.url}/api/v1/statuses/{status['id']}"
    edited = requests.put(url, json={"status": "Second"}, headers=auth(), timeout=5).json()
    assert edited["id"] == status["id"] and edited["edited_at"] and edited["language"] == "en"
    history = requests.get(f"{url}/history", headers=auth(), timeout=5).json()
    assert [h["content"] for h in history] == ["<p>First</p>", "<p>Second</p>"]
    too_long = requests.put(url, json={"status": "x" * 501}, headers=auth(), timeout=5)
    assert too_long.status_code == 422 and server.texts() == ["Second"]
    for method in ("PUT", "DELETE"):
        for status_id in (server.foreign_id, "999"):
            resp = requests.request(method, f"{server.url}/api/v1/statuses/{status_id}", json={"status": "x"},
                                    headers=auth(), timeout=5)
            assert resp.status_code == 404 and resp.json() == {"error": "Record not found"}
    gone = requests.delete(url, headers=auth(), timeout=5)
    assert gone.status_code == 200 and gone.json()["text"] == "Second"
    assert requests.delete(url, headers=auth(), timeout=5).status_code == 404
    assert server.statuses == {}


def test_rate_limit_answers_429_with_mastodons_headers(server):
    reset = server.rate_limit(DELETE, reset_in=300)
    resp = requests.delete(f"{server.url}/api/v1/statuses/1", headers=auth(), timeout=5)
    assert resp.status_code == 429 and resp.json() == {"error": "Too many requests"}
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    told = datetime.fromisoformat(resp.headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
    assert told == reset and told > datetime.now(timezone.utc)
    # Auth is still checked first, as on a real instance.
    server.rate_limit(POST)
    assert post(server, token="nope").status_code == 401
