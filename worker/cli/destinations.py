"""`destinations list|enable|disable` — partners and channels alike — and `partners`,
the same commands for partners only (the name from before channels)."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from worker import runtime
from worker.cli import main
from worker.cli.common import (
    _load_config_or_exit,
    _print_table,
    cell,
    console,
    enqueue_ids,
    err_console,
    store_for_operators,
)

KIND_CHOICE = click.Choice(["partner", "channel"])


def _breaker():
    from worker.delivery.health import CircuitBreaker

    return CircuitBreaker(runtime.redis_client())


def _configured_or_exit(config, name: str, kind: str | None):
    from worker.operations.destinations import find

    dest = find(config, name, kind)
    if dest is None:
        known = [d.name for d in config.destinations if kind is None or d.kind == kind]
        err_console.print(f"no {kind or 'destination'} {name!r} in the configuration "
                          f"(known: {', '.join(known) or 'none'})", markup=False)
        sys.exit(1)
    return dest


def list_command(kind: str | None, as_json: bool) -> None:
    from worker.operations.destinations import report

    config = _load_config_or_exit(None)
    rows = report(store_for_operators(), config, _breaker(), kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print(f"no {kind or 'partner or channel'} in the configuration", markup=False)
        return
    table = Table("destination", "type", "url", "state", "circuit", "pending", "delivered", "skipped", "failed",
                  "dead", "superseded")
    for r in rows:
        state = "enabled" if r["enabled"] else f"DISABLED ({r['disabled_by']}: {(r['disabled_reason'] or '')[:50]})"
        c = r["circuit"]
        circuit = c["state"] + (f" until {c['open_until']}" if c["state"] == "open" else "")
        if c["consecutive_failures"]:
            circuit += f", {c['consecutive_failures']} failures in a row"
        d = r["deliveries"]
        table.add_row(cell(f"{r['kind']}:{r['name']}"), r["type"], cell(r["url"]), cell(state), circuit,
                      str(d.get("pending", 0) + d.get("sending", 0)), str(d.get("delivered", 0)),
                      str(d.get("skipped", 0)), str(d.get("failed", 0)), str(d.get("dead", 0)),
                      str(d.get("superseded", 0)))
    _print_table(table)


def enable_command(name: str, kind: str | None) -> None:
    from worker.operations.destinations import enable

    config = _load_config_or_exit(None)
    dest = _configured_or_exit(config, name, kind)
    store = store_for_operators()
    try:
        breaker = _breaker()
        breaker.client.ping()
    except Exception as exc:  # noqa: BLE001
        breaker = None
        err_console.print(f"could not reset the circuit in Redis ({type(exc).__name__}); it resets on success",
                          markup=False)
    was, waiting = enable(store, dest, breaker)
    try:
        enqueue_ids({name: waiting})
    except Exception as exc:  # noqa: BLE001 - the sweep sends them anyway
        err_console.print(f"could not enqueue now ({type(exc).__name__}); the sweep will send them", markup=False)
    console.print(f"{dest.kind} {name} {'enabled' if was else 'was not disabled'}; "
                  f"{len(waiting)} waiting deliver{'y' if len(waiting) == 1 else 'ies'} sent on their way",
                  markup=False)


def disable_command(name: str, kind: str | None, reason: str) -> None:
    from worker.operations.destinations import disable

    config = _load_config_or_exit(None)
    dest = _configured_or_exit(config, name, kind)
    disable(store_for_operators(), dest, reason)
    console.print(f"{dest.kind} {name} disabled; its deliveries wait until `syndicate destinations enable {name}`",
                  markup=False)


# --- syndicate destinations -------------------------------------------------------------

@main.group(invoke_without_command=True)
@click.pass_context
def destinations(ctx: click.Context) -> None:
    """Partners and channels: state (enabled, disabled, circuit) and delivery counts."""
    if ctx.invoked_subcommand is None:
        list_command(None, False)


@destinations.command("list")
@click.option("--kind", type=KIND_CHOICE, default=None, help="Only partners, or only channels.")
@click.option("--json", "as_json", is_flag=True)
def destinations_list(kind: str | None, as_json: bool) -> None:
    """Each destination with its state, circuit and deliveries per status."""
    list_command(kind, as_json)


@destinations.command("enable")
@click.argument("name")
@click.option("--kind", type=KIND_CHOICE, default=None, help="When a partner and a channel share the name.")
def destinations_enable(name: str, kind: str | None) -> None:
    """Resume deliveries to a destination (after a 410, rejected credentials or `disable`);
    what waited is sent now."""
    enable_command(name, kind)


@destinations.command("disable")
@click.argument("name")
@click.option("--kind", type=KIND_CHOICE, default=None, help="When a partner and a channel share the name.")
@click.option("--reason", default="disabled by an operator", show_default=True)
def destinations_disable(name: str, kind: str | None, reason: str) -> None:
    """Stop deliveries to a destination; they wait (nothing is lost) until `enable`."""
    disable_command(name, kind, reason)


# --- syndicate partners (the same, partners only) ---------------------------------------

@main.group(invoke_without_command=True)
@click.pass_context
def partners(ctx: click.Context) -> None:
    """Partners only: the same as `destinations --kind partner`."""
    if ctx.invoked_subcommand is None:
        list_command("partner", False)


@partners.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_partners(as_json: bool = False) -> None:
    """Each partner with its state, circuit and deliveries per status."""
    list_command("partner", as_json)


@partners.command("enable")
@click.argument("name")
def enable_partner(name: str) -> None:
    """Resume deliveries to a partner (after a 410 or `disable`); what waited is sent now."""
    enable_command(name, "partner")


@partners.command("disable")
@click.argument("name")
@click.option("--reason", default="disabled by an operator", show_default=True)
def disable_partner_command(name: str, reason: str) -> None:
    """Stop deliveries to a partner; they wait (nothing is lost) until `enable`."""
    disable_command(name, "partner", reason)
