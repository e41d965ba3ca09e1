"""What one attempt's outcome means: the only place that decides retry versus give up."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from worker.transports.base import Outcome

# A Retry-After outside this range is taken as a mistake (or hostile) and clamped.
RETRY_AFTER_MIN, RETRY_AFTER_MAX = 1.0, 6 * 3600.0

DELIVERED, PENDING, FAILED, DEAD, SUPERSEDED, SKIPPED = (
    "delivered", "pending", "failed", "dead", "superseded", "skipped")


@dataclass(frozen=True)
class Decision:
    """The delivery's next state; `disable_destination` asks for the whole destination to be
    stopped; `pause_until` asks for it to be left alone until then (429/503 Retry-After)."""

    status: str  # delivered | skipped | pending | failed | dead
    next_attempt_at: datetime | None = None
    reason: str = ""
    disable_destination: bool = False
    # Whether the attempt says something about the endpoint's health (for the breaker):
    # a 5xx without Retry-After, a timeout, a connection error. Pacing (429, 503 with
    # Retry-After) is not ill health.
    endpoint_failed: bool = False
    pause_until: datetime | None = None


def is_redirect(status: int) -> bool:
    return 300 <= status < 400


def is_transient(outcome: Outcome) -> bool:
    """Worth trying again later: no answer at all, a timeout, overload or a server error.

    A refused private address is not transient: it stays refused until the configuration changes."""
    if outcome.retryable is not None:
        return outcome.retryable
    if outcome.status_code is None:
        return outcome.error_class not in ("blocked_address", "bad_url")
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


def is_ill_health(outcome: Outcome, paced: bool) -> bool:
    """Whether a failed attempt counts toward the breaker: no answer, or a server error
    that is not the destination asking us to slow down."""
    if paced:
        return False
    if outcome.status_code is None:
        return outcome.error_class in ("timeout", "connection_error", "dns_error", "tls_error")
    return outcome.status_code >= 500 or outcome.status_code == 408


class DeliveryPolicy:
    """Decides what one attempt's outcome means for the delivery.

    - 2xx: delivered; a transport's `skipped` (nothing to do: not editable, already deleted): skipped.
    - 410 Gone, or a transport's `disable` (credentials rejected): the destination is disabled;
      this delivery waits (pending) for it to be enabled.
    - 3xx (not followed), 408, 429, 5xx, timeouts, connection and DNS errors, or a transport's
      `retryable=True`: retried on the destination's schedule with jitter. Only signs of ill
      health (5xx, 408, timeouts, connection errors) count toward the breaker.
    - 429 or 503 with Retry-After (or a transport's own rate-limit hint): the destination is
      paced — paused for every worker until then (capped at `pause_max`), this delivery
      retried then; pacing spends no retry and never makes a delivery dead.
    - any other 4xx, a refused address, or `retryable=False`: failed at once.
    - a transient failure after the last scheduled attempt: dead.
    """

    def __init__(self, jitter: float = 0.1, rng: random.Random | None = None, pause_max: float = 3600.0):
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.pause_max = pause_max

    def decide(self, outcome: Outcome, attempts_made: int, schedule: list[float], now: datetime) -> Decision:
        if outcome.skipped is not None:
            return Decision(SKIPPED, reason=outcome.describe())
        if outcome.ok:
            return Decision(DELIVERED, reason=outcome.describe())
        status = outcome.status_code
        if outcome.disable is not None or status == 410:
            why = outcome.disable or outcome.describe()
            return Decision(PENDING, next_attempt_at=now, disable_destination=True,
                            reason=f"{why}: destination disabled until `syndicate destinations enable`")
        if not is_transient(outcome):
            return Decision(FAILED, reason=outcome.describe())
        hinted = parse_retry_after(outcome.retry_after, now) if status in (429, 503) or (
            status is None and outcome.retry_after) or outcome.retryable else None
        if hinted is not None:
            hinted = min(hinted, self.pause_max)
        paced = hinted is not None
        ill = is_ill_health(outcome, paced)
        if paced:
            # The destination is alive and asked to be paced: try again when it said, and do
            # not spend the retry schedule on it (that is for failures).
            pause_until = now + timedelta(seconds=hinted)
            delay = hinted + hinted * self.jitter * self.rng.random()
            return Decision(PENDING, next_attempt_at=now + timedelta(seconds=delay), reason=outcome.describe(),
                            endpoint_failed=False, pause_until=pause_until)
        # attempts_made counts the first, immediate attempt; schedule[i] follows attempt i+1.
        if attempts_made > len(schedule):
            return Decision(DEAD, endpoint_failed=ill,
                            reason=f"gave up after {attempts_made} attempts; last: {outcome.describe()}")
        delay = schedule[attempts_made - 1]
        delay += delay * self.jitter * self.rng.random()
        return Decision(PENDING, next_attempt_at=now + timedelta(seconds=delay), reason=outcome.describe(),
                        endpoint_failed=ill)
