"""Delivering to partners: the retry policy and the batch executor.

The executor claims delivery rows (pending and due) with a lease, writes an
attempt row before each request and completes it after, then lets one function,
`DeliveryPolicy.decide`, say what the outcome means: delivered, retry at a time,
failed, or dead. Next attempt times live in the store; short delays are also
handed to the broker as a countdown, long ones wait for the sweep.
"""

from __future__ import annotations

import email.utils
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, or_, select, update

from config import SyndicationConfig
from worker.store import AttemptRow, DeliveryRow, EventRow, Store, utcnow
from worker.transports import Outcome
from worker.transports.webhook import WebhookTransport

log = logging.getLogger("syndicate.delivery")

LEASE_MARGIN = timedelta(seconds=30)
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1.0, 6 * 3600.0


@dataclass(frozen=True)
class Decision:
    status: str  # delivered | pending | failed | dead
    next_attempt_at: datetime | None = None
    reason: str = ""


def response_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500 or 300 <= status < 400


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), clamped to a sane range."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - now).total_seconds()
    return min(max(seconds, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


class DeliveryPolicy:
    """Decides what one attempt's outcome means for the delivery."""

    def __init__(self, jitter: float = 0.1, rng: random.Random | None = None):
        self.jitter = jitter
        self.rng = rng or random.Random()

    def decide(self, outcome: Outcome, attempts_made: int, schedule: list[float], now: datetime) -> Decision:
        if outcome.ok:
            return Decision("delivered", reason=outcome.describe())
        status = outcome.status_code
        if status is not None and not response_retryable(status):
            return Decision("failed", reason=outcome.describe())
        # attempts_made counts the first, immediate attempt; schedule[i] follows attempt i+1.
        if attempts_made > len(schedule):
            return Decision("dead", reason=f"gave up after {attempts_made} attempts; last: {outcome.describe()}")
        delay = schedule[attempts_made - 1]
        if status in (429, 503):
            hinted = parse_retry_after(outcome.retry_after, now)
            if hinted is not None:
                delay = max(delay, hinted)
        delay += delay * self.jitter * self.rng.random()
        return Decision("pending", next_attempt_at=now + timedelta(seconds=delay), reason=outcome.describe())


class PartnerDeliverer:
    """Delivers a batch of partner delivery rows over one pooled HTTP session."""

    def __init__(self, store: Store, config: SyndicationConfig, transport: WebhookTransport | None = None,
                 policy: DeliveryPolicy | None = None):
        self.store = store
        self.config = config
        self.transport = transport or WebhookTransport()
        self.policy = policy or DeliveryPolicy()

    def claim(self, ids: list[int], now: datetime) -> list[int]:
        """Atomically take due rows; a row another worker holds (or already finished) is skipped."""
        if not ids:
            return []
        longest = max((p.timeout for p in self.config.partners), default=10.0)
        lease = now + timedelta(seconds=longest * 2) + LEASE_MARGIN
        with self.store.session() as s:
            claimed = s.scalars(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id.in_(ids),
                    DeliveryRow.kind == "partner",
                    or_(
                        and_(DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now),
                        and_(DeliveryRow.status == "sending", DeliveryRow.lease_until < now),
                    ),
                )
                .values(status="sending", lease_until=lease, updated_at=now)
                .returning(DeliveryRow.id)
            ).all()
        return list(claimed)

    def run(self, ids: list[int]) -> list[tuple[int, datetime]]:
        """Deliver what can be claimed of `ids`; return (id, when) for retries to enqueue."""
        now = utcnow()
        claimed = self.claim(ids, now)
        if not claimed:
            return []
        with self.store.session() as s:
            rows = s.execute(
                select(DeliveryRow, EventRow).join(EventRow, EventRow.id == DeliveryRow.event_id)
                .where(DeliveryRow.id.in_(claimed))
            ).all()
            attempts = {d.id: AttemptRow(delivery_id=d.id, started_at=now) for d, _ in rows}
            s.add_all(attempts.values())
            s.flush()
            attempt_ids = {k: a.id for k, a in attempts.items()}
            work = [(d.id, d.destination, d.message_id, d.attempts, d.article_id, e.type, e.data) for d, e in rows]

        results = []
        for delivery_id, destination, message_id, attempts_before, article_id, event_type, data in work:
            partner = self.config.partner(destination)
            if partner is None:
                outcome = Outcome(error_class="unknown_partner",
                                  error=f"partner {destination!r} is no longer configured")
            else:
                outcome = self.transport.send(partner, message_id, event_type, data)
            results.append((delivery_id, partner, attempts_before + 1, article_id, event_type, outcome))

        retries: list[tuple[int, datetime]] = []
        finished = utcnow()
        with self.store.session() as s:
            for delivery_id, partner, attempts_made, article_id, event_type, outcome in results:
                if partner is None:
                    decision = Decision("failed", reason=outcome.describe())
                else:
                    decision = self.policy.decide(outcome, attempts_made, partner.retry_schedule, finished)
                s.execute(update(AttemptRow).where(AttemptRow.id == attempt_ids[delivery_id]).values(
                    finished_at=finished, duration_ms=outcome.duration_ms, status_code=outcome.status_code,
                    response_body=outcome.body or None, error=None if outcome.ok else outcome.describe(),
                    outcome=decision.status,
                ))
                values = dict(status=decision.status, attempts=attempts_made, lease_until=None, updated_at=finished,
                              last_status_code=outcome.status_code,
                              last_error=None if decision.status == "delivered" else decision.reason[:2000],
                              next_attempt_at=decision.next_attempt_at)
                if decision.status == "delivered":
                    values["delivered_at"] = finished
                if decision.status == "pending" and decision.next_attempt_at is not None:
                    retries.append((delivery_id, decision.next_attempt_at))
                s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(**values))
                log_outcome(article_id, event_type, partner.name if partner else "?", decision, attempts_made)
        return retries


def log_outcome(article_id: str, event_type: str, partner: str, decision: Decision, attempts: int) -> None:
    if decision.status == "delivered":
        log.info("article=%s stage=delivered partner=%s event=%s attempts=%d", article_id, partner, event_type, attempts)
    elif decision.status == "pending":
        log.warning("article=%s stage=retry partner=%s event=%s attempts=%d next=%s reason=%s", article_id, partner,
                    event_type, attempts, decision.next_attempt_at.isoformat(), decision.reason)
    else:
        log.error("article=%s stage=%s partner=%s event=%s attempts=%d reason=%s", article_id, decision.status,
                  partner, event_type, attempts, decision.reason)

