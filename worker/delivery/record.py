"""Recording finished attempts: the policy decides each outcome, delivery and attempt
rows are written in bulk, destinations are disabled or paused, the breaker counts ill
health, and each outcome is logged (once) and reported (dead letters, disables)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from config.tunables import tunables
from worker.delivery import destinations
from worker.delivery.policy import DEAD, DELIVERED, FAILED, PENDING, SKIPPED, Decision, DeliveryPolicy
from worker.observability import (
    classify_failure,
    delivery_details,
    redact,
    report_delivery_failed,
    report_destination_disabled,
)
from worker.store import AttemptRow, DeliveryRow
from worker.store.bulk import bulk_update
from worker.transports import Outcome
from worker.transports.base import UNPUBLISHED

log = logging.getLogger("syndicate.delivery")


@dataclass
class Job:
    """One claimed delivery on its way out."""

    delivery_id: int
    attempt_id: int | None
    kind: str
    destination: str
    dest: object | None  # PartnerConfig | channel config; None when no longer configured
    message_id: str
    event_type: str
    event_id: int
    article_id: str
    attempts_made: int
    event_data: dict | None = None
    remote: dict | None = None
    previous: dict | None = None
    previous_at: datetime | None = None
    outcome: Outcome | None = None
    finished_at: datetime | None = None
    unexpected: BaseException | None = None
    tracker: object | None = None  # the run waiting for it to be recorded (recording.RunTracker)
    # Its destination's breaker was closed with no failure counted when it was claimed.
    healthy_at_claim: bool = False
    # The destination key whose unrecorded-send slot it holds (recording.RecordingLine.take).
    slot: str | None = None
    # time.monotonic() after which it must not be sent: its lease would run out mid-send.
    send_by: float = float("inf")

    @property
    def key(self) -> str:
        return destinations.key(self.kind, self.destination)


# Outcomes that mean the destination did not answer at all.
NO_ANSWER = ("timeout", "connection_error")

# How long recording outcomes is retried while the database does not answer.
RECORD_RETRY_FOR = 30.0


def _is_transient(exc) -> bool:
    """A database error that says the server is unreachable or busy (the DB-API's
    OperationalError: a lost connection, a refused one, SQLite's "database is locked", a
    serialization failure), not that the statement or its data is wrong: worth trying again."""
    from sqlalchemy.exc import OperationalError

    return exc.connection_invalidated or isinstance(exc, OperationalError)


def queued_at(when: datetime | None, now: datetime) -> datetime | None:
    """What `queued_at` to store for a row due at `when`: soon ones are handed to the broker
    as a countdown (see tasks.deliver.schedule_later); later ones are left for the sweep,
    which takes rows whose queued_at is empty as soon as they are due."""
    if when is None or (when - now).total_seconds() > tunables().max_broker_countdown:
        return None
    return when


def remote_after(job: Job, outcome: Outcome, decision: Decision) -> dict | None:
    """The remote state to keep on the row: what the transport said, or, for a post
    deleted on unpublish, the post marked deleted."""
    if outcome.remote is not None:
        return outcome.remote
    if decision.status == DELIVERED and job.event_type == UNPUBLISHED and job.previous:
        return {**job.previous, "deleted": True}
    return job.remote or None


class Recorder:
    def __init__(self, store, policy: DeliveryPolicy, gates):
        self.store = store
        self.policy = policy
        self.gates = gates
        # Destinations this process has counted a failure for and not yet reset by a success.
        self._failing: set[str] = set()
        # Destinations whose last request from this process got no answer at all (a timeout,
        # a refused connection): the engine does not wait for them (_wait_for_sends).
        self.not_answering: set[str] = set()

    def record(self, jobs: list[Job]) -> list[tuple[int, datetime]]:
        """Decide each finished job's outcome and write rows in bulk; returns retries to schedule."""
        later: list[tuple[int, datetime]] = []
        delivery_updates, attempt_updates = [], []
        health: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        unsure: set[str] = set()  # destinations whose health may need a reset in Redis
        disable: dict[tuple[str, str], str] = {}
        pauses: dict[str, float] = {}
        reports = []
        for job in jobs:
            outcome = job.outcome
            assert outcome is not None and job.finished_at is not None
            if outcome.status_code is not None:
                self.not_answering.discard(job.key)
            elif outcome.error_class in NO_ANSWER:
                self.not_answering.add(job.key)
            # A destination may echo our headers back in an error page: nothing it says is
            # kept or logged with a secret or a signature in it.
            secrets = destinations.secrets_of(job.dest)
            if job.dest is None:
                decision = Decision(FAILED, reason=outcome.describe())
            else:
                decision = self.policy.decide(outcome, job.attempts_made, job.dest.retry_schedule, job.finished_at)
                if decision.status in (DELIVERED, SKIPPED):
                    health[job.key][0] += 1
                elif decision.endpoint_failed:
                    health[job.key][1] += 1
                if not job.healthy_at_claim:
                    unsure.add(job.key)
                if decision.disable_destination:
                    disable[(job.kind, job.destination)] = decision.reason
                if decision.pause_until is not None:
                    until = decision.pause_until.timestamp()
                    pauses[job.key] = max(pauses.get(job.key, 0.0), until)
            decision = replace(decision, reason=redact(decision.reason, secrets))
            body = redact(outcome.body, secrets)
            attempt_updates.append({
                "id": job.attempt_id, "finished_at": job.finished_at, "duration_ms": outcome.duration_ms,
                "status_code": outcome.status_code, "response_body": body[:2048] or None,
                "error": None if outcome.ok else redact(outcome.describe(), secrets)[:2000],
                "error_class": outcome.error_class or (None if outcome.ok else f"http_{outcome.status_code}"),
                "outcome": decision.status,
            })
            remote = remote_after(job, outcome, decision)
            values = {"id": job.delivery_id, "status": decision.status, "attempts": job.attempts_made,
                      "lease_until": None, "updated_at": job.finished_at, "last_status_code": outcome.status_code,
                      "last_error": None if decision.status == DELIVERED else decision.reason[:2000],
                      "next_attempt_at": decision.next_attempt_at,
                      "queued_at": queued_at(decision.next_attempt_at, job.finished_at),
                      "remote": remote, "remote_id": str(remote["id"])[:300] if remote and remote.get("id") else None}
            if decision.status in (DELIVERED, SKIPPED):
                values["delivered_at"] = job.finished_at
            if decision.status == PENDING and not decision.disable_destination:
                later.append((job.delivery_id, decision.next_attempt_at))
            delivery_updates.append(values)
            log_outcome(job, decision)
            reports.append((job, decision))
        # Rows that share a key set go in one executemany.
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for values in delivery_updates:
            groups[tuple(sorted(values))].append(values)
        newly_disabled = []
        failed = [(job, decision) for job, decision in reports if decision.status not in (DELIVERED, SKIPPED)]
        def write(s) -> dict:
            newly_disabled.clear()
            for rows in groups.values():
                bulk_update(s, DeliveryRow, rows)
            bulk_update(s, AttemptRow, attempt_updates)
            for (kind, name), reason in disable.items():
                if destinations.disable(s, kind, name, reason, by="policy"):
                    newly_disabled.append((kind, name, reason))
            return _details(s, [j.delivery_id for j, d in failed if d.status in (FAILED, DEAD)])

        details = self._write_with_retries(write)
        for kind, name, reason in newly_disabled:
            log.error("%s=%s stage=disabled reason=%s; its deliveries wait until "
                      "`syndicate destinations enable %s`", kind, name, reason, name)
        self._health(self._to_count(health, unsure), pauses)
        report_to_sentry(failed, details, newly_disabled)
        return later

    def _write_with_retries(self, write):
        """Write the outcomes, retrying while the database is briefly away: every answer that
        came back is worth recording, since a row left `sending` is sent again (a duplicate,
        under the same id) once its lease runs out. Gives up (and raises) after
        RECORD_RETRY_FOR seconds; the lease and the sweep take over from there."""
        from sqlalchemy.exc import DBAPIError

        deadline = time.monotonic() + RECORD_RETRY_FOR
        delay = 0.5
        while True:
            try:
                with self.store.session() as s:
                    return write(s)
            except DBAPIError as exc:
                if not _is_transient(exc) or time.monotonic() > deadline:
                    raise
                log.warning("the database is not answering; recording outcomes again in %.1fs (%s)", delay,
                            type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__)
                time.sleep(delay)
                delay = min(delay * 2, 4.0)

    def _to_count(self, health: dict, unsure: set[str]) -> dict:
        """What the breaker must hear: failures, and successes that may reset something. A
        success to a destination that was healthy when its job was claimed, and that this
        process has counted no failure for since, changes nothing: it is not sent to Redis
        (one round trip saved on nearly every write). A failure another worker counted
        meanwhile is then not reset by it, as if this success had come just before."""
        out = {}
        for key, (ok, failed) in health.items():
            if failed:
                self._failing.add(key)
            elif ok and key in self._failing:
                self._failing.discard(key)
            elif key not in unsure:
                continue
            out[key] = (ok, failed)
        return out

    def _health(self, health: dict, pauses: dict[str, float]) -> None:
        pacer, breaker = self.gates.pacer, self.gates.breaker
        try:
            for key, until in pauses.items():
                if pacer is not None:
                    pacer.pause(key, until)
                    log.warning("destination=%s stage=paused for %.0fs (it asked to slow down: Retry-After)",
                                key, until - time.time())
            changes = breaker.record_many(dict(health)) if breaker is not None and health else {}
        except Exception:  # noqa: BLE001 - health is advisory; the rows are recorded
            log.warning("could not record destination health in Redis", exc_info=True)
            changes = {}
        for key, change in changes.items():
            if change == "opened":
                log.error("destination=%s stage=circuit-open after repeated failures; pausing deliveries to it",
                          key)
            elif change == "closed":
                log.warning("destination=%s stage=circuit-closed: it answers again", key)


def _details(s, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    try:
        return delivery_details(s, ids)
    except Exception:  # noqa: BLE001 - monitoring must never lose a recorded outcome
        log.warning("could not read delivery details for monitoring", exc_info=True)
        return {}


def report_to_sentry(failed: list[tuple[Job, Decision]], details: dict[int, dict], disabled: list) -> None:
    """The engine's only Sentry code (`worker/observability/capture.py` decides what is an event
    and how it is grouped): a retry is a breadcrumb; a dead or failed delivery an event in one
    issue per (destination, failure class); a disabled destination an event of its own."""
    try:
        for job, decision in failed:
            outcome = job.outcome
            report_delivery_failed(
                destination=job.destination, destination_type=job.kind, article_id=job.article_id,
                event_type=job.event_type, attempt=job.attempts_made, http_status=outcome.status_code,
                failure_class=classify_failure(outcome.status_code, outcome.error_class),
                final=decision.status in (FAILED, DEAD), status=decision.status, webhook_id=job.message_id,
                reason=decision.reason, **details.get(job.delivery_id, {}))
        for kind, name, reason in disabled:
            status = next((j.outcome.status_code for j, d in failed
                           if d.disable_destination and j.destination == name and j.kind == kind), None)
            report_destination_disabled(destination=name, destination_type=kind, reason=reason, http_status=status)
    except Exception:  # noqa: BLE001 - monitoring must never lose a recorded outcome
        log.warning("could not report delivery outcomes to monitoring", exc_info=True)


def log_outcome(job: Job, decision: Decision) -> None:
    where = f"{job.kind}={job.destination}"
    if decision.status == DELIVERED:
        link = (job.outcome.remote or {}).get("url") if job.outcome and job.outcome.remote else None
        log.info("article=%s stage=delivered %s event=%s attempts=%d%s", job.article_id, where, job.event_type,
                 job.attempts_made, f" url={link}" if link else "")
    elif decision.status == SKIPPED:
        log.info("article=%s stage=skipped %s event=%s attempts=%d reason=%s", job.article_id, where,
                 job.event_type, job.attempts_made, decision.reason)
    elif decision.status == PENDING:
        when = decision.next_attempt_at.isoformat() if decision.next_attempt_at else "-"
        log.warning("article=%s stage=retry %s event=%s attempts=%d next=%s reason=%s", job.article_id, where,
                    job.event_type, job.attempts_made, when, decision.reason)
    else:
        log.error("article=%s stage=%s %s event=%s attempts=%d reason=%s", job.article_id, decision.status, where,
                  job.event_type, job.attempts_made, decision.reason)
