"""`deliveries` and `replay`: every delivery to partners and channels, and sending dead or
failed ones again."""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict

import click
from rich.table import Table
from sqlalchemy import select, update

from worker.articles import iso
from worker.cli import main
from worker.cli.common import (
    _load_config_or_exit,
    _print_table,
    _when,
    cell,
    console,
    enqueue_ids,
    err_console,
    follow,
    progress_bar,
    since_option,
    store_for_operators,
)
from worker.delivery.destinations import KINDS, disabled_names
from worker.store import DeliveryRow, utcnow

STATUSES = ("pending", "sending", "delivered", "skipped", "failed", "dead", "superseded")
# Replays larger than this get a progress bar.
PROGRESS_FROM = 20


# --- syndicate deliveries ------------------------------------------------------------

def _matching(query, status, destination, article_id, cutoff, kind=None):
    """Deliveries to partners and channels filtered as `deliveries` and `replay` take their options."""
    query = query.where(DeliveryRow.kind.in_([kind] if kind else KINDS))
    if status:
        query = query.where(DeliveryRow.status == status)
    if destination:
        query = query.where(DeliveryRow.destination == destination)
    if article_id:
        query = query.where(DeliveryRow.article_id == article_id)
    if cutoff is not None:
        query = query.where(DeliveryRow.updated_at >= cutoff)
    return query


@main.command()
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only deliveries in this state.")
@click.option("--destination", "--partner", "destination", default=None,
              help="Only this destination (a partner or a channel).")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="Only partners, or only channels.")
@click.option("--article", "article_id", default=None, help="Only this article.")
@click.option("--since", default=None, help='Changed within this long, e.g. "2h", "30m", "1d".')
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def deliveries(status, destination, kind, article_id, since, limit, as_json) -> None:
    """Deliveries to partners and channels, newest first, with their state, attempts and last error."""
    cutoff = since_option(since)
    store = store_for_operators()
    with store.session() as s:
        q = _matching(select(DeliveryRow), status, destination, article_id, cutoff, kind)
        rows = s.scalars(q.order_by(DeliveryRow.updated_at.desc(), DeliveryRow.id.desc()).limit(limit)).all()
    records = [{
        "id": r.id, "article_id": r.article_id, "event": r.event_type, "version": r.version,
        "kind": r.kind, "destination": r.destination, "message_id": r.message_id, "status": r.status, "attempts": r.attempts,
        "last_status_code": r.last_status_code, "last_error": r.last_error,
        "next_attempt_at": iso(r.next_attempt_at), "delivered_at": iso(r.delivered_at),
        "created_at": iso(r.created_at), "updated_at": iso(r.updated_at),
        "remote": r.remote,
    } for r in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        console.print("no deliveries match", markup=False)
        return
    table = Table("id", "article", "event", "destination", "status", "tries", "code", "last error", "next",
                  "updated")
    for r in rows:
        table.add_row(str(r.id), cell(r.article_id), r.event_type.removeprefix("article."),
                      cell(f"{r.kind}:{r.destination}"), r.status, str(r.attempts), str(r.last_status_code or ""),
                      cell((r.last_error or "")[:60]), _when(r.next_attempt_at) if r.status == "pending" else "",
                      _when(r.updated_at))
    _print_table(table)
    if len(records) == limit:
        console.print(f"(first {limit}; use --limit for more)", markup=False)


# --- syndicate replay ------------------------------------------------------------------

@main.command()
@click.option("--destination", "--partner", "destination", default=None,
              help="Only this destination's deliveries (a partner or a channel).")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="Only partners, or only channels.")
@click.option("--since", default=None, help='Only deliveries that changed within this long, e.g. "2h".')
@click.option("--status", type=click.Choice(["dead", "failed", "delivered"]), default="dead", show_default=True,
              help="Which deliveries to send again.")
@click.option("--article", "article_id", default=None, help="Only this article.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent again, and send nothing.")
@click.option("--wait/--no-wait", default=False, help="Follow the replayed deliveries until they finish.")
def replay(destination, kind, since, status, article_id, dry_run, wait) -> None:
    """Send dead (or failed) deliveries again: the same messages, under the same ids (webhook-id,
    idempotency key), with a fresh retry schedule. A delivery a newer version has overtaken is
    not re-sent."""
    from worker.operations.destinations import find

    config = _load_config_or_exit(None)
    cutoff = since_option(since)
    if destination and find(config, destination, kind) is None:
        err_console.print(f"no destination {destination!r} in the configuration "
                          f"(known: {', '.join(d.name for d in config.destinations) or 'none'})", markup=False)
        sys.exit(1)
    store = store_for_operators()
    with store.session() as s:
        q = _matching(select(DeliveryRow.id, DeliveryRow.kind, DeliveryRow.destination), status, destination,
                      article_id, cutoff, kind)
        rows = s.execute(q.order_by(DeliveryRow.id)).all()
        disabled = {name for _, name in disabled_names(s)}
    by_destination: dict[str, list[int]] = defaultdict(list)
    skipped = Counter()
    for row in rows:
        if config.destination(row.kind, row.destination) is None:
            skipped[row.destination] += 1
        else:
            by_destination[row.destination].append(row.id)
    total = sum(len(v) for v in by_destination.values())
    for name, count in sorted(skipped.items()):
        err_console.print(f"skipping {count} {status} deliveries to {name!r}: no longer configured", markup=False)
    verb = "would replay" if dry_run else "replaying"
    console.print(f"{verb} {total} {status} deliver{'y' if total == 1 else 'ies'}"
                  + (": " + ", ".join(f"{n} {len(v)}" for n, v in sorted(by_destination.items())) if total else ""),
                  markup=False)
    for name in sorted(set(by_destination) & disabled):
        err_console.print(f"destination {name!r} is disabled: its replayed deliveries wait until "
                          f"`syndicate destinations enable {name}`", markup=False)
    if dry_run or not total:
        return
    now = utcnow()
    progress = progress_bar() if total >= PROGRESS_FROM else None
    replayed: dict[str, list[int]] = defaultdict(list)
    broker_down = False
    if progress:
        progress.start()
        task = progress.add_task("replaying", total=total)
    try:
        for name, ids in by_destination.items():
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
                    # A channel post whose answer was lost: the operator has checked the channel,
                    # so its in-flight marks go; a post with a known id stays known.
                    unresolved = [r.id for r in s.execute(select(DeliveryRow.id, DeliveryRow.remote).where(
                        DeliveryRow.id.in_(got), DeliveryRow.kind == "channel", DeliveryRow.remote.is_not(None)))
                        if not (r.remote or {}).get("id")]
                    if unresolved:
                        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(unresolved)).values(remote=None)
                                  .execution_options(synchronize_session=False))
                replayed[name] += list(got)
                if name not in disabled and not broker_down:
                    try:
                        enqueue_ids({name: list(got)}, progress, task if progress else None)
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
    console.print(f"replayed {count}; they are on their way under their original message ids", markup=False)
    if wait:
        follow(store, [i for ids in replayed.values() for i in ids])
