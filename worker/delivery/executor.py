"""The batch executor: claim delivery rows, gate them per partner, send, record.

One `run(ids)` takes a batch (typically one article's fan-out to all its partners,
or the sweep's batch of one partner's due rows) through three steps:

1. **Claim** (one transaction): rows overtaken by a newer version of the same
   article for the same partner are marked `superseded`; the rest that are due, not
   for a disabled partner and not queued behind an older version still in flight
   are taken with a lease (`UPDATE … RETURNING`). Each partner's rows then pass its
   gates — circuit breaker, shared rate limit, this process's concurrency cap — and
   what a gate holds back goes back to `pending` for later *without spending an
   attempt*. An attempt row is written for each delivery about to be sent.
2. **Send**, per partner in parallel lanes over keep-alive connections, each
   request bounded by the partner's timeout.
3. **Record** (one transaction for everything that finished): `DeliveryPolicy`
   decides each outcome; delivery and attempt rows are updated in bulk.

The task waits a short while for the sends; a partner still answering after that
finishes in the background and records itself, so one slow partner never holds a
worker (and with it every other partner's deliveries) hostage.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from redis.exceptions import RedisError
from sqlalchemy import TypeDecorator, and_, bindparam, insert, or_, select, text, update

from config import PartnerConfig, SyndicationConfig
from worker.celery_app import MAX_BROKER_COUNTDOWN
from worker.delivery.health import CircuitBreaker, RateLimiter
from worker.delivery.policy import DEAD, DELIVERED, FAILED, PENDING, SUPERSEDED, Decision, DeliveryPolicy
from worker.observability import redact
from worker.observability import (  # monitoring: the capture policy (see report_to_sentry)
    classify_failure, delivery_details, report_delivery_failed, report_destination_disabled)
from worker.store import ArticleRow, AttemptRow, DeliveryRow, EventRow, PartnerStateRow, Store, utcnow
from worker.transports import Outcome
from worker.transports.webhook import POOL_SIZE, WebhookTransport, encode_data

log = logging.getLogger("syndicate.delivery")

LEASE_MARGIN = float(os.environ.get("SYNDICATE_LEASE_MARGIN", "30"))
# How long a task waits for its sends before leaving the slow ones to finish in the background.
TASK_WAIT = float(os.environ.get("SYNDICATE_DELIVERY_TASK_WAIT", "2"))
# Held back because an older version of the same story is still on its way: look again soon.
ORDER_WAIT = 1.0

Schedule = Callable[[list[tuple[int, datetime]]], None]


@dataclass
class Job:
    """One claimed delivery on its way out."""

    delivery_id: int
    attempt_id: int | None
    partner: PartnerConfig | None
    destination: str
    message_id: str
    event_type: str
    article_id: str
    attempts_made: int
    encoded: str | None = None
    outcome: Outcome | None = None
    finished_at: datetime | None = None


@dataclass
class RunResult:
    claimed: int = 0
    sent: int = 0
    held: int = 0
    superseded: int = 0
    later: list[tuple[int, datetime]] = field(default_factory=list)
    background: int = 0


class Bulkhead:
    """Sends in flight per partner in this process, capped, so a slow partner cannot
    take every thread (or connection) while healthy partners wait."""

    def __init__(self, cap: int = POOL_SIZE):
        self.cap = cap
        self._in_flight: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def acquire(self, partner: str, wanted: int) -> int:
        with self._lock:
            free = max(0, self.cap - self._in_flight[partner])
            granted = min(free, wanted)
            self._in_flight[partner] += granted
            return granted

    def release(self, partner: str, count: int = 1) -> None:
        with self._lock:
            self._in_flight[partner] -= count


class PartnerDeliverer:
    """Delivers batches of partner delivery rows; one per process (it owns the pools)."""

    def __init__(self, store: Store, config: SyndicationConfig, redis_client=None,
                 transport: WebhookTransport | None = None, policy: DeliveryPolicy | None = None,
                 schedule: Schedule | None = None, task_wait: float = TASK_WAIT, lanes: int = POOL_SIZE,
                 breaker: CircuitBreaker | None = None):
        self.store = _bookkeeping_store(store)
        self.config = config
        self.transport = transport or WebhookTransport(pool_size=lanes)
        self.policy = policy or DeliveryPolicy()
        self.breaker = breaker or (CircuitBreaker(redis_client) if redis_client is not None else None)
        self.limiter = RateLimiter(redis_client) if redis_client is not None else None
        self.schedule = schedule
        self.task_wait = task_wait
        self.lanes = lanes
        self.bulkhead = Bulkhead(lanes)
        self.pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="deliver")
        self.rng = random.Random()
        self._timeout_max = max((p.timeout for p in config.partners), default=10.0)

    # -- 1. claim ---------------------------------------------------------------------

    def _rounds(self, count: int) -> int:
        """How many sends one lane makes one after another in a batch of `count` (the lease
        allows for that many timeouts in a row)."""
        return math.ceil(max(count, 1) / self.lanes)

    def _lease(self, count: int, now: datetime) -> datetime:
        rounds = self._rounds(count)
        # Each lane sends up to `rounds` requests one after another, each bounded by its timeout
        # (connect + read); the margin covers recording the results.
        return now + timedelta(seconds=rounds * self._timeout_max * 2 + LEASE_MARGIN)

    def _claimable(self, now: datetime):
        return or_(
            and_(DeliveryRow.status == PENDING, DeliveryRow.next_attempt_at <= now),
            and_(DeliveryRow.status == "sending", DeliveryRow.lease_until < now),
        )

    def claim(self, s, ids: list[int], now: datetime) -> tuple[list, int, list[int]]:
        """Supersede overtaken rows and take the claimable rest. Returns (claimed rows,
        number superseded, ids held back behind an older version still in flight)."""
        articles_of_batch = select(DeliveryRow.article_id).where(DeliveryRow.id.in_(ids))
        if self.store.is_sqlite:
            # SQLite has one writer at a time: take the write lock before reading, which
            # serialises this with record_article (a write that matches nothing begins the
            # transaction and takes the lock).
            s.execute(update(PartnerStateRow).where(PartnerStateRow.name.is_(None)).values(disabled=False))
            article_ids = list(s.scalars(articles_of_batch.distinct()))
        else:
            # Serialise with record_article (which locks the article row too): a newer
            # version is either committed before this claim looks, or waits for it.
            article_ids = list(s.scalars(select(ArticleRow.id).where(ArticleRow.id.in_(articles_of_batch))
                                         .order_by(ArticleRow.id).with_for_update()))
        # Every partner delivery of these stories (a handful of versions times partners),
        # fetched by the article index: enough to see what is overtaken or queued behind.
        siblings = s.execute(select(DeliveryRow.id, DeliveryRow.article_id, DeliveryRow.destination,
                                    DeliveryRow.event_id, DeliveryRow.status, DeliveryRow.lease_until)
                             .where(DeliveryRow.article_id.in_(article_ids), DeliveryRow.kind == "partner")).all()
        newest: dict[tuple[str, str], int] = {}
        in_flight: dict[tuple[str, str], int] = {}
        for r in siblings:
            key = (r.article_id, r.destination)
            newest[key] = max(newest.get(key, 0), r.event_id)
            if r.status == "sending" and r.lease_until is not None and r.lease_until >= now:
                in_flight[key] = min(in_flight.get(key, r.event_id), r.event_id)
        wanted = set(ids)
        overtaken, blocked, candidates = [], [], []
        for r in siblings:
            if r.id not in wanted:
                continue
            key = (r.article_id, r.destination)
            if r.event_id < newest[key]:
                overtaken.append(r.id)
            elif in_flight.get(key, r.event_id) < r.event_id:
                blocked.append(r.id)
            else:
                candidates.append(r.id)
        superseded = 0
        if overtaken:
            superseded = s.execute(
                update(DeliveryRow).where(DeliveryRow.id.in_(overtaken), self._claimable(now))
                .values(status=SUPERSEDED, lease_until=None, next_attempt_at=None, updated_at=now,
                        last_error="superseded: a newer version of the story was sent to this partner instead")
                .execution_options(synchronize_session=False)
            ).rowcount
        disabled = select(PartnerStateRow.name).where(PartnerStateRow.disabled.is_(True))
        claimed = []
        if candidates:
            reclaimed = [r.id for r in siblings if r.id in wanted and r.status == "sending"
                         and r.lease_until is not None and r.lease_until < now]
            if reclaimed:
                # An attempt a killed worker never finished is closed as such in the attempt log.
                s.execute(update(AttemptRow)
                          .where(AttemptRow.delivery_id.in_(reclaimed), AttemptRow.finished_at.is_(None))
                          .values(finished_at=now, outcome="interrupted", error_class="interrupted",
                                  error="the worker stopped during this attempt (its lease expired)")
                          .execution_options(synchronize_session=False))
            claimed = s.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(candidates), self._claimable(now), DeliveryRow.destination.not_in(disabled))
                .values(status="sending", lease_until=self._lease(len(ids), now), updated_at=now)
                .returning(DeliveryRow.id, DeliveryRow.event_id, DeliveryRow.destination, DeliveryRow.message_id,
                           DeliveryRow.attempts, DeliveryRow.article_id, DeliveryRow.event_type)
                .execution_options(synchronize_session=False)
            ).all()
        if blocked:
            blocked = list(s.scalars(
                select(DeliveryRow.id).where(DeliveryRow.id.in_(blocked), DeliveryRow.status == PENDING,
                                             DeliveryRow.destination.not_in(disabled))))
        return claimed, superseded, blocked

    def _gate(self, partner: PartnerConfig, jobs: list[Job], rounds: int, now_ts: float,
              breaker_state) -> tuple[list[Job], list[Job], float, int]:
        """Which of one partner's jobs may go now, the rest, how long the rest should wait,
        and how many lanes (concurrent connections) were taken for the ones that go."""
        allowed, wait_s = len(jobs), 0.0
        try:
            if self.breaker is not None and breaker_state is not None:
                allowed, wait_s = self.breaker.admit(partner.name, allowed, probe_ttl=partner.timeout + 5.0,
                                                     now=now_ts, state=breaker_state)
            if allowed and partner.rate is not None and self.limiter is not None:
                allowed, rate_wait = self.limiter.take(partner.name, partner.rate, allowed)
                wait_s = max(wait_s, rate_wait)
        except RedisError:
            # Health is advisory: with Redis away for a moment, deliver rather than strand rows.
            log.warning("partner=%s health state unavailable in Redis; sending without it", partner.name)
        lanes = 0
        if allowed:
            lanes = self.bulkhead.acquire(partner.name, min(math.ceil(allowed / rounds), self.lanes))
            if not lanes:
                # Every lane to this partner is busy (it is slow): come back when one may be free.
                wait_s = max(wait_s, min(partner.timeout, 5.0))
            # A lane sends at most `rounds` jobs one after another (what the lease allows for).
            allowed = min(allowed, lanes * rounds)
            if allowed < len(jobs):
                wait_s = max(wait_s, ORDER_WAIT)
        return jobs[:allowed], jobs[allowed:], wait_s, lanes

    # -- the run -----------------------------------------------------------------------

    def run(self, ids: list[int]) -> RunResult:
        """Deliver what can be claimed of `ids`; returns counts and (id, when) to look at again."""
        result = RunResult()
        if not ids:
            return result
        ids = sorted(set(ids))
        now = utcnow()
        now_ts = time.time()
        to_send: dict[str, list[Job]] = {}
        lanes_taken: dict[str, int] = {}
        unknown: list[Job] = []
        with self.store.session() as s:
            claimed, result.superseded, blocked = self.claim(s, ids, now)
            result.claimed = len(claimed)
            for delivery_id in blocked:
                when = now + timedelta(seconds=ORDER_WAIT * (1 + self.rng.random()))
                result.later.append((delivery_id, when))
            if blocked:
                bulk_update(s, DeliveryRow, [{"id": i, "queued_at": w} for i, w in result.later])
            if not claimed:
                self._schedule(result.later)
                return result
            events = {e.id: e for e in s.execute(
                select(EventRow.id, EventRow.type, EventRow.data)
                .where(EventRow.id.in_({r.event_id for r in claimed})))}
            by_partner: dict[str, list[Job]] = defaultdict(list)
            encoded: dict[tuple[int, str], str] = {}
            for r in claimed:
                partner = self.config.partner(r.destination)
                job = Job(r.id, None, partner, r.destination, r.message_id, r.event_type, r.article_id,
                          r.attempts + 1)
                if partner is None:
                    unknown.append(job)
                    continue
                key = (r.event_id, partner.payload)
                if key not in encoded:
                    event = events[r.event_id]
                    encoded[key] = encode_data(event.type, event.data, partner.payload)
                job.encoded = encoded[key]
                by_partner[partner.name].append(job)

            held: list[dict] = []
            rounds = self._rounds(len(ids))
            breaker_states = {}
            if self.breaker is not None and by_partner:
                try:
                    breaker_states = self.breaker.states(list(by_partner), now_ts)
                except RedisError:
                    log.warning("circuit states unavailable in Redis; sending without them")
            try:
                for name, jobs in by_partner.items():
                    partner = jobs[0].partner
                    go, wait_jobs, wait_s, lanes = self._gate(partner, jobs, rounds, now_ts,
                                                              breaker_states.get(name))
                    if lanes:
                        lanes_taken[name] = lanes
                        to_send[name] = go
                    for i, job in enumerate(wait_jobs):
                        # Spread what the rate limit holds back over the time it needs.
                        spread = (i / partner.rate[0] * partner.rate[1]) if partner.rate else 0.0
                        when = now + timedelta(seconds=wait_s + spread + 0.2 * self.rng.random())
                        held.append({"id": job.delivery_id, "status": PENDING, "lease_until": None,
                                     "next_attempt_at": when, "queued_at": queued_at(when, now),
                                     "updated_at": now})
                        result.later.append((job.delivery_id, when))
                if held:
                    bulk_update(s, DeliveryRow, held)
                result.held = len(held)
                jobs_out = [j for jobs in to_send.values() for j in jobs] + unknown
                if jobs_out:
                    attempt_ids = insert_attempts(s, [j.delivery_id for j in jobs_out], now)
                    for job in jobs_out:
                        job.attempt_id = attempt_ids[job.delivery_id]
            except BaseException:
                for name, lanes in lanes_taken.items():
                    self.bulkhead.release(name, lanes)
                raise
        self._schedule(result.later)

        # -- 2. send ---------------------------------------------------------------------
        futures: list[Future] = []
        for name, jobs in to_send.items():
            lanes = lanes_taken[name]
            for lane in range(lanes):
                share = jobs[lane::lanes]
                if share:
                    futures.append(self.pool.submit(self._send_lane, share))
                else:
                    self.bulkhead.release(name)
            result.sent += len(jobs)
        for job in unknown:
            job.outcome = Outcome(error_class="unknown_partner",
                                  error=f"partner {job.destination!r} is no longer configured")
            job.finished_at = utcnow()

        # -- 3. record -------------------------------------------------------------------
        done, not_done = wait(futures, timeout=self.task_wait) if futures else (set(), set())
        finished = list(unknown)
        for fut in done:
            finished += fut.result()
        if finished:
            retries = self.record(finished)
            self._schedule(retries)
            result.later += retries
        result.background = len(not_done)
        for fut in not_done:
            # Finishes (and records itself) after this task returns.
            fut.add_done_callback(self._record_in_background)
        return result

    def _schedule(self, later: list[tuple[int, datetime]]) -> None:
        if self.schedule is None or not later:
            return
        try:
            self.schedule(later)
        except Exception:  # noqa: BLE001 - e.g. the broker is away; the rows are in the store
            log.warning("could not enqueue %d deliveries for later; the sweep will", len(later), exc_info=True)

    def _send_lane(self, jobs: list[Job]) -> list[Job]:
        try:
            for job in jobs:
                try:
                    job.outcome = self.transport.send(job.partner, job.message_id, job.event_type,
                                                      encoded_data=job.encoded)
                except Exception as exc:  # noqa: BLE001 - a bug must not strand the row in "sending"
                    log.exception("delivery=%s unexpected error while sending", job.delivery_id)
                    job.outcome = Outcome(error_class=type(exc).__name__, error=str(exc)[:500])
                job.finished_at = utcnow()
            return jobs
        finally:
            self.bulkhead.release(jobs[0].partner.name)

    def _record_in_background(self, fut: Future) -> None:
        try:
            later = self.record(fut.result())
            self._schedule(later)
        except Exception:  # noqa: BLE001 - the lease runs out and the sweep takes the rows again
            log.exception("recording a background delivery failed; the sweep will retry it")

    def record(self, jobs: list[Job]) -> list[tuple[int, datetime]]:
        """Decide each finished job's outcome and write rows in bulk; returns retries to schedule."""
        later: list[tuple[int, datetime]] = []
        delivery_updates, attempt_updates = [], []
        health: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        disable: dict[str, str] = {}
        failed: list[tuple[Job, Decision]] = []  # monitoring: reported to Sentry after the commit
        for job in jobs:
            outcome = job.outcome
            assert outcome is not None and job.finished_at is not None
            # A partner may echo our headers back in an error page: nothing it says is kept
            # or logged with the secret or a signature in it.
            secrets = partner_secrets(job.partner) if job.partner else []
            if job.partner is None:
                decision = Decision(FAILED, reason=outcome.describe())
            else:
                decision = self.policy.decide(outcome, job.attempts_made, job.partner.retry_schedule,
                                              job.finished_at)
                if decision.status == DELIVERED:
                    health[job.partner.name][0] += 1
                elif decision.endpoint_failed:
                    health[job.partner.name][1] += 1
                if decision.disable_partner:
                    disable[job.partner.name] = decision.reason
            if outcome.body or decision.reason:
                decision = replace(decision, reason=redact(decision.reason, secrets))
            body = redact(outcome.body, secrets)
            attempt_updates.append({
                "id": job.attempt_id, "finished_at": job.finished_at, "duration_ms": outcome.duration_ms,
                "status_code": outcome.status_code, "response_body": body[:2048] or None,
                "error": None if outcome.ok else redact(outcome.describe(), secrets)[:2000],
                "error_class": outcome.error_class or (None if outcome.ok else f"http_{outcome.status_code}"),
                "outcome": decision.status,
            })
            values = {"id": job.delivery_id, "status": decision.status, "attempts": job.attempts_made,
                      "lease_until": None, "updated_at": job.finished_at, "last_status_code": outcome.status_code,
                      "last_error": None if decision.status == DELIVERED else decision.reason[:2000],
                      "next_attempt_at": decision.next_attempt_at,
                      "queued_at": queued_at(decision.next_attempt_at, job.finished_at)}
            if decision.status == DELIVERED:
                values["delivered_at"] = job.finished_at
            if decision.status == PENDING and not decision.disable_partner:
                later.append((job.delivery_id, decision.next_attempt_at))
            delivery_updates.append(values)
            log_outcome(job, decision)
            if decision.status != DELIVERED:
                failed.append((job, decision))  # monitoring
        # Rows that share a key set go in one executemany.
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for values in delivery_updates:
            groups[tuple(sorted(values))].append(values)
        with self.store.session() as s:
            for rows in groups.values():
                bulk_update(s, DeliveryRow, rows)
            bulk_update(s, AttemptRow, attempt_updates)
            for name, reason in disable.items():
                disable_partner(s, name, reason, by="policy")
            # monitoring: attempt log and article of each delivery that failed for good
            details = delivery_details(s, [j.delivery_id for j, d in failed if d.status in (FAILED, DEAD)])
        report_to_sentry(failed, details, disable)  # monitoring
        for name, reason in disable.items():
            log.error("partner=%s stage=disabled reason=%s; its deliveries wait until "
                      "`syndicate partners enable %s`", name, reason, name)
        if self.breaker is not None and health:
            try:
                changes = self.breaker.record_many(dict(health))
            except Exception:  # noqa: BLE001 - health is advisory; the rows are recorded
                log.warning("could not record partner health in Redis", exc_info=True)
                changes = {}
            for name, change in changes.items():
                if change == "opened":
                    log.error("partner=%s stage=circuit-open after repeated failures; pausing deliveries to it",
                              name)
                elif change == "closed":
                    log.warning("partner=%s stage=circuit-closed: it answers again", name)
        return later


_BULK_SQL: dict[tuple, object] = {}


def _pg_arrays(conn, table, columns: list[str], rows: list[dict]) -> dict[str, list]:
    """Column-wise parameter arrays, converted as the column types would convert them."""
    params = {}
    for c in columns:
        col_type = table.c[c].type
        if isinstance(col_type, TypeDecorator):
            params[c] = [col_type.process_bind_param(r[c], conn.dialect) for r in rows]
        else:
            params[c] = [r[c] for r in rows]
    return params


def bulk_update(s, model, rows: list[dict]) -> None:
    """Update many rows by primary key, each with its own values, in one statement.

    On PostgreSQL: `UPDATE … FROM unnest(<one array per column>)`: one statement of fixed
    text whatever the number of rows (prepared once, cheap to run and to send). Elsewhere,
    an executemany."""
    if not rows:
        return
    table = model.__table__
    columns = [k for k in rows[0] if k != "id"]
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        stmt = (update(table).where(table.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in columns}))
        conn.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in columns}} for r in rows])
        return
    key = ("update", table.name, tuple(columns))
    stmt = _BULK_SQL.get(key)
    if stmt is None:
        quote = conn.dialect.identifier_preparer.quote
        names = ["id", *columns]
        arrays = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(conn.dialect)}[])" for c in names)
        stmt = _BULK_SQL[key] = text(
            f"UPDATE {quote(table.name)} SET " + ", ".join(f"{quote(c)} = v.{quote(c)}" for c in columns)
            + f" FROM unnest({arrays}) AS v({', '.join(quote(c) for c in names)})"
            + f" WHERE {quote(table.name)}.id = v.id")
    conn.execute(stmt, _pg_arrays(conn, table, ["id", *columns], rows))


def insert_attempts(s, delivery_ids: list[int], started_at: datetime) -> dict[int, int]:
    """An attempt row per delivery, written before the request; returns delivery id → attempt id."""
    conn = s.connection()
    if conn.dialect.name == "postgresql":
        table = AttemptRow.__table__
        stmt = _BULK_SQL.get(("insert", "attempts"))
        if stmt is None:
            stmt = _BULK_SQL[("insert", "attempts")] = text(
                "INSERT INTO attempts (delivery_id, started_at) "
                "SELECT d, CAST(:started_at AS TIMESTAMP WITHOUT TIME ZONE) FROM unnest(CAST(:ids AS INTEGER[])) AS d "
                "RETURNING id, delivery_id")
        started = table.c.started_at.type.process_bind_param(started_at, conn.dialect)
        return {r.delivery_id: r.id for r in conn.execute(stmt, {"ids": delivery_ids, "started_at": started})}
    rows = conn.execute(insert(AttemptRow).returning(AttemptRow.id, AttemptRow.delivery_id,
                                                     sort_by_parameter_order=True),
                        [{"delivery_id": i, "started_at": started_at} for i in delivery_ids]).all()
    return {r.delivery_id: r.id for r in rows}


def _bookkeeping_store(store: Store) -> Store:
    """On PostgreSQL, delivery bookkeeping commits without waiting for the WAL flush.

    Safe here because delivery is at-least-once under a stable webhook-id: if the database
    server itself crashed and lost the last moments of these commits, a claimed row would be
    claimed again and a delivered one sent again under the same id, which partners drop as a
    duplicate. Articles, events and delivery rows are created elsewhere, durably."""
    if store.is_sqlite:
        return store
    from sqlalchemy import event

    relaxed = Store(store.url)

    @event.listens_for(relaxed.engine, "connect")
    def _no_flush_wait(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SET synchronous_commit TO OFF")
        dbapi_conn.commit()

    return relaxed


def partner_secrets(partner: PartnerConfig) -> list[str]:
    found = []
    for secret in (partner.secret, partner.previous_secret):
        if secret:
            found += [secret, secret.removeprefix("whsec_")]
    return found


def queued_at(when: datetime | None, now: datetime) -> datetime | None:
    """What `queued_at` to store for a row due at `when`: soon ones are handed to the broker
    as a countdown (see tasks.deliver.schedule_later); later ones are left for the sweep,
    which takes rows whose queued_at is empty as soon as they are due."""
    if when is None or (when - now).total_seconds() > MAX_BROKER_COUNTDOWN:
        return None
    return when


def disable_partner(s, name: str, reason: str, by: str) -> None:
    now = utcnow()
    row = s.get(PartnerStateRow, name, with_for_update=True)
    if row is None:
        s.add(PartnerStateRow(name=name, disabled=True, disabled_reason=reason, disabled_at=now, disabled_by=by,
                              changed_at=now))
    elif not row.disabled:
        row.disabled, row.disabled_reason, row.disabled_at, row.disabled_by, row.changed_at = (
            True, reason, now, by, now)


# monitoring: the engine's only Sentry code (worker/observability/capture.py decides what is an
# event and how it is grouped). A retry is a breadcrumb; a dead or failed delivery an event in
# one issue per (destination, failure class); a disabled destination an event of its own.
def report_to_sentry(failed: list[tuple[Job, Decision]], details: dict[int, dict], disabled: dict[str, str],
                     destination_type: str = "partner") -> None:
    for job, decision in failed:
        outcome = job.outcome
        report_delivery_failed(
            destination=job.destination, destination_type=destination_type, article_id=job.article_id,
            event_type=job.event_type, attempt=job.attempts_made, http_status=outcome.status_code,
            failure_class=classify_failure(outcome.status_code, outcome.error_class),
            final=decision.status in (FAILED, DEAD), status=decision.status, webhook_id=job.message_id,
            reason=decision.reason, **details.get(job.delivery_id, {}))
    for name, reason in disabled.items():
        status = next((j.outcome.status_code for j, d in failed if d.disable_partner and j.destination == name), None)
        report_destination_disabled(destination=name, destination_type=destination_type, reason=reason,
                                    http_status=status)


def log_outcome(job: Job, decision: Decision) -> None:
    partner = job.partner.name if job.partner else job.destination
    if decision.status == DELIVERED:
        log.info("article=%s stage=delivered partner=%s event=%s attempts=%d", job.article_id, partner,
                 job.event_type, job.attempts_made)
    elif decision.status == PENDING:
        when = decision.next_attempt_at.isoformat() if decision.next_attempt_at else "-"
        log.warning("article=%s stage=retry partner=%s event=%s attempts=%d next=%s reason=%s", job.article_id,
                    partner, job.event_type, job.attempts_made, when, decision.reason)
    else:
        log.error("article=%s stage=%s partner=%s event=%s attempts=%d reason=%s", job.article_id,
                  decision.status, partner, job.event_type, job.attempts_made, decision.reason)
