"""What one attempt's outcome means: the only place that decides retry versus give up."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from worker.transports.base import Outcome

# A Retry-After outside this range is taken as a mistake (or hostile) and clamped.
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1.0, 6 * 3600.0

DELIVERED, PENDING, FAILED, DEAD, SUPERSEDED = "delivered", "pending", "failed", "dead", "superseded"


@dataclass(frozen=True)
class Decision:
    """The delivery's next state; `disable_partner` asks for the whole partner to be stopped."""

    status: str  # delivered | pending | failed | dead
    next_attempt_at: datetime | None = None
    reason: str = ""
    disable_partner: bool = False
    # Whether the attempt says something about the endpoint's health (for the breaker).
    endpoint_failed: bool = False


def is_redirect(status: int) -> bool:
    return 300 <= status < 400


def is_transient(outcome: Outcome) -> bool:
    """Worth trying again later: no answer at all, a timeout, overload or a server error.

    A refused private address is not transient: it stays refused until the configuration changes."""
    if outcome.status_code is None:
        return outcome.error_class != "blocked_address"
    status = outcome.status_code
    return status in (408, 429) or status >= 500 or is_redirect(status)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), clamped to a sane range."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - now).total_seconds()
    return min(max(seconds, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


class DeliveryPolicy:
    """Decides what one attempt's outcome means for the delivery.

    - 2xx: delivered.
    - 410 Gone: the partner is disabled; this delivery waits (pending) for it to be enabled.
    - 3xx (not followed), 408, 429, 5xx, timeouts, connection and DNS errors: retried on the
      partner's schedule with jitter; 429 and 503 honour Retry-After (clamped).
    - any other 4xx, or a refused address: failed at once.
    - a transient failure after the last scheduled attempt: dead.
    """

    def __init__(self, jitter: float = 0.1, rng: random.Random | None = None):
        self.jitter = jitter
        self.rng = rng or random.Random()

    def decide(self, outcome: Outcome, attempts_made: int, schedule: list[float], now: datetime) -> Decision:
        if outcome.ok:
            return Decision(DELIVERED, reason=outcome.describe())
        status = outcome.status_code
        if status == 410:
            return Decision(PENDING, next_attempt_at=now, disable_partner=True,
                            reason=f"{outcome.describe()}: partner disabled until `syndicate partners enable`")
        if not is_transient(outcome):
            return Decision(FAILED, reason=outcome.describe())
        # attempts_made counts the first, immediate attempt; schedule[i] follows attempt i+1.
        if attempts_made > len(schedule):
            return Decision(DEAD, endpoint_failed=True,
                            reason=f"gave up after {attempts_made} attempts; last: {outcome.describe()}")
        delay = schedule[attempts_made - 1]
        if status in (429, 503):
            hinted = parse_retry_after(outcome.retry_after, now)
            if hinted is not None:
                delay = max(delay, hinted)
        delay += delay * self.jitter * self.rng.random()
        return Decision(PENDING, next_attempt_at=now + timedelta(seconds=delay), reason=outcome.describe(),
                        endpoint_failed=True)
