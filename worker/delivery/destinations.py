"""Destinations — partners and channels — as the engine sees them: their key in Redis,
their transport, their secrets, and their durable state (enabled or disabled)."""

from __future__ import annotations

from sqlalchemy import exists, select

from worker.store import DeliveryRow, DestinationStateRow, utcnow

KINDS = ("partner", "channel")


def key(kind: str, name: str) -> str:
    """The destination's name in shared health state (breaker, rate limit, pauses)."""
    return f"{kind}:{name}"


def transport_type(dest) -> str:
    return "webhook" if dest.kind == "partner" else dest.type


def secrets_of(dest) -> list[str]:
    """Every secret of one destination, for scrubbing what it answers and what we log."""
    if dest is None:
        return []
    if dest.kind == "partner":
        found = []
        for secret in (dest.secret, dest.previous_secret):
            if secret:
                found += [secret, secret.removeprefix("whsec_")]
        found += [v for v in dest.headers.values() if v and len(v) >= 6]
        return found
    return dest.secrets()


def timeout_budget(dest) -> float:
    """Longest one send may take: a webhook is one request (connect + read); a channel post
    may be several (a session, an image upload, the post)."""
    return dest.timeout * (2 if dest.kind == "partner" else 6)


def disabled_row_clause():
    """SQL: the delivery row's destination is disabled (it waits for an operator)."""
    return exists().where(DestinationStateRow.kind == DeliveryRow.kind,
                          DestinationStateRow.name == DeliveryRow.destination,
                          DestinationStateRow.disabled.is_(True))


def disabled_names(s, kind: str | None = None) -> set[tuple[str, str]]:
    q = select(DestinationStateRow.kind, DestinationStateRow.name).where(DestinationStateRow.disabled.is_(True))
    if kind:
        q = q.where(DestinationStateRow.kind == kind)
    return {(r.kind, r.name) for r in s.execute(q)}


def disable(s, kind: str, name: str, reason: str, by: str) -> bool:
    """Disable a destination (its deliveries wait); returns whether it was enabled before."""
    now = utcnow()
    row = s.get(DestinationStateRow, (kind, name), with_for_update=True)
    if row is None:
        s.add(DestinationStateRow(kind=kind, name=name, disabled=True, disabled_reason=reason, disabled_at=now,
                                  disabled_by=by, changed_at=now))
        return True
    if not row.disabled:
        row.disabled, row.disabled_reason, row.disabled_at, row.disabled_by, row.changed_at = (
            True, reason, now, by, now)
        return True
    return False


def enable(s, kind: str, name: str) -> bool:
    """Enable a destination; returns whether it was disabled."""
    now = utcnow()
    row = s.get(DestinationStateRow, (kind, name), with_for_update=True)
    if row is None:
        s.add(DestinationStateRow(kind=kind, name=name, disabled=False, changed_at=now))
        return False
    was = row.disabled
    row.disabled, row.disabled_reason, row.disabled_at, row.disabled_by, row.changed_at = (
        False, None, None, None, now)
    return was

