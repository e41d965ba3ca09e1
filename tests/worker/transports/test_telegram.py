"""The Telegram transport against the stand-in Bot API: what a post looks like, edits and
deletes, the 48-hour delete rule, text fitted as Telegram counts it, flood control, server
errors, refused credentials and chats, and at most one post whatever the network loses."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.channels import TelegramChannel
from tests.support.telegram_server import Chat, TelegramServer, utf16_length
from tests.worker.transports.stored import stored
from worker.transports import transport_class
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED, Outcome, Post, TransportError
from worker.transports.telegram import DELETE_WINDOW_REASON, TelegramTransport
from worker.transports.text import grapheme_list, plain

# As WordPress gives them (HTML text); a transport gets them as stored.
RAW = dict(zip(("putin", "drought", "serbia"),
               json.loads((Path(__file__).parents[2] / "fixtures" / "telegram" / "articles.json").read_text())))


def article(name: str, **changes) -> dict:
    """Fixture article `name` with `changes` (HTML text, as a source gives it), as stored."""
    return stored(dict(RAW[name], **changes))


PUTIN, DROUGHT, SERBIA = article("putin"), article("drought"), article("serbia")
TOKEN = "7012345678:AAF-secret-token_Zx9yW8vU7tS6rQ5pO4n"


@pytest.fixture(scope="module")
def running_server():
    with TelegramServer(token=TOKEN, chats=[Chat(-1001234567890, "lnnnews", "LNN News"),
                                            Chat(-1009876543210, None, "LNN private")]) as s:
        yield s


@pytest.fixture
def server(running_server):
    running_server.clear()
    return running_server


@pytest.fixture
def transport():
    t = TelegramTransport()
    yield t
    t.close()


@pytest.fixture
def outcomes():
    """Every Outcome a test saw; none may carry the token."""
    seen: list[Outcome] = []
    yield seen
    for outcome in seen:
        text = " ".join(str(v) for v in (outcome.body, outcome.error, outcome.disable, outcome.skipped,
                                         outcome.location, outcome.remote))
        assert TOKEN not in text and TOKEN.split(":")[1] not in text, outcome


def channel(server: TelegramServer, **values) -> TelegramChannel:
    entry = dict(type="telegram", name="tg", token=TOKEN, chat_id="@lnnnews", base_url=server.url,
                 allow_private=True, timeout=2.0)
    entry.update(values)
    return TelegramChannel(**entry)


@dataclass
class Delivery:
    """One delivery row as the engine keeps it: prepared once, remote state carried from
    attempt to attempt (what `checkpoint` saved, then what the Outcome said)."""

    transport: TelegramTransport
    dest: TelegramChannel
    event_type: str
    data: dict
    seen: list
    previous: dict | None = None
    previous_at: object = None
    remote: dict = field(default_factory=dict)
    saves: list = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self):
        # JSON round trip: the engine stores what `prepare` returns.
        self.prepared = json.loads(json.dumps(self.transport.prepare(self.dest, self.event_type, self.data)))

    def _save(self, remote: dict) -> None:
        self.saves.append(dict(remote))
        self.remote = dict(remote)

    def attempt(self, dest: TelegramChannel | None = None) -> Outcome:
        self.attempts += 1
        post = Post(delivery_id=1, message_id="msg_tg_1", event_type=self.event_type, article_id=self.data["id"],
                    attempt=self.attempts, prepared=self.prepared, remote=dict(self.remote),
                    previous=self.previous, previous_at=self.previous_at, checkpoint=self._save)
        outcome = self.transport.deliver(dest or self.dest, post)
        if outcome.remote is not None:
            self.remote = dict(outcome.remote)
        self.seen.append(outcome)
        return outcome


def publish(transport, server, outcomes, data=PUTIN, **dest_values) -> Delivery:
    return Delivery(transport, channel(server, **dest_values), PUBLISHED, data, outcomes)


def posted(transport, server, outcomes, data=PUTIN) -> tuple[dict, datetime]:
    """A live post made through the transport: its remote and when it was made."""
    outcome = publish(transport, server, outcomes, data).attempt()
    assert outcome.ok, outcome.describe()
    return outcome.remote, datetime.now(timezone.utc)


# --- publishing -----------------------------------------------------------------------

def test_a_post_is_html_with_the_article_link_and_its_preview(server, transport, outcomes):
    delivery = publish(transport, server, outcomes, DROUGHT)
    outcome = delivery.attempt()
    assert outcome.ok and outcome.status_code == 200, outcome.describe()
    [message] = server.posts()
    # Entities decoded once, when stored: ’ arrives as the character, never as &#8217;.
    assert message.text.startswith("Drought and Frost Force Agricultural Emergency in Southern Russia’s Grain")
    assert "&#8217;" not in message.text and "#Russia #Climate" in message.text
    [link] = [e for e in message.entities if e["type"] == "text_link"]
    assert link["url"] == DROUGHT["url"]
    assert message.link_preview_options == {"is_disabled": False, "url": DROUGHT["url"]}
    request = server.seen("sendMessage")[0].json()
    assert request["parse_mode"] == "HTML" and request["chat_id"] == "@lnnnews"
    assert outcome.remote == {"id": message.message_id, "chat_id": "-1001234567890",
                              "url": f"https://t.me/lnnnews/{message.message_id}",
                              "sent_at": outcome.remote["sent_at"]}
    # The row was marked before the request went out, and the answer saved at once.
    assert delivery.saves[0]["sending"] and delivery.saves[-1]["id"] == message.message_id
    assert server.refused() == []


def test_characters_special_in_html_are_escaped_and_arrive_as_written(server, transport, outcomes):
    # Decoded once, when stored: the title then literally says "<3", "<b>" and "&amp;".
    data = article("putin", title="AT&amp;T &lt;3 R&D: is 5 > 4? &lt;b&gt; stays text &amp; 3 < 4, &amp;amp; too",
                   tags=["R&D"])
    assert data["title"] == "AT&T <3 R&D: is 5 > 4? <b> stays text & 3 < 4, &amp; too"
    outcome = publish(transport, server, outcomes, data).attempt()
    assert outcome.ok, outcome.describe()
    [message] = server.posts()
    # Escaped once for Telegram's HTML, so readers see the stored text as it is.
    assert message.text.startswith("AT&T <3 R&D: is 5 > 4? <b> stays text & 3 < 4, &amp; too ")
    assert [e["type"] for e in message.entities] == ["text_link"]
    assert "&amp;T &lt;3 R&amp;D" in message.html and "&lt;b&gt; stays" in message.html
    assert "&amp;amp; too" in message.html
    assert server.refused() == []


def test_a_url_with_quotes_and_ampersands_survives_the_href(server, transport, outcomes):
    data = article("serbia", url='https://london-news-net.example/a?x=1&y="2"')
    assert publish(transport, server, outcomes, data).attempt().ok
    [message] = server.posts()
    [link] = [e for e in message.entities if e["type"] == "text_link"]
    assert link["url"] == data["url"]
    assert "Serbian President’s Flight Diverted to Baku Amid Ukraine’s Record Drone" in message.text


def test_the_link_is_public_only_for_a_chat_with_a_username(server, transport, outcomes):
    by_id = publish(transport, server, outcomes, chat_id="-1001234567890").attempt()
    assert by_id.remote["url"] == f"https://t.me/lnnnews/{by_id.remote['id']}"
    private = publish(transport, server, outcomes, chat_id="-1009876543210").attempt()
    assert private.ok and "url" not in private.remote and private.remote["chat_id"] == "-1009876543210"


def test_the_transport_is_registered_under_its_type():
    assert transport_class("telegram") is TelegramTransport


def test_an_article_with_nothing_to_post_is_refused_when_prepared(server, transport):
    with pytest.raises(TransportError) as refused:
        transport.prepare(channel(server, template="{section}"), PUBLISHED, article("putin", section=None))
    assert refused.value.permanent


# --- lengths, as Telegram counts them ------------------------------------------------

TRICKY = {
    "long title": "Ministers " + "announce sweeping reforms to the national rail network " * 80,
    "emoji with skin tones and flags": "👍🏽👩🏾‍💻🇺🇦🇬🇧🏳️‍🌈 " * 400,
    "ZWJ families": "👨‍👩‍👧‍👦 family 👩‍❤️‍💋‍👨 " * 300,
    "combining marks": "Ελληνικά ca\u0301fe\u0301 n\u0303 Z\u0351\u0352a\u0353\u0354 " * 300,
    "Arabic and Hebrew": "عاجل: الرئيس يلتقي نظيره في موسكو — שלום עולם חדשות " * 150,
    "entities": "Russia&#8217;s &amp; Syria&#8217;s &quot;talks&quot; &lt;b&gt; " * 200,
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_text_is_fitted_to_4096_utf16_units_and_accepted(name, server, transport, outcomes):
    title = TRICKY[name]
    data = article("putin", title=title, summary=title)
    delivery = publish(transport, server, outcomes, data, template="{title}\n\n{summary}\n\n{url} {hashtags}")
    assert delivery.prepared["length"] <= 4096
    outcome = delivery.attempt()
    assert outcome.ok, outcome.describe()
    [message] = server.posts()
    assert utf16_length(message.text) <= 4096
    assert message.text.endswith(PUTIN["url"] + " #Russia #Syria") or PUTIN["url"] in message.text
    # Cut on a grapheme boundary: every cluster of the post is one of the title's.
    title_clusters = set(grapheme_list(message.text.split("\n")[0].rstrip("…")))
    source_clusters = set(grapheme_list(plain(data["title"]))) | {" "}
    assert title_clusters <= source_clusters, title_clusters - source_clusters
    assert server.refused() == []


def test_a_300_character_title_is_cut_at_a_word_with_an_ellipsis(server, transport, outcomes):
    title = ("Record " + "floods " * 60).strip()[:300]
    body = "x" * 3900
    data = article("putin", title=title, summary=body)
    delivery = publish(transport, server, outcomes, data, template="{summary} {title} {url}")
    assert delivery.attempt().ok
    [message] = server.posts()
    assert utf16_length(message.text) <= 4096 and "…" in message.text


def test_the_limit_counts_utf16_units_not_characters(server, transport, outcomes):
    # 1500 astral emoji are 1500 characters but 3000 UTF-16 units (plus spaces). Storage keeps
    # 1,000 characters of a title; the transport fits whatever it is given all the same.
    title = "🚀 " * 1500
    delivery = publish(transport, server, outcomes, dict(PUTIN, title=title), template="{title} {url}")
    text_units = delivery.prepared["length"]
    assert text_units <= 4096 and len(title) < 4096 < utf16_length(title)
    assert delivery.attempt().ok


# --- editing --------------------------------------------------------------------------

def test_an_edited_story_edits_the_post(server, transport, outcomes):
    remote, _ = posted(transport, server, outcomes)
    edited = article("putin", title="Putin and al-Sharaa agree on bases — updated")
    delivery = Delivery(transport, channel(server), UPDATED, edited, outcomes, previous=remote)
    outcome = delivery.attempt()
    assert outcome.ok and outcome.status_code == 200, outcome.describe()
    [message] = server.posts()
    assert message.text.startswith("Putin and al-Sharaa agree on bases — updated")
    assert len(message.edits) == 1 and message.edits[0]["text"].startswith("Putin Strengthens")
    assert outcome.remote["id"] == remote["id"] and outcome.remote["edited_at"]
    assert len(server.seen("sendMessage")) == 1


def test_an_update_that_changes_nothing_is_skipped_as_unchanged(server, transport, outcomes):
    remote, _ = posted(transport, server, outcomes)
    outcome = Delivery(transport, channel(server), UPDATED, PUTIN, outcomes, previous=remote).attempt()
    assert outcome.ok and "unchanged" in outcome.skipped
    assert outcome.remote == remote and server.posts()[0].edits == []


def test_an_edit_whose_answer_is_lost_is_retried_and_then_found_unchanged(server, transport, outcomes):
    remote, _ = posted(transport, server, outcomes)
    server.lose_answer("editMessageText")
    delivery = Delivery(transport, channel(server), UPDATED, article("putin", title="New title"), outcomes,
                        previous=remote)
    first = delivery.attempt()
    assert not first.ok and first.status_code is None and first.retryable is None  # retried on schedule
    second = delivery.attempt()
    assert second.ok and "unchanged" in second.skipped
    [message] = server.posts()
    assert len(message.edits) == 1 and message.text.startswith("New title")


def test_a_server_error_on_an_edit_is_retried(server, transport, outcomes):
    remote, _ = posted(transport, server, outcomes)
    server.fail("editMessageText", 502, "<html>502 Bad Gateway</html>")
    delivery = Delivery(transport, channel(server), UPDATED, article("putin", title="New"), outcomes, previous=remote)
    first = delivery.attempt()
    assert first.status_code == 502 and first.retryable is None and first.disable is None
    assert delivery.attempt().ok and server.posts()[0].text.startswith("New")


def test_an_edit_of_a_post_deleted_on_telegram_is_skipped_not_reposted(server, transport, outcomes):
    remote, _ = posted(transport, server, outcomes)
    server.message(remote["id"]).deleted = True
    outcome = Delivery(transport, channel(server), UPDATED, article("putin", title="New"), outcomes,
                       previous=remote).attempt()
    assert outcome.ok and "no longer on Telegram" in outcome.skipped
    assert len(server.seen("sendMessage")) == 1


# --- deleting -------------------------------------------------------------------------

def unpublish(transport, server, outcomes, remote, previous_at) -> Delivery:
    return Delivery(transport, channel(server), UNPUBLISHED, {"id": PUTIN["id"], "url": PUTIN["url"]}, outcomes,
                    previous=remote, previous_at=previous_at)


def test_a_withdrawn_story_deletes_the_post(server, transport, outcomes):
    remote, at = posted(transport, server, outcomes)
    outcome = unpublish(transport, server, outcomes, remote, at).attempt()
    assert outcome.ok and outcome.status_code == 200, outcome.describe()
    assert server.posts() == [] and outcome.remote["deleted_at"]


def test_a_post_older_than_48_hours_is_not_deleted(server, transport, outcomes):
    remote, at = posted(transport, server, outcomes)
    outcome = unpublish(transport, server, outcomes, remote, at - timedelta(hours=49)).attempt()
    assert outcome.ok and DELETE_WINDOW_REASON in outcome.skipped
    assert server.seen("deleteMessage") == [] and len(server.posts()) == 1


def test_the_48_hours_are_read_from_the_saved_post_when_no_time_is_given(server, transport, outcomes):
    remote, at = posted(transport, server, outcomes)
    old = dict(remote, sent_at=(at - timedelta(days=3)).isoformat())
    outcome = unpublish(transport, server, outcomes, old, None).attempt()
    assert outcome.ok and DELETE_WINDOW_REASON in outcome.skipped and server.seen("deleteMessage") == []


def test_telegram_refusing_a_late_delete_is_skipped_with_the_reason(server, transport, outcomes):
    remote, at = posted(transport, server, outcomes)
    server.age(remote["id"], hours=48.5)  # our clock says 47 hours; Telegram's disagrees
    outcome = unpublish(transport, server, outcomes, remote, at - timedelta(hours=47)).attempt()
    assert outcome.ok and DELETE_WINDOW_REASON in outcome.skipped and "can't be deleted" in outcome.skipped
    assert len(server.posts()) == 1


def test_a_post_already_deleted_is_skipped(server, transport, outcomes):
    remote, at = posted(transport, server, outcomes)
    assert unpublish(transport, server, outcomes, remote, at).attempt().ok
    again = unpublish(transport, server, outcomes, remote, at).attempt()
    assert again.ok and again.skipped == "already deleted"


def test_nothing_posted_means_nothing_to_delete(server, transport, outcomes):
    outcome = unpublish(transport, server, outcomes, None, None).attempt()
    assert outcome.ok and outcome.skipped == "no post to delete" and server.requests == []


# --- flood control and server errors ---------------------------------------------------

def test_flood_control_is_honoured_and_the_retry_posts_once(server, transport, outcomes):
    server.flood("sendMessage", retry_after=7)
    delivery = publish(transport, server, outcomes)
    first = delivery.attempt()
    assert first.status_code == 429 and first.retry_after == "7" and "retry after 7" in first.error
    assert not delivery.remote.get("sending")  # refused: nothing was posted
    assert delivery.attempt().ok
    assert len(server.posts()) == 1


def test_a_server_error_on_a_send_is_not_sent_again(server, transport, outcomes):
    server.fail("sendMessage", 502, "<html><body>502 Bad Gateway</body></html>")
    delivery = publish(transport, server, outcomes)
    first = delivery.attempt()
    assert first.status_code == 502 and first.retryable is False and first.error_class == "answer_lost"
    second = delivery.attempt()
    assert second.error_class == "answer_lost" and second.retryable is False
    assert len(server.seen("sendMessage")) == 1


# --- lost answers: at most one post ----------------------------------------------------

def test_a_lost_answer_then_a_retry_never_makes_a_second_post(server, transport, outcomes):
    server.lose_answer("sendMessage")
    delivery = publish(transport, server, outcomes)
    first = delivery.attempt()
    assert first.error_class == "answer_lost" and first.retryable is False and not first.ok
    assert "may have been posted" in first.error and delivery.remote["sending"]
    for _ in range(3):
        again = delivery.attempt()
        assert again.error_class == "answer_lost" and again.retryable is False
    assert len(server.posts()) == 1 and len(server.seen("sendMessage")) == 1


def test_a_connection_dropped_after_the_request_is_treated_as_lost(server, transport, outcomes):
    # The stand-in read the whole request, then reset: the sender cannot tell this from a lost answer.
    server.reset("sendMessage")
    delivery = publish(transport, server, outcomes)
    assert delivery.attempt().error_class == "answer_lost"
    assert delivery.attempt().error_class == "answer_lost"
    assert len(server.seen("sendMessage")) == 1


def test_a_timeout_waiting_for_the_answer_is_treated_as_lost(server, transport, outcomes):
    server.slow("sendMessage", 0.6)  # carried out, answered after the sender gave up
    delivery = publish(transport, server, outcomes, timeout=0.2)
    first = delivery.attempt()
    assert first.error_class == "answer_lost" and "timeout" in first.error
    assert delivery.attempt().error_class == "answer_lost"
    server.wait_for(lambda s: len(s.seen("sendMessage")) == 1, what="the slow request to be answered")
    assert len(server.posts()) == 1


def test_a_worker_killed_mid_request_leaves_a_mark_that_stops_a_resend(server, transport, outcomes):
    delivery = publish(transport, server, outcomes)
    delivery.remote = {"sending": "2026-11-26T09:00:01Z"}  # saved, then the process died
    outcome = delivery.attempt()
    assert outcome.error_class == "answer_lost" and "2026-11-26T09:00:01Z" in outcome.error
    assert server.requests == []


def test_an_update_after_an_unresolved_first_post_does_not_post_again(server, transport, outcomes):
    unresolved = {"sending": "2026-11-26T09:00:01Z", "digest": "1ba5b240b30a1471"}
    delivery = Delivery(transport, channel(server), UPDATED, article("putin", title="New"), outcomes,
                        previous=unresolved)
    outcome = delivery.attempt()
    # The engine's shared rule (Transport.deliver): an earlier post that may exist blocks a new one.
    assert outcome.skipped and "unknown id" in outcome.skipped
    assert server.requests == []


def test_a_refused_connection_is_retried_and_posts_once(server, transport, outcomes):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    delivery = publish(transport, server, outcomes)
    first = delivery.attempt(channel(server, base_url=closed))
    assert first.error_class == "connection_error" and first.retryable is None  # retried on schedule
    assert not delivery.remote.get("sending")
    assert delivery.attempt().ok
    assert len(server.posts()) == 1


def test_an_answer_saved_but_not_recorded_is_not_sent_again(server, transport, outcomes):
    delivery = publish(transport, server, outcomes)
    assert delivery.attempt().ok
    saved = delivery.saves[-1]
    delivery.remote = saved  # the engine died before recording the outcome
    outcome = delivery.attempt()
    assert outcome.ok and "already posted" in outcome.skipped and outcome.remote["id"] == saved["id"]
    assert len(server.seen("sendMessage")) == 1


# --- refusals --------------------------------------------------------------------------

def test_a_rejected_token_disables_the_channel_without_revealing_it(server, transport, outcomes):
    outcome = publish(transport, server, outcomes, token="7012345678:AAF-wrong").attempt()
    assert outcome.status_code == 401 and "Unauthorized" in outcome.disable
    assert not outcome.ok and server.posts() == []


def test_a_path_echoed_in_an_error_is_scrubbed_of_the_token(server, transport, outcomes):
    # A base URL with a wrong path: the stand-in's 404 names the path, token included.
    outcome = publish(transport, server, outcomes, base_url=server.url + "/api").attempt()
    assert outcome.status_code == 404 and outcome.disable
    assert "<token>" in outcome.body  # scrubbed, and the fixture checks no token is left


@pytest.mark.parametrize("refusal, expected", [
    ((403, "Forbidden: bot was kicked from the channel chat"), "bot was kicked"),
    ((403, "Forbidden: bot is not a member of the channel chat"), "not a member"),
    ((400, "Bad Request: need administrator rights in the channel chat"), "need administrator rights"),
    ((400, "Bad Request: not enough rights to send text messages to the chat"), "not enough rights"),
])
def test_a_bot_without_standing_in_the_chat_disables_the_channel(refusal, expected, server, transport, outcomes):
    server.chats[0].refusal = refusal
    outcome = publish(transport, server, outcomes).attempt()
    assert outcome.status_code == refusal[0] and expected in outcome.disable


def test_an_unknown_chat_disables_the_channel(server, transport, outcomes):
    outcome = publish(transport, server, outcomes, chat_id="@nosuchchannel").attempt()
    assert outcome.status_code == 400 and "chat not found" in outcome.disable


def test_a_group_that_became_a_supergroup_names_its_new_id(server, transport, outcomes):
    server.fail("sendMessage", 400, {"ok": False, "error_code": 400,
                                     "description": "Bad Request: group chat was upgraded to a supergroup chat",
                                     "parameters": {"migrate_to_chat_id": -1001999888777}})
    outcome = publish(transport, server, outcomes).attempt()
    assert 'chat_id = "-1001999888777"' in outcome.disable


def test_another_refusal_fails_the_delivery_without_disabling(server, transport, outcomes):
    server.fail("sendMessage", 400, {"ok": False, "error_code": 400,
                                     "description": "Bad Request: message is too long"})
    outcome = publish(transport, server, outcomes).attempt()
    assert outcome.status_code == 400 and outcome.disable is None and outcome.error.endswith("too long")
    assert not outcome.ok
