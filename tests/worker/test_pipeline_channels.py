"""Channel rows in the pipeline: one per channel that takes the event, a channel's `delay`
after publication, superseding only what was never tried, and the daily cap spreading
posts instead of dropping them."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from config import parse_config
from tests.conftest import REPO
from worker.articles import parse_article
from worker.delivery.gates import DAY, Gates
from worker.pipeline import record_article
from worker.store import DeliveryRow, utcnow

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


@pytest.fixture
def config():
    return parse_config("""
[site]
title = "LNN"
url = "https://lnn.example"
feeds_url = "https://lnn.example/feeds"
[[channels]]
name = "masto"
type = "mastodon"
base_url = "https://social.example"
token = "t0ken-value"
[[channels]]
name = "later"
type = "telegram"
token = "1:abcdefgh"
chat_id = "@lnnnews"
delay = "15m"
[[channels]]
name = "world-bsky"
type = "bluesky"
handle = "lnn.example"
app_password = "abcd-efgh"
sections = ["Sport"]
daily_cap = 48
""", "test.toml", {})


def save(store, config, **changes):
    data = dict(EXAMPLE, **changes)
    with store.session() as s:
        return record_article(s, parse_article(data, "t"), config)


def channel_rows(store, **where):
    with store.session() as s:
        q = select(DeliveryRow).where(DeliveryRow.kind == "channel").order_by(DeliveryRow.id)
        for k, v in where.items():
            q = q.where(getattr(DeliveryRow, k) == v)
        return s.scalars(q).all()


def test_one_row_per_channel_that_takes_the_story(store, config):
    rec = save(store, config, published_at=utcnow().isoformat())
    rows = channel_rows(store)
    assert sorted(r.destination for r in rows) == ["later", "masto"]  # world-bsky takes only Sport
    # the delayed channel's row is not dispatched: the sweep takes it when it is due
    assert rec.channel_deliveries == [r.id for r in rows if r.destination == "masto"]


def test_a_delayed_channel_posts_its_delay_after_publication_but_withdraws_at_once(store, config):
    published = datetime.now(timezone.utc).replace(microsecond=0)
    save(store, config, published_at=published.isoformat())
    [later] = channel_rows(store, destination="later")
    assert later.next_attempt_at == published + timedelta(minutes=15) and later.queued_at is None
    save(store, config, published_at=published.isoformat(), status="unpublished")
    withdrawal = [r for r in channel_rows(store, destination="later") if r.event_type == "article.unpublished"]
    assert withdrawal[0].next_attempt_at <= utcnow()
    # the post never went out, so the withdrawal supersedes it
    assert channel_rows(store, destination="later")[0].status == "superseded"


def test_an_edit_supersedes_a_post_never_tried_but_waits_for_one_already_tried(store, config):
    save(store, config)
    [first] = channel_rows(store, destination="masto")
    save(store, config, title="Edited once")
    assert channel_rows(store, destination="masto")[0].status == "superseded"
    # the second version was tried (its answer may have been lost): a third waits for it
    second = channel_rows(store, destination="masto")[1]
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == second.id).values(attempts=1))
    save(store, config, title="Edited twice")
    statuses = [r.status for r in channel_rows(store, destination="masto")]
    assert statuses == ["superseded", "pending", "pending"]
    assert first.id != second.id


def test_a_daily_cap_spreads_posts_over_the_day_instead_of_dropping_them(config, redis_client):
    gates = Gates(redis_client, lanes=4)
    capped = config.channel("world-bsky")
    jobs = list(range(60))
    admission = gates.admit(capped, "channel:world-bsky", jobs, rounds=60, now_ts=0, breaker_state=None,
                            paused_until=None)
    # a day's burst goes at once (48), the rest waits, spaced by a day over the cap
    assert len(admission.go) <= 48 and len(admission.go) + len(admission.wait) == 60
    assert gates.spread(capped, 5) == pytest.approx(5 * DAY / 48)


def test_the_live_post_is_the_newest_kept_one_and_an_unanswered_attempt_may_be_one(store, config):
    from types import SimpleNamespace

    from worker.delivery.claim import previous_posts

    rec = save(store, config)
    [first] = channel_rows(store, destination="masto")

    def set_row(row_id, **values):
        with store.session() as s:
            s.execute(update(DeliveryRow).where(DeliveryRow.id == row_id).values(**values))

    def live_for_next():
        nxt = save(store, config, title=f"Edit {utcnow().timestamp()}")
        row = channel_rows(store, destination="masto")[-1]
        with store.session() as s:
            claimed = SimpleNamespace(id=row.id, kind="channel", article_id=row.article_id,
                                      destination=row.destination, event_id=row.event_id)
            return previous_posts(s, [claimed])[row.id][0], nxt

    set_row(first.id, status="delivered", remote={"id": "1", "url": "https://social.example/@lnn/1"},
            delivered_at=utcnow())
    live, _ = live_for_next()
    assert live["id"] == "1"
    # the edit was refused for good (4xx): the post made first is still the live one
    edit = channel_rows(store, destination="masto")[-1]
    set_row(edit.id, status="failed", last_status_code=422, remote={"posting_since": "x"})
    live, _ = live_for_next()
    assert live["id"] == "1"
    # the post was deleted: nothing is live
    gone = channel_rows(store, destination="masto")[-1]
    set_row(gone.id, status="delivered", event_type="article.unpublished", remote={"id": "1", "deleted": True})
    live, _ = live_for_next()
    assert live is None
    # a new post whose answer never came (no status): it may exist, so it counts, with no id
    lost = channel_rows(store, destination="masto")[-1]
    set_row(lost.id, status="failed", last_status_code=None, remote={"sending": "2026-11-26T09:00:00Z"})
    live, _ = live_for_next()
    assert live == {"sending": "2026-11-26T09:00:00Z", "id": None, "unresolved": True}
    assert rec.channel_deliveries
