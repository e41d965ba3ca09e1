"""The `syndicate` command: check, migrate, run, worker, beat, ingest, status."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from config import ConfigError, load_config
from worker import runtime

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _load_config_or_exit(path: str | None):
    try:
        return load_config(path or runtime.environment().config_path)
    except ConfigError as exc:
        err_console.print(f"[bold red]invalid configuration[/] {exc.path}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            err_console.print(f"  - {problem}", markup=False)
        sys.exit(2)


def _ready_store():
    from worker.observability import configure_process

    configure_process()
    store = runtime.store()
    store.migrate()
    return store


@click.group()
@click.option("--config", "config_path", envvar="SYNDICATE_CONFIG", default=None,
              help="Configuration file (default: $SYNDICATE_CONFIG or config/syndication.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Syndicate stories to feeds, partners and social channels."""
    import os

    if config_path:
        os.environ["SYNDICATE_CONFIG"] = config_path
        runtime.reset()
    ctx.obj = {"config_path": config_path}


@main.command()
@click.option("--connect", is_flag=True, help="Also check that Redis and the database answer.")
@click.pass_context
def check(ctx: click.Context, connect: bool) -> None:
    """Validate the configuration file, reporting every problem at once."""
    path = ctx.obj["config_path"] or str(runtime.environment().config_path)
    config = _load_config_or_exit(path)
    console.print(f"{path}: valid — {len(config.sources)} source(s), {len(config.feeds)} feed(s), "
                  f"{len(config.partners)} partner(s), {len(config.channels)} channel(s)", markup=False)
    if not connect:
        return
    failed = False
    env = runtime.environment()
    try:
        runtime.redis_client().ping()
        console.print("redis: ok")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        failed = True
        err_console.print(f"redis: cannot connect ({type(exc).__name__}: {exc})", markup=False)
    try:
        runtime.store().ping()
        console.print(f"database: ok ({runtime.store().engine.dialect.name})")
    except Exception as exc:  # noqa: BLE001
        failed = True
        err_console.print(f"database: cannot connect ({type(exc).__name__}: {str(exc).splitlines()[0]})", markup=False)
    del env
    if failed:
        sys.exit(2)


@main.command()
def migrate() -> None:
    """Create or upgrade the store's schema."""
    store = runtime.store()
    store.migrate()
    console.print(f"database migrated ({store.engine.dialect.name})")


def _worker_argv(queues: str, concurrency: int | None, loglevel: str, beat: bool, pool: str | None) -> list[str]:
    argv = ["worker", "-Q", queues, "--loglevel", loglevel, "-n", "syndicate@%h"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if pool:
        argv += ["--pool", pool]
    if beat:
        argv.append("-B")
    return argv


_QUEUE_HELP = "Queues to consume (comma-separated)."


@main.command()
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes (default: CPU count).")
@click.option("--loglevel", default="INFO")
@click.option("--pool", default=None, help="Celery pool (prefork, threads, solo).")
def run(concurrency: int | None, loglevel: str, pool: str | None) -> None:
    """The main job on one machine: migrate, then a worker on every queue with beat embedded."""
    from worker.celery_app import QUEUES, app

    _load_config_or_exit(None)
    _ready_store()
    Path("var").mkdir(exist_ok=True)
    app.worker_main(argv=_worker_argv(",".join(QUEUES), concurrency, loglevel, True, pool))


@main.command()
@click.option("--queues", "-Q", default=None, help=_QUEUE_HELP)
@click.option("--concurrency", "-c", type=int, default=None)
@click.option("--loglevel", default="INFO")
@click.option("--pool", default=None)
def worker(queues: str | None, concurrency: int | None, loglevel: str, pool: str | None) -> None:
    """A worker without the beat schedule (run `syndicate beat` once, elsewhere)."""
    from worker.celery_app import QUEUES, app

    _load_config_or_exit(None)
    app.worker_main(argv=_worker_argv(queues or ",".join(QUEUES), concurrency, loglevel, False, pool))


@main.command()
@click.option("--loglevel", default="INFO")
def beat(loglevel: str) -> None:
    """The periodic scheduler alone (exactly one per deployment)."""
    from worker.celery_app import app

    Path("var").mkdir(exist_ok=True)
    app.start(argv=["beat", "--loglevel", loglevel])


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


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


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
        console.print(f"{art['id']}  [bold]{art['title']}[/]")
        console.print(f"  status {art['status']}  version {art['version']}  published {art['published_at']}  "
                      f"updated {art['updated_at']}", markup=False)
    table = Table("destination", "event", "version", "status", "attempts", "last error", "when")
    for d in report["deliveries"]:
        table.add_row(f"{d['kind']}:{d['destination']}", d["event"], d["version"][:8], d["status"],
                      str(d["attempts"]), (d["last_error"] or "")[:80], d["updated_at"])
    console.print(table)
    for r in report.get("rejections", []):
        console.print(f"  rejected {r['created_at']}: {r['reason']}", markup=False)


# Command groups of each stage register themselves on `main`.
from worker import cli_deliveries, cli_feeds, cli_watch  # noqa: E402,F401

if __name__ == "__main__":
    main()
