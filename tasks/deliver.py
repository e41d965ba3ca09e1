"""Delivery tasks (queue `deliver`), for every destination kind. They take only delivery
ids; the rows say what to send and where."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from celery.signals import worker_process_shutdown

from config.tunables import tunables
from tasks import DELIVER_BATCH
from worker import runtime
from worker.celery import app
from worker.delivery import DeliveryEngine
from worker.store import utcnow

_engine: DeliveryEngine | None = None


def engine() -> DeliveryEngine:
    # One per process, so connection pools, threads, sessions and signers are reused across tasks.
    global _engine
    if _engine is None:
        _engine = DeliveryEngine(runtime.store(), runtime.config(), redis_client=runtime.redis_client(),
                                 schedule=schedule_later)
    return _engine


def reset_engine() -> None:
    """Forget the engine (the configuration was reloaded)."""
    global _engine
    old, _engine = _engine, None
    if old is not None:
        old.close()


@worker_process_shutdown.connect(weak=False)
def _hand_back_in_flight(**_) -> None:
    """A pool process stopping (warm shutdown): sends in flight get the soft-shutdown window,
    rows still claimed are handed back so the next worker sends them at once."""
    if _engine is not None:
        try:
            _engine.shutdown(timeout=max(0.0, tunables().soft_shutdown - 2.0))
        except Exception:  # noqa: BLE001 - the leases expire and the sweep takes the rows
            logging.getLogger("syndicate.delivery").warning("could not hand back deliveries in flight",
                                                            exc_info=True)


@app.task(name=DELIVER_BATCH)
def deliver_batch(delivery_ids: list[int]) -> dict:
    result = engine().run(delivery_ids)
    return {"claimed": result.claimed, "sent": result.sent, "held": result.held, "superseded": result.superseded,
            "poisoned": result.poisoned}


def schedule_later(later: list[tuple[int, datetime]]) -> None:
    """Rows to look at again: a soon one goes to the broker as a countdown (the row's
    `queued_at` already says so); a later one waits in the store for the sweep, so no
    ETA message outlives the broker's visibility timeout. Rows due at about the same
    time share one task."""
    now = utcnow()
    cutoff = tunables().max_broker_countdown
    buckets: dict[int, list[int]] = {}
    for delivery_id, when in later:
        delay = (when - now).total_seconds()
        if delay > cutoff:
            continue
        # Round up: a task that arrives before the row is due would find nothing to claim.
        buckets.setdefault(max(0, math.ceil(delay)), []).append(delivery_id)
    for delay, ids in sorted(buckets.items()):
        for i in range(0, len(ids), 100):
            deliver_batch.apply_async((ids[i:i + 100],), countdown=delay)
