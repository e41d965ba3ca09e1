"""How fast the WordPress poller reads a site, against the stand-in WordPress on loopback.

    .venv/bin/python -m bench.poll_wordpress [--posts 2000] [--repeat 5]

Prints medians of: a first poll of N posts (everything new), an idle poll (nothing
changed: the cost paid every `interval`), and a poll after 50 edits. Uses a SQLite store
in a temporary folder and a Redis database number claimed the way the tests claim one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import timedelta

import redis

from config import parse_config
from tests.support.wordpress_server import WordPressServer, now_utc
import tasks  # noqa: E402,F401 - installs the scheduler polls use
from worker.store import Store
from worker.watch import poll_source

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def claim_redis() -> tuple[redis.Redis, redis.Redis, int, str]:
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0")
    token = f"bench-{uuid.uuid4().hex}"
    for number in range(1, 16):
        if admin.set(f"syndicate-tests:db-claim:{number}", token, nx=True, ex=3600):
            return admin, redis.Redis.from_url(f"{REDIS_BASE}/{number}"), number, token
    raise SystemExit("no free Redis database number")


def run_once(posts: int, admin_client: redis.Redis) -> dict[str, float]:
    wp = WordPressServer(unstable_ties=True).start()
    base = now_utc() - timedelta(hours=2)
    for i in range(posts):
        # a few posts per second, some seconds shared: as a busy site saves them
        wp.publish(f"Story {i}", when=base + timedelta(seconds=i // 3))
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
        start = time.perf_counter()
        poll_source("wp", config=config, store=store, redis_client=admin_client)
        timings["idle"] = time.perf_counter() - start
        for post_id in list(wp.posts)[:50]:
            wp.edit(post_id, title=f"Edited {post_id}")
        start = time.perf_counter()
        edited = poll_source("wp", config=config, store=store, redis_client=admin_client)
        timings["edits"] = time.perf_counter() - start
        assert edited.updated == 50, edited.summary()
        timings["requests_first"] = len([r for r in wp.requests if r.param("orderby") == "modified"])
        store.dispose()
    wp.stop()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    admin, client, number, token = claim_redis()
    try:
        runs = [run_once(args.posts, client) for _ in range(args.repeat)]
    finally:
        client.flushdb()
        if admin.get(f"syndicate-tests:db-claim:{number}") == token.encode():
            admin.delete(f"syndicate-tests:db-claim:{number}")
    first = statistics.median(r["first"] for r in runs)
    idle = statistics.median(r["idle"] for r in runs)
    edits = statistics.median(r["edits"] for r in runs)
    total = args.posts + 12
    print(f"posts: {total}, runs: {args.repeat} (SQLite store, stand-in WordPress on loopback)")
    print(f"first poll (all new):   median {first:.2f}s  = {total / first:.0f} posts/s")
    print(f"idle poll (no changes): median {idle * 1000:.0f}ms")
    print(f"poll after 50 edits:    median {edits * 1000:.0f}ms")
    print(f"ratio first/idle: {first / idle:.1f}x")


if __name__ == "__main__":
    main()
