from worker import runtime
from worker.celery_app import MAX_BROKER_COUNTDOWN, app
from worker.delivery import PartnerDeliverer
from worker.store import utcnow

_deliverer: PartnerDeliverer | None = None


def deliverer() -> PartnerDeliverer:
    # One per process, so the HTTP connection pool is reused across tasks.
    global _deliverer
    if _deliverer is None:
        _deliverer = PartnerDeliverer(runtime.store(), runtime.config())
    return _deliverer


@app.task(name="tasks.deliver.deliver_batch")
def deliver_batch(delivery_ids: list[int]) -> None:
    retries = deliverer().run(delivery_ids)
    schedule_retries(retries)


def schedule_retries(retries) -> None:
    """Short delays go to the broker as a countdown; long ones wait in the store for the sweep."""
    from sqlalchemy import update

    from worker.store import DeliveryRow

    now = utcnow()
    soon = [(i, when) for i, when in retries if (when - now).total_seconds() <= MAX_BROKER_COUNTDOWN]
    if not soon:
        return
    with runtime.store().session() as s:
        for delivery_id, when in soon:
            s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(queued_at=when))
    for delivery_id, when in soon:
        deliver_batch.apply_async(([delivery_id],), countdown=max(0.0, (when - now).total_seconds()))
