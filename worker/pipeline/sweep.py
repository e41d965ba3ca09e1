"""Delivery rows the periodic sweep must (re)enqueue."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.delivery.destinations import disabled_row_clause
from worker.store import DeliveryRow


def due_deliveries(session: Session, now: datetime, requeue_after: timedelta, limit: int = 5000) -> list[DeliveryRow]:
    """Rows that should be running but whose task is not on its way: never queued, queued
    long ago (the message was lost), or claimed by a worker whose lease ran out."""
    stale = now - requeue_after
    # A disabled destination's deliveries wait for `syndicate destinations enable`, not for the sweep.
    pending = select(DeliveryRow).where(
        DeliveryRow.status == "pending",
        DeliveryRow.next_attempt_at <= now,
        (DeliveryRow.queued_at.is_(None)) | (DeliveryRow.queued_at <= stale)
        | (DeliveryRow.queued_at < DeliveryRow.next_attempt_at),
        ~disabled_row_clause(),
    ).order_by(DeliveryRow.next_attempt_at).limit(limit)
    orphaned = select(DeliveryRow).where(
        DeliveryRow.status == "sending", DeliveryRow.lease_until < now
    ).limit(limit)
    return list(session.scalars(pending)) + list(session.scalars(orphaned))
