"""`run`, `worker`, `beat`: the long-running processes."""

from __future__ import annotations

from pathlib import Path

import click

from worker.cli import main
from worker.cli.common import _load_config_or_exit, _ready_store

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
    from worker.celery import QUEUES, app

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
    from worker.celery import QUEUES, app

    _load_config_or_exit(None)
    app.worker_main(argv=_worker_argv(queues or ",".join(QUEUES), concurrency, loglevel, False, pool))


@main.command()
@click.option("--loglevel", default="INFO")
def beat(loglevel: str) -> None:
    """The periodic scheduler alone (exactly one per deployment)."""
    from worker.celery import app

    Path("var").mkdir(exist_ok=True)
    app.start(argv=["beat", "--loglevel", loglevel])
