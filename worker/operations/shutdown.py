"""Warm shutdown for deliveries in flight: hand them back instead of waiting out a lease.

A worker asked to stop (Ctrl-C, SIGTERM, `docker compose stop`) gets a soft-shutdown
window (`SYNDICATE_SOFT_SHUTDOWN`) in which running sends finish normally. Rows it
claimed but will not finish — not started yet, or cut off when the window closes — are
still `sending` under a lease; left alone they would go out only once the lease expired
(about a minute after restart). The engine calls `release_leases` for those rows as it
stops, so the next worker (or this one after restart) takes them at once.

What the engine must do (see the design note in docs/operations.md, "Shutdown"):
1. Know which row ids this process claimed and has not yet recorded an outcome for.
2. On shutdown, stop starting new sends, let running ones finish until the soft-shutdown
   deadline, then call `release_leases(store, unfinished_ids)` (and enqueue them again,
   or leave it to the sweep, which finds them due at once).
A request whose answer was cut off may have reached the partner: it goes out again under
the same message id (webhook-id), which the partner drops as a duplicate — at least once,
as everywhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

INTERRUPTED_ERROR = "the worker stopped during this attempt (shutdown); sent again after restart"


def release_leases(store, delivery_ids: Iterable[int], now: datetime | None = None,
                   error: str = INTERRUPTED_ERROR) -> list[int]:
    """Put this worker's in-flight rows back to `pending`, due now, and close their open
    attempts as `interrupted`. Only rows still `sending` are touched (one that finished
    meanwhile keeps its outcome). The attempt count is not changed: an interrupted attempt
    does not use up the retry schedule. Returns the ids released."""
    from sqlalchemy import update

    from worker.store import AttemptRow, DeliveryRow, utcnow

    ids = sorted(set(delivery_ids))
    if not ids:
        return []
    now = now or utcnow()
    with store.session() as s:
        released = list(s.scalars(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(ids), DeliveryRow.status == "sending")
            .values(status="pending", lease_until=None, next_attempt_at=now, queued_at=None, updated_at=now,
                    last_error=error)
            .returning(DeliveryRow.id)
            .execution_options(synchronize_session=False)
        ).all())
        if released:
            s.execute(update(AttemptRow)
                      .where(AttemptRow.delivery_id.in_(released), AttemptRow.finished_at.is_(None))
                      # "shutdown", not "interrupted": a warm stop is not a worker killed by its
                      # message, so it does not count toward a poison message.
                      .values(finished_at=now, outcome="interrupted", error_class="shutdown",
                              error=INTERRUPTED_ERROR)
                      .execution_options(synchronize_session=False))
    return sorted(released)
