"""Article stored → deliveries created, in one transaction → tasks enqueued after commit.

`record_article` decides the event (published / updated / unpublished / nothing),
writes the article, the event and one delivery row per destination together, so
a crash can never leave an article without its deliveries. `dispatch` puts the
work on the broker only after that commit; if it never gets there, the periodic
sweep finds the rows due and enqueues them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

import sqlalchemy.exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import SyndicationConfig
from worker.articles import Article, iso
from worker.feeds.index import replace_terms
from worker.sanitize import sanitize_to_store
from worker.delivery.destinations import disabled_row_clause
from worker.store import ArticleRow, DeliveryRow, EventRow, utcnow
from worker.store.bulk import bulk_insert

log = logging.getLogger("syndicate.pipeline")

PUBLISHED, UPDATED, UNPUBLISHED = "article.published", "article.updated", "article.unpublished"
DISPATCH_BATCH = 50
# Articles stored per transaction by `ingest_articles`.
INGEST_BATCH = 100


def new_message_id() -> str:
    # Standard Webhooks ids are opaque; "msg_" + a random UUID is unique per message.
    return "msg_" + uuid.uuid4().hex


@dataclass
class Recorded:
    """What storing one article produced."""

    article_id: str
    event_type: str | None = None
    event_id: int | None = None
    version: str | None = None
    partner_deliveries: list[int] = field(default_factory=list)
    feed_names: list[str] = field(default_factory=list)
    channel_deliveries: list[int] = field(default_factory=list)
    # Set when the store refused this article (nothing of it was stored).
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.event_type is not None


def decide_event(existing: ArticleRow | None, article: Article) -> str | None:
    """Which event an incoming article makes, given what the store holds."""
    if article.status == "unpublished":
        if existing is not None and existing.status == "published":
            return UNPUBLISHED
        return None
    if existing is None or existing.status == "unpublished":
        return PUBLISHED
    if existing.version != article.version:
        return UPDATED
    return None


def unpublished_data(article_id: str, url: str, version: str, updated_at: datetime) -> dict:
    return {"id": article_id, "url": url, "version": version, "updated_at": iso(updated_at)}


def republishable(article: Article, config: SyndicationConfig) -> Article:
    """The article as every destination may show it: its body sanitized here, once, for every
    input path (ingest, each source), so feeds, partners and channels get the same safe HTML
    and the content version is computed on what they get."""
    return _stored_form(article, config)[0]


def _stored_form(article: Article, config: SyndicationConfig) -> tuple[Article, str | None]:
    """`republishable(article)`, and the `sanitized_as` marker its row is stored with."""
    clean, sanitized_as = sanitize_to_store(article.content_html, article.url, config.feed_settings.iframe_hosts)
    if clean != article.content_html:
        article = article.model_copy(update={"content_html": clean})
    return article, sanitized_as


_DATA_FIELDS = ("id", "url", "title", "summary", "content_html", "authors", "section", "tags", "image", "language")


def event_data(values: dict) -> dict:
    """`Article.data()` made from `Article.row_values()`, so the content version (a hash of the
    whole body) is computed once per article, not twice (tests check the two agree)."""
    data = {k: values[k] for k in _DATA_FIELDS}
    data["authors"], data["tags"] = list(data["authors"]), list(data["tags"])
    data.update(published_at=iso(values["published_at"]), updated_at=iso(values["updated_at"]),
                version=values["version"])
    return data


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
    stored = [_stored_form(a, config) for a in articles]
    articles = [article for article, _ in stored]
    sanitized_as = {article.id: marker for article, marker in stored}  # ids are distinct in a part
    existing: dict[str, ArticleRow] = {}
    ids = sorted(a.id for a in articles)  # locked in one order, so two writers cannot deadlock
    for chunk in _chunks(ids, 500):
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


def _chunks(items: list, size: int):
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


def republish_article(store, config: SyndicationConfig, article_id: str, partners: list[str] | None = None,
                      to: list[str] | None = None) -> Recorded:
    """A new event for an article's current state, to the destinations it qualifies for
    (or only those named in `to`): new messages with new ids, so a partner that dropped
    its copy gets it again. A channel that already has a post of the story gets it
    edited (or left as it is where posts cannot be edited), never a second post.
    Feeds are not touched."""
    names = set(to or []) | set(partners or []) if (to or partners) else None
    with store.session() as session:
        row = session.get(ArticleRow, article_id, with_for_update=True)
        if row is None:
            raise LookupError(f"no article {article_id!r} in the store")
        now = utcnow()
        if row.status == "published":
            event_type, data = PUBLISHED, Article.from_row(row).data()
        else:
            event_type, data = UNPUBLISHED, unpublished_data(row.id, row.url, row.version, row.updated_at)
        event = EventRow(article_id=row.id, version=row.version, type=event_type, data=data, origin="republish",
                         created_at=now)
        session.add(event)
        session.flush()
        result = Recorded(row.id, event_type=event_type, event_id=event.id, version=row.version)
        tags = list(row.tags or [])
        made = []
        for kind, dests in (("partner", config.partners), ("channel", config.channels)):
            wanted = [d for d in dests if d.wants(event_type, row.section, tags) and (names is None or d.name in names)]
            rows = [DeliveryRow(event_id=event.id, article_id=row.id, version=row.version, event_type=event_type,
                                kind=kind, destination=d.name, message_id=new_message_id(), status="pending",
                                attempts=0, next_attempt_at=now, queued_at=now, created_at=now, updated_at=now)
                    for d in wanted]
            session.add_all(rows)
            supersede_older(session, event, kind, [d.name for d in wanted], now)
            made.append(rows)
        session.flush()
        result.partner_deliveries = [r.id for r in made[0]]
        result.channel_deliveries = [r.id for r in made[1]]
    log_recorded(result)
    return result


def broker_errors() -> tuple[type[BaseException], ...]:
    """What enqueueing raises when the broker cannot be reached (after Celery's own retries)."""
    import kombu.exceptions
    import redis

    return (kombu.exceptions.OperationalError, redis.RedisError)


def dispatch(recorded: list[Recorded], config: SyndicationConfig, warn_broker_down: bool = True) -> bool:
    """Enqueue the work for committed events. Call only after the transaction committed.

    Returns False when the broker could not be reached: nothing is lost (the rows are
    committed and due), the sweep enqueues them once the broker is back. One failed
    enqueue stops the rest, so a broker that is down costs one connection attempt.
    `warn_broker_down=False` is for a caller that tells its user itself (`ingest`)."""
    from worker import enqueue

    feeds: set[str] = set()
    for rec in recorded:
        if not rec.changed:
            continue
        feeds.update(rec.feed_names)
    # One task per article fan-out; several articles stored together share a task, up to
    # DISPATCH_BATCH deliveries (sends to different destinations, and to one, run in parallel).
    batches: list[list[int]] = []
    batch: list[int] = []
    for rec in recorded:
        ids = rec.partner_deliveries + rec.channel_deliveries
        if rec.changed and ids:
            if batch and len(batch) + len(ids) > DISPATCH_BATCH:
                batches.append(batch)
                batch = []
            batch += ids
    if batch:
        batches.append(batch)
    queued = True
    try:
        for ids in batches:
            enqueue.deliver(ids)
    except broker_errors() as exc:
        queued = False
        waiting = sum(len(ids) for ids in batches)
        log.log(logging.WARNING if warn_broker_down else logging.DEBUG,
                "stage=not-queued deliveries=%d error=%s: they are stored and go out when the broker is back "
                "(the sweep)", waiting, exc)
    if any(rec.changed for rec in recorded):
        queued = request_feed_builds(feeds, config, warn_broker_down and queued) and queued
    return queued


def request_feed_builds(feeds: set[str], config: SyndicationConfig, warn: bool = True) -> bool:
    """Coalesced rebuilds of these feeds and the news sitemap (see worker.feeds.coalesce);
    False when Redis could not be reached."""
    from worker.feeds.coalesce import request_rebuilds

    try:
        request_rebuilds(feeds, config.feed_settings)
    except broker_errors() as exc:
        # The feeds' pending rows are committed: the sweep asks again once Redis answers.
        log.log(logging.WARNING if warn else logging.DEBUG, "stage=feeds-not-requested feeds=%s error=%s",
                ",".join(sorted(feeds)), exc)
        return False
    return True


class Ingested(list):
    """The articles `ingest_articles` stored (a list of `Recorded`), and whether their work
    reached the broker (`queued` False: it goes out once the broker is back)."""

    queued: bool = True


def ingest_articles(articles: list[Article], config: SyndicationConfig, store, origin: str = "ingest",
                    warn_broker_down: bool = True) -> Ingested:
    """Store the articles, INGEST_BATCH to a transaction, and enqueue each batch's work once it
    is committed (so sending starts while later batches are stored). When a batch fails, its
    articles are stored again one to a transaction, so an article the store refuses (say, a
    value too long for its column) rejects only itself: its Recorded carries the `error`,
    and the others are stored. Once the broker is found down, later batches are not offered
    to it (one connection attempt in all): their rows are committed, the sweep sends them."""
    results = Ingested()
    for batch in _chunks(articles, INGEST_BATCH):
        try:
            with store.session() as session:
                stored = record_articles(session, batch, config, origin=origin)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
            raise  # the store is unreachable: no article would be stored alone either
        except (sqlalchemy.exc.SQLAlchemyError, ValueError):
            stored = [_ingest_alone(article, config, store, origin) for article in batch]
        for rec in stored:
            log_recorded(rec)
        if results.queued:
            results.queued = dispatch(stored, config, warn_broker_down)
        results += stored
    return results


def _ingest_alone(article: Article, config: SyndicationConfig, store, origin: str) -> Recorded:
    try:
        with store.session() as session:
            return record_article(session, article, config, origin=origin)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        raise
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        log.error("article=%s stage=refused-by-store error=%s", article.id, reason)
        return Recorded(article.id, error=f"the store refused it: {reason}")


def log_recorded(rec: Recorded) -> None:
    if rec.changed:
        log.info("article=%s stage=stored event=%s version=%s feeds=%d partners=%d channels=%d",
                 rec.article_id, rec.event_type, rec.version, len(rec.feed_names), len(rec.partner_deliveries),
                 len(rec.channel_deliveries))
    else:
        # Pollers re-read an overlap on every poll: an unchanged article is not a stage.
        log.debug("article=%s stage=stored event=none (unchanged)", rec.article_id)


def due_deliveries(session: Session, now: datetime, requeue_after: timedelta, limit: int = 5000) -> list[DeliveryRow]:
    """Rows that should be running but whose task is not on its way: never queued, queued
    long ago (the message was lost), or claimed by a worker whose lease ran out."""
    stale = now - requeue_after
    # A disabled destination's deliveries wait for `syndicate destinations enable`, not for the sweep.
    pending = select(DeliveryRow).where(
        DeliveryRow.status == "pending",
        DeliveryRow.next_attempt_at <= now,
        (DeliveryRow.queued_at.is_(None)) | (DeliveryRow.queued_at <= stale)
        | (DeliveryRow.queued_at < DeliveryRow.next_attempt_at),
        ~disabled_row_clause(),
    ).order_by(DeliveryRow.next_attempt_at).limit(limit)
    orphaned = select(DeliveryRow).where(
        DeliveryRow.status == "sending", DeliveryRow.lease_until < now
    ).limit(limit)
    return list(session.scalars(pending)) + list(session.scalars(orphaned))
