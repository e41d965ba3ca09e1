"""The Threads transport against the stand-in: the two steps with the container saved in
between, 500 characters as Threads counts them, no edits, deletion, Graph errors, and lost
answers at either step that must never make a second post."""

from __future__ import annotations

import pytest

from config.channels import ThreadsChannel
from tests.support.threads_server import ThreadsServer, threads_count
from tests.worker.transports.linkedin_threads_helpers import (
    Row,
    leaked,
    literal_article,
    tricky_articles,
    wordpress_articles,
)
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED
from worker.transports.text import ELLIPSIS
from worker.transports.threads import TEXT_LIMIT, ThreadsTransport, threads_length


@pytest.fixture
def server():
    with ThreadsServer() as s:
        yield s


@pytest.fixture
def transport():
    t = ThreadsTransport()
    yield t
    t.close()


def channel(server, **extra) -> ThreadsChannel:
    values = dict(name="lnn-threads", type="threads", base_url=server.base_url, user_id=server.user_id,
                  token=server.token, allow_private=True, timeout=2)
    values.update(extra)
    return ThreadsChannel(**values)


def publish(transport, dest, data, row=None):
    row = row or Row(article_id=data["id"])
    return row, row.attempt(transport, dest, transport.prepare(dest, PUBLISHED, data))


def no_token_in_urls(server) -> bool:
    return all("access_token" not in r.query and server.token not in r.path for r in server.requests)


# --- publishing ---------------------------------------------------------------------------

def test_a_story_becomes_one_text_post_with_its_link_attached(server, transport):
    dest = channel(server)
    data = wordpress_articles()[1]
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    media = server.only_post()
    assert media.text.startswith("Drought and Frost Force Agricultural Emergency in Southern Russia’s Grain")
    assert media.link == data["url"] and data["url"] in media.text
    assert outcome.remote == {"id": media.id, "container_id": media.container_id, "url": media.permalink}
    # The container was saved before publishing began; the media id as soon as it came back.
    assert row.saved[0]["container_id"] == media.container_id and not row.saved[0].get("id")
    assert any(s.get("publish_started") for s in row.saved)
    assert server.refused() == [] and no_token_in_urls(server)
    assert all(r.headers["authorization"] == f"Bearer {server.token}" for r in server.requests)
    assert leaked(row.outcomes, server.token) == []


def test_text_that_literally_says_an_entity_or_a_tag_is_posted_as_written(server, transport):
    # Decoded once, when stored: not again on the way to Threads (plain text).
    row, outcome = publish(transport, channel(server), literal_article())
    assert outcome.ok, outcome.describe()
    assert server.only_post().text.startswith("What &amp; and <b> mean in HTML")
    assert server.refused() == []


@pytest.mark.parametrize("article", tricky_articles(), ids=lambda a: a["id"])
def test_long_and_tricky_stories_fit_500_characters_as_threads_counts_them(server, transport, article):
    dest = channel(server, template="{title}\n\n{summary}\n{url} {hashtags}")
    row, outcome = publish(transport, dest, article)
    assert outcome.ok, outcome.describe()
    media = server.only_post()
    assert threads_count(media.text) <= TEXT_LIMIT
    assert media.text.endswith(article["url"]) or article["url"] + " #" in media.text
    assert ELLIPSIS in media.text
    assert server.refused() == []


def test_emoji_count_their_utf8_bytes():
    assert threads_length("👍🏽") == 8 and threads_length("🇫🇷") == 8
    assert threads_length("👨‍👩‍👧‍👦") == 25
    assert threads_length("Café Zu\u0308rich") == 12
    assert threads_length("وزير") == 4


def test_an_emoji_title_that_counts_fewer_graphemes_than_500_is_still_cut(server, transport):
    dest = channel(server, template="{title} {url}")
    data = dict(wordpress_articles()[0], title="🇺🇦 " * 120)  # 240 graphemes, 1,080 as Threads counts
    row, outcome = publish(transport, dest, data)
    assert outcome.ok, outcome.describe()
    assert threads_count(server.only_post().text) <= TEXT_LIMIT


# --- no edits; deletion -------------------------------------------------------------------

def test_an_edit_is_skipped_and_a_withdrawal_deletes_the_post(server, transport):
    dest = channel(server)
    data = wordpress_articles()[0]
    _, outcome = publish(transport, dest, data)
    live = outcome.remote
    edit = Row(UPDATED, data["id"], previous=live).attempt(transport, dest,
                                                           transport.prepare(dest, UPDATED, data))
    assert edit.ok and edit.skipped and "cannot be edited" in edit.skipped and edit.remote == live
    prepared = transport.prepare(dest, UNPUBLISHED, {"id": data["id"], "url": data["url"]})
    gone = Row(UNPUBLISHED, data["id"], previous=live).attempt(transport, dest, prepared)
    assert gone.ok and gone.status_code == 200 and server.media == {} and server.deleted == [live["id"]]
    again = Row(UNPUBLISHED, data["id"], previous=live).attempt(transport, dest, prepared)
    assert again.ok and again.skipped and "already gone" in again.skipped
    assert len(server.seen("create")) == 1 and len(server.seen("publish")) == 1


# --- lost answers -------------------------------------------------------------------------

def test_a_lost_answer_to_publishing_is_recovered_without_publishing_again(server, transport):
    dest = channel(server)
    data = wordpress_articles()[2]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.lose_answer("publish")
    lost = row.attempt(transport, dest, prepared)
    assert lost.error_class == "connection_error" and len(server.media) == 1
    found = row.attempt(transport, dest, prepared)
    assert found.ok, found.describe()
    media = server.only_post()
    assert found.remote == {"id": media.id, "container_id": media.container_id, "url": media.permalink}
    assert len(server.seen("create")) == 1 and len(server.seen("publish")) == 1
    assert server.refused() == [] and no_token_in_urls(server)


def test_a_lost_answer_to_the_container_makes_a_new_container_but_one_post(server, transport):
    dest = channel(server)
    data = wordpress_articles()[3]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.lose_answer("create")
    assert row.attempt(transport, dest, prepared).error_class == "connection_error"
    assert row.attempt(transport, dest, prepared).ok
    assert len(server.containers) == 2  # the orphan is never published; it expires
    server.only_post()


def test_a_retry_after_the_publish_answer_and_our_outcome_were_both_lost_still_posts_once(server, transport):
    """The publish was carried out, its answer lost, and the worker died before recording
    anything but the checkpoints: the next attempt starts from the saved row only."""
    dest = channel(server)
    data = wordpress_articles()[0]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.lose_answer("publish")
    row.attempt(transport, dest, prepared)
    server.lose_answer("read")  # the status check after it is lost too
    assert row.attempt(transport, dest, prepared).error_class == "connection_error"
    outcome = row.attempt(transport, dest, prepared)
    assert outcome.ok and len(server.media) == 1 and len(server.seen("publish")) == 1


def test_publishing_a_published_container_is_recognised_as_done(server, transport):
    """A publish whose answer was an error although Threads published it (seen as code 10
    or 24 in the wild): the container's status tells, and the post is found."""
    dest = channel(server)
    data = wordpress_articles()[0]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.lose_answer("publish")
    row.attempt(transport, dest, prepared)
    row.remote.pop("publish_started")  # as if the row had not recorded that publishing began
    outcome = row.attempt(transport, dest, prepared)
    assert outcome.ok, outcome.describe()
    assert len(server.media) == 1 and len(server.seen("publish")) == 2
    assert [r.error for r in server.refused()] and "4279009" in server.refused()[0].error


def test_a_container_still_processing_is_published_later_not_replaced(server, transport):
    dest = channel(server)
    server.processing = True
    data = wordpress_articles()[0]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    first = row.attempt(transport, dest, prepared)
    assert first.retryable is True and not first.ok and not first.disable
    server.finish()
    assert row.attempt(transport, dest, prepared).ok
    assert len(server.containers) == 1 and len(server.media) == 1


def test_an_expired_container_is_replaced_by_a_new_one(server, transport):
    dest = channel(server)
    data = wordpress_articles()[0]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.fail("publish", 500, {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException",
                                           "code": 2, "is_transient": True}})
    assert row.attempt(transport, dest, prepared).retryable is True
    server.expire()  # the channel was disabled for two days
    assert row.attempt(transport, dest, prepared).ok
    assert len(server.containers) == 2 and len(server.media) == 1


# --- Graph errors -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [1, 2, 4, 17, 32, 341, 613])
def test_throttling_and_temporary_graph_errors_are_retried(server, transport, code):
    dest = channel(server)
    server.fail("publish", 400, {"error": {"message": "Application request limit reached", "type": "OAuthException",
                                           "code": code}})
    row, outcome = publish(transport, dest, wordpress_articles()[0])
    assert outcome.retryable is True and not outcome.disable
    assert row.attempt(transport, dest, transport.prepare(dest, PUBLISHED, wordpress_articles()[0])).ok
    assert len(server.media) == 1 and len(server.containers) == 1


def test_a_server_error_without_a_graph_body_is_retried_by_its_status(server, transport):
    dest = channel(server)
    server.fail("create", 502, "Bad Gateway")
    row, outcome = publish(transport, dest, wordpress_articles()[0])
    assert outcome.status_code == 502 and outcome.retryable is None


def test_a_rejected_token_disables_the_channel(server, transport):
    dest = channel(server, token="THAAexpired-Secret000")
    row, outcome = publish(transport, dest, wordpress_articles()[0])
    assert outcome.disable and "190" in outcome.disable
    assert leaked(row.outcomes, dest.token, server.token) == []
    assert server.media == {}


@pytest.mark.parametrize("code", [10, 200, 299])
def test_a_missing_permission_disables_the_channel(server, transport, code):
    dest = channel(server)
    server.fail("create", 403, {"error": {"message": "Application does not have permission for this action",
                                          "type": "OAuthException", "code": code}})
    row, outcome = publish(transport, dest, wordpress_articles()[0])
    assert outcome.disable and "threads_content_publish" in outcome.disable


def test_other_graph_errors_fail_at_once(server, transport):
    dest = channel(server)
    server.fail("create", 500, {"error": {"message": "Invalid parameter", "type": "THApiException", "code": 100}})
    row, outcome = publish(transport, dest, wordpress_articles()[0])
    assert outcome.retryable is False and not outcome.disable and "Invalid parameter" in outcome.error


def test_a_refused_publish_whose_container_cannot_be_checked_is_retried_not_failed(server, transport):
    dest = channel(server)
    data = wordpress_articles()[0]
    row = Row(article_id=data["id"])
    prepared = transport.prepare(dest, PUBLISHED, data)
    server.fail("publish", 500, {"error": {"message": "Application does not have permission for this action",
                                           "type": "OAuthException", "code": 10}})
    server.reset("read")
    outcome = row.attempt(transport, dest, prepared)
    assert outcome.retryable is True and outcome.disable is None
    assert row.attempt(transport, dest, prepared).ok
    assert len(server.media) == 1 and len(server.containers) == 1
