"""`syndicate health` and `syndicate reload`: is it working, and take the new configuration."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

import click

from worker.cli import main
from worker.cli.common import console, err_console

DEFAULT_BEAT_PIDFILE = "var/beat.pid"


def _duration(ctx, param, value: str):
    from datetime import timedelta

    from config import parse_duration

    try:
        return timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--max-wait", default="5m", show_default=True, callback=_duration,
              help="Unhealthy when the oldest due delivery has waited longer than this.")
@click.option("--check", "only", multiple=True, type=click.Choice(["redis", "database", "workers", "beat", "backlog"]),
              help="Run only this check (repeatable); default: all.")
@click.option("--local", is_flag=True,
              help="The workers check asks only this host's worker (syndicate@HOSTNAME): for container healthchecks.")
def health(as_json: bool, max_wait, only: tuple[str, ...], local: bool) -> None:
    """Whether Redis, the database, workers, beat and the delivery backlog are healthy.

    Exit 0 when every check passes, 1 otherwise (for monitoring and compose healthchecks)."""
    from worker.operations.health import CHECKS, run_checks

    node = f"syndicate@{socket.gethostname()}" if local else None
    report = run_checks(only or CHECKS, max_wait=max_wait, node=node)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        from rich.table import Table

        table = Table("check", "state", "detail")
        for c in report.checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[bold red]FAIL[/]", c.detail.replace("[", r"\["))
        console.print(table)
        console.print("healthy" if report.healthy else "UNHEALTHY", markup=False)
    sys.exit(0 if report.healthy else 1)


@main.command()
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for workers' answers.")
@click.option("--beat-pidfile", default=DEFAULT_BEAT_PIDFILE, envvar="SYNDICATE_BEAT_PIDFILE", show_default=True,
              help="Also send SIGHUP to the beat whose pid is in this file, when it exists.")
def reload(timeout: float, beat_pidfile: str) -> None:
    """Make running workers (and a local beat) re-read the configuration file.

    Workers answer through Celery's remote control: each checks the file first and keeps
    its configuration if the file is invalid. Running tasks finish under the old one.
    Exit 1 when no worker answered or one refused the file."""
    from config import ConfigError, load_config
    from worker import runtime
    from worker.celery import app
    from worker.operations.reload import CONTROL_COMMAND

    path = runtime.environment().config_path
    try:
        load_config(path)
    except ConfigError as exc:
        err_console.print(f"{exc.path} is invalid ({len(exc.problems)} problem(s)); nothing reloaded:", markup=False)
        for problem in exc.problems:
            err_console.print(f"  - {problem}", markup=False)
        sys.exit(2)
    failed = False
    try:
        replies = app.control.broadcast(CONTROL_COMMAND, reply=True, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - Redis down: say so, no traceback
        err_console.print(f"cannot reach the workers through Redis ({type(exc).__name__})", markup=False)
        replies, failed = [], True
    for reply in replies:
        for node, answer in reply.items():
            if "ok" in answer:
                console.print(f"{node}: {answer['ok']}", markup=False)
            else:
                failed = True
                err_console.print(f"{node}: {answer.get('error', answer)}", markup=False)
    if not replies and not failed:
        err_console.print(f"no worker answered within {timeout:g}s", markup=False)
        failed = True
    pidfile = Path(beat_pidfile)
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            console.print(f"beat (pid {pid}): sent SIGHUP", markup=False)
        except (ValueError, ProcessLookupError, PermissionError) as exc:
            err_console.print(f"beat pidfile {pidfile}: cannot signal ({type(exc).__name__}); is beat running?",
                              markup=False)
    sys.exit(1 if failed else 0)
