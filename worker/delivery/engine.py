"""The delivery engine: one path for every destination kind (partners and channels).

One `run(ids)` takes a batch (typically one article's fan-out to all its destinations,
or the sweep's batch of one destination's due rows) through three steps:

1. **Claim** (`claim.py`, one transaction) and **gate** (`gates.py`): what a gate holds
   back goes back to `pending` for later without spending an attempt; an attempt row is
   written for each delivery about to be sent.
2. **Send**, per destination in parallel lanes, each through its transport
   (`worker/transports/`: prepare once per event and destination, then send, update
   or delete), each request bounded by the destination's timeout.
3. **Record** (`recording.py`, `record.py`): each send is recorded the moment its answer
   is in, by one recording thread that writes whatever has finished in one transaction;
   `DeliveryPolicy` decides each outcome; rows are updated in bulk.

The task waits a short while for the sends (and not for stragglers once the others are
done); a destination still answering after that finishes in the background (and is recorded the same way), so one slow destination never
holds a worker (and with it every other destination's deliveries) hostage.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update

from config import SyndicationConfig
from config.tunables import tunables
from worker.delivery import destinations
from worker.delivery.claim import claim, previous_posts
from worker.delivery.gates import ORDER_WAIT, Gates
from worker.delivery.health import CircuitBreaker
from worker.delivery.policy import PENDING, DeliveryPolicy
from worker.delivery.record import RECORD_RETRY_FOR, Job, Recorder, queued_at
from worker.delivery.recording import RecordingLine, RunTracker
from worker.store import DeliveryRow, EventRow, Store, utcnow
from worker.store.bulk import bookkeeping_store, bulk_update, insert_attempts
from worker.transports import Outcome, Post, TransportError, Transports

log = logging.getLogger("syndicate.delivery")

# Connections kept open per destination and process (also the most concurrent sends to one).
LANES = 16
# Least time a task waits for a straggling lane once others have finished (_wait_for_sends).
STRAGGLER_FLOOR = 0.05

NOT_SENT_IN_LEASE = ("not sent: every send slot of its worker was busy until its lease nearly ran out; "
                     "sent again at once")

Schedule = Callable[[list[tuple[int, datetime]]], None]


@dataclass
class RunResult:
    claimed: int = 0
    sent: int = 0
    held: int = 0
    superseded: int = 0
    poisoned: int = 0
    later: list[tuple[int, datetime]] = field(default_factory=list)
    background: int = 0


class DeliveryEngine:
    """Delivers batches of delivery rows of any kind; one per process (it owns the pools)."""

    def __init__(self, store: Store, config: SyndicationConfig, redis_client=None,
                 transports: Transports | None = None, policy: DeliveryPolicy | None = None,
                 schedule: Schedule | None = None, task_wait: float | None = None, lanes: int = LANES,
                 breaker: CircuitBreaker | None = None, transport=None):
        t = tunables()
        self.durable_store = store
        self.store = bookkeeping_store(store)
        self.config = config
        overrides = {"webhook": transport} if transport is not None else None
        self.transports = transports or Transports(redis_client, overrides=overrides)
        self.policy = policy or DeliveryPolicy(pause_max=t.pause_max)
        self.gates = Gates(redis_client, lanes, breaker)
        self.recorder = Recorder(self.store, self.policy, self.gates)
        self.recording = RecordingLine(self.recorder, self._recorded, t.most_unrecorded)
        self.schedule = schedule
        self.task_wait = t.delivery_task_wait if task_wait is None else task_wait
        self.lanes = lanes
        self.lease_margin = t.lease_margin
        self.poison_kills = t.poison_kills
        self.pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="deliver")
        self.rng = random.Random()
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        # Rows this process claimed and has not recorded yet (released on a warm shutdown).
        self._in_flight: set[int] = set()
        self._in_flight_lock = threading.Lock()
        self._futures: set[Future] = set()
        self.stopping = False
        self._timeout_max = max((destinations.timeout_budget(d) for d in config.destinations), default=20.0)

    def _rounds(self, count: int) -> int:
        """How many sends one lane makes one after another in a batch of `count` (the lease
        allows for that many timeouts in a row)."""
        return math.ceil(max(count, 1) / self.lanes)

    def _lease(self, count: int, now: datetime) -> datetime:
        return now + timedelta(seconds=self._rounds(count) * self._timeout_max + self.lease_margin)

    # -- the run -----------------------------------------------------------------------

    def run(self, ids: list[int]) -> RunResult:
        """Deliver what can be claimed of `ids`; returns counts and (id, when) to look at again."""
        result = RunResult()
        if not ids:
            return result
        ids = sorted(set(ids))
        started = time.monotonic()
        now = utcnow()
        now_ts = time.time()
        to_send: dict[str, list[Job]] = {}
        lanes_taken: dict[str, int] = {}
        unknown: list[Job] = []
        lease_until = self._lease(len(ids), now)
        lease_ends = started + (lease_until - now).total_seconds()
        with self.store.session() as s:
            c = claim(s, ids, now, lease_until, self.store.is_sqlite, self.poison_kills)
            result.claimed, result.superseded, result.poisoned = len(c.rows), c.superseded, len(c.poisoned)
            with self._in_flight_lock:
                self._in_flight.update(r.id for r in c.rows)
            for delivery_id in c.poisoned:
                log.error("delivery=%s stage=dead reason=poison message (its attempts stopped their worker "
                          "%d times)", delivery_id, self.poison_kills)
            for delivery_id in c.blocked:
                when = now + timedelta(seconds=ORDER_WAIT * (1 + self.rng.random()))
                result.later.append((delivery_id, when))
            if c.blocked:
                bulk_update(s, DeliveryRow, [{"id": i, "queued_at": w} for i, w in result.later])
            if not c.rows:
                self._schedule(result.later)
                return result
            events = {e.id: e for e in s.execute(
                select(EventRow.id, EventRow.type, EventRow.data)
                .where(EventRow.id.in_({r.event_id for r in c.rows})))}
            previous = previous_posts(s, c.rows)
            by_dest: dict[str, list[Job]] = defaultdict(list)
            for r in c.rows:
                dest = self.config.destination(r.kind, r.destination)
                live, made_at = previous.get(r.id, (None, None))
                job = Job(r.id, None, r.kind, r.destination, dest, r.message_id, r.event_type, r.event_id,
                          r.article_id, r.attempts + 1, event_data=events[r.event_id].data,
                          remote=dict(r.remote or {}), previous=live, previous_at=made_at)
                if dest is None:
                    unknown.append(job)
                    continue
                job.send_by = lease_ends - destinations.timeout_budget(dest)
                by_dest[destinations.key(r.kind, r.destination)].append(job)

            held: list[dict] = []
            rounds = self._rounds(len(ids))
            states, pauses = self.gates.health(list(by_dest), now_ts)
            for key, jobs in by_dest.items():
                st = states.get(key)
                if st is not None and st.state == "closed" and not st.failures:
                    for job in jobs:
                        job.healthy_at_claim = True
            try:
                for key, jobs in by_dest.items():
                    dest = jobs[0].dest
                    adm = self.gates.admit(dest, key, jobs, rounds, now_ts, states.get(key), pauses.get(key))
                    if adm.lanes:
                        lanes_taken[key] = adm.lanes
                        to_send[key] = adm.go
                    for i, job in enumerate(adm.wait):
                        when = now + timedelta(seconds=adm.wait_s + self.gates.spread(dest, i)
                                               + 0.2 * self.rng.random())
                        held.append({"id": job.delivery_id, "status": PENDING, "lease_until": None,
                                     "next_attempt_at": when, "queued_at": queued_at(when, now),
                                     "updated_at": now})
                        result.later.append((job.delivery_id, when))
                if held:
                    bulk_update(s, DeliveryRow, held)
                    self._settled(h["id"] for h in held)
                result.held = len(held)
                jobs_out = [j for jobs in to_send.values() for j in jobs] + unknown
                if jobs_out:
                    attempt_ids = insert_attempts(s, [j.delivery_id for j in jobs_out], now, self.worker_name)
                    for job in jobs_out:
                        job.attempt_id = attempt_ids[job.delivery_id]
            except BaseException:
                for key, lanes in lanes_taken.items():
                    self.gates.bulkhead.release(key, lanes)
                raise
        self._schedule(result.later)

        # -- 2. send ---------------------------------------------------------------------
        tracker = RunTracker()
        futures: dict[Future, list[Job]] = {}
        lane_keys: dict[Future, str] = {}
        for key, jobs in to_send.items():
            lanes = lanes_taken[key]
            for lane in range(lanes):
                share = jobs[lane::lanes]
                if share:
                    fut = self.pool.submit(self._send_lane, key, share, tracker)
                    self._futures.add(fut)
                    fut.add_done_callback(self._futures.discard)
                    futures[fut] = share
                    lane_keys[fut] = key
                else:
                    self.gates.bulkhead.release(key)
            result.sent += len(jobs)
        for job in unknown:
            job.outcome = Outcome(error_class="unknown_destination",
                                  error=f"{job.kind} {job.destination!r} is no longer configured")
            job.finished_at = utcnow()
            job.tracker = tracker
            self.recording.put(job)

        # -- 3. record (as each send finishes: recording.py) -----------------------------
        done, not_done = self._wait_for_sends(lane_keys)
        for fut in done:
            fut.result()  # a lane's own failure (a bug) surfaces here
        # What finished within the wait is recorded before the task returns, as it always was.
        ids_done = {j.delivery_id for fut in done for j in futures[fut]} | {j.delivery_id for j in unknown}
        if not tracker.wait_for(ids_done, RECORD_RETRY_FOR + 5.0):
            log.warning("recording outcomes is slow; the task returns and they are recorded in the background")
        result.later += tracker.later
        result.background = len(not_done)
        return result

    def _wait_for_sends(self, futures: dict[Future, str]) -> tuple[set[Future], set[Future]]:
        """Wait for the lanes (future -> destination key) up to the task wait, but not for a
        straggling destination: once other destinations' lanes have finished, a destination
        none of whose lanes has come back gets twice as long as the last lane to finish took
        (at least STRAGGLER_FLOOR), then finishes in the background. A destination whose last
        request from this process got no answer at all (a retry batch from the sweep, a probe)
        gets STRAGGLER_FLOOR even alone. So a destination that stopped answering holds this
        pool process for tens of milliseconds, not for the task wait, and the healthy
        destinations' next articles are not queued behind it."""
        done: set[Future] = set()
        pending = set(futures)
        answered: set[str] = set()  # destinations with a lane finished
        silent = self.recorder.not_answering  # their last request here got no answer at all
        start = time.monotonic()
        last_finished: float | None = None
        while pending:
            elapsed = time.monotonic() - start
            limit = self.task_wait
            waiting_for = {futures[f] for f in pending}
            if last_finished is not None and not answered & waiting_for:
                limit = min(limit, max(2 * last_finished, STRAGGLER_FLOOR))
            elif waiting_for <= silent:
                limit = min(limit, STRAGGLER_FLOOR)
            if elapsed >= limit:
                break
            finished, pending = wait(pending, timeout=limit - elapsed, return_when=FIRST_COMPLETED)
            if finished:
                done |= finished
                answered |= {futures[f] for f in finished}
                last_finished = time.monotonic() - start
        return done, pending

    def _schedule(self, later: list[tuple[int, datetime]]) -> None:
        if self.schedule is None or not later:
            return
        try:
            self.schedule(later)
        except Exception:  # noqa: BLE001 - e.g. the broker is away; the rows are in the store
            log.warning("could not enqueue %d deliveries for later; the sweep will", len(later), exc_info=True)

    def _prepared(self, job: Job, cache: dict):
        transport = self.transports[destinations.transport_type(job.dest)]
        k = (job.event_id, job.kind, job.destination)
        if k not in cache:
            cache[k] = transport.prepare(job.dest, job.event_type, job.event_data)
        return transport, cache[k]

    def _settled(self, ids) -> None:
        with self._in_flight_lock:
            self._in_flight.difference_update(ids)

    def _send_lane(self, key: str, jobs: list[Job], tracker: RunTracker) -> None:
        cache: dict = {}
        try:
            for job in jobs:
                job.tracker = tracker
                while not self.stopping and not self.recording.take(job, 1.0):
                    pass  # every slot is a send in flight or an answer being written
                if self.stopping:
                    # A warm shutdown: sends not started yet are handed back (release_leases).
                    self.recording.give_back(job)
                    tracker.recorded([job.delivery_id], [])
                    continue
                if time.monotonic() > job.send_by:
                    # It waited so long for a slot that its lease could run out mid-send and the
                    # sweep send it a second time: hand it back instead.
                    self.recording.give_back(job)
                    self._hand_back(job, tracker)
                    continue
                try:
                    transport, prepared = self._prepared(job, cache)
                    post = Post(job.delivery_id, job.message_id, job.event_type, job.article_id, job.attempts_made,
                                prepared=prepared, remote=dict(job.remote), previous=job.previous,
                                previous_at=job.previous_at, checkpoint=self._checkpoint(job))
                    job.outcome = transport.deliver(job.dest, post)
                except TransportError as exc:
                    # The message cannot be made or sent as it is (e.g. empty after cleaning).
                    job.outcome = Outcome(error_class="transport_error", error=str(exc)[:500],
                                          retryable=not exc.permanent)
                except Exception as exc:  # noqa: BLE001 - a bug must not strand the row in "sending"
                    log.exception("delivery=%s unexpected error while sending", job.delivery_id)
                    job.outcome = Outcome(error_class=type(exc).__name__, error=str(exc)[:500])
                    job.unexpected = exc
                job.finished_at = utcnow()
                self.recording.put(job)
        finally:
            self.gates.bulkhead.release(key)

    def _hand_back(self, job: Job, tracker: RunTracker) -> None:
        from worker.operations.shutdown import release_leases

        when = utcnow()
        try:
            release_leases(self.durable_store, [job.delivery_id], when, error=NOT_SENT_IN_LEASE)
        except Exception:  # noqa: BLE001 - left claimed, the sweep takes it back after its lease
            log.warning("delivery=%s could not be handed back; the sweep takes it after its lease",
                        job.delivery_id, exc_info=True)
        else:
            self._settled([job.delivery_id])
            self._schedule([(job.delivery_id, when)])
        tracker.recorded([job.delivery_id], [(job.delivery_id, when)])

    def _recorded(self, jobs: list[Job], later: list[tuple[int, datetime]] | None) -> None:
        """The recording thread wrote these jobs (`later` is None when it gave up: the rows stay
        claimed until their lease runs out, and a warm shutdown hands them back)."""
        if later is not None:
            self._settled(j.delivery_id for j in jobs)
            self._schedule(later)
        by_run: dict[int, tuple[RunTracker, list[int]]] = {}
        for job in jobs:
            if job.tracker is not None:
                by_run.setdefault(id(job.tracker), (job.tracker, []))[1].append(job.delivery_id)
        for tracker, ids in by_run.values():
            mine = set(ids)
            tracker.recorded(ids, [(i, w) for i, w in (later or []) if i in mine])

    def _checkpoint(self, job: Job) -> Callable[[dict], None]:
        def save(remote: dict) -> None:
            # Durably (not the relaxed bookkeeping commit): a retry relies on it to finish
            # the same post rather than make a second one.
            job.remote = dict(remote)
            with self.durable_store.session() as s:
                s.execute(update(DeliveryRow).where(DeliveryRow.id == job.delivery_id).values(remote=dict(remote))
                          .execution_options(synchronize_session=False))
        return save

    def shutdown(self, timeout: float) -> list[int]:
        """A warm stop: start no new send, let running ones finish (and record themselves)
        for up to `timeout` seconds, then hand back every row still claimed, so the next
        worker sends it at once instead of after its lease. Returns the ids handed back."""
        from worker.operations.shutdown import release_leases

        self.stopping = True
        pending = list(self._futures)
        if pending:
            wait(pending, timeout=timeout)
        # What finished is being recorded: give the recording thread a moment.
        self.recording.drain(2.0)
        with self._in_flight_lock:
            left = sorted(self._in_flight)
        if not left:
            return []
        released = release_leases(self.durable_store, left)
        if released:
            log.warning("stage=shutdown handed back %d deliveries in flight; they go out again at once",
                        len(released))
        return released

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.recording.close()
        self.transports.close()

