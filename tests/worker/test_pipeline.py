"""Storing an article creates its event and deliveries in the same transaction."""

import json

from sqlalchemy import func, select

from tests.conftest import REPO
from worker.articles import parse_article
from worker.pipeline import due_deliveries, record_article
from worker.store import ArticleRow, DeliveryRow, EventRow, utcnow

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


def store_article(store, config, data):
    with store.session() as s:
        return record_article(s, parse_article(data, "t"), config)


def deliveries(store, **where):
    with store.session() as s:
        q = select(DeliveryRow).order_by(DeliveryRow.id)
        for k, v in where.items():
            q = q.where(getattr(DeliveryRow, k) == v)
        return s.scalars(q).all()


def test_a_new_article_is_published_to_every_matching_destination(store, config):
    rec = store_article(store, config, EXAMPLE)
    assert rec.event_type == "article.published"
    rows = deliveries(store)
    assert sorted((r.kind, r.destination) for r in rows) == [
        ("feed", "all"), ("feed", "world"), ("partner", "everything"), ("partner", "world-only")]
    assert all(r.status == "pending" and r.version == rec.version for r in rows)
    assert len({r.message_id for r in rows}) == 4


def test_storing_the_same_article_again_does_nothing(store, config):
    store_article(store, config, EXAMPLE)
    rec = store_article(store, config, dict(EXAMPLE, updated_at="2026-11-26T12:00:00Z"))
    assert rec.event_type is None
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(EventRow)) == 1


def test_a_content_change_is_an_update_for_partners_that_want_updates(store, config):
    store_article(store, config, EXAMPLE)
    rec = store_article(store, config, dict(EXAMPLE, title="Putin and Sharaa meet at the Kremlin"))
    assert rec.event_type == "article.updated"
    updates = deliveries(store, event_type="article.updated")
    # world-only asked for article.published only
    assert sorted(r.destination for r in updates) == ["all", "everything", "world"]


def test_a_section_change_rebuilds_the_feed_the_story_left(store, config):
    store_article(store, config, EXAMPLE)
    store_article(store, config, dict(EXAMPLE, section="Sport"))
    feeds = {r.destination for r in deliveries(store, event_type="article.updated", kind="feed")}
    assert feeds == {"all", "world", "sport"}


def test_unpublishing_keeps_the_content_and_tells_partners(store, config):
    store_article(store, config, EXAMPLE)
    rec = store_article(store, config, dict(EXAMPLE, status="unpublished"))
    assert rec.event_type == "article.unpublished"
    with store.session() as s:
        art = s.get(ArticleRow, EXAMPLE["id"])
        assert art.status == "unpublished" and art.title == EXAMPLE["title"]
        event = s.scalars(select(EventRow).where(EventRow.type == "article.unpublished")).one()
        assert set(event.data) >= {"id", "url", "version"}
    # withdrawing again changes nothing
    assert store_article(store, config, dict(EXAMPLE, status="unpublished")).event_type is None
    # and publishing again is a new publication
    assert store_article(store, config, EXAMPLE).event_type == "article.published"


def test_a_pending_older_version_is_superseded_by_a_newer_one(store, config):
    store_article(store, config, EXAMPLE)
    store_article(store, config, dict(EXAMPLE, title="Corrected headline"))
    old = deliveries(store, event_type="article.published", destination="everything")[0]
    new = deliveries(store, event_type="article.updated", destination="everything")[0]
    assert old.status == "superseded" and new.status == "pending"


def test_rows_whose_task_was_lost_are_found_by_the_sweep_query(store, config):
    from datetime import timedelta

    store_article(store, config, EXAMPLE)
    now = utcnow()
    with store.session() as s:
        # just queued: not due for a re-enqueue yet
        assert due_deliveries(s, now, timedelta(seconds=60)) == []
        # a minute later with nothing done, the message is presumed lost
        assert len(due_deliveries(s, now + timedelta(seconds=61), timedelta(seconds=60))) == 4
