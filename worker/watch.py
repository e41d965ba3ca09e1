"""Polling sources: one poll of a source at a time, cursors that move only with what they
cover, failures backed off and reported once, rejections recorded.

`poll_source(name)` is the whole of one poll:

1. Take the source's Redis lock (`SET NX` with expiry, kept alive while the poll runs).
   Held elsewhere: skip and say so. A worker that dies mid-poll leaves the lock to
   expire, and the next tick polls again.
2. Drive the source's `poll(cursor)`; each `Batch` it yields is stored in ONE
   transaction: its articles through `record_article` (which decides published /
   updated / unpublished / nothing by the content version), its withdrawals as
   unpublished, its rejections as rows in `rejections`, and its cursor in
   `source_state`. Only after that commit are deliveries dispatched and the batch's
   `after_commit` run. So a cursor never passes an article that was not stored, and a
   crash anywhere makes the next poll read the batch again, which changes nothing.
3. Success resets the failure count and schedules the next poll after `interval`;
   a failure keeps the cursor, counts, and schedules the next try with exponential
   backoff and jitter. The first failure is logged at ERROR, the later ones at INFO; the
   recovery is logged once, at WARNING. In Sentry a failure is a breadcrumb until the
   source has been failing longer than SYNDICATE_SOURCE_ALERT_AFTER, then an event in one
   issue per source (worker.observability.report_source_failing).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import SourceConfig, SyndicationConfig
from worker.articles import Article, iso, last_per_id
from worker.observability import redact, report_source_failing
from worker.pipeline import (PUBLISHED, UNPUBLISHED, UPDATED, Recorded, dispatch, log_recorded, record_article,
                             record_articles)
from worker.sanitize import printable
from worker.sources.base import Batch, KnownArticle, Rejection, Source, SourceError
from worker.store import ArticleRow, RejectionRow, SourceStateRow, Store, utcnow

log = logging.getLogger("syndicate.watch")

LOCK_PREFIX = "syndicate:poll-lock:"
# Failures back off from the source's interval, doubling, up to this (or the interval, if longer).
MAX_BACKOFF = timedelta(minutes=10)
_ID_CHUNK = 500


def make_source(config: SourceConfig) -> Source:
    if config.type == "wordpress":
        from worker.sources.wordpress import WordPressSource

        return WordPressSource(config)
    if config.type == "feed":
        from worker.sources.feed import FeedSource

        return FeedSource(config)
    from worker.sources.directory import DirectorySource

    return DirectorySource(config)


def lock_ttl(config: SourceConfig) -> float:
    """How long a poll may go without a sign of life before its lock lapses: one slow request
    and some. The lock is renewed before every request and every batch stored."""
    return 2 * config.timeout + 10


def queued_lease(config: SourceConfig) -> timedelta:
    """After enqueueing a poll, the scheduler leaves the source alone this long; if the task
    was lost (its worker died), the source is due again after it."""
    return timedelta(seconds=lock_ttl(config) + config.interval)


def backoff(config: SourceConfig, failures: int, permanent: bool) -> timedelta:
    cap = max(MAX_BACKOFF.total_seconds(), config.interval)
    delay = cap if permanent else min(cap, config.interval * 2 ** max(0, failures - 1))
    return timedelta(seconds=delay * random.uniform(1.0, 1.1))


@dataclass
class PollResult:
    source: str
    status: str = "ok"  # ok | skipped | failed | interrupted
    published: int = 0
    updated: int = 0
    unpublished: int = 0
    unchanged: int = 0
    rejected: int = 0
    error: str | None = None
    cursor: str = "-"
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None
    events: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        if self.status == "skipped":
            return "skipped: another poll of this source is running (it holds the lock)"
        counts = (f"{self.published} published, {self.updated} updated, {self.unpublished} unpublished, "
                  f"{self.unchanged} unchanged, {self.rejected} rejected")
        if self.status == "failed":
            return f"FAILED ({self.consecutive_failures} in a row): {self.error}; {counts} before the failure; " \
                   f"cursor kept at {self.cursor}"
        if self.status == "interrupted":
            return f"interrupted: {self.error}; {counts}"
        return f"{counts}; cursor {self.cursor}"

    def as_dict(self) -> dict:
        return {"source": self.source, "status": self.status, "published": self.published, "updated": self.updated,
                "unpublished": self.unpublished, "unchanged": self.unchanged, "rejected": self.rejected,
                "error": self.error, "cursor": self.cursor, "consecutive_failures": self.consecutive_failures,
                "next_poll_at": iso(self.next_poll_at), "events": [list(e) for e in self.events]}


class StoreContext:
    """What a source may read from the store, plus the lock's heartbeat."""

    def __init__(self, store: Store, source: str, now: datetime, lock=None):
        self.store, self.source, self.now, self._lock = store, source, now, lock

    def heartbeat(self) -> None:
        """Renew the poll's lock; raises LockError if another poll took it over."""
        if self._lock is not None:
            self._lock.reacquire()

    def known(self, ids: list[str]) -> dict[str, KnownArticle]:
        found: dict[str, KnownArticle] = {}
        with self.store.session() as s:
            for i in range(0, len(ids), _ID_CHUNK):
                for row in s.execute(_KNOWN_COLUMNS.where(ArticleRow.id.in_(ids[i:i + _ID_CHUNK]))):
                    found[row.id] = _known(row)
        return found

    def published_since(self, since: datetime) -> dict[str, KnownArticle]:
        with self.store.session() as s:
            rows = s.execute(_KNOWN_COLUMNS.where(ArticleRow.source == self.source,
                                                  ArticleRow.status == "published",
                                                  ArticleRow.published_at >= since))
            return {row.id: _known(row) for row in rows}

    def rejected(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        with self.store.session() as s:
            for i in range(0, len(ids), _ID_CHUNK):
                found |= set(s.scalars(select(RejectionRow.article_id).where(
                    RejectionRow.article_id.in_(ids[i:i + _ID_CHUNK]))))
        return found


# Only what a poller compares: loading whole rows (bodies included) cost most of an idle poll.
_KNOWN_COLUMNS = select(ArticleRow.id, ArticleRow.status, ArticleRow.version, ArticleRow.published_at,
                        ArticleRow.updated_at)


def _known(row) -> KnownArticle:
    return KnownArticle(row.id, row.status, row.version, row.published_at, row.updated_at)


# --- the poll ------------------------------------------------------------------------

def poll_source(name: str, *, config: SyndicationConfig, store: Store, redis_client: redis.Redis,
                source: Source | None = None, now: datetime | None = None) -> PollResult:
    """Poll one source now, unless another poll of it is running (then skip)."""
    source_config = config.source(name)
    if source_config is None:
        raise KeyError(f"no source named {name!r} in the configuration")
    lock = redis_client.lock(LOCK_PREFIX + name, timeout=lock_ttl(source_config), blocking=False,
                             thread_local=False)
    if not lock.acquire(blocking=False):
        log.info("source=%s poll skipped: another poll of it is running (lock %s held)", name, LOCK_PREFIX + name)
        return PollResult(name, status="skipped")
    source = source or make_source(source_config)
    try:
        return _poll_locked(source, source_config, config, store, lock, now or utcnow())
    finally:
        source.close()
        try:
            lock.release()
        except LockError:
            pass  # it lapsed; someone else may hold it now, and that is theirs to release


def _state(session: Session, name: str) -> SourceStateRow:
    state = session.get(SourceStateRow, name, with_for_update=True)
    if state is None:
        state = SourceStateRow(name=name, cursor={}, consecutive_failures=0)
        session.add(state)
        session.flush()
    return state


def ensure_state(store: Store, name: str) -> None:
    try:
        with store.session() as s:
            if s.get(SourceStateRow, name) is None:
                s.add(SourceStateRow(name=name, cursor={}, consecutive_failures=0))
    except IntegrityError:
        pass  # another process made it first


def _poll_locked(source: Source, source_config: SourceConfig, config: SyndicationConfig, store: Store,
                 lock, now: datetime) -> PollResult:
    name = source_config.name
    ensure_state(store, name)
    with store.session() as s:
        cursor = dict(_state(s, name).cursor or {})
    result = PollResult(name, cursor=source.describe_cursor(cursor))
    context = StoreContext(store, name, now, lock)
    try:
        for batch in source.poll(cursor, context):
            context.heartbeat()
            recorded = store_batch(store, config, name, batch, result)
            dispatch(recorded, config)
            if batch.after_commit is not None:
                batch.after_commit()
            if batch.cursor is not None:
                cursor = batch.cursor
                result.cursor = source.describe_cursor(cursor)
    except LockError:
        result.status, result.error = "interrupted", "the poll outlived its lock; another poll may have taken over"
        log.warning("source=%s poll stopped: it outlived its lock (%ss); the next poll goes on from the "
                    "stored cursor %s", name, lock_ttl(source_config), result.cursor)
        return result
    except SourceError as exc:
        _record_failure(store, source_config, exc, result, now)
        return result
    except Exception as exc:  # noqa: BLE001 - any failure of one source must not stop the others
        _record_failure(store, source_config, SourceError(f"{type(exc).__name__}: {exc}"), result, now,
                        exc_info=True)
        return result
    _record_success(store, source_config, result)
    return result


def store_batch(store: Store, config: SyndicationConfig, name: str, batch: Batch, result: PollResult) -> list[Recorded]:
    """One transaction: the batch's articles, withdrawals, rejections and cursor."""
    origin = f"poll:{name}"[:40]
    recorded: list[Recorded] = []
    articles, repeated = last_per_id(batch.articles)
    if repeated:
        log.info("source=%s %d id(s) came twice in one batch; the last version of each is stored: %s", name,
                 len(repeated), printable(", ".join(repeated)))
    rejections = [bounded_rejection(r) for r in batch.rejections]
    with store.session() as s:
        recorded += record_articles(s, articles, config, origin=origin)  # a few statements per batch
        for article_id in dict.fromkeys(batch.withdrawn):
            row = s.get(ArticleRow, article_id)
            if row is None or row.status != "published":
                continue
            withdrawn = Article.from_row(row).model_copy(update={"status": "unpublished", "updated_at": utcnow()})
            recorded.append(record_article(s, withdrawn, config, origin=origin))
        fresh_rejections = add_rejections(s, name, rejections)
        if batch.cursor is not None:
            _state(s, name).cursor = batch.cursor
    for article, rec in zip(articles, recorded):
        log_cleaning(article, rec)
    for rec in recorded:
        log_recorded(rec)
        if rec.event_type == PUBLISHED:
            result.published += 1
        elif rec.event_type == UPDATED:
            result.updated += 1
        elif rec.event_type == UNPUBLISHED:
            result.unpublished += 1
        else:
            result.unchanged += 1
        if rec.event_type:
            result.events.append((rec.article_id, rec.event_type))
    result.unchanged += batch.unchanged_skipped + len(batch.articles) - len(articles)
    result.rejected += len(rejections)
    log_rejections(name, rejections, fresh_rejections)
    return recorded


# --- rejections and cleaning, for every input path (sources and `syndicate ingest`) ----------

def bounded_rejection(rejection: Rejection) -> Rejection:
    """The rejection as it can be stored and logged on every backend: ids cut to their
    columns' 300 characters, and no character that could forge a log line or that a
    database refuses (a lone surrogate from a broken upstream)."""
    return Rejection(
        upstream_id=printable(rejection.upstream_id, 290) if rejection.upstream_id is not None else None,
        reason=printable(rejection.reason, 3900),
        where=printable(rejection.where, 2000),
        article_id=printable(rejection.article_id, 290) if rejection.article_id is not None else None,
    )


def add_rejections(session: Session, source: str, rejections: list[Rejection]) -> list[Rejection]:
    """Add rows for these (bounded) rejections, except those recorded last time in the same
    words; returns the fresh ones."""
    fresh: list[Rejection] = []
    for rejection in rejections:
        if _already_rejected(session, source, rejection):
            continue
        session.add(RejectionRow(source=source, upstream_id=rejection.upstream_id, article_id=rejection.article_id,
                                 where=rejection.where, reason=rejection.reason, created_at=utcnow()))
        fresh.append(rejection)
    return fresh


def record_rejections(store: Store, source: str, rejections: list[Rejection]) -> None:
    """Store and log rejections outside a poll (`syndicate ingest` records under source `ingest`)."""
    bounded = [bounded_rejection(r) for r in rejections]
    with store.session() as s:
        fresh = add_rejections(s, source, bounded)
    log_rejections(source, bounded, fresh)


def log_rejections(source: str, rejections: list[Rejection], fresh: list[Rejection]) -> None:
    for rejection in rejections:
        if rejection in fresh:
            log.warning("source=%s upstream_id=%s rejected: %s%s", source, rejection.upstream_id, rejection.reason,
                        f" ({rejection.where})" if rejection.where else "")
        else:
            log.info("source=%s upstream_id=%s still rejected (recorded before): %s", source,
                     rejection.upstream_id, rejection.reason)


def log_cleaning(article: Article, rec: Recorded) -> None:
    """Say once what cleaning removed from an article: when its change is stored, not each
    time a poller reads the same version again."""
    if rec.changed and article.cleaning_notes:
        log.warning("article=%s cleaned on the way in: %s", printable(article.id),
                    printable("; ".join(article.cleaning_notes), 1000))


def _already_rejected(session: Session, name: str, rejection: Rejection) -> bool:
    """The same input met again (a re-read overlap, a feed that still carries it) is one rejection."""
    last = session.scalars(select(RejectionRow).where(RejectionRow.source == name,
                                                      RejectionRow.upstream_id == rejection.upstream_id)
                           .order_by(RejectionRow.id.desc()).limit(1)).first()
    return last is not None and last.reason == rejection.reason and last.where == rejection.where


def _record_failure(store: Store, source_config: SourceConfig, exc: SourceError, result: PollResult,
                    now: datetime, exc_info: bool = False) -> None:
    name = source_config.name
    message = redact(str(exc))[:2000]
    with store.session() as s:
        state = _state(s, name)
        state.consecutive_failures = (state.consecutive_failures or 0) + 1
        state.failing_since = state.failing_since or now
        state.last_error = message
        state.last_polled_at = utcnow()
        state.next_poll_at = utcnow() + backoff(source_config, state.consecutive_failures, exc.permanent)
        failures, since, next_at = state.consecutive_failures, state.failing_since, state.next_poll_at
    result.status, result.error = "failed", message
    result.consecutive_failures, result.next_poll_at = failures, next_at
    wait = max(0, round((next_at - utcnow()).total_seconds()))
    # monitoring: failing past the threshold is one Sentry issue per source (a breadcrumb before)
    report_source_failing(source=name, source_type=source_config.type, failures=failures, failing_since=since,
                          error=message, permanent=exc.permanent)
    if failures == 1:
        log.error("source=%s is failing: %s; cursor kept at %s; retrying in %ss, backing off while it fails",
                  name, message, result.cursor, wait, exc_info=exc_info)
    else:
        log.info("source=%s still failing (%d polls in a row since %s): %s; next try in %ss",
                 name, failures, iso(since), message, wait)


def _record_success(store: Store, source_config: SourceConfig, result: PollResult) -> None:
    name = source_config.name
    with store.session() as s:
        state = _state(s, name)
        failures, since = state.consecutive_failures or 0, state.failing_since
        state.consecutive_failures = 0
        state.failing_since = None
        state.last_error = None
        state.last_polled_at = state.last_success_at = utcnow()
        state.next_poll_at = utcnow() + timedelta(seconds=source_config.interval)
        result.next_poll_at = state.next_poll_at
    if failures:
        log.warning("source=%s recovered after %d failed poll(s) (failing since %s)", name, failures, iso(since))
    log.info("source=%s polled: %s", name, result.summary())


# --- scheduling ------------------------------------------------------------------------

def due_sources(config: SyndicationConfig, store: Store, now: datetime | None = None) -> list[str]:
    """Sources whose next poll is due, each then leased for `queued_lease` so the next
    scheduler tick does not enqueue it again while its poll waits or runs."""
    now = now or utcnow()
    for source_config in config.sources:
        ensure_state(store, source_config.name)
    due: list[str] = []
    with store.session() as s:
        by_name = {c.name: c for c in config.sources}
        rows = s.scalars(select(SourceStateRow).where(SourceStateRow.name.in_(list(by_name)))
                         .order_by(SourceStateRow.name).with_for_update()).all()
        for row in rows:
            if row.next_poll_at is None or row.next_poll_at <= now:
                due.append(row.name)
                row.next_poll_at = now + queued_lease(by_name[row.name])
    return due


def source_states(store: Store) -> dict[str, SourceStateRow]:
    with store.session() as s:
        return {row.name: row for row in s.scalars(select(SourceStateRow))}
