"""`syndicate poll [NAME]` and `syndicate rejected`: watching sources by hand."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table
from sqlalchemy import select

from worker import runtime
from worker.articles import iso
from worker.cli import main
from worker.cli.common import LIMIT, _load_config_or_exit, _print_table, _ready_store, console, err_console, text
from worker.sanitize import printable


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def poll(name: str | None, as_json: bool) -> None:
    """Poll one source (or every source) now, in this process, and print what was found.

    Honours the per-source lock: if a worker is polling that source right now, this
    poll is skipped and says so. Exit 1 if a source failed."""
    from worker.watch import poll_source

    config = _load_config_or_exit(None)
    if not config.sources:
        err_console.print("no [[sources]] in the configuration", markup=False)
        sys.exit(2)
    if name is not None and config.source(name) is None:
        err_console.print(f"no source named '{printable(name)}'; configured: "
                          f"{', '.join(s.name for s in config.sources)}", markup=False)
        sys.exit(2)
    store = _ready_store()
    names = [name] if name else [s.name for s in config.sources]
    results = []
    for source_name in names:
        result = poll_source(source_name, config=config, store=store, redis_client=runtime.redis_client())
        results.append(result)
        if not as_json:
            # Plain lines (no wrapping): operators grep this.
            click.echo(f"{source_name}: {result.summary()}")
            for article_id, event in result.events:
                click.echo(f"  {event:<20} {article_id}")
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    if any(r.status == "failed" for r in results):
        sys.exit(1)


@main.command()
@click.option("--source", "source_name", default=None, help="Only this source's rejections.")
@click.option("--limit", type=LIMIT, default=100, show_default=True, help="The most recent N (1-100000).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rejected(source_name: str | None, limit: int, as_json: bool) -> None:
    """Input a source could not turn into an article, newest first, with the reason."""
    from worker.store import RejectionRow

    store = runtime.store()
    if not store.is_migrated():
        err_console.print("the store has no schema yet: run `syndicate migrate`", markup=False)
        sys.exit(1)
    with store.session() as s:
        query = select(RejectionRow).order_by(RejectionRow.id.desc()).limit(limit)
        if source_name:
            query = query.where(RejectionRow.source == source_name)
        rows = [{"id": r.id, "source": r.source, "upstream_id": r.upstream_id, "article_id": r.article_id,
                 "where": r.where, "reason": r.reason, "created_at": iso(r.created_at)} for r in s.scalars(query)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("no rejections" + (f" for source '{printable(source_name)}'" if source_name else ""),
                      markup=False)
        return
    table = Table("when", "source", "upstream id", "article id", "reason", "where", show_lines=False)
    for r in rows:
        table.add_row(text(r["created_at"]), text(r["source"]), text(r["upstream_id"] or "-"),
                      text(r["article_id"] or "-"), text(r["reason"]), text(r["where"] or ""))
    _print_table(table)
