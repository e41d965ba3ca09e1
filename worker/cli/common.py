"""What every command shares: the consoles, loading the configuration, a ready store,
time formatting and tables that keep their columns when piped."""

from __future__ import annotations

import sys
from datetime import datetime

import time
from datetime import timedelta

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from config import ConfigError, load_config, parse_duration
from worker import runtime
from worker.store import DeliveryRow, utcnow

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
    """The store, migrated, with logging set up and the scheduler installed (for commands
    that store articles or rebuild feeds, and so enqueue work)."""
    import tasks  # noqa: F401 - installs the Celery implementation of worker.enqueue
    from worker.observability import configure_process

    configure_process()
    store = runtime.store()
    store.migrate()
    return store


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _print_table(table: Table) -> None:
    # Piped output is not cut to 80 columns: scripts and grep get whole ids and states.
    (console if console.is_terminal else Console(highlight=False, width=220)).print(table)


def cell(value) -> Text:
    """A table cell holding data: printed as it is, never read as console markup."""
    return Text("" if value is None else str(value))


def store_for_operators():
    """The store, migrated (operator commands may be the first to touch a new database)."""
    store = runtime.store()
    store.migrate()
    return store


def since_option(value: str | None):
    if not value:
        return None
    try:
        return utcnow() - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


# Delivery ids per task when operators send work on its way.
ENQUEUE_CHUNK = 50


def enqueue_ids(ids_by_destination: dict, progress=None, task=None) -> None:
    import tasks  # noqa: F401 - installs the scheduler
    from worker import enqueue

    for ids in ids_by_destination.values():
        for i in range(0, len(ids), ENQUEUE_CHUNK):
            chunk = ids[i:i + ENQUEUE_CHUNK]
            enqueue.deliver(chunk)
            if progress is not None:
                progress.advance(task, len(chunk))


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=False)


def follow(store, ids: list[int], timeout: float = 600) -> None:
    """Show the replayed deliveries finishing."""
    deadline = time.monotonic() + timeout
    with progress_bar() as progress:
        task = progress.add_task("delivering", total=len(ids))
        while True:
            with store.session() as s:
                counts = dict(s.execute(select(DeliveryRow.status, func.count()).where(DeliveryRow.id.in_(ids))
                                        .group_by(DeliveryRow.status)).all())
            open_ = counts.get("pending", 0) + counts.get("sending", 0)
            progress.update(task, completed=len(ids) - open_)
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    console.print("  ".join(f"{k} {v}" for k, v in sorted(counts.items())), markup=False)
