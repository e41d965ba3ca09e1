"""The `syndicate` command: the group, and `check` and `migrate`. Each command family
lives in its own module and registers itself on `main`; shared helpers are in
`worker.cli.common`."""

from __future__ import annotations

import sys

import click

from worker import runtime
from worker.cli.common import _load_config_or_exit, console, err_console

@click.group()
@click.option("--config", "config_path", envvar="SYNDICATE_CONFIG", default=None,
              help="Configuration file (default: $SYNDICATE_CONFIG or config/syndication.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Syndicate stories to feeds, partners and social channels."""
    import os

    if config_path:
        os.environ["SYNDICATE_CONFIG"] = config_path
        runtime.reset()
    ctx.obj = {"config_path": config_path}


@main.command()
@click.option("--connect", is_flag=True, help="Also check that Redis and the database answer.")
@click.pass_context
def check(ctx: click.Context, connect: bool) -> None:
    """Validate the configuration file, reporting every problem at once."""
    path = ctx.obj["config_path"] or str(runtime.environment().config_path)
    config = _load_config_or_exit(path)
    console.print(f"{path}: valid — {len(config.sources)} source(s), {len(config.feeds)} feed(s), "
                  f"{len(config.partners)} partner(s), {len(config.channels)} channel(s)", markup=False)
    if not connect:
        return
    failed = False
    env = runtime.environment()
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
    del env
    if failed:
        sys.exit(2)


@main.command()
def migrate() -> None:
    """Create or upgrade the store's schema."""
    store = runtime.store()
    store.migrate()
    console.print(f"database migrated ({store.engine.dialect.name})")


# Command families register themselves on `main`.
from worker.cli import articles, deliveries, feeds, monitoring, processes, watch  # noqa: E402,F401
