"""Claiming delivery rows: one transaction that decides which of a batch go out now.

For every destination kind alike (partners and channels):
- a row overtaken by a newer version of the same article for the same destination is
  marked `superseded` — except a channel row already tried: its post may exist (an
  answer can be lost), so it finishes first and the newer version edits it;
- a row queued behind an older version still in flight (or, for a channel, still
  unfinished) waits;
- a row whose lease expired (its worker died) has its open attempt closed as
  `interrupted`, and that attempt counts: a delivery whose attempts kill their worker
  `poison_kills` times is dead ("poison message");
- the rest that are due and not for a disabled destination are taken with a lease
  (`UPDATE … RETURNING`), so a duplicate task finds nothing to do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update

from worker.delivery.destinations import KINDS, disabled_row_clause
from worker.delivery.policy import DEAD, PENDING, SUPERSEDED
from worker.store import ArticleRow, AttemptRow, DeliveryRow, DestinationStateRow
from worker.transports.base import UNPUBLISHED

INTERRUPTED = "interrupted"


@dataclass
class Claim:
    rows: list  # claimed rows: id, event_id, kind, destination, message_id, attempts, article_id, event_type, remote
    superseded: int
    blocked: list[int]  # held behind an older version: look again soon
    poisoned: list[int]  # went dead after killing their worker too often


def claimable(now: datetime):
    return or_(
        and_(DeliveryRow.status == PENDING, DeliveryRow.next_attempt_at <= now),
        and_(DeliveryRow.status == "sending", DeliveryRow.lease_until < now),
    )


def claim(s, ids: list[int], now: datetime, lease_until: datetime, is_sqlite: bool, poison_kills: int) -> Claim:
    articles_of_batch = select(DeliveryRow.article_id).where(DeliveryRow.id.in_(ids))
    if is_sqlite:
        # SQLite has one writer at a time: take the write lock before reading, which
        # serialises this with record_article (a write that matches nothing begins the
        # transaction and takes the lock).
        s.execute(update(DestinationStateRow).where(DestinationStateRow.name.is_(None)).values(disabled=False))
        article_ids = list(s.scalars(articles_of_batch.distinct()))
    else:
        # Serialise with record_article (which locks the article row too): a newer
        # version is either committed before this claim looks, or waits for it.
        article_ids = list(s.scalars(select(ArticleRow.id).where(ArticleRow.id.in_(articles_of_batch))
                                     .order_by(ArticleRow.id).with_for_update()))
    # Every delivery of these stories to partners and channels (a handful of versions
    # times destinations), fetched by the article index.
    siblings = s.execute(select(DeliveryRow.id, DeliveryRow.article_id, DeliveryRow.kind, DeliveryRow.destination,
                                DeliveryRow.event_id, DeliveryRow.status, DeliveryRow.lease_until,
                                DeliveryRow.attempts)
                         .where(DeliveryRow.article_id.in_(article_ids), DeliveryRow.kind.in_(KINDS))).all()
    newest: dict[tuple, int] = {}
    in_flight: dict[tuple, int] = {}
    for r in siblings:
        k = (r.article_id, r.kind, r.destination)
        newest[k] = max(newest.get(k, 0), r.event_id)
        busy = r.status == "sending" and r.lease_until is not None and r.lease_until >= now
        # A channel post already tried may exist on the platform: newer versions wait for it.
        unfinished_post = r.kind == "channel" and r.attempts > 0 and r.status in (PENDING, "sending")
        if busy or unfinished_post:
            in_flight[k] = min(in_flight.get(k, r.event_id), r.event_id)
    wanted = set(ids)
    overtaken, blocked, candidates = [], [], []
    for r in siblings:
        if r.id not in wanted:
            continue
        k = (r.article_id, r.kind, r.destination)
        if r.event_id < newest[k] and not (r.kind == "channel" and r.attempts > 0):
            overtaken.append(r.id)
        elif in_flight.get(k, r.event_id) < r.event_id:
            blocked.append(r.id)
        else:
            candidates.append(r.id)
    superseded = 0
    if overtaken:
        superseded = s.execute(
            update(DeliveryRow).where(DeliveryRow.id.in_(overtaken), claimable(now))
            .values(status=SUPERSEDED, lease_until=None, next_attempt_at=None, updated_at=now,
                    last_error="superseded: a newer version of the story was sent to this destination instead")
            .execution_options(synchronize_session=False)
        ).rowcount
    not_disabled = ~disabled_row_clause()
    poisoned: list[int] = []
    rows = []
    if candidates:
        reclaimed = [r.id for r in siblings if r.id in wanted and r.status == "sending"
                     and r.lease_until is not None and r.lease_until < now]
        if reclaimed:
            poisoned = _close_interrupted(s, reclaimed, now, poison_kills)
            candidates = [i for i in candidates if i not in set(poisoned)]
        rows = s.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(candidates), claimable(now), not_disabled)
            .values(status="sending", lease_until=lease_until, updated_at=now)
            .returning(DeliveryRow.id, DeliveryRow.event_id, DeliveryRow.kind, DeliveryRow.destination,
                       DeliveryRow.message_id, DeliveryRow.attempts, DeliveryRow.article_id,
                       DeliveryRow.event_type, DeliveryRow.remote)
            .execution_options(synchronize_session=False)
        ).all() if candidates else []
    if blocked:
        blocked = list(s.scalars(select(DeliveryRow.id).where(DeliveryRow.id.in_(blocked),
                                                              DeliveryRow.status == PENDING, not_disabled)))
    return Claim(rows, superseded, blocked, poisoned)


def _close_interrupted(s, reclaimed: list[int], now: datetime, poison_kills: int) -> list[int]:
    """Close the attempts a dead worker left open, count them as attempts, and send to the
    dead letters the deliveries that have now killed `poison_kills` workers."""
    closed = s.execute(
        update(AttemptRow)
        .where(AttemptRow.delivery_id.in_(reclaimed), AttemptRow.finished_at.is_(None))
        .values(finished_at=now, outcome=INTERRUPTED, error_class=INTERRUPTED,
                error="the worker stopped during this attempt (its lease expired)")
        .returning(AttemptRow.delivery_id)
        .execution_options(synchronize_session=False)).scalars().all()
    if not closed:
        return []
    per_delivery = Counter(closed)
    for delivery_id, count in per_delivery.items():
        s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id)
                  .values(attempts=DeliveryRow.attempts + count)
                  .execution_options(synchronize_session=False))
    kills = dict(s.execute(
        select(AttemptRow.delivery_id, func.count())
        .where(AttemptRow.delivery_id.in_(list(per_delivery)), AttemptRow.error_class == INTERRUPTED)
        .group_by(AttemptRow.delivery_id)).all())
    poisoned = [d for d, n in kills.items() if n >= poison_kills]
    if poisoned:
        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(poisoned))
                  .values(status=DEAD, lease_until=None, next_attempt_at=None, updated_at=now,
                          last_error=f"poison message: its attempts stopped their worker {poison_kills} times "
                                     "(killed or crashed mid-send); replay it once the cause is fixed")
                  .execution_options(synchronize_session=False))
    return poisoned


def previous_posts(s, claimed_rows) -> dict[int, tuple[dict | None, datetime | None]]:
    """For each claimed channel row: the article's live post on that channel (the remote
    state of the newest earlier row that made, edited or kept it) and when it was made."""
    channel_rows = [r for r in claimed_rows if r.kind == "channel"]
    if not channel_rows:
        return {}
    pairs = {(r.article_id, r.destination) for r in channel_rows}
    found = s.execute(
        select(DeliveryRow.article_id, DeliveryRow.destination, DeliveryRow.event_id, DeliveryRow.remote,
               DeliveryRow.delivered_at, DeliveryRow.status, DeliveryRow.event_type, DeliveryRow.last_status_code)
        .where(DeliveryRow.article_id.in_({a for a, _ in pairs}), DeliveryRow.kind == "channel",
               DeliveryRow.status.in_(("delivered", "skipped", "failed", "dead")), DeliveryRow.remote.is_not(None))
        .order_by(DeliveryRow.event_id)).all()
    history: dict[tuple, list] = {}
    for f in found:
        history.setdefault((f.article_id, f.destination), []).append(f)
    out = {}
    for r in channel_rows:
        live, made_at = None, None
        for f in history.get((r.article_id, r.destination), []):
            if f.event_id >= r.event_id:
                break
            remote = f.remote or {}
            if f.status in ("failed", "dead"):
                # Only an attempt that ended without a definite answer (no answer, or a 5xx)
                # may have made a post; a 4xx is a refusal: nothing was posted.
                unknown = f.last_status_code is None or f.last_status_code >= 500
                if live is None and unknown and not remote.get("id") and remote and f.event_type != UNPUBLISHED:
                    # A post attempt whose outcome is unknown (its answer was lost): it may
                    # exist, so later versions must not post again.
                    live = {**remote, "id": None, "unresolved": True}
                continue
            if remote.get("deleted"):
                live, made_at = None, None
            elif remote.get("id") or remote.get("duplicate"):
                # A post exists (its id may be unknown: a duplicate the platform refused).
                if live is None or remote.get("id") != live.get("id"):
                    made_at = f.delivered_at
                live = remote
        out[r.id] = (live, made_at)
    return out
