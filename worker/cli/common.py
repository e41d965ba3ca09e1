"""What every command shares: the consoles, loading the configuration, a ready store,
time formatting and tables that keep their columns when piped."""

from __future__ import annotations

import sys
from datetime import datetime

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


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else "-"


def _print_table(table: Table) -> None:
    # Piped output is not cut to 80 columns: scripts and grep get whole ids and states.
    (console if console.is_terminal else Console(highlight=False, width=220)).print(table)
