"""`run`, `worker`, `beat`, `flower`: the long-running processes.

Each passes its `--loglevel` on in SYNDICATE_LOG_LEVEL, which decides whether Celery's
per-run lines for the periodic tasks are logged (only at debug; worker.logformat).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from worker.cli import main
from worker.cli.common import CONCURRENCY, _load_config_or_exit, _ready_store, err_console

def _worker_argv(queues: str, concurrency: int | None, loglevel: str, beat: bool, pool: str | None,
                 name: str = "syndicate@%h") -> list[str]:
    # No gossip or mingle: nothing here uses them, and gossip's restart after a broker loss
    # fails (Celery 5.7 hands it a closed connection) and logs an error on every Redis restart.
    argv = ["worker", "-Q", queues, "--loglevel", loglevel, "-n", name, "--without-gossip",
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
@click.option("--concurrency", "-c", type=CONCURRENCY, default=None, help="Worker processes (default: CPU count).")
@click.option("--loglevel", default="INFO")
@click.option("--pool", default=None, help="Celery pool (prefork, threads, solo).")
def run(concurrency: int | None, loglevel: str, pool: str | None) -> None:
    """The main job on one machine: migrate, then a worker on every queue with beat embedded."""
    from worker.celery import QUEUES, app

    _load_config_or_exit(None)
    _ready_store()
    Path("var").mkdir(exist_ok=True)
    os.environ["SYNDICATE_LOG_LEVEL"] = loglevel
    # It runs in the foreground until stopped; say so before Celery's banner.
    err_console.print("syndicate run: a worker with beat, in the foreground (logs follow). Ctrl-C stops it; "
                      "running sends get the soft-shutdown time to finish.", markup=False)
    _run_worker(app, _worker_argv(",".join(QUEUES), concurrency, loglevel, True, pool))


@main.command()
@click.option("--queues", "-Q", default=None, help=_QUEUE_HELP)
@click.option("--concurrency", "-c", type=CONCURRENCY, default=None, help="Worker processes (default: CPU count).")
@click.option("--loglevel", default="INFO")
@click.option("--pool", default=None)
@click.option("--name", "-n", default="syndicate@%h", show_default=True,
              help="Node name; give each worker on one host its own (%h is the host name).")
def worker(queues: str | None, concurrency: int | None, loglevel: str, pool: str | None, name: str) -> None:
    """A worker without the beat schedule (run `syndicate beat` once, elsewhere)."""
    from worker.celery import QUEUES, app

    _load_config_or_exit(None)
    os.environ["SYNDICATE_LOG_LEVEL"] = loglevel
    _run_worker(app, _worker_argv(queues or ",".join(QUEUES), concurrency, loglevel, False, pool, name))


def _bounded_sigterm() -> None:
    """SIGTERM starts Celery's soft shutdown, bounded by SYNDICATE_SOFT_SHUTDOWN, as in compose.

    Left to Celery's default, SIGTERM is a *warm* shutdown: the worker waits for every running
    task and pool process with no limit at all (`worker_soft_shutdown_timeout` bounds only the
    cold shutdown), and its embedded beat, stopped after the pool, keeps sending meanwhile. One
    task held up (a Redis or database call waiting out its 30 s socket or retry limit, a long
    task wait) then holds the whole stop. With SIGTERM taken as SIGQUIT, running tasks get the
    soft-shutdown window, then are cancelled and their messages requeued (acks late); the pool
    processes hand back the rows they still hold (tasks/deliver.py) as they stop.
    billiard reads REMAP_SIGTERM when first imported, so it is set before the worker starts."""
    os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")
    from billiard.common import REMAP_SIGTERM

    if REMAP_SIGTERM != os.environ["REMAP_SIGTERM"]:
        err_console.print("REMAP_SIGTERM was read before it was set: SIGTERM is an unbounded warm shutdown",
                          markup=False)


def _run_worker(app, argv: list[str]) -> None:
    """Run the worker and exit with its status: `app.worker_main` drops it (the worker's
    `exitcode`, 1 after an unrecoverable error), and a supervisor must not see a crashed
    worker exit 0. A stop asked for by SIGTERM exits 0 (Celery's cold shutdown says 1)."""
    from celery import signals

    _bounded_sigterm()
    codes: list[int | None] = []
    asked: list[str] = []

    def remember(sender=None, **_):
        codes.append(getattr(sender, "exitcode", None))

    def stop_asked(sig=None, **_):
        asked.append(sig)

    signals.worker_shutdown.connect(remember, weak=False)
    signals.worker_shutting_down.connect(stop_asked, weak=False)
    app.worker_main(argv=argv)
    if asked and asked[0] in ("SIGTERM", "SIGQUIT", "SIGINT"):
        sys.exit(0)
    sys.exit(codes[-1] or 0 if codes else 0)


@main.command()
@click.option("--loglevel", default="INFO")
@click.option("--pidfile", default=None, envvar="SYNDICATE_BEAT_PIDFILE",
              help="Write the process id here (`syndicate reload` signals it).")
def beat(loglevel: str, pidfile: str | None) -> None:
    """The periodic scheduler alone (one active per deployment; more wait as standby).

    The schedule and a lock live in Redis (celery-redbeat): a second `beat` waits for the
    lock and takes over when the first stops. SIGHUP re-reads the configuration."""
    from worker.celery import app

    Path("var").mkdir(exist_ok=True)
    os.environ["SYNDICATE_LOG_LEVEL"] = loglevel
    argv = ["beat", "--loglevel", loglevel]
    if pidfile:
        argv += ["--pidfile", pidfile]
    app.start(argv=argv)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--port", type=int, default=5555, show_default=True)
@click.option("--address", default="0.0.0.0", show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(port: int, address: str, flower_args: tuple[str, ...]) -> None:
    """Celery's monitoring UI (Flower), behind basic auth from FLOWER_BASIC_AUTH.

    FLOWER_BASIC_AUTH is "user:password" (several: "a:pw1,b:pw2"); without it Flower is
    not started. Further Flower options (e.g. --url_prefix=flower) are passed on."""
    if not os.environ.get("FLOWER_BASIC_AUTH", "").strip() or ":" not in os.environ["FLOWER_BASIC_AUTH"]:
        err_console.print("FLOWER_BASIC_AUTH is not set (as user:password): Flower would be open to anyone "
                          "who can reach it, so it is not started", markup=False)
        sys.exit(2)
    from worker.celery import app

    app.start(argv=["flower", f"--port={port}", f"--address={address}", *flower_args])
