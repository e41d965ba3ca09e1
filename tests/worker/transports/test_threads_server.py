"""What the Threads stand-in refuses, as Threads does."""

from __future__ import annotations

import pytest
import requests

from tests.support.threads_server import ThreadsServer


@pytest.fixture
def server():
    with ThreadsServer() as s:
        yield s


def auth(server, token=None) -> dict:
    return {"Authorization": f"Bearer {token or server.token}"}


def create(server, token=None, user=None, **form):
    data = {"media_type": "TEXT", "text": "Hello https://lnn.example/a", "link_attachment": "https://lnn.example/a"}
    data.update(form)
    data = {k: v for k, v in data.items() if v is not None}
    return requests.post(f"{server.base_url}/{user or server.user_id}/threads", data=data,
                         headers=auth(server, token), timeout=5)


def publish(server, creation_id):
    return requests.post(f"{server.base_url}/{server.user_id}/threads_publish", data={"creation_id": creation_id},
                         headers=auth(server), timeout=5)


def error(resp) -> dict:
    return resp.json()["error"]


def test_two_steps_make_one_post_and_the_container_says_published(server):
    cid = create(server).json()["id"]
    media = publish(server, cid).json()["id"]
    status = requests.get(f"{server.base_url}/{cid}", params={"fields": "id,status"}, headers=auth(server), timeout=5)
    assert status.json() == {"id": cid, "status": "PUBLISHED"}
    link = requests.get(f"{server.base_url}/{media}", params={"fields": "permalink"}, headers=auth(server), timeout=5)
    assert link.json()["permalink"].startswith("https://www.threads.net/")
    assert server.refused() == []


def test_a_bad_or_missing_token_is_refused_with_graph_errors(server):
    assert error(create(server, token="nope"))["code"] == 190
    resp = requests.post(f"{server.base_url}/{server.user_id}/threads", data={"media_type": "TEXT", "text": "x"},
                         timeout=5)
    assert resp.status_code == 400 and "access token" in error(resp)["message"]
    assert server.containers == {}


def test_another_users_path_is_refused(server):
    assert error(create(server, user="999"))["code"] == 100


@pytest.mark.parametrize("form", [{"media_type": None}, {"media_type": "REEL"}, {"text": None},
                                  {"link_attachment": "not a url"}])
def test_malformed_containers_are_refused(server, form):
    assert create(server, **form).status_code == 400
    assert server.containers == {}


def test_500_characters_as_threads_counts_them(server):
    assert create(server, text="a" * 500, link_attachment=None).status_code == 200
    assert create(server, text="a" * 501, link_attachment=None).status_code == 400
    # 62 skin-toned thumbs are 124 code points but 496 as Threads counts emoji (UTF-8 bytes).
    assert create(server, text="👍🏽" * 62 + "abcd", link_attachment=None).status_code == 200
    assert create(server, text="👍🏽" * 62 + "abcde", link_attachment=None).status_code == 400


def test_more_than_five_links_are_refused(server):
    text = " ".join(f"https://lnn.example/{n}" for n in range(5))
    assert create(server, text=text, link_attachment="https://lnn.example/0").status_code == 200
    resp = create(server, text=text, link_attachment="https://lnn.example/other")
    assert resp.status_code == 400 and "LINK_LIMIT" in error(resp)["message"]


def test_a_container_is_published_once_and_only_when_finished(server):
    server.processing = True
    cid = create(server).json()["id"]
    assert error(publish(server, cid))["error_subcode"] == 4279009  # not ready yet
    server.finish()
    assert publish(server, cid).status_code == 200
    again = publish(server, cid)
    assert again.status_code == 400 and error(again)["code"] == 24
    assert len(server.media) == 1
    assert error(publish(server, "123"))["code"] == 24


def test_an_expired_container_cannot_be_published(server):
    cid = create(server).json()["id"]
    server.expire()
    assert publish(server, cid).status_code == 400 and server.media == {}


def test_status_is_a_container_field_only_and_deletion_twice_is_refused(server):
    media = publish(server, create(server).json()["id"]).json()["id"]
    resp = requests.get(f"{server.base_url}/{media}", params={"fields": "status"}, headers=auth(server), timeout=5)
    assert resp.status_code == 400 and "nonexisting field" in error(resp)["message"]
    assert requests.delete(f"{server.base_url}/{media}", headers=auth(server), timeout=5).json()["success"] is True
    gone = requests.delete(f"{server.base_url}/{media}", headers=auth(server), timeout=5)
    assert gone.status_code == 400 and error(gone)["code"] == 100


def test_a_lost_publish_answer_still_publishes(server):
    cid = create(server).json()["id"]
    server.lose_answer("publish")
    with pytest.raises(requests.ConnectionError):
        publish(server, cid)
    assert len(server.media) == 1
