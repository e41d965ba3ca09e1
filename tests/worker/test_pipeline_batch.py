"""Storing many articles in one transaction keeps every property of storing them one by one:
rows before enqueue, one event per version, the same id twice keeps both events in order,
a bad article rejects only itself."""

import json

import pytest
from sqlalchemy import select

from tests.conftest import REPO
from worker import enqueue
from worker.articles import parse_article
from worker.pipeline import event_data, ingest_articles, record_article, record_articles
from worker.store import ArticleRow, ArticleTermRow, DeliveryRow, EventRow

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


def article(n: int, **changes):
    return parse_article(dict(EXAMPLE, id=f"web:story-{n}", url=f"https://lnn.example/{n}", **changes), "t")


def snapshot(store):
    """What the store holds, without ids and clocks: comparable between two stores."""
    with store.session() as s:
        events = [(e.article_id, e.type, e.version, json.dumps(e.data, sort_keys=True))
                  for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        deliveries = sorted((d.article_id, d.event_type, d.kind, d.destination, d.status, d.version)
                            for d in s.scalars(select(DeliveryRow)))
        terms = sorted((t.article_id, t.kind, t.term) for t in s.scalars(select(ArticleTermRow)))
        articles = sorted((a.id, a.status, a.version, a.section) for a in s.scalars(select(ArticleRow)))
    return events, deliveries, terms, articles


def stories():
    """New stories, an update, a withdrawal, the same id three times, an unpublished unknown."""
    return [article(1), article(2, section="Sport"), article(3),
            article(1, title="Corrected headline"),  # the same id again: an update
            article(3, status="unpublished"),  # and a withdrawal
            article(1, title="Corrected twice"),
            article(4, status="unpublished")]  # never published: stored, no event


def test_a_batch_stores_what_one_by_one_stores(store, config, tmp_path):
    from worker.store import Store

    with store.session() as s:
        batch = record_articles(s, stories(), config)
    one_by_one = Store(f"sqlite:///{tmp_path}/one-by-one.db")
    one_by_one.migrate()
    singles = []
    for art in stories():
        with one_by_one.session() as s:
            singles.append(record_article(s, art, config))
    assert [(r.article_id, r.event_type, r.version, len(r.partner_deliveries), r.feed_names) for r in batch] == \
        [(r.article_id, r.event_type, r.version, len(r.partner_deliveries), r.feed_names) for r in singles]
    assert snapshot(store) == snapshot(one_by_one)
    one_by_one.dispose()


def test_the_same_id_twice_in_a_batch_keeps_both_events_in_order(store, config):
    with store.session() as s:
        first, second = record_articles(s, [article(1), article(1, title="Corrected")], config)
    assert (first.event_type, second.event_type) == ("article.published", "article.updated")
    assert first.event_id < second.event_id and first.version != second.version
    with store.session() as s:
        older = s.get(DeliveryRow, first.partner_deliveries[0])
        newer = s.get(DeliveryRow, second.partner_deliveries[0])
        assert (older.status, newer.status) == ("superseded", "pending")
        assert s.get(ArticleRow, "web:story-1").title == "Corrected"


def test_event_data_is_what_the_article_sends():
    art = article(1)
    assert json.dumps(event_data(art.row_values())) == json.dumps(art.data())


class RecordingScheduler:
    """Checks, from another connection, that every row a task names is committed."""

    def __init__(self, store):
        self.store, self.delivered, self.uncommitted = store, [], []

    def deliver(self, delivery_ids, countdown=0):
        with self.store.engine.connect() as conn:
            seen = {r[0] for r in conn.execute(select(DeliveryRow.id).where(DeliveryRow.id.in_(delivery_ids)))}
        self.uncommitted += [i for i in delivery_ids if i not in seen]
        self.delivered += delivery_ids

    def build(self, target, countdown):
        pass


@pytest.fixture
def scheduler(store, redis_url):
    previous = enqueue._scheduler
    recording = RecordingScheduler(store)
    enqueue.install(recording)
    yield recording
    enqueue._scheduler = previous


def test_ingest_enqueues_only_committed_rows_and_every_one(store, config, scheduler):
    results = ingest_articles([article(n) for n in range(60)], config, store)
    assert scheduler.uncommitted == []
    assert sorted(scheduler.delivered) == sorted(i for r in results for i in r.partner_deliveries)
    assert len(scheduler.delivered) == 60 * 2


@pytest.fixture
def pg_store(pg_server_url):
    """PostgreSQL only: SQLite does not enforce column lengths, so it refuses nothing here."""
    from tests.conftest import _pg_schema_url
    from worker.store import Store

    s = Store(_pg_schema_url(pg_server_url))
    s.migrate()
    yield s
    s.dispose()


def test_an_article_the_store_refuses_rejects_only_itself(pg_store, config, redis_url):
    store = pg_store
    previous = enqueue._scheduler
    recording = RecordingScheduler(store)
    enqueue.install(recording)
    try:
        _refused_article_rejects_only_itself(store, config, recording)
    finally:
        enqueue._scheduler = previous


def _refused_article_rejects_only_itself(store, config, scheduler):
    # Input validation bounds every field to its column now; a value it let through by
    # mistake (made here without validation) must still reject only its own article.
    too_long = article(3).model_copy(update={"section": "S" * 250})  # section is VARCHAR(200)
    results = ingest_articles([article(1), too_long, article(2)], config, store)
    assert [r.error is None for r in results] == [True, False, True]
    assert "store refused" in results[1].error
    assert [r.event_type for r in results] == ["article.published", None, "article.published"]
    with store.session() as s:
        assert sorted(s.scalars(select(ArticleRow.id))) == ["web:story-1", "web:story-2"]
        assert s.scalars(select(EventRow.article_id).where(EventRow.article_id == "web:story-3")).all() == []
    assert scheduler.uncommitted == [] and len(scheduler.delivered) == 4
