"""How fast the WordPress poller reads a site, against the stand-in WordPress on loopback.

    .venv/bin/python -m bench.poll_wordpress [--posts 2000] [--repeat 5]

Prints medians of: a first poll of N posts (everything new), an idle poll (nothing
changed: the cost paid every `interval`), and a poll after 50 edits. Uses a SQLite store
in a temporary folder and a Redis database number claimed the way the tests claim one.
The stand-in WordPress runs in a process of its own (as a real site would be elsewhere):
in the poller's process, its JSON encoding would share the poller's GIL and be measured
as the poller's time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import load_average  # noqa: E402
from config import parse_config  # noqa: E402
from tests.support.wordpress_server import WordPressServer, now_utc  # noqa: E402
import tasks  # noqa: E402,F401 - installs the scheduler polls use
from worker.store import Store  # noqa: E402
from worker.watch import poll_source  # noqa: E402

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def claim_redis() -> tuple[redis.Redis, redis.Redis, int, str]:
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    token = f"bench-{uuid.uuid4().hex}"
    for number in range(1, 16):
        if admin.set(f"syndicate-tests:db-claim:{number}", token, nx=True, ex=3600):
            return admin, redis.Redis.from_url(f"{REDIS_BASE}/{number}"), number, token
    raise SystemExit("no free Redis database number")


def serve_wordpress(posts: int, conn) -> None:
    """The stand-in in its own process: publishes `posts`, sends its URL, then takes commands."""
    wp = WordPressServer(unstable_ties=True).start()
    base = now_utc() - timedelta(hours=2)
    for i in range(posts):
        # a few posts per second, some seconds shared: as a busy site saves them
        wp.publish(f"Story {i}", when=base + timedelta(seconds=i // 3))
    conn.send(wp.url)
    while True:
        command = conn.recv()
        if command == "edit50":
            for post_id in list(wp.posts)[:50]:
                wp.edit(post_id, title=f"Edited {post_id}")
            conn.send("ok")
        elif command == "requests":
            conn.send(len([r for r in wp.requests if r.param("orderby") == "modified"]))
        else:
            wp.stop()
            conn.send("stopped")
            return


class RemoteWordPress:
    def __init__(self, posts: int):
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("fork").Process(target=serve_wordpress, args=(posts, child))
        self.proc.start()
        self.url = self.conn.recv()

    def ask(self, command: str):
        self.conn.send(command)
        return self.conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self.proc.join(10)


def run_once(posts: int, admin_client: redis.Redis, first_only: bool = False) -> dict[str, float]:
    wp = RemoteWordPress(posts)
    config = parse_config(f"""
[site]
title = "Bench"
url = "https://bench.example"
feeds_url = "https://bench.example/feeds"
[[sources]]
name = "wp"
type = "wordpress"
url = "{wp.url}"
""", "bench.toml", {})
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        store.migrate()
        timings = {}
        start = time.perf_counter()
        first = poll_source("wp", config=config, store=store, redis_client=admin_client)
        timings["first"] = time.perf_counter() - start
        assert first.published == posts + 12, first.summary()
        if first_only:
            store.dispose()
            wp.stop()
            return timings
        start = time.perf_counter()
        poll_source("wp", config=config, store=store, redis_client=admin_client)
        timings["idle"] = time.perf_counter() - start
        wp.ask("edit50")
        start = time.perf_counter()
        edited = poll_source("wp", config=config, store=store, redis_client=admin_client)
        timings["edits"] = time.perf_counter() - start
        assert edited.updated == 50, edited.summary()
        timings["requests_first"] = wp.ask("requests")
        store.dispose()
    wp.stop()
    return timings


def run(posts: int, repeat: int, first_only: bool = False) -> dict[str, float]:
    """Medians over `repeat` runs: seconds for the first, idle and after-edits polls."""
    admin, client, number, token = claim_redis()
    try:
        runs = [run_once(posts, client, first_only) for _ in range(repeat)]
    finally:
        client.flushdb()
        if admin.get(f"syndicate-tests:db-claim:{number}") == token.encode():
            admin.delete(f"syndicate-tests:db-claim:{number}")
    keys = ("first",) if first_only else ("first", "idle", "edits")
    return {k: statistics.median(r[k] for r in runs) for k in keys} | {
        "posts": posts + 12, "rounds": [r["first"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    before = load_average()
    r = run(args.posts, args.repeat)
    print(f"load average before {before}, after {load_average()}")
    print(f"posts: {r['posts']}, runs: {args.repeat} (SQLite store, stand-in WordPress on loopback, own process)")
    print(f"first poll (all new):   median {r['first']:.2f}s  = {r['posts'] / r['first']:.0f} posts/s")
    print(f"idle poll (no changes): median {r['idle'] * 1000:.0f}ms")
    print(f"poll after 50 edits:    median {r['edits'] * 1000:.0f}ms")
    print(f"ratio first/idle: {r['first'] / r['idle']:.1f}x")


if __name__ == "__main__":
    main()
