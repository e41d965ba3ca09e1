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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import SyndicationConfig
from worker.articles import Article, iso
from worker.feeds.index import index_article
from worker.sanitize import sanitize_html
from worker.delivery.destinations import disabled_row_clause
from worker.store import ArticleRow, DeliveryRow, EventRow, utcnow

log = logging.getLogger("syndicate.pipeline")

PUBLISHED, UPDATED, UNPUBLISHED = "article.published", "article.updated", "article.unpublished"
DISPATCH_BATCH = 50


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
    clean = sanitize_html(article.content_html, article.url, config.feed_settings.iframe_hosts)
    return article if clean == article.content_html else article.model_copy(update={"content_html": clean})


def record_article(session: Session, article: Article, config: SyndicationConfig, origin: str = "ingest") -> Recorded:
    """Store the article; when it changed, create its event and deliveries. Caller commits."""
    article = republishable(article, config)
    now = utcnow()
    existing = session.get(ArticleRow, article.id, with_for_update=True)
    event_type = decide_event(existing, article)
    result = Recorded(article.id)

    previous_section = existing.section if existing is not None else None
    previous_tags = list(existing.tags or []) if existing is not None else []
    was_published = existing is not None and existing.status == "published"

    values = article.row_values()
    if event_type == UNPUBLISHED:
        # Keep the last published content; only the state changes.
        assert existing is not None
        existing.status = "unpublished"
        existing.updated_at = max(article.updated_at or now, existing.updated_at)
        existing.changed_at = now
        version = existing.version
        data = unpublished_data(existing.id, existing.url, existing.version, existing.updated_at)
    elif existing is None:
        session.add(ArticleRow(**values, stored_at=now, changed_at=now))
        version = values["version"]
        data = article.data()
    else:
        if event_type is not None or existing.status != values["status"]:
            for key, value in values.items():
                setattr(existing, key, value)
            existing.changed_at = now
        version = values["version"]
        data = article.data()

    if event_type is None:
        return result

    session.flush()
    index_article(session, article.id)
    event = EventRow(article_id=article.id, version=version, type=event_type, data=data, origin=origin, created_at=now,
                     notes=list(article.cleaning_notes) or None)
    session.add(event)
    session.flush()
    result.event_type, result.event_id, result.version = event_type, event.id, version
    published_at = existing.published_at if event_type == UNPUBLISHED else article.published_at
    create_deliveries(session, event, config, article.section, article.tags, now,
                      previous=(previous_section, previous_tags) if was_published else None, result=result,
                      published_at=published_at)
    return result


def create_deliveries(
    session: Session,
    event: EventRow,
    config: SyndicationConfig,
    section: str | None,
    tags: list[str],
    now: datetime,
    previous: tuple[str | None, list[str]] | None,
    result: Recorded,
    published_at: datetime | None = None,
) -> None:
    """One delivery row per destination that should see this event: feeds, partners, channels."""
    rows: list[DeliveryRow] = []

    def add(kind: str, destination: str, due: datetime = now) -> DeliveryRow:
        row = DeliveryRow(
            event_id=event.id, article_id=event.article_id, version=event.version, event_type=event.type,
            kind=kind, destination=destination, message_id=new_message_id(), status="pending",
            attempts=0, next_attempt_at=due, queued_at=now if due <= now else None, created_at=now, updated_at=now,
        )
        rows.append(row)
        return row

    for feed in config.feeds:
        # A feed is rebuilt when it holds the article now or held it before
        # (a section change moves a story out of one feed and into another).
        if feed.holds(section, tags) or (previous is not None and feed.holds(*previous)):
            add("feed", feed.name)
            result.feed_names.append(feed.name)
    partner_rows = []
    for partner in config.partners:
        if partner.wants(event.type, section, tags):
            partner_rows.append(add("partner", partner.name))
    channel_rows = []
    for channel in config.channels:
        if channel.wants(event.type, section, tags):
            channel_rows.append(add("channel", channel.name, channel_due(channel, event.type, published_at, now)))
    session.add_all(rows)
    # An older version still waiting must never land after this one: supersede it.
    supersede_older(session, event, "partner", [r.destination for r in partner_rows], now)
    supersede_older(session, event, "channel", [r.destination for r in channel_rows], now)
    session.flush()
    result.partner_deliveries = [r.id for r in partner_rows]
    # Rows held by a channel's `delay` are left to the sweep, which takes them when due.
    result.channel_deliveries = [r.id for r in channel_rows if r.queued_at is not None]


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
    """Store each article in its own transaction, then enqueue its work."""
    results = Ingested()
    for article in articles:
        with store.session() as session:
            rec = record_article(session, article, config, origin=origin)
        log_recorded(rec)
        results.append(rec)
    results.queued = dispatch(results, config, warn_broker_down)
    return results


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
