"""`run`, `worker`, `beat`: the long-running processes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker.cli import main
from worker.cli.common import _load_config_or_exit, _ready_store

def _worker_argv(queues: str, concurrency: int | None, loglevel: str, beat: bool, pool: str | None) -> list[str]:
    # No gossip or mingle: nothing here uses them, and gossip's restart after a broker loss
    # fails (Celery 5.7 hands it a closed connection) and logs an error on every Redis restart.
    argv = ["worker", "-Q", queues, "--loglevel", loglevel, "-n", "syndicate@%h", "--without-gossip",
            "--without-mingle"]
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
    _run_worker(app, _worker_argv(",".join(QUEUES), concurrency, loglevel, True, pool))


@main.command()
@click.option("--queues", "-Q", default=None, help=_QUEUE_HELP)
@click.option("--concurrency", "-c", type=int, default=None)
@click.option("--loglevel", default="INFO")
@click.option("--pool", default=None)
def worker(queues: str | None, concurrency: int | None, loglevel: str, pool: str | None) -> None:
    """A worker without the beat schedule (run `syndicate beat` once, elsewhere)."""
    from worker.celery import QUEUES, app

    _load_config_or_exit(None)
    _run_worker(app, _worker_argv(queues or ",".join(QUEUES), concurrency, loglevel, False, pool))


def _run_worker(app, argv: list[str]) -> None:
    """Run the worker and exit with its status: `app.worker_main` drops it (the worker's
    `exitcode`, 1 after an unrecoverable error), and a supervisor must not see a crashed
    worker exit 0."""
    from celery import signals

    codes: list[int | None] = []

    def remember(sender=None, **_):
        codes.append(getattr(sender, "exitcode", None))

    signals.worker_shutdown.connect(remember, weak=False)
    app.worker_main(argv=argv)
    sys.exit(codes[-1] or 0 if codes else 0)


@main.command()
@click.option("--loglevel", default="INFO")
def beat(loglevel: str) -> None:
    """The periodic scheduler alone (exactly one per deployment)."""
    from worker.celery import app

    Path("var").mkdir(exist_ok=True)
    app.start(argv=["beat", "--loglevel", loglevel])
