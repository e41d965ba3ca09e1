"""Every tunable read from the environment, in one place, read when first asked for
(not at import), so tests and `syndicate reload` can change them."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


def _float(env: dict, name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={raw!r}: expected a number from {low:g} to {high:g}")
    return value


@dataclass(frozen=True)
class Tunables:
    # The broker's visibility timeout, set everywhere Celery reads it.
    visibility_timeout: int = 3600
    # Seconds between sweeps of due deliveries (and polls of due sources).
    sweep_interval: float = 5.0
    # A queued delivery whose task has not run within this is enqueued again.
    requeue_after: float = 60.0
    # Added to a claimed delivery's lease (2 × timeout per send) before the sweep may take it back.
    lease_margin: float = 30.0
    # How long a delivery task waits for its sends before leaving slow ones to finish in the background.
    delivery_task_wait: float = 0.5
    # Failed attempts in a row that open a destination's circuit; cool-off and its cap.
    breaker_threshold: int = 10
    breaker_cooloff: float = 60.0
    breaker_cooloff_max: float = 3600.0
    # Longest a Retry-After (429/503) may pause a destination.
    pause_max: float = 3600.0
    # Send slots per worker process: a send holds one from before its request until its
    # outcome is recorded, so this is the most a SIGKILL can make a process repeat.
    most_unrecorded: int = 16
    # Worker processes a delivery may kill before it is dead letter (poison message).
    poison_kills: int = 3
    # Seconds running tasks get on SIGTERM before a cold shutdown.
    soft_shutdown: float = 10.0
    beat_schedule_file: str = "var/celerybeat-schedule"
    # Seconds a beat's lock in Redis outlives it: a standby beat takes over after this.
    beat_lock_timeout: int = 30

    @property
    def max_broker_countdown(self) -> int:
        """Countdowns longer than this are not given to the broker: the sweep enqueues them."""
        return min(300, self.visibility_timeout // 4)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Tunables":
        env = dict(os.environ if env is None else env)
        return cls(
            visibility_timeout=int(_float(env, "SYNDICATE_VISIBILITY_TIMEOUT", 3600, 60, 7 * 86400)),
            sweep_interval=_float(env, "SYNDICATE_SWEEP_INTERVAL", 5.0, 0.1, 3600),
            requeue_after=_float(env, "SYNDICATE_REQUEUE_AFTER", 60.0, 1, 86400),
            lease_margin=_float(env, "SYNDICATE_LEASE_MARGIN", 30.0, 1, 3600),
            delivery_task_wait=_float(env, "SYNDICATE_DELIVERY_TASK_WAIT", 0.5, 0, 600),
            breaker_threshold=int(_float(env, "SYNDICATE_BREAKER_THRESHOLD", 10, 1, 1_000_000)),
            breaker_cooloff=_float(env, "SYNDICATE_BREAKER_COOLOFF", 60.0, 0.01, 86400),
            breaker_cooloff_max=_float(env, "SYNDICATE_BREAKER_COOLOFF_MAX", 3600.0, 0.01, 7 * 86400),
            pause_max=_float(env, "SYNDICATE_PAUSE_MAX", 3600.0, 1, 86400),
            most_unrecorded=int(_float(env, "SYNDICATE_MOST_UNRECORDED", 16, 1, 10_000)),
            poison_kills=int(_float(env, "SYNDICATE_POISON_KILLS", 3, 1, 100)),
            soft_shutdown=_float(env, "SYNDICATE_SOFT_SHUTDOWN", 10.0, 0, 3600),
            beat_schedule_file=env.get("SYNDICATE_BEAT_SCHEDULE") or "var/celerybeat-schedule",
            beat_lock_timeout=int(_float(env, "SYNDICATE_BEAT_LOCK_TIMEOUT", 30, 5, 3600)),
        )


@functools.lru_cache(maxsize=1)
def tunables() -> Tunables:
    return Tunables.from_env()
