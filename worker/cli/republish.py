"""`republish`: an article's current version again, as a new message, to every destination
it qualifies for or to the named ones; one article, or all changed within a window."""

from __future__ import annotations

import json
import sys
import time

import click
from rich.table import Table

from worker.cli import main
from worker.cli.common import (
    _load_config_or_exit,
    _print_table,
    cell,
    console,
    err_console,
    progress_bar,
    since_option,
    store_for_operators,
)

CONFIRM_OVER = 100


@main.command()
@click.argument("article_id", required=False)
@click.option("--to", "to", multiple=True, help="Only to this destination, partner or channel (repeatable).")
@click.option("--partner", "partners", multiple=True, hidden=True)
@click.option("--since", default=None, help='Every article changed within this long, e.g. "2h".')
@click.option("--section", default=None, help="With --since: only this section.")
@click.option("--yes", is_flag=True, help=f"Do not ask before republishing more than {CONFIRM_OVER} articles.")
@click.option("--wait", is_flag=True, help="Follow the deliveries until each lands or fails; exit 1 unless each "
              "was delivered (or skipped, with its reason: a post already up to date).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def republish(article_id, to, partners, since, section, yes, wait, as_json) -> None:
    """Send an article's current state again as a new message (new ids) — to partners that
    lost their copy, or after an editor's fix. A channel that already has the story's post
    gets it edited, never a second post. `replay` resends the same message instead."""
    import tasks  # noqa: F401 - installs the scheduler
    from worker.operations import republish as ops

    if bool(article_id) == bool(since):
        raise click.UsageError("give an ARTICLE_ID or --since (not both)")
    if section and not since:
        raise click.UsageError("--section goes with --since")
    config = _load_config_or_exit(None)
    targets = list(to) + list(partners)
    try:
        ops.check_destinations(config, targets)
    except ops.UnknownDestination as exc:
        err_console.print(str(exc), markup=False)
        sys.exit(1)
    store = store_for_operators()
    ids = [article_id] if article_id else ops.matching_articles(store, since_option(since), section)
    if not ids:
        console.print("no article matches", markup=False)
        return
    if len(ids) > CONFIRM_OVER and not yes:
        if not sys.stdin.isatty():
            err_console.print(f"{len(ids)} articles match; add --yes to republish more than {CONFIRM_OVER}",
                              markup=False)
            sys.exit(1)
        click.confirm(f"Republish {len(ids)} articles?", abort=True)
    records = []
    try:
        if len(ids) > 1 and not as_json:
            with progress_bar() as bar:
                task = bar.add_task("republishing", total=len(ids))
                records = ops.republish(store, config, ids, to=targets or None,
                                        on_each=lambda rec: bar.advance(task))
        else:
            records = ops.republish(store, config, ids, to=targets or None)
    except LookupError as exc:
        err_console.print(str(exc).strip("'\""), markup=False)
        sys.exit(1)
    delivery_ids = ops.delivery_ids(records)
    if not as_json:
        for rec in records:
            console.print(f"{rec.article_id}: {rec.event_type} sent again as a new message to "
                          f"{len(rec.partner_deliveries)} partner(s) and {len(rec.channel_deliveries)} channel(s)",
                          markup=False)
    report = ops.progress(store, delivery_ids)
    if wait:
        report = _wait(store, delivery_ids, ops, quiet=as_json)
    if as_json:
        click.echo(json.dumps({"articles": [r.article_id for r in records], **report}, indent=2, default=str))
    elif wait:
        _summary(report)
    if wait and any(r["status"] not in ("delivered", "skipped") for r in report["rows"]):
        sys.exit(1)


def _wait(store, ids: list[int], ops, quiet: bool, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    report = ops.progress(store, ids)
    if quiet:
        while not ops.finished(report) and time.monotonic() < deadline:
            time.sleep(0.5)
            report = ops.progress(store, ids)
        return report
    with progress_bar() as bar:
        task = bar.add_task("delivering", total=len(ids))
        while True:
            done = sum(1 for r in report["rows"] if r["status"] not in ("pending", "sending"))
            bar.update(task, completed=done)
            if ops.finished(report) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
            report = ops.progress(store, ids)
    return report


def _summary(report: dict) -> None:
    table = Table("article", "destination", "status", "attempts", "post / last error")
    for r in report["rows"]:
        detail = r["url"] or r["last_error"] or ""
        table.add_row(cell(r["article_id"]), cell(f"{r['kind']}:{r['destination']}"), r["status"],
                      str(r["attempts"]), cell(detail[:100]))
    _print_table(table)
    console.print("  ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())), markup=False)
