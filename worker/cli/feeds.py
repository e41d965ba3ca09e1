"""`syndicate feeds build [NAME]`: rebuild feed files now, synchronously, and say which changed."""

from __future__ import annotations

import sys

import click

from worker import runtime
from worker.cli import main
from worker.cli.common import _load_config_or_exit, _ready_store, console, err_console
from worker.feeds.sitemap import SITEMAP_FILE

SITEMAP_NAMES = ("news-sitemap", SITEMAP_FILE)


@main.group()
def feeds() -> None:
    """Feed files (RSS, Atom, JSON Feed) and the news sitemap."""


@feeds.command()
@click.argument("name", required=False)
def build(name: str | None) -> None:
    """Rebuild every feed and the news sitemap now (or only NAME: a feed, or `news-sitemap`).

    Pending changes of the feed are marked delivered; hubs are notified of the files
    whose bytes changed (through the worker, which retries a failing hub).
    """
    import redis as redis_lib

    from worker.feeds import build_news_sitemap, rebuild
    from worker.feeds.coalesce import SITEMAP_TARGET, BuildLockTimeout, build_lock, feed_target
    from worker.websub import notify

    config = _load_config_or_exit(None)
    if name is not None and config.feed(name) is None and name not in SITEMAP_NAMES:
        known = ", ".join([f.name for f in config.feeds] + ["news-sitemap"])
        err_console.print(f"no feed named {name!r} in the configuration (known: {known})", markup=False, soft_wrap=True)
        sys.exit(2)
    store = _ready_store()
    feeds_dir = runtime.environment().feeds_dir
    names = [name] if name is not None and config.feed(name) is not None else \
        ([] if name is not None else [f.name for f in config.feeds])
    with_sitemap = name is None or (name in SITEMAP_NAMES and config.feed(name) is None)

    client = runtime.redis_client()
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        # Without Redis no worker is building either; build without the lock.
        err_console.print(f"redis unreachable ({type(exc).__name__}); building without the build lock, "
                          "and hubs will not be notified", markup=False, soft_wrap=True)
        client = None

    def locked(target: str, fn):
        if client is None:
            return fn()
        with build_lock(client, target):
            return fn()

    changed_feed_files: list[str] = []
    try:
        for feed_name in names:
            result = locked(feed_target(feed_name),
                            lambda: rebuild(store, config, feeds_dir, feed_name, force=True))
            for file, changed in result.files.items():
                console.print(f"{file}  {'changed' if changed else 'unchanged'}", markup=False, soft_wrap=True)
            changed_feed_files += result.changed
        if with_sitemap:
            if not config.feed_settings.news_sitemap:
                console.print(f"{SITEMAP_FILE}  disabled ([feed_settings] news_sitemap = false)", markup=False, soft_wrap=True)
            else:
                result = locked(SITEMAP_TARGET, lambda: build_news_sitemap(store, config, feeds_dir))
                for file, changed in result.files.items():
                    console.print(f"{file}  {'changed' if changed else 'unchanged'}", markup=False, soft_wrap=True)
    except BuildLockTimeout as exc:
        err_console.print(f"gave up waiting: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:
        err_console.print(f"cannot write feed files in {feeds_dir}: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)

    if changed_feed_files and config.websub.hubs and client is not None:
        try:
            count = notify(config, changed_feed_files)
            console.print(f"{count} hub notification(s) queued", markup=False, soft_wrap=True)
        except Exception as exc:  # noqa: BLE001 - the files are written; say what did not happen
            err_console.print(f"files written, but hub notifications could not be queued: "
                              f"{type(exc).__name__}: {exc}", markup=False, soft_wrap=True)
