"""release_leases: a warm shutdown hands its in-flight deliveries back, due at once,
with their open attempts closed as interrupted, instead of leaving them to a lease."""

from datetime import timedelta

from sqlalchemy import select

from tests.worker.operations.test_health import _due_delivery
from worker.operations.shutdown import INTERRUPTED_ERROR, release_leases
from worker.store import AttemptRow, DeliveryRow, utcnow


def _claimed(store, attempts: int = 0) -> int:
    row_id = _due_delivery(store, timedelta(0))
    now = utcnow()
    with store.session() as s:
        row = s.get(DeliveryRow, row_id)
        row.status, row.lease_until, row.attempts, row.queued_at = "sending", now + timedelta(seconds=50), attempts, now
        s.add(AttemptRow(delivery_id=row_id, started_at=now))
    return row_id


def test_in_flight_rows_go_back_to_pending_due_now_with_the_attempt_interrupted(store):
    sending, other = _claimed(store, attempts=2), _claimed(store)
    now = utcnow()
    assert release_leases(store, [sending], now=now) == [sending]
    with store.session() as s:
        row = s.get(DeliveryRow, sending)
        assert (row.status, row.lease_until, row.queued_at, row.attempts) == ("pending", None, None, 2)
        assert row.next_attempt_at == now and row.last_error == INTERRUPTED_ERROR
        attempt = s.scalars(select(AttemptRow).where(AttemptRow.delivery_id == sending)).one()
        assert (attempt.outcome, attempt.error_class, attempt.finished_at) == ("interrupted", "shutdown", now)
        # Another worker's row is not touched.
        assert s.get(DeliveryRow, other).status == "sending"


def test_a_row_that_finished_meanwhile_keeps_its_outcome(store):
    row_id = _claimed(store)
    with store.session() as s:
        s.get(DeliveryRow, row_id).status = "delivered"
    assert release_leases(store, [row_id]) == []
    with store.session() as s:
        assert s.get(DeliveryRow, row_id).status == "delivered"
        assert s.scalars(select(AttemptRow.outcome).where(AttemptRow.delivery_id == row_id)).one() is None


def test_nothing_to_release():
    assert release_leases(None, []) == []
