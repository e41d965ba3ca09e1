"""`ingest` and `status`: putting articles in, and seeing where they went."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from worker import runtime
from worker.cli import main
from worker.cli.common import _load_config_or_exit, _print_table, _ready_store, cell, console, err_console
from worker.formatting import printable

if TYPE_CHECKING:
    from rich.table import Table


# The largest file `ingest` reads, as for a drop folder's files.
MAX_INGEST_BYTES = 20_000_000


def _read_input(name: str) -> str:
    """The text of FILE or stdin (`-`), or OSError/ValueError saying why it cannot be read."""
    if name == "-":
        raw = sys.stdin.buffer.read(MAX_INGEST_BYTES + 1)
    else:
        path = Path(name)
        if path.is_dir():
            raise OSError("is a directory")
        with path.open("rb") as handle:
            raw = handle.read(MAX_INGEST_BYTES + 1)
    if len(raw) > MAX_INGEST_BYTES:
        raise ValueError(f"larger than {MAX_INGEST_BYTES:,} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@main.command()
@click.argument("files", nargs=-1, required=True)
def ingest(files: tuple[str, ...]) -> None:
    """Store article JSON files (`-` reads stdin) and send them down the pipeline.

    Each input that cannot become an article is named on one line, recorded (see
    `syndicate rejected --source ingest`) and skipped; the others still go through.
    An id given twice is stored once, in its last version. Exit 1 if any was rejected."""
    from worker.articles import Article, ArticleInputError, last_per_id, read_article_file
    from worker.pipeline import ingest_articles
    from worker.sources.base import Rejection
    from worker.watch import log_cleaning, record_rejections

    config = _load_config_or_exit(None)
    store = _ready_store()
    articles: list[Article] = []
    rejections: list[Rejection] = []
    for name in files:
        where = "<stdin>" if name == "-" else name
        try:
            text = _read_input(name)
        except (OSError, ValueError) as exc:
            reason = f"cannot read: {exc.strerror or exc}" if isinstance(exc, OSError) else f"cannot read: {exc}"
            rejections.append(Rejection(None, reason, where=where))
            continue
        for item in read_article_file(text, where):
            if isinstance(item, ArticleInputError):
                rejections.append(Rejection(item.article_id, "; ".join(item.problems), where=item.where,
                                            article_id=item.article_id))
            else:
                articles.append(item)
    for rejection in rejections:
        err_console.print(f"rejected {printable(rejection.where)}: {printable(rejection.reason, 2000)}",
                          markup=False, soft_wrap=True)
    if rejections:
        record_rejections(store, "ingest", rejections)
    articles, repeated = last_per_id(articles)
    for article_id in repeated:
        err_console.print(f"{printable(article_id)}: given more than once; only its last version is stored",
                          markup=False, soft_wrap=True)
    results = ingest_articles(articles, config, store, warn_broker_down=False)
    for article, rec in zip(articles, results):
        if rec.error:  # the store refused this one (the others of its batch are stored)
            err_console.print(f"rejected {printable(rec.article_id)}: {printable(rec.error, 2000)}", markup=False,
                              soft_wrap=True)
            rejections.append(Rejection(rec.article_id, rec.error, where=rec.article_id, article_id=rec.article_id))
            continue
        what = rec.event_type or "unchanged, nothing sent"
        console.print(f"{printable(rec.article_id)}: {what}"
                      + (f" ({len(rec.partner_deliveries)} partner deliveries, {len(rec.feed_names)} feeds)"
                         if rec.changed else ""), markup=False, soft_wrap=True)
        if article.cleaning_notes and rec.changed:
            console.print(f"  cleaned: {printable('; '.join(article.cleaning_notes), 1000)}", markup=False,
                          soft_wrap=True)
        log_cleaning(article, rec)
    if not results.queued:
        # Exit status stays 0 (1 if an input was rejected): the articles are stored, which is
        # ingest's job; their deliveries are due rows the sweep sends once the broker answers.
        err_console.print("the broker (Redis) cannot be reached: the articles are stored; delivery will follow "
                          "when the broker is back", markup=False, soft_wrap=True)
    if rejections:
        err_console.print(f"{len(rejections)} input(s) rejected; {len(results)} article(s) processed",
                          markup=False)
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
        err_console.print(f"no article '{printable(article_id)}' in the store", markup=False)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    art = report["article"]
    if art is None:
        console.print(f"{printable(article_id)}  (never stored)", markup=False)
    else:
        console.print(cell(art["id"]) + cell("  ") + cell(art["title"], style="bold"))
        console.print(f"  status {art['status']}  version {art['version']}  published {art['published_at']}  "
                      f"updated {art['updated_at']}", markup=False)
    from rich.table import Table

    table = Table("destination", "event", "version", "status", "attempts", "post / last error", "when")
    for d in report["deliveries"]:
        detail = d["post_url"] or ("post deleted" if d["deleted"] else "") or (d["last_error"] or "")
        table.add_row(cell(f"{d['kind']}:{d['destination']}"), cell(d["event"]), cell(d["version"][:8]),
                      cell(d["status"]), cell(d["attempts"]), cell(detail[:100]), cell(d["updated_at"]))
    _print_table(table)
    for c in report.get("cleaning", []):
        console.print(f"  cleaned ({c['event']}): " + printable("; ".join(map(str, c["notes"] or [])), 2000),
                      markup=False)
    for r in report.get("rejections", []):
        console.print(f"  rejected {r['created_at']} ({printable(r['source'])}): {printable(r['reason'], 2000)}",
                      markup=False)


def _recent_table(rows: list[dict]) -> "Table":
    from rich.table import Table

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
