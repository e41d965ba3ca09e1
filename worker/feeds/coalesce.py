"""Coalescing: a burst of changes rebuilds each feed once per window, and after the last one.

A change asks for a build with `request_build`: `SET NX` of a "scheduled" key in
Redis; whoever sets it enqueues the build with a countdown of one window, everyone
else in that window does nothing. The build deletes the key before it claims the
feed's pending rows, so a change that arrives after the claim schedules the next
build (and its row waits, pending, for it): one build per window, never a change
left behind. Builds of one feed never overlap (`build_lock`), so an older build
cannot overwrite a newer one's files.

The key expires (window + a minute) in case its build is lost with a dead worker;
the pending rows are the durable truth, and the periodic sweep asks again for
feeds whose rows wait too long.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import redis as redis_lib

PREFIX = "syndicate:feeds:"
SCHEDULE_GRACE = 60.0
LOCK_TIMEOUT = 300  # a build holding the lock longer than this is presumed dead
LOCK_WAIT = 120.0


def feed_target(name: str) -> str:
    return f"feed:{name}"


SITEMAP_TARGET = "sitemap"


def scheduled_key(target: str) -> str:
    return f"{PREFIX}scheduled:{target}"


def request_build(client: redis_lib.Redis, target: str, window: float,
                  schedule: Callable[[str, float], None]) -> bool:
    """Schedule a build of `target` in `window` seconds unless one is already scheduled.

    Returns whether this call scheduled it."""
    key = scheduled_key(target)
    if not client.set(key, b"1", nx=True, ex=max(1, math.ceil(window + SCHEDULE_GRACE))):
        return False
    try:
        schedule(target, window)
    except BaseException:
        client.delete(key)  # not scheduled after all: let the next change try
        raise
    return True


def take_request(client: redis_lib.Redis, target: str) -> None:
    """Called by a build before it claims: changes from now on schedule the next build."""
    client.delete(scheduled_key(target))


class BuildLockTimeout(Exception):
    pass


@contextmanager
def build_lock(client: redis_lib.Redis, target: str, wait: float = LOCK_WAIT) -> Iterator[None]:
    lock = client.lock(f"{PREFIX}lock:{target}", timeout=LOCK_TIMEOUT, blocking_timeout=wait)
    if not lock.acquire():
        raise BuildLockTimeout(f"another build of {target} held the lock for {wait:.0f}s")
    try:
        yield
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.LockError:
            pass  # expired while we built: nothing to release


def request_rebuilds(feed_names, settings, sitemap: bool = True) -> None:
    """Ask, through the process's Redis, for coalesced builds of these feeds (and the news sitemap).
    `settings` is the configuration's `[feed_settings]`."""
    from worker import enqueue, runtime

    client = runtime.redis_client()
    window = settings.rebuild_window
    for name in sorted(set(feed_names)):
        request_build(client, feed_target(name), window, enqueue.build)
    if sitemap and settings.news_sitemap:
        request_build(client, SITEMAP_TARGET, window, enqueue.build)
