"""Partner delivery tasks. They take only delivery ids; the rows say what to send."""

from __future__ import annotations

import math
from datetime import datetime

from worker import runtime
from worker.celery_app import MAX_BROKER_COUNTDOWN, app
from worker.delivery import PartnerDeliverer
from worker.store import utcnow

_deliverer: PartnerDeliverer | None = None


def deliverer() -> PartnerDeliverer:
    # One per process, so connection pools, threads and signers are reused across tasks.
    global _deliverer
    if _deliverer is None:
        _deliverer = PartnerDeliverer(runtime.store(), runtime.config(), redis_client=runtime.redis_client(),
                                      schedule=schedule_later)
    return _deliverer


@app.task(name="tasks.deliver.deliver_batch")
def deliver_batch(delivery_ids: list[int]) -> dict:
    result = deliverer().run(delivery_ids)
    return {"claimed": result.claimed, "sent": result.sent, "held": result.held, "superseded": result.superseded}


def schedule_later(later: list[tuple[int, datetime]]) -> None:
    """Rows to look at again: a soon one goes to the broker as a countdown (the row's
    `queued_at` already says so); a later one waits in the store for the sweep, so no
    ETA message outlives the broker's visibility timeout. Rows due at about the same
    time share one task."""
    now = utcnow()
    buckets: dict[int, list[int]] = {}
    for delivery_id, when in later:
        delay = (when - now).total_seconds()
        if delay > MAX_BROKER_COUNTDOWN:
            continue
        # Round up: a task that arrives before the row is due would find nothing to claim.
        buckets.setdefault(max(0, math.ceil(delay)), []).append(delivery_id)
    for delay, ids in sorted(buckets.items()):
        for i in range(0, len(ids), 100):
            deliver_batch.apply_async((ids[i:i + 100],), countdown=delay)
