"""Destinations (partners and channels) as an operator sees them: state, circuit,
deliveries per status; enabling (what waited is sent) and disabling (nothing is lost)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from worker.articles import iso
from worker.delivery import destinations
from worker.store import DeliveryRow, DestinationStateRow, utcnow


def public_url(url: str) -> str:
    """The URL without credentials or query (which may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def find(config, name: str, kind: str | None = None):
    """The configured destination called `name` (of `kind` if given), or None."""
    for dest in config.destinations:
        if dest.name == name and (kind is None or dest.kind == kind):
            return dest
    return None


def describe(dest) -> dict:
    if dest.kind == "partner":
        return {"type": "webhook", "url": public_url(dest.url), "payload": dest.payload}
    return {"type": dest.type, "url": public_url(dest.api_base)}


def report(store, config, breaker, kind: str | None = None) -> list[dict]:
    with store.session() as s:
        states = {(r.kind, r.name): r for r in s.scalars(select(DestinationStateRow))}
        counts: dict[tuple, Counter] = defaultdict(Counter)
        for k, name, status, n in s.execute(
                select(DeliveryRow.kind, DeliveryRow.destination, DeliveryRow.status, func.count())
                .where(DeliveryRow.kind.in_(destinations.KINDS))
                .group_by(DeliveryRow.kind, DeliveryRow.destination, DeliveryRow.status)):
            counts[(k, name)][status] = n
    out = []
    for dest in config.destinations:
        if kind and dest.kind != kind:
            continue
        st = states.get((dest.kind, dest.name))
        try:
            b = breaker.state(destinations.key(dest.kind, dest.name))
            circuit = {"state": b.state, "consecutive_failures": b.failures,
                       "open_until": iso(datetime.fromtimestamp(b.open_until, timezone.utc)) if b.open_until else None}
        except Exception as exc:  # noqa: BLE001 - Redis down: show what the store knows
            circuit = {"state": f"unknown ({type(exc).__name__})", "consecutive_failures": None, "open_until": None}
        disabled = bool(st and st.disabled)
        out.append({
            "kind": dest.kind, "name": dest.name, **describe(dest), "rate_limit": dest.rate_limit,
            "enabled": not disabled,
            "disabled_reason": st.disabled_reason if disabled else None,
            "disabled_by": st.disabled_by if disabled else None,
            "disabled_at": iso(st.disabled_at) if disabled else None,
            "circuit": circuit, "deliveries": dict(counts.get((dest.kind, dest.name), {})),
        })
    return out


def enable(store, dest, breaker=None) -> tuple[bool, list[int]]:
    """Enable; returns (whether it was disabled, ids of the deliveries that waited and are due)."""
    now = utcnow()
    with store.session() as s:
        was = destinations.enable(s, dest.kind, dest.name)
    with store.session() as s:
        waiting = list(s.scalars(
            update(DeliveryRow)
            .where(DeliveryRow.kind == dest.kind, DeliveryRow.destination == dest.name,
                   DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now)
            .values(queued_at=now)
            .returning(DeliveryRow.id)
            .execution_options(synchronize_session=False)))
    if breaker is not None:
        breaker.reset(destinations.key(dest.kind, dest.name))
    return was, waiting


def disable(store, dest, reason: str) -> bool:
    with store.session() as s:
        return destinations.disable(s, dest.kind, dest.name, reason, by="operator")
