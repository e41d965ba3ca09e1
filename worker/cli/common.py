"""What every command shares: the consoles, loading the configuration, a ready store,
time formatting and tables that keep their columns when piped.

Importing this is cheap (the group imports it for `--help`): Rich, the settings models
and the store are imported when first used.

Data (titles, ids, partner names, reasons) is never console markup: print it with
`markup=False`, or as `cell(value)` in a table cell or a composed line; `[/x]` in a title
comes out as `[/x]`, and unprintable characters escaped. Numeric options take `LIMIT` or
`CONCURRENCY`, so a bad argument is a usage error (exit 2), never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Piped output is as wide as this (or $COLUMNS): long lines are never folded inside a
# sentence, and tables keep every column whole for scripts and grep.
PIPE_WIDTH = 250


def make_console(stderr: bool = False) -> "Console":
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    width = int(os.environ.get("COLUMNS") or 0) or PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


class _LazyConsole:
    """A Rich console made on first use (Rich costs tens of milliseconds to import)."""

    def __init__(self, stderr: bool = False):
        self._stderr = stderr
        self._console = None

    def _get(self) -> "Console":
        if self._console is None:
            self._console = make_console(self._stderr)
        return self._console

    def __getattr__(self, name: str):
        return getattr(self._get(), name)


console = _LazyConsole()
err_console = _LazyConsole(stderr=True)


def _load_config_or_exit(path: str | None):
    from config import ConfigError, load_config
    from worker import runtime

    try:
        return load_config(path or runtime.environment().config_path)
    except ConfigError as exc:
        from worker.formatting import printable

        err_console.print(cell("invalid configuration", style="bold red")
                          + cell(f" {printable(exc.path)}: {len(exc.problems)} problem(s)"))
        for problem in exc.problems:
            err_console.print(f"  - {printable(problem, 2000)}", markup=False)
        sys.exit(2)


def _ready_store():
    """The store, migrated, with logging set up and the scheduler installed (for commands
    that store articles or rebuild feeds, and so enqueue work)."""
    import tasks  # noqa: F401 - installs the Celery implementation of worker.enqueue
    from worker import runtime
    from worker.observability import configure_process

    configure_process()
    store = runtime.store()
    store.migrate()
    return store


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _print_table(table: "Table") -> None:
    # Piped output is not cut to 80 columns: scripts and grep get whole ids and states.
    console.print(table)


def cell(value, style: str = ""):
    """A table cell (or part of a line) holding data: printed as it is, never read as console
    markup, with unprintable characters escaped (a newline in an id cannot forge a line)."""
    from rich.text import Text

    from worker.formatting import printable

    return Text("" if value is None else printable(value, 2000), style=style)


text = cell

# `--limit`: at least one row, at most what a terminal or a script can use.
LIMIT = click.IntRange(1, 100_000)
# `--concurrency`: processes or threads on one machine.
CONCURRENCY = click.IntRange(1, 256)


def store_for_operators():
    """The store, migrated (operator commands may be the first to touch a new database)."""
    from worker import runtime

    store = runtime.store()
    store.migrate()
    return store


def since_option(value: str | None):
    """The time `value` ("2h", "30m", "1d") ago, for --since; a clear error for a bad one."""
    import click

    from config import parse_duration
    from worker.store import utcnow

    if not value:
        return None
    try:
        seconds = parse_duration(value)
        if seconds > 3650 * 86400:
            raise ValueError(f"{value!r} is more than ten years")
        return utcnow() - timedelta(seconds=seconds)
    except (ValueError, OverflowError) as exc:
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


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console._get(), transient=False)


def follow(store, ids: list[int], timeout: float = 600) -> None:
    """Show the replayed deliveries finishing."""
    from sqlalchemy import func, select

    from worker.store import DeliveryRow

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
