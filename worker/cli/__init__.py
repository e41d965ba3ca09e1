"""The `syndicate` command: the group, and `check` and `migrate`.

Each command family lives in its own module and registers itself on `main`; shared
helpers are in `worker.cli.common`. The modules are imported only when one of their
commands runs: `COMMANDS` says which module holds which command, with the one-line
summary `syndicate --help` shows, so listing the commands imports nothing heavy
(tests/worker/cli/test_startup.py keeps the table in step with the commands).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import sys

import click

from worker.cli.common import _load_config_or_exit, console, err_console

# command name → (module that registers it, its one-line summary for `--help`).
COMMANDS: dict[str, tuple[str, str]] = {
    "beat": ("worker.cli.processes", "The periodic scheduler alone (one active per deployment; more wait as standby)."),
    "deliveries": ("worker.cli.deliveries", "Deliveries to partners and channels, newest first, with their state, attempts and last error."),
    "destinations": ("worker.cli.destinations", "Partners and channels: state (enabled, disabled, circuit) and delivery counts."),
    "feeds": ("worker.cli.feeds", "Feed files (RSS, Atom, JSON Feed) and the news sitemap."),
    "flower": ("worker.cli.processes", "Celery's monitoring UI (Flower), behind basic auth from FLOWER_BASIC_AUTH."),
    "health": ("worker.cli.health", "Whether Redis, the database, workers, beat and the delivery backlog are healthy."),
    "ingest": ("worker.cli.articles", "Store article JSON files (`-` reads stdin) and send them down the pipeline."),
    "partners": ("worker.cli.destinations", "Partners only: the same as `destinations --kind partner`."),
    "poll": ("worker.cli.watch", "Poll one source (or every source) now, in this process, and print what was found."),
    "rejected": ("worker.cli.watch", "Input a source could not turn into an article, newest first, with the reason."),
    "reload": ("worker.cli.health", "Make running workers (and a local beat) re-read the configuration file."),
    "replay": ("worker.cli.deliveries", "Send dead (or failed) deliveries again: the same messages, under the same ids (webhook-id, idempotency key), with a fresh retry schedule."),
    "republish": ("worker.cli.republish", "Send an article's current state again as a new message (new ids) — to partners that lost their copy, or after an editor's fix."),
    "sentry-test": ("worker.cli.monitoring", "Send a test event to Sentry and say whether the DSN accepted it."),
    "run": ("worker.cli.processes", "The main job on one machine: migrate, then a worker on every queue with beat embedded."),
    "status": ("worker.cli.articles", "An article and, per destination, its delivery status; without an id, the most recently changed articles with each destination's state."),
    "worker": ("worker.cli.processes", "A worker without the beat schedule (run `syndicate beat` once, elsewhere)."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used, not when listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"max_content_width": 100})
@click.version_option(package_name="syndicate", prog_name="syndicate")
@click.option("--config", "config_path", envvar="SYNDICATE_CONFIG", default=None,
              help="Configuration file (default: $SYNDICATE_CONFIG or config/syndication.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Syndicate stories to feeds, partners and social channels."""
    import os

    from worker import runtime

    if config_path:
        os.environ["SYNDICATE_CONFIG"] = config_path
        runtime.reset()
    ctx.obj = {"config_path": config_path}
    if "--help" not in ctx.args:
        # Every command logs, redacts secrets and reports errors the same way.
        from worker.observability import configure_process

        configure_process(defer_secrets=True)


@main.command()
@click.option("--connect", is_flag=True, help="Also check that Redis and the database answer.")
@click.pass_context
def check(ctx: click.Context, connect: bool) -> None:
    """Validate the configuration file, reporting every problem at once."""
    from worker import runtime

    path = ctx.obj["config_path"] or str(runtime.environment().config_path)
    config = _load_config_or_exit(path)
    console.print(f"{path}: valid — {len(config.sources)} source(s), {len(config.feeds)} feed(s), "
                  f"{len(config.partners)} partner(s), {len(config.channels)} channel(s)", markup=False)
    if not connect:
        return
    failed = False
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
    if failed:
        sys.exit(2)


@main.command()
def migrate() -> None:
    """Create or upgrade the store's schema."""
    from worker import runtime

    store = runtime.store()
    store.migrate()
    console.print(f"database migrated ({store.engine.dialect.name})")


def _end_of_process() -> None:
    """The last exit hook of a `syndicate` process: registered when `worker.cli` is imported,
    before the libraries register theirs, so it runs after them (logging, Sentry's flush).

    Python's finalization runs the cycle collector over every object left, and a command's
    imports (SQLAlchemy, pydantic, Celery, Rich) leave 50,000-100,000 of them: 0.15-0.3 s of
    a short command on this 2-core machine. Frozen objects are skipped. What that collection
    would have closed is closed here first: the stores' connections (SQLite checkpoints and
    removes its write-ahead log on close). The operating system takes back the memory."""
    store_db = sys.modules.get("worker.store.db")
    if store_db is not None:
        store_db.close_stores()
    gc.freeze()


atexit.register(_end_of_process)

# Every command: Sentry set up after --config is applied, an unexpected crash reported.
from worker.cli.crash import guard  # noqa: E402

guard(main)
