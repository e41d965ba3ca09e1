"""`ingest` and `status`: putting articles in, and seeing where they went."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from worker import runtime
from worker.cli import main
from worker.cli.common import _load_config_or_exit, _print_table, _ready_store, cell, console, err_console

@main.command()
@click.argument("files", nargs=-1, required=True)
def ingest(files: tuple[str, ...]) -> None:
    """Store article JSON files (`-` reads stdin) and send them down the pipeline."""
    from worker.articles import Article, ArticleInputError, read_article_file
    from worker.pipeline import ingest_articles

    config = _load_config_or_exit(None)
    store = _ready_store()
    articles: list[Article] = []
    errors = 0
    for name in files:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            err_console.print(f"{name}: cannot read: {exc}", markup=False)
            errors += 1
            continue
        for item in read_article_file(text, "<stdin>" if name == "-" else name):
            if isinstance(item, ArticleInputError):
                errors += 1
                err_console.print(f"rejected {item.where}:", markup=False)
                for problem in item.problems:
                    err_console.print(f"  - {problem}", markup=False)
            else:
                articles.append(item)
    results = ingest_articles(articles, config, store)
    for rec in results:
        what = rec.event_type or "unchanged, nothing sent"
        console.print(f"{rec.article_id}: {what}"
                      + (f" ({len(rec.partner_deliveries)} partner deliveries, {len(rec.feed_names)} feeds)"
                         if rec.changed else ""), markup=False)
    if errors:
        err_console.print(f"{errors} input(s) rejected; {len(results)} article(s) processed", markup=False)
        sys.exit(1)


@main.command()
@click.argument("article_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Without an id: how many recent articles.")
@click.option("--watch", is_flag=True, help="Without an id: refresh every 2 seconds until Ctrl-C.")
def status(article_id: str | None, as_json: bool, limit: int, watch: bool) -> None:
    """An article and, per destination, its delivery status; without an id, the most recently
    changed articles with each destination's state."""
    from worker.status import article_status

    store = runtime.store()
    if article_id is None:
        _recent(store, limit, as_json, watch)
        return
    report = article_status(store, article_id)
    if report is None:
        err_console.print(f"no article {article_id!r} in the store", markup=False)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    art = report["article"]
    if art is None:
        console.print(f"{article_id}  (never stored)", markup=False)
    else:
        console.print(Text.assemble(art["id"] + "  ", (art["title"], "bold")))
        console.print(f"  status {art['status']}  version {art['version']}  published {art['published_at']}  "
                      f"updated {art['updated_at']}", markup=False)
    table = Table("destination", "event", "version", "status", "attempts", "post / last error", "when")
    for d in report["deliveries"]:
        detail = d["post_url"] or ("post deleted" if d["deleted"] else "") or (d["last_error"] or "")
        table.add_row(cell(f"{d['kind']}:{d['destination']}"), d["event"], d["version"][:8], d["status"],
                      str(d["attempts"]), cell(detail[:100]), d["updated_at"])
    _print_table(table)
    for c in report.get("cleaning", []):
        console.print(f"  cleaned ({c['event']}): " + "; ".join(map(str, c["notes"] or [])), markup=False)
    for r in report.get("rejections", []):
        console.print(f"  rejected {r['created_at']}: {r['reason']}", markup=False)


def _recent_table(rows: list[dict]) -> Table:
    table = Table("article", "title", "status", "changed", "destinations")
    for r in rows:
        dests = "  ".join(f"{k}:{n} {st}" for (k, n), st in sorted(r["destinations"].items()))
        table.add_row(cell(r["id"]), cell(r["title"][:60]), r["status"], r["changed_at"] or "", cell(dests))
    return table


def _recent(store, limit: int, as_json: bool, watch: bool) -> None:
    import time

    from worker.status import recent_articles

    if as_json:
        rows = recent_articles(store, limit)
        click.echo(json.dumps([dict(r, destinations={f"{k}:{n}": st for (k, n), st in r["destinations"].items()})
                               for r in rows], indent=2, default=str))
        return
    if not watch:
        rows = recent_articles(store, limit)
        if not rows:
            console.print("no article in the store yet", markup=False)
            return
        _print_table(_recent_table(rows))
        return
    from rich.live import Live

    try:
        with Live(_recent_table(recent_articles(store, limit)), console=console._get(), refresh_per_second=1) as live:
            while True:
                time.sleep(2)
                live.update(_recent_table(recent_articles(store, limit)))
    except KeyboardInterrupt:
        pass
