import logging
import os
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import update

from worker import runtime
from worker.celery_app import app
from worker.pipeline import due_deliveries
from worker.store import DeliveryRow, utcnow

log = logging.getLogger("syndicate.sweep")

# A queued task that has not run within this is presumed lost and enqueued again
# (a duplicate is harmless: delivery rows are claimed atomically).
REQUEUE_AFTER = timedelta(seconds=float(os.environ.get("SYNDICATE_REQUEUE_AFTER", "60")))
BATCH = 50


@app.task(name="tasks.maintenance.sweep")
def sweep() -> int:
    from tasks.deliver import deliver_batch
    from tasks.feeds import rebuild_feed

    now = utcnow()
    store = runtime.store()
    with store.session() as s:
        rows = due_deliveries(s, now, REQUEUE_AFTER)
        ids = [r.id for r in rows]
        if ids:
            s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids)).values(queued_at=now)
                      .execution_options(synchronize_session=False))
    # One partner per batch: a batch for a slow or failing partner then holds up no one else.
    partners: dict[str, list[int]] = defaultdict(list)
    feeds: set[str] = set()
    by_kind = defaultdict(int)
    for row in rows:
        by_kind[row.kind] += 1
        if row.kind == "partner":
            partners[row.destination].append(row.id)
        elif row.kind == "feed":
            feeds.add(row.destination)
    for ids in partners.values():
        for i in range(0, len(ids), BATCH):
            deliver_batch.delay(ids[i:i + BATCH])
    for name in sorted(feeds):
        rebuild_feed.delay(name)
    if rows:
        log.info("sweep enqueued %s", dict(by_kind))
    return len(rows)
