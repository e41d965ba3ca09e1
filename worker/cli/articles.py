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
    results = ingest_articles(articles, config, store, warn_broker_down=False)
    for rec in results:
        what = rec.event_type or "unchanged, nothing sent"
        console.print(f"{rec.article_id}: {what}"
                      + (f" ({len(rec.partner_deliveries)} partner deliveries, {len(rec.feed_names)} feeds)"
                         if rec.changed else ""), markup=False)
    if not results.queued:
        # Exit status stays 0 (1 if an input was rejected): the articles are stored, which is
        # ingest's job; their deliveries are due rows the sweep sends once the broker answers.
        err_console.print("the broker (Redis) cannot be reached: the articles are stored; delivery will follow "
                          "when the broker is back", markup=False, soft_wrap=True)
    if errors:
        err_console.print(f"{errors} input(s) rejected; {len(results)} article(s) processed", markup=False)
        sys.exit(1)


@main.command()
@click.argument("article_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(article_id: str, as_json: bool) -> None:
    """An article and, per destination, its delivery status."""
    from worker.status import article_status

    report = article_status(runtime.store(), article_id)
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
