"""The Mastodon transport against the stand-in instance: posting, editing, deleting, the
instance's limits, text fitted as Mastodon counts it, and every answer mapped for the
delivery policy — including an answer lost after the status was made."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from config.channels import MastodonChannel
from tests.support.mastodon_server import EDIT, INSTANCE, POST, MastodonServer, mastodon_count
from tests.worker.transports.stored import stored
from worker.delivery.policy import PENDING, DeliveryPolicy, is_transient
from worker.transports import transport_class
from worker.transports.base import PUBLISHED, UNPUBLISHED, UPDATED, Outcome, Post, TransportError
from worker.transports.mastodon import DEFAULT_MAX_CHARACTERS, MastodonTransport, text_hash
from worker.transports.text import ELLIPSIS, plain

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mastodon"
# As WordPress gives them; `article` gives them as stored, the way a transport gets them.
ARTICLES = json.loads((FIXTURES / "articles.json").read_text())
TOKEN = "tok-5f3a9c1e-do-not-leak"


def article(n: int = 0, **changes) -> dict:
    """Fixture article `n` with `changes` (HTML text, as a source gives it), as stored."""
    return stored(dict(ARTICLES[n], **changes))


def channel(server: MastodonServer, **extra) -> MastodonChannel:
    values = dict(type="mastodon", name="lnn-social", base_url=server.url, token=TOKEN, allow_private=True,
                  timeout=2.0)
    values.update(extra)
    return MastodonChannel(**values)


class Engine:
    """What the delivery engine does around a transport, reduced to what these tests need:
    a row per (event, channel) with a stable message id and its saved remote state, and
    the article's live post handed to updates and deletes as `previous`."""

    def __init__(self, transport: MastodonTransport, dest: MastodonChannel):
        self.transport, self.dest = transport, dest
        self.live: dict | None = None
        self.rows: dict[str, dict] = {}
        self.outcomes: list[Outcome] = []

    def attempt(self, message_id: str, event: str, data: dict) -> Outcome:
        row = self.rows.get(message_id)
        if row is None:
            row = self.rows[message_id] = {
                "prepared": self.transport.prepare(self.dest, event, data), "remote": {}, "attempts": 0,
                "previous": dict(self.live) if self.live else None}
        row["attempts"] += 1
        saved = []
        post = Post(delivery_id=len(self.rows), message_id=message_id, event_type=event, article_id=data["id"],
                    attempt=row["attempts"], prepared=row["prepared"], remote=dict(row["remote"]),
                    previous=row["previous"], checkpoint=saved.append)
        outcome = self.transport.deliver(self.dest, post)
        # No credential in anything stored from an attempt.
        assert self.dest.token not in repr(outcome), outcome
        if saved:
            row["remote"] = saved[-1]
        self.outcomes.append(outcome)
        if outcome.ok:
            if event == UNPUBLISHED:
                self.live = None
            elif outcome.remote and outcome.remote.get("id"):
                self.live = dict(outcome.remote)
        return outcome


@pytest.fixture
def server():
    s = MastodonServer(TOKEN).start()
    yield s
    s.stop()


@pytest.fixture
def transport():
    t = MastodonTransport()
    yield t
    t.close()


@pytest.fixture
def engine(server, transport):
    return Engine(transport, channel(server))


# -- publish, edit, delete ---------------------------------------------------------------

def test_the_registry_names_this_class():
    assert transport_class("mastodon") is MastodonTransport


def test_a_story_becomes_one_status_with_the_key_visibility_and_language(server, engine):
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.ok and outcome.status_code == 200
    [status] = server.statuses.values()
    assert outcome.remote == {"id": status["id"], "url": f"https://social.example/@lnn/{status['id']}",
                              "text_sha256": text_hash(status["text"])}
    assert outcome.remote_id == status["id"]
    assert status["text"].startswith("Putin Strengthens Relations with Syrian President")
    assert status["text"].endswith(f"{ARTICLES[0]['url']} #Russia #Syria #Kremlin")
    assert status["visibility"] == "public" and status["language"] == "en"
    [req] = server.seen(POST)
    assert req.headers["idempotency-key"] == "msg-1"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert server.refused() == []


def test_the_channel_sets_visibility_and_its_language_wins_over_the_article(server, transport):
    engine = Engine(transport, channel(server, visibility="unlisted", language="pt-BR"))
    assert engine.attempt("msg-1", PUBLISHED, article(language="en")).ok
    [status] = server.statuses.values()
    assert status["visibility"] == "unlisted"
    assert server.seen(POST)[0].json()["language"] == "pt-BR"
    assert status["language"] == "pt"  # Mastodon keeps the primary subtag
    # No language anywhere: none is sent, and the instance guesses.
    engine2 = Engine(transport, channel(server))
    assert engine2.attempt("msg-2", PUBLISHED, article(1, language=None)).ok
    assert "language" not in server.seen(POST)[-1].json()


def test_an_edited_story_edits_the_status(server, engine):
    engine.attempt("msg-1", PUBLISHED, article())
    first = dict(engine.live)
    outcome = engine.attempt("msg-2", UPDATED, article(title="Putin and Sharaa Agree on Bases in Syria"))
    assert outcome.ok and outcome.status_code == 200
    [status] = server.statuses.values()
    assert status["id"] == first["id"]
    assert status["text"].startswith("Putin and Sharaa Agree on Bases in Syria https://")
    assert [e["text"][:20] for e in status["edits"]] == ["Putin Strengthens Re", "Putin and Sharaa Agr"]
    assert outcome.remote == {"id": first["id"], "url": first["url"], "text_sha256": text_hash(status["text"])}
    [edit] = server.seen(EDIT)
    assert edit.json() == {"status": status["text"], "language": "en"}
    assert len(server.seen(POST)) == 1 and server.refused() == []


def test_an_update_with_the_same_text_is_skipped_without_a_request(server, engine):
    engine.attempt("msg-1", PUBLISHED, article())
    # A body change only: the post text is the same.
    outcome = engine.attempt("msg-2", UPDATED, article(content_html="<p>Corrected a typo in paragraph 3.</p>"))
    assert outcome.skipped == "the post's text is unchanged"
    assert outcome.remote == engine.live and outcome.remote["id"] in server.statuses
    assert server.seen(EDIT) == []


def test_an_update_before_any_post_makes_the_post(server, engine):
    outcome = engine.attempt("msg-2", UPDATED, article())
    assert outcome.ok and len(server.statuses) == 1 and server.seen(EDIT) == []


def test_an_edit_of_a_status_deleted_on_the_instance_is_skipped(server, engine):
    engine.attempt("msg-1", PUBLISHED, article())
    server.statuses.clear()  # a moderator removed it
    outcome = engine.attempt("msg-2", UPDATED, article(title="A new headline entirely"))
    assert outcome.skipped and "no longer on the instance" in outcome.skipped
    assert server.statuses == {}


def test_a_withdrawn_story_deletes_the_status_and_a_second_delete_is_done_already(server, engine):
    engine.attempt("msg-1", PUBLISHED, article())
    live = dict(engine.live)
    unpublished = {"id": ARTICLES[0]["id"], "url": ARTICLES[0]["url"], "version": "v2",
                   "updated_at": "2026-11-26T10:00:00Z"}
    outcome = engine.attempt("msg-2", UNPUBLISHED, unpublished)
    assert outcome.ok and outcome.status_code == 200
    assert outcome.remote == {"id": live["id"], "url": live["url"], "deleted": True}
    assert server.statuses == {} and list(server.deleted) == [live["id"]]
    # The same delete again (its answer was lost, say): the instance says 404 → done.
    engine.live = live
    engine.rows.pop("msg-2")
    again = engine.attempt("msg-2", UNPUBLISHED, unpublished)
    assert again.ok and again.skipped == "already deleted"
    # Nothing posted: nothing to delete.
    assert engine.attempt("msg-3", UNPUBLISHED, unpublished).skipped == "no post to delete"


def test_another_accounts_status_is_not_edited(server, engine):
    engine.live = {"id": server.foreign_id, "url": "https://social.example/@other/1", "text_sha256": "x"}
    outcome = engine.attempt("msg-2", UPDATED, article())
    assert outcome.skipped and server.seen(EDIT)[0].status == 404


# -- length and hashtags as Mastodon counts them --------------------------------------------

LONG = ("Parliament Debates Online Safety Rules for AI Chatbots as Ministers Weigh Fines, Age Checks and "
        "Powers for the Regulator to Block Services That Fail to Protect Children From Harmful Content, "
        "While Campaigners Warn the Proposals Go Too Far and Industry Groups Say They Do Not Go Far Enough "
        "to Give Companies Certainty About What Is Expected of Them in Practice Across the Whole Country")
TRICKY = {
    "300 characters": LONG,
    "emoji with skin tones, flags and ZWJ": "👩🏽‍💻 Coders 👨‍👩‍👧‍👦 families 🇬🇧🇺🇦🏳️‍🌈 " * 12,
    "combining marks": "Zalgo te\u0301\u0302\u0303xt cafe\u0301 na\u0308ive " * 25,
    "Arabic": "رئيس الوزراء يلتقي بوفد من المعارضة لبحث الإصلاحات الدستورية والانتخابات المقبلة " * 5,
    "Hebrew": "ראש הממשלה נפגש עם משלחת מהאופוזיציה כדי לדון ברפורמות החוקתיות " * 6,
    "entities": "Syria&#8217;s &amp; Russia&#8217;s &quot;deal&quot; &lt;b&gt; &#x1F1FA;&#x1F1E6; " * 10,
    "CJK, no spaces": "東京都は新しい気候変動対策を発表し再生可能エネルギーの導入を加速する方針" * 10,
}


@pytest.mark.parametrize("title", TRICKY.values(), ids=TRICKY.keys())
def test_tricky_titles_are_fitted_as_mastodon_counts_and_accepted(server, engine, title):
    data = article(title=title, tags=["Climate change", "Syria", "Middle East peace talks"])
    outcome = engine.attempt("msg-1", PUBLISHED, data)
    assert outcome.ok, outcome.describe()
    [status] = server.statuses.values()
    text = status["text"]
    assert mastodon_count(text) <= 500
    assert ARTICLES[0]["url"] in text  # never cut inside the URL
    assert "&#8217;" not in text and "&amp;" not in text
    if mastodon_count(plain(data["title"])) + 1 + 23 > 500:  # the stored title alone does not fit
        assert ELLIPSIS in text and mastodon_count(text) >= 450  # cut, not emptied
    assert server.refused() == []


def test_text_that_literally_says_an_entity_or_a_tag_is_posted_as_written(server, engine):
    # Decoded once, when stored: not again on the way to Mastodon (plain text).
    data = article(title="What &amp;amp; and &lt;b&gt; mean in HTML", tags=[])
    assert engine.attempt("msg-1", PUBLISHED, data).ok
    [status] = server.statuses.values()
    assert status["text"] == f"What &amp; and <b> mean in HTML {ARTICLES[0]['url']}"
    assert server.refused() == []


def test_every_url_counts_the_instances_weight_however_long(server, engine):
    long_url = "https://london-news-net.co.uk/" + "a-very-long-slug-" * 30 + "end/"
    data = article(url=long_url, title="Short headline", tags=[])
    assert engine.attempt("msg-1", PUBLISHED, data).ok
    [status] = server.statuses.values()
    assert status["text"] == f"Short headline {long_url}"  # 15 + 23, though the URL is 540 characters


def test_a_1000_character_instance_gets_longer_posts(transport):
    with MastodonServer(TOKEN, max_characters=1000) as server:
        engine = Engine(transport, channel(server, template="{title}\n\n{summary}\n\n{url} {hashtags}"))
        data = article(summary="Background. " * 70)
        outcome = engine.attempt("msg-1", PUBLISHED, data)
        assert outcome.ok, outcome.describe()
        assert engine.rows["msg-1"]["prepared"]["max_characters"] == 1000
        [text] = server.texts()
        assert 500 < mastodon_count(text) <= 1000
        assert server.refused() == []


def test_hashtags_are_camel_case_and_only_what_mastodon_links(server, engine):
    data = article(title="Emissions report", tags=["Climate change", "COVID-19", "2026", "CO₂ emissions",
                                                    "Café crème", "climate CHANGE", "Ⅻ Olympiad"])
    engine.attempt("msg-1", PUBLISHED, data)
    [text] = server.texts()
    assert text.endswith(" #ClimateChange #COVID19 #COEmissions #CaféCrème #Olympiad")


def test_an_empty_text_is_refused_before_anything_is_sent(server, transport):
    dest = channel(server, template="{section}")
    with pytest.raises(TransportError) as err:
        transport.prepare(dest, PUBLISHED, article(section=None))
    assert err.value.permanent and "empty" in str(err.value)
    assert server.seen(POST) == []


# -- the instance's limits ------------------------------------------------------------------

def test_limits_are_read_once_per_channel_without_the_token(server, transport):
    dest = channel(server)
    for n in range(3):
        transport.prepare(dest, PUBLISHED, article(n))
    [req] = server.seen(INSTANCE)
    assert "authorization" not in req.headers
    transport.prepare(channel(server, name="other-channel"), PUBLISHED, article())
    assert len(server.seen(INSTANCE)) == 2


def test_limits_are_shared_through_redis(redis_client):
    with MastodonServer(TOKEN, max_characters=777, characters_reserved_per_url=30) as server:
        first, second = MastodonTransport(redis_client=redis_client), MastodonTransport(redis_client=redis_client)
        try:
            assert first.limits(channel(server)).max_characters == 777
            limits = second.limits(channel(server))
            assert (limits.max_characters, limits.url_weight) == (777, 30)
            assert len(server.seen(INSTANCE)) == 1
            [key] = redis_client.keys("syndicate:mastodon:instance:*")
            assert 0 < redis_client.ttl(key) <= 6 * 3600
        finally:
            first.close()
            second.close()


def test_without_an_answer_about_limits_mastodons_defaults_apply(server, transport):
    server.fail(INSTANCE, 503, {"error": "down"})
    limits = transport.limits(channel(server))
    assert (limits.max_characters, limits.url_weight, limits.read) == (DEFAULT_MAX_CHARACTERS, 23, False)
    # Kept for a while, so a down instance is not asked on every story.
    transport.prepare(channel(server), PUBLISHED, article())
    assert len(server.seen(INSTANCE)) == 1


# -- failures --------------------------------------------------------------------------------

def test_a_lost_answer_then_a_retry_makes_one_status(server, engine):
    server.lose_answer(POST)
    first = engine.attempt("msg-1", PUBLISHED, article())
    assert first.status_code is None and first.error_class == "connection_error"
    assert is_transient(first)
    assert len(server.statuses) == 1  # it was made; the sender never heard
    second = engine.attempt("msg-1", PUBLISHED, article())
    assert second.ok
    [status] = server.statuses.values()
    assert second.remote["id"] == status["id"]
    assert [r.headers["idempotency-key"] for r in server.seen(POST)] == ["msg-1", "msg-1"]
    assert server.refused() == []


def test_a_retry_after_the_key_expired_finds_the_status_instead_of_posting_again(transport):
    # The instance has forgotten the key (Mastodon keeps one an hour), and the transport
    # knows the retry is that late: it looks through the account's statuses first.
    with MastodonServer(TOKEN, idempotency_window=0) as server:
        transport.idempotency_window = -1
        engine = Engine(transport, channel(server, template="{title}\n\n{url} {hashtags}"))
        # Stored, the title literally says "<b>deal</b>": Mastodon shows it escaped in HTML.
        data = article(title="Syria’s &amp; Russia’s &lt;b&gt;deal&lt;/b&gt;", tags=["Middle East", "Syria"])
        assert data["title"] == "Syria’s & Russia’s <b>deal</b>"
        server.lose_answer(POST)
        assert engine.attempt("msg-1", PUBLISHED, data).error_class == "connection_error"
        assert engine.rows["msg-1"]["remote"]["posting_since"]
        [made] = server.statuses
        for n in range(45):  # the newsroom posted more since, by hand: the lookup pages back
            server.add_status(f"Live coverage update {n} #Live")
        outcome = engine.attempt("msg-1", PUBLISHED, data)
        assert outcome.ok and outcome.remote["id"] == made
        assert outcome.remote["text_sha256"] == text_hash(server.statuses[made]["text"])
        assert len(server.seen(POST)) == 1 and len(server.statuses) == 46
        assert server.refused() == []


def test_a_late_retry_posts_when_the_first_request_was_never_carried_out(transport):
    with MastodonServer(TOKEN, idempotency_window=0) as server:
        transport.idempotency_window = -1
        engine = Engine(transport, channel(server))
        server.reset(POST)
        assert engine.attempt("msg-1", PUBLISHED, article()).error_class == "connection_error"
        server.add_status("Something else entirely")
        assert engine.attempt("msg-1", PUBLISHED, article()).ok
        assert len(server.statuses) == 2 and len(server.seen(POST, accepted=True)) == 1


def test_a_late_retry_with_a_write_only_token_posts_without_looking(transport):
    with MastodonServer(TOKEN, idempotency_window=0, scopes=("write:statuses",)) as server:
        transport.idempotency_window = -1
        engine = Engine(transport, channel(server))
        server.reset(POST)
        engine.attempt("msg-1", PUBLISHED, article())
        outcome = engine.attempt("msg-1", PUBLISHED, article())
        assert outcome.ok and len(server.statuses) == 1
        assert [r.status for r in server.seen("GET /api/v1/accounts/verify_credentials")] == [403]


def test_a_timeout_after_the_status_was_made_then_a_retry_makes_one_status(server, transport):
    engine = Engine(transport, channel(server, timeout=0.3))
    server.slow(POST, 0.8)
    first = engine.attempt("msg-1", PUBLISHED, article())
    assert first.error_class == "timeout" and is_transient(first)
    server.wait_for(lambda s: len(s.seen(POST)) == 1, what="the slow answer to finish")
    assert engine.attempt("msg-1", PUBLISHED, article()).ok
    assert len(server.statuses) == 1


def test_429_waits_until_the_rate_limit_reset(server, engine):
    reset = server.rate_limit(POST, reset_in=600)
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.status_code == 429 and outcome.error == "Too many requests"
    # Seconds until the reset, counted from the answer's Date (whole seconds: a little slack).
    assert 590 <= int(outcome.retry_after) <= 601
    now = datetime.now(timezone.utc)
    decision = DeliveryPolicy(jitter=0).decide(outcome, 1, [5.0, 60.0], now)
    assert decision.status == PENDING and (decision.next_attempt_at - now).total_seconds() >= 590
    assert reset > now
    assert engine.attempt("msg-1", PUBLISHED, article()).ok
    assert len(server.statuses) == 1


def test_server_errors_are_retried(server, engine):
    server.fail(POST, 503, "<html>Service Unavailable</html>")
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.status_code == 503 and outcome.retryable is None and is_transient(outcome)
    assert engine.attempt("msg-1", PUBLISHED, article()).ok and len(server.statuses) == 1


def test_a_rejected_token_disables_the_channel_and_is_never_shown(transport):
    with MastodonServer("the-right-token") as server:
        engine = Engine(transport, channel(server))
        outcome = engine.attempt("msg-1", PUBLISHED, article())
        assert outcome.status_code == 401 and not outcome.ok
        assert "The access token is invalid" in outcome.disable and "revoked" in outcome.disable
        assert outcome.error == "The access token is invalid"
        assert TOKEN not in repr(outcome) and server.statuses == {}


@pytest.mark.parametrize("status,error", [(403, "This action is outside the authorized scopes"),
                                          (422, "Validation failed: Text character limit of 500 exceeded")])
def test_403_and_422_are_final_with_the_instances_reason(server, engine, status, error):
    server.fail(POST, status, {"error": error})
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.status_code == status and outcome.retryable is False and outcome.error == error
    assert DeliveryPolicy().decide(outcome, 1, [5.0], datetime.now(timezone.utc)).status == "failed"


def test_a_lowered_limit_is_a_final_422_from_the_instance(transport):
    with MastodonServer(TOKEN, max_characters=1000) as server:
        engine = Engine(transport, channel(server, template="{title}\n\n{summary}\n\n{url}"))
        engine.rows["msg-1"] = {"prepared": transport.prepare(engine.dest, PUBLISHED,
                                                              article(summary="Background. " * 70)),
                                "remote": {}, "attempts": 0, "previous": None}
        server.max_characters = 500  # the admin lowered it after the text was fitted
        outcome = engine.attempt("msg-1", PUBLISHED, article())
        assert outcome.status_code == 422 and outcome.retryable is False
        assert outcome.error == "Validation failed: Text character limit of 500 exceeded"


def test_a_token_echoed_by_a_proxy_is_scrubbed(server, engine):
    server.fail(POST, 502, {"error": f"upstream refused Authorization: Bearer {TOKEN}"})
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.status_code == 502 and "[token]" in outcome.error and TOKEN not in outcome.body


def test_a_200_without_a_status_is_asked_again(server, engine):
    server.fail(POST, 200, "<html>captive portal</html>")
    outcome = engine.attempt("msg-1", PUBLISHED, article())
    assert outcome.retryable is True and not outcome.ok
    assert engine.attempt("msg-1", PUBLISHED, article()).ok and len(server.statuses) == 1


def test_an_edit_or_delete_rate_limited_waits_too(server, engine):
    engine.attempt("msg-1", PUBLISHED, article())
    server.rate_limit(EDIT, reset_in=60)
    outcome = engine.attempt("msg-2", UPDATED, article(title="New"))
    assert outcome.status_code == 429 and 50 <= int(outcome.retry_after) <= 61
    assert engine.attempt("msg-2", UPDATED, article(title="New")).ok
    assert server.texts()[0].startswith("New https://")
