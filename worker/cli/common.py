"""What every command shares: the consoles, loading the configuration, a ready store,
time formatting and tables that keep their columns when piped.

Importing this is cheap (the group imports it for `--help`): Rich, the settings models
and the store are imported when first used.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

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
        err_console.print(f"[bold red]invalid configuration[/] {exc.path}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            err_console.print(f"  - {problem}", markup=False)
        sys.exit(2)


def _ready_store():
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
