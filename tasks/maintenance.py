"""The sweep (queue `maintenance`): what is due and not on its way is enqueued again."""

import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import update

from config.tunables import tunables
from worker import runtime
from worker.celery import app
from worker.pipeline import due_deliveries
from worker.store import DeliveryRow, utcnow

log = logging.getLogger("syndicate.sweep")

BATCH = 50


@app.task(name="tasks.maintenance.sweep")
def sweep() -> int:
    from tasks.deliver import deliver_batch
    from tasks.feeds import rebuild_feed

    now = utcnow()
    store = runtime.store()
    # A queued task that has not run within this is presumed lost and enqueued again
    # (a duplicate is harmless: delivery rows are claimed atomically).
    requeue_after = timedelta(seconds=tunables().requeue_after)
    with store.session() as s:
        rows = due_deliveries(s, now, requeue_after)
        ids = [r.id for r in rows]
        if ids:
            s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids)).values(queued_at=now)
                      .execution_options(synchronize_session=False))
    # One destination per batch: a batch for a slow or failing destination then holds up no one else.
    batches: dict[tuple[str, str], list[int]] = defaultdict(list)
    feeds: set[str] = set()
    by_kind = defaultdict(int)
    unknown = 0
    for row in rows:
        by_kind[row.kind] += 1
        if row.kind in ("partner", "channel"):
            batches[(row.kind, row.destination)].append(row.id)
        elif row.kind == "feed":
            feeds.add(row.destination)
        else:
            unknown += 1
    for ids in batches.values():
        for i in range(0, len(ids), BATCH):
            deliver_batch.delay(ids[i:i + BATCH])
    for name in sorted(feeds):
        rebuild_feed.delay(name)
    if unknown:
        log.error("sweep found %d due rows of an unknown kind; they are left as they are", unknown)
    if rows:
        log.info("sweep enqueued %s", dict(by_kind))
    return len(rows)
