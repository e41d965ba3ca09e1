"""What every command shares: the consoles, loading the configuration, a ready store,
time formatting, tables that keep their columns when piped, and the rules for showing
data and reading arguments.

Data (titles, ids, partner names, reasons) is never rich markup: print it with
`markup=False`, or as `text(value)` in a table cell or a composed line; `[/x]` in a title
must come out as `[/x]`. Numeric and duration options are range-checked here, so a bad
argument is a usage error (exit 2) with a clear message, never a traceback.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from config import ConfigError, load_config, parse_duration
from worker import runtime
from worker.sanitize import printable

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _load_config_or_exit(path: str | None):
    try:
        return load_config(path or runtime.environment().config_path)
    except ConfigError as exc:
        err_console.print(Text("invalid configuration", style="bold red")
                          + Text(f" {printable(exc.path)}: {len(exc.problems)} problem(s)"))
        for problem in exc.problems:
            err_console.print(f"  - {printable(problem, 2000)}", markup=False)
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


# --- data and arguments ---------------------------------------------------------------

def text(value: object, style: str = "") -> Text:
    """Data for a table cell or a printed line: never read as console markup, with
    unprintable characters escaped (a newline in an id cannot forge a line)."""
    return Text("" if value is None else printable(value, 2000), style=style)


# `--limit`: at least one row, at most what a terminal or a script can use.
LIMIT = click.IntRange(1, 100_000)
# `--concurrency`: processes or threads on one machine.
CONCURRENCY = click.IntRange(1, 256)
# The longest look-back `--since` accepts.
MAX_SINCE = timedelta(days=3650)


def since_cutoff(value: str | None, option: str = "--since") -> datetime | None:
    """The time `value` ("2h", "30m", "7d") before now, or a usage error naming the option."""
    if not value:
        return None
    from worker.store import utcnow

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if seconds > MAX_SINCE.total_seconds():
        raise click.BadParameter(f"at most {MAX_SINCE.days}d", param_hint=option)
    return utcnow() - timedelta(seconds=seconds)
