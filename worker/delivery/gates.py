"""What may go out now, per destination: the breaker, pauses (Retry-After), the rate
limit and a channel's daily cap (shared by all workers in Redis), and this process's
cap on sends in flight per destination (the bulkhead). What a gate holds back goes
back to `pending` for later without spending an attempt."""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from dataclasses import dataclass

from redis.exceptions import RedisError

from worker.delivery.health import CircuitBreaker, Pacer, RateLimiter

log = logging.getLogger("syndicate.delivery")

# Held back because an older version of the same story is still on its way: look again soon.
ORDER_WAIT = 1.0
DAY = 86400.0


class Bulkhead:
    """Sends in flight per destination in this process, capped, so a slow destination
    cannot take every thread (or connection) while healthy ones wait."""

    def __init__(self, cap: int):
        self.cap = cap
        self._in_flight: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def acquire(self, key: str, wanted: int) -> int:
        with self._lock:
            free = max(0, self.cap - self._in_flight[key])
            granted = min(free, wanted)
            self._in_flight[key] += granted
            return granted

    def release(self, key: str, count: int = 1) -> None:
        with self._lock:
            self._in_flight[key] -= count


@dataclass
class Admission:
    go: list
    wait: list
    wait_s: float
    lanes: int


class Gates:
    def __init__(self, redis_client, lanes: int, breaker: CircuitBreaker | None = None):
        self.breaker = breaker or (CircuitBreaker(redis_client) if redis_client is not None else None)
        self.limiter = RateLimiter(redis_client) if redis_client is not None else None
        self.pacer = Pacer(redis_client) if redis_client is not None else None
        self.lanes = lanes
        self.bulkhead = Bulkhead(lanes)

    def health(self, keys: list[str], now_ts: float) -> tuple[dict, dict]:
        """Breaker states and pauses of these destinations (two round trips at most)."""
        states, pauses = {}, {}
        try:
            if self.breaker is not None and keys:
                states = self.breaker.states(keys, now_ts)
            if self.pacer is not None and keys:
                pauses = self.pacer.paused_until(keys, now_ts)
        except RedisError:
            log.warning("destination health unavailable in Redis; sending without it")
        return states, pauses

    def admit(self, dest, key: str, jobs: list, rounds: int, now_ts: float, breaker_state,
              paused_until: float | None) -> Admission:
        """Which of one destination's jobs may go now, the rest, how long the rest should
        wait, and how many lanes (concurrent connections) were taken for the ones that go."""
        allowed, wait_s = len(jobs), 0.0
        if paused_until is not None:
            # The destination asked for a pause: nobody sends, the breaker's probe included.
            return Admission([], jobs, paused_until - now_ts, 0)
        try:
            if self.breaker is not None and breaker_state is not None:
                allowed, wait_s = self.breaker.admit(key, allowed, probe_ttl=dest.timeout + 5.0, now=now_ts,
                                                     state=breaker_state)
            if allowed and self.limiter is not None:
                if dest.rate is not None:
                    allowed, rate_wait = self.limiter.take(key, dest.rate, allowed)
                    wait_s = max(wait_s, rate_wait)
                cap = getattr(dest, "daily_cap", None)
                if allowed and cap:
                    # Beyond the cap, posts are spread over the day, never dropped.
                    allowed, cap_wait = self.limiter.take(key + ":daily", (cap, DAY), allowed)
                    wait_s = max(wait_s, cap_wait)
        except RedisError:
            # Health is advisory: with Redis away for a moment, deliver rather than strand rows.
            log.warning("destination=%s health state unavailable in Redis; sending without it", key)
        lanes = 0
        if allowed:
            lanes = self.bulkhead.acquire(key, min(math.ceil(allowed / rounds), self.lanes))
            if not lanes:
                # Every lane to this destination is busy (it is slow): come back when one may be free.
                wait_s = max(wait_s, min(dest.timeout, 5.0))
            # A lane sends at most `rounds` jobs one after another (what the lease allows for).
            allowed = min(allowed, lanes * rounds)
            if allowed < len(jobs):
                wait_s = max(wait_s, ORDER_WAIT)
        return Admission(jobs[:allowed], jobs[allowed:], wait_s, lanes)

    def spread(self, dest, index: int) -> float:
        """Seconds to add to the `index`-th held-back job, so a rate-limited backlog is spread
        over the time it needs rather than arriving at once."""
        if dest.rate:
            return index / dest.rate[0] * dest.rate[1]
        cap = getattr(dest, "daily_cap", None)
        return index * DAY / cap if cap else 0.0
