"""Storing articles: each article, its event and one delivery row per destination in the
caller's transaction, a batch in a few statements whatever its size (not a few per article).

A batch first locks the rows already stored (in id order, so two writers cannot deadlock),
then bulk-inserts articles, events, delivery rows and the feed index; `supersede_older`
runs only for articles that existed before (a new article has nothing to supersede)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import SyndicationConfig
from worker.articles import Article
from worker.feeds.index import replace_terms
from worker.pipeline.events import (UNPUBLISHED, Recorded, decide_event, event_data, new_message_id, stored_form,
                                    unpublished_data)
from worker.store import ArticleRow, DeliveryRow, EventRow, utcnow
from worker.store.bulk import bulk_insert


def record_article(session: Session, article: Article, config: SyndicationConfig, origin: str = "ingest") -> Recorded:
    """Store the article; when it changed, create its event and deliveries. Caller commits."""
    return record_articles(session, [article], config, origin)[0]


def record_articles(session: Session, articles: list[Article], config: SyndicationConfig,
                    origin: str = "ingest") -> list[Recorded]:
    """Store these articles in the caller's transaction, in order; for each that changed, its
    event and its delivery rows. Caller commits. The same id twice gives two events, in order:
    the batch is cut before an id comes again, so a part never holds an id twice."""
    results: list[Recorded] = []
    part: list[Article] = []
    seen: set[str] = set()
    for article in articles:
        if article.id in seen:
            results += _record_part(session, part, config, origin)
            part, seen = [], set()
        part.append(article)
        seen.add(article.id)
    if part:
        results += _record_part(session, part, config, origin)
    return results


@dataclass
class _Change:
    """One article's event being stored, with what its delivery rows depend on."""

    rec: Recorded
    event: dict
    section: str | None
    tags: list[str]
    previous: tuple[str | None, list[str]] | None
    published_at: datetime | None
    existed: bool
    now: datetime


def _record_part(session: Session, articles: list[Article], config: SyndicationConfig,
                 origin: str) -> list[Recorded]:
    """Articles with distinct ids: their rows in a few statements (not a few per article)."""
    stored = [stored_form(a, config) for a in articles]
    articles = [article for article, _ in stored]
    sanitized_as = {article.id: marker for article, marker in stored}  # ids are distinct in a part
    existing: dict[str, ArticleRow] = {}
    ids = sorted(a.id for a in articles)  # locked in one order, so two writers cannot deadlock
    for chunk in chunks(ids, 500):
        for row in session.scalars(select(ArticleRow).where(ArticleRow.id.in_(chunk))
                                   .order_by(ArticleRow.id).with_for_update()):
            existing[row.id] = row
    results: list[Recorded] = []
    new_rows: list[dict] = []
    changes: list[_Change] = []
    for article in articles:
        now = utcnow()
        row = existing.get(article.id)
        event_type = decide_event(row, article)
        rec = Recorded(article.id)
        results.append(rec)
        values = dict(article.row_values(), sanitized_as=sanitized_as[article.id])
        previous = None
        if row is not None and row.status == "published":
            previous = (row.section, list(row.tags or []))
        published_at = article.published_at
        if event_type == UNPUBLISHED:
            # Keep the last published content; only the state changes.
            assert row is not None
            row.status = "unpublished"
            row.updated_at = max(article.updated_at or now, row.updated_at)
            row.changed_at = now
            version, published_at = row.version, row.published_at
            data = unpublished_data(row.id, row.url, row.version, row.updated_at)
        elif row is None:
            new_rows.append(dict(values, stored_at=now, changed_at=now))
            version = values["version"]
            data = event_data(values) if event_type else None
        else:
            if event_type is not None or row.status != values["status"]:
                for key, value in values.items():
                    setattr(row, key, value)
                row.changed_at = now
            version = values["version"]
            data = event_data(values) if event_type else None
        if event_type is None:
            continue
        rec.event_type, rec.version = event_type, version
        changes.append(_Change(rec, dict(article_id=article.id, version=version, type=event_type, data=data,
                                         origin=origin, created_at=now, notes=list(article.cleaning_notes) or None),
                               article.section, article.tags, previous, published_at, row is not None, now))
    conn = session.connection()
    if new_rows:
        bulk_insert(conn, ArticleRow.__table__, new_rows)
    session.flush()  # the changed rows already stored
    if not changes:
        return results
    _index(session, changes, existing, {r["id"]: r for r in new_rows})
    event_ids = bulk_insert(conn, EventRow.__table__, [c.event for c in changes], returning_ids=True)
    rows: list[dict] = []
    owners: list[tuple[_Change, str]] = []
    for change, event_id in zip(changes, event_ids):
        change.rec.event_id = event_id
        for kind, name, due in _destinations(change, config):
            rows.append(dict(event_id=event_id, article_id=change.rec.article_id, version=change.rec.version,
                             event_type=change.rec.event_type, kind=kind, destination=name,
                             message_id=new_message_id(), status="pending", attempts=0, next_attempt_at=due,
                             queued_at=change.now if due <= change.now else None, created_at=change.now,
                             updated_at=change.now))
            owners.append((change, kind))
    if rows:
        delivery_ids = bulk_insert(conn, DeliveryRow.__table__, rows, returning_ids=True)
        for (change, kind), row, delivery_id in zip(owners, rows, delivery_ids):
            if kind == "feed":
                change.rec.feed_names.append(row["destination"])
            elif kind == "partner":
                change.rec.partner_deliveries.append(delivery_id)
            elif row["queued_at"] is not None:
                # Rows held by a channel's `delay` are left to the sweep, which takes them when due.
                change.rec.channel_deliveries.append(delivery_id)
    for change in changes:
        if not change.existed:
            continue  # a new article has no older delivery to supersede
        event = SimpleNamespace(id=change.rec.event_id, article_id=change.rec.article_id, type=change.rec.event_type)
        for kind in ("partner", "channel"):
            names = [r["destination"] for (c, k), r in zip(owners, rows) if c is change and k == kind]
            # An older version still waiting must never land after this one: supersede it.
            supersede_older(session, event, kind, names, change.now)
    return results


def _destinations(change: _Change, config: SyndicationConfig):
    """(kind, name, due) of every destination that should see this event: feeds, partners, channels."""
    event_type, section, tags = change.rec.event_type, change.section, change.tags
    for feed in config.feeds:
        # A feed is rebuilt when it holds the article now or held it before
        # (a section change moves a story out of one feed and into another).
        if feed.holds(section, tags) or (change.previous is not None and feed.holds(*change.previous)):
            yield "feed", feed.name, change.now
    for partner in config.partners:
        if partner.wants(event_type, section, tags):
            yield "partner", partner.name, change.now
    for channel in config.channels:
        if channel.wants(event_type, section, tags):
            yield "channel", channel.name, channel_due(channel, event_type, change.published_at, change.now)


def _index(session: Session, changes: list[_Change], existing: dict[str, ArticleRow], new_rows: dict[str, dict]) -> None:
    """The feed index of every changed article, in line with its stored state (see worker.feeds.index)."""
    stored = []
    for change in changes:
        article_id = change.rec.article_id
        row = existing.get(article_id)
        stored.append(row_state(row) if row is not None else new_rows[article_id])
    replace_terms(session, [s["id"] for s in stored if s["id"] in existing], stored)


def row_state(row: ArticleRow) -> dict:
    return {"id": row.id, "status": row.status, "section": row.section, "tags": row.tags,
            "published_at": row.published_at}


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def channel_due(channel, event_type: str, published_at: datetime | None, now: datetime) -> datetime:
    """When a channel posts: `delay` after the story's publication (a withdrawal at once)."""
    if channel.delay and event_type != UNPUBLISHED and published_at is not None:
        return max(now, published_at + timedelta(seconds=channel.delay))
    return now


def supersede_older(session: Session, event: EventRow, kind: str, names: list[str], now: datetime) -> None:
    if not names:
        return
    conditions = [
        DeliveryRow.article_id == event.article_id,
        DeliveryRow.kind == kind,
        DeliveryRow.destination.in_(names),
        DeliveryRow.event_id < event.id,
        DeliveryRow.status == "pending",
    ]
    if kind == "channel":
        # A channel post already tried may exist (its answer lost): it finishes first, and
        # the newer version then edits it, rather than risking a second post.
        conditions.append(DeliveryRow.attempts == 0)
    session.execute(
        update(DeliveryRow).where(*conditions)
        .values(status="superseded", last_error=f"superseded by event {event.id} ({event.type})", updated_at=now,
                next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
