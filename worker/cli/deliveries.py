"""Operator commands for partner delivery: `deliveries`, `replay`, `partners`, `republish`."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta
from urllib.parse import urlsplit

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select, update

from config import parse_duration
from worker import runtime
from worker.articles import iso
from worker.cli import main
from worker.cli.common import _load_config_or_exit, _print_table, _when, console, err_console
from worker.store import DeliveryRow, PartnerStateRow, utcnow

STATUSES = ("pending", "sending", "delivered", "failed", "dead", "superseded")
# Replays larger than this get a progress bar.
PROGRESS_FROM = 20
ENQUEUE_CHUNK = 50


def _since(value: str | None):
    if not value:
        return None
    try:
        return utcnow() - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _public_url(url: str) -> str:
    """The URL without credentials or query (which may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _ready_store():
    store = runtime.store()
    store.migrate()
    return store


def _enqueue(ids_by_partner: dict[str, list[int]], progress=None, task=None) -> None:
    from tasks.deliver import deliver_batch

    for ids in ids_by_partner.values():
        for i in range(0, len(ids), ENQUEUE_CHUNK):
            chunk = ids[i:i + ENQUEUE_CHUNK]
            deliver_batch.delay(chunk)
            if progress is not None:
                progress.advance(task, len(chunk))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


# --- syndicate deliveries ------------------------------------------------------------

def _matching(query, status, partner, article_id, cutoff):
    """Partner deliveries filtered as `deliveries` and `replay` take their options."""
    query = query.where(DeliveryRow.kind == "partner")
    if status:
        query = query.where(DeliveryRow.status == status)
    if partner:
        query = query.where(DeliveryRow.destination == partner)
    if article_id:
        query = query.where(DeliveryRow.article_id == article_id)
    if cutoff is not None:
        query = query.where(DeliveryRow.updated_at >= cutoff)
    return query


@main.command()
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only deliveries in this state.")
@click.option("--partner", default=None, help="Only this partner.")
@click.option("--article", "article_id", default=None, help="Only this article.")
@click.option("--since", default=None, help='Changed within this long, e.g. "2h", "30m", "1d".')
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def deliveries(status, partner, article_id, since, limit, as_json) -> None:
    """Partner deliveries, newest first, with their state, attempts and last error."""
    cutoff = _since(since)
    store = _ready_store()
    with store.session() as s:
        q = _matching(select(DeliveryRow), status, partner, article_id, cutoff)
        rows = s.scalars(q.order_by(DeliveryRow.updated_at.desc(), DeliveryRow.id.desc()).limit(limit)).all()
    records = [{
        "id": r.id, "article_id": r.article_id, "event": r.event_type, "version": r.version,
        "partner": r.destination, "message_id": r.message_id, "status": r.status, "attempts": r.attempts,
        "last_status_code": r.last_status_code, "last_error": r.last_error,
        "next_attempt_at": iso(r.next_attempt_at), "delivered_at": iso(r.delivered_at),
        "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
    } for r in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        console.print("no deliveries match", markup=False)
        return
    table = Table("id", "article", "event", "partner", "status", "tries", "code", "last error", "next", "updated")
    for r in rows:
        table.add_row(str(r.id), r.article_id, r.event_type.removeprefix("article."), r.destination, r.status,
                      str(r.attempts), str(r.last_status_code or ""), (r.last_error or "")[:60],
                      _when(r.next_attempt_at) if r.status == "pending" else "", _when(r.updated_at))
    _print_table(table)
    if len(records) == limit:
        console.print(f"(first {limit}; use --limit for more)", markup=False)


# --- syndicate replay ------------------------------------------------------------------

@main.command()
@click.option("--partner", default=None, help="Only this partner's deliveries.")
@click.option("--since", default=None, help='Only deliveries that changed within this long, e.g. "2h".')
@click.option("--status", type=click.Choice(["dead", "failed", "delivered"]), default="dead", show_default=True,
              help="Which deliveries to send again.")
@click.option("--article", "article_id", default=None, help="Only this article.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent again, and send nothing.")
@click.option("--wait/--no-wait", default=False, help="Follow the replayed deliveries until they finish.")
def replay(partner, since, status, article_id, dry_run, wait) -> None:
    """Send dead (or failed) deliveries again: the same messages, under the same webhook-id,
    with a fresh retry schedule. A delivery a newer version has overtaken is not re-sent."""
    config = _load_config_or_exit(None)
    cutoff = _since(since)
    if partner and config.partner(partner) is None:
        err_console.print(f"no partner {partner!r} in the configuration "
                          f"(known: {', '.join(p.name for p in config.partners) or 'none'})", markup=False)
        sys.exit(1)
    store = _ready_store()
    with store.session() as s:
        q = _matching(select(DeliveryRow.id, DeliveryRow.destination), status, partner, article_id, cutoff)
        rows = s.execute(q.order_by(DeliveryRow.id)).all()
        disabled = set(s.scalars(select(PartnerStateRow.name).where(PartnerStateRow.disabled.is_(True))))
    by_partner: dict[str, list[int]] = defaultdict(list)
    skipped = Counter()
    for row in rows:
        if config.partner(row.destination) is None:
            skipped[row.destination] += 1
        else:
            by_partner[row.destination].append(row.id)
    total = sum(len(v) for v in by_partner.values())
    for name, count in sorted(skipped.items()):
        err_console.print(f"skipping {count} {status} deliveries to {name!r}: no longer configured", markup=False)
    verb = "would replay" if dry_run else "replaying"
    console.print(f"{verb} {total} {status} deliver{'y' if total == 1 else 'ies'}"
                  + (": " + ", ".join(f"{n} {len(v)}" for n, v in sorted(by_partner.items())) if total else ""),
                  markup=False)
    for name in sorted(set(by_partner) & disabled):
        err_console.print(f"partner {name!r} is disabled: its replayed deliveries wait until "
                          f"`syndicate partners enable {name}`", markup=False)
    if dry_run or not total:
        return
    now = utcnow()
    progress = _progress() if total >= PROGRESS_FROM else None
    replayed: dict[str, list[int]] = defaultdict(list)
    broker_down = False
    if progress:
        progress.start()
        task = progress.add_task("replaying", total=total)
    try:
        for name, ids in by_partner.items():
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                with store.session() as s:
                    # Only rows still in that state: one that changed meanwhile is left alone.
                    got = s.scalars(
                        update(DeliveryRow)
                        .where(DeliveryRow.id.in_(chunk), DeliveryRow.status == status)
                        .values(status="pending", attempts=0, next_attempt_at=now, queued_at=now, lease_until=None,
                                updated_at=now, last_error=f"replayed by an operator at {iso(now)} (was {status})")
                        .returning(DeliveryRow.id)
                        .execution_options(synchronize_session=False)
                    ).all()
                replayed[name] += list(got)
                if name not in disabled and not broker_down:
                    try:
                        _enqueue({name: list(got)}, progress, task if progress else None)
                        continue
                    except Exception as exc:  # noqa: BLE001 - the rows are pending; the sweep sends them
                        broker_down = True
                        err_console.print(f"cannot enqueue ({type(exc).__name__}); the replayed deliveries "
                                          "are pending and the sweep will send them", markup=False)
                if progress:
                    progress.advance(task, len(got))
    finally:
        if progress:
            progress.stop()
    count = sum(len(v) for v in replayed.values())
    console.print(f"replayed {count}; they are on their way under their original webhook-ids", markup=False)
    if wait:
        _follow(store, [i for ids in replayed.values() for i in ids])


def _follow(store, ids: list[int], timeout: float = 600) -> None:
    """Show the replayed deliveries finishing."""
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task("delivering", total=len(ids))
        while True:
            with store.session() as s:
                counts = dict(s.execute(select(DeliveryRow.status, func.count()).where(DeliveryRow.id.in_(ids))
                                        .group_by(DeliveryRow.status)).all())
            open_ = counts.get("pending", 0) + counts.get("sending", 0)
            progress.update(task, completed=len(ids) - open_)
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    console.print("  ".join(f"{k} {v}" for k, v in sorted(counts.items())), markup=False)


# --- syndicate partners ------------------------------------------------------------------

def _breaker():
    from worker.delivery.health import CircuitBreaker

    return CircuitBreaker(runtime.redis_client())


@main.group(invoke_without_command=True)
@click.pass_context
def partners(ctx: click.Context) -> None:
    """Partners: their state (enabled, disabled, circuit) and delivery counts."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_partners)


@partners.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_partners(as_json: bool = False) -> None:
    """Each partner with its state, circuit and deliveries per status."""
    config = _load_config_or_exit(None)
    store = _ready_store()
    with store.session() as s:
        states = {r.name: r for r in s.scalars(select(PartnerStateRow))}
        counts: dict[str, Counter] = defaultdict(Counter)
        for name, status, n in s.execute(select(DeliveryRow.destination, DeliveryRow.status, func.count())
                                         .where(DeliveryRow.kind == "partner")
                                         .group_by(DeliveryRow.destination, DeliveryRow.status)):
            counts[name][status] = n
    breaker = _breaker()
    report = []
    for p in config.partners:
        st = states.get(p.name)
        try:
            b = breaker.state(p.name)
            circuit = {"state": b.state, "consecutive_failures": b.failures,
                       "open_until": (iso_ts(b.open_until) if b.open_until else None)}
        except Exception as exc:  # noqa: BLE001 - Redis down: show what the store knows
            circuit = {"state": f"unknown ({type(exc).__name__})", "consecutive_failures": None, "open_until": None}
        report.append({
            "name": p.name, "url": _public_url(p.url), "payload": p.payload, "rate_limit": p.rate_limit,
            "enabled": not (st and st.disabled),
            "disabled_reason": st.disabled_reason if st and st.disabled else None,
            "disabled_by": st.disabled_by if st and st.disabled else None,
            "disabled_at": iso(st.disabled_at) if st and st.disabled else None,
            "circuit": circuit, "deliveries": dict(counts.get(p.name, {})),
        })
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("partner", "url", "state", "circuit", "pending", "delivered", "failed", "dead", "superseded")
    for r in report:
        state = "enabled" if r["enabled"] else f"DISABLED ({r['disabled_by']}: {(r['disabled_reason'] or '')[:50]})"
        c = r["circuit"]
        circuit = c["state"] + (f" until {c['open_until']}" if c["state"] == "open" else "")
        if c["consecutive_failures"]:
            circuit += f", {c['consecutive_failures']} failures in a row"
        d = r["deliveries"]
        table.add_row(r["name"], r["url"], state, circuit,
                      str(d.get("pending", 0) + d.get("sending", 0)), str(d.get("delivered", 0)),
                      str(d.get("failed", 0)), str(d.get("dead", 0)), str(d.get("superseded", 0)))
    _print_table(table)


def iso_ts(ts: float) -> str:
    from datetime import datetime, timezone

    return iso(datetime.fromtimestamp(ts, timezone.utc))


def _configured_or_exit(config, name: str):
    if config.partner(name) is None:
        err_console.print(f"no partner {name!r} in the configuration "
                          f"(known: {', '.join(p.name for p in config.partners) or 'none'})", markup=False)
        sys.exit(1)


@partners.command("enable")
@click.argument("name")
def enable_partner(name: str) -> None:
    """Resume deliveries to a partner (after a 410 or `disable`); what waited is sent now."""
    config = _load_config_or_exit(None)
    _configured_or_exit(config, name)
    store = _ready_store()
    now = utcnow()
    with store.session() as s:
        row = s.get(PartnerStateRow, name, with_for_update=True)
        was = bool(row and row.disabled)
        if row is None:
            s.add(PartnerStateRow(name=name, disabled=False, changed_at=now))
        else:
            row.disabled, row.disabled_reason, row.disabled_at, row.disabled_by, row.changed_at = (
                False, None, None, None, now)
    with store.session() as s:
        waiting = s.scalars(
            update(DeliveryRow)
            .where(DeliveryRow.kind == "partner", DeliveryRow.destination == name, DeliveryRow.status == "pending",
                   DeliveryRow.next_attempt_at <= now)
            .values(queued_at=now)
            .returning(DeliveryRow.id)
            .execution_options(synchronize_session=False)
        ).all()
    try:
        _breaker().reset(name)
    except Exception as exc:  # noqa: BLE001
        err_console.print(f"could not reset the circuit in Redis ({type(exc).__name__}); it resets on success",
                          markup=False)
    try:
        _enqueue({name: list(waiting)})
    except Exception as exc:  # noqa: BLE001 - the sweep sends them anyway
        err_console.print(f"could not enqueue now ({type(exc).__name__}); the sweep will send them", markup=False)
    console.print(f"partner {name} {'enabled' if was else 'was not disabled'}; "
                  f"{len(waiting)} waiting deliver{'y' if len(waiting) == 1 else 'ies'} sent on their way",
                  markup=False)


@partners.command("disable")
@click.argument("name")
@click.option("--reason", default="disabled by an operator", show_default=True)
def disable_partner_command(name: str, reason: str) -> None:
    """Stop deliveries to a partner; they wait (nothing is lost) until `enable`."""
    from worker.delivery import disable_partner

    config = _load_config_or_exit(None)
    _configured_or_exit(config, name)
    store = _ready_store()
    with store.session() as s:
        disable_partner(s, name, reason, by="operator")
    console.print(f"partner {name} disabled; its deliveries wait until `syndicate partners enable {name}`",
                  markup=False)


# --- syndicate republish --------------------------------------------------------------------

@main.command()
@click.argument("article_id")
@click.option("--partner", "only", multiple=True, help="Only to this partner (repeatable); default: every "
              "partner that wants the story.")
def republish(article_id: str, only: tuple[str, ...]) -> None:
    """Send an article's current state to partners again, as a new message (new webhook-ids).

    Use `replay` to resend the same message; use this when a partner lost its copy."""
    from worker.pipeline import republish_article

    config = _load_config_or_exit(None)
    for name in only:
        _configured_or_exit(config, name)
    store = _ready_store()
    try:
        rec = republish_article(store, config, article_id, partners=list(only) or None)
    except LookupError as exc:
        err_console.print(str(exc), markup=False)
        sys.exit(1)
    from worker.pipeline import dispatch

    dispatch([rec], config)
    console.print(f"{article_id}: {rec.event_type} sent again as a new message to "
                  f"{len(rec.partner_deliveries)} partner(s)", markup=False)
