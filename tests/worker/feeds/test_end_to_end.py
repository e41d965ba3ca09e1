"""Feeds on real components: `syndicate run` (Celery worker + beat) on Redis, a SQLite or
PostgreSQL store, a stand-in WebSub hub; articles published one by one as a source would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from tests.conftest import REPO, start_running, wait_until, write_config
from tests.worker.feeds.validators import assert_valid_feed_files
from worker.store import DeliveryRow, Store

WINDOW = 2.0
BURST = 500
FEED_LIMIT = 50
FEEDS_URL = "https://london-news-net.example/feeds"

# Stores each article in its own transaction and dispatches it at once, as a source
# poller does: 500 separate events, each asking for feed rebuilds.
PUBLISH_ONE_BY_ONE = """
import json, sys
import tasks  # installs the scheduler ingest_articles enqueues through
from worker import runtime
from worker.articles import parse_article
from worker.pipeline import ingest_articles

config, store = runtime.config(), runtime.store()
for i, data in enumerate(json.load(sys.stdin)):
    ingest_articles([parse_article(data, f"burst[{i}]")], config, store)
"""


@pytest.fixture
def feeds_running(deployment, hub):
    """A deployment with two feeds, the stand-in hub, no partners, and `syndicate run` started."""
    write_config(deployment.config, feeds=[
        {"name": "all", "title": "All stories", "limit": FEED_LIMIT},
        {"name": "world", "title": "World", "sections": ["World"], "limit": FEED_LIMIT},
    ], extra=f'[websub]\nhubs = ["{hub.url}"]\n[feed_settings]\nrebuild_window = "{WINDOW:g}s"\n')
    deployment.syndicate("migrate", check=True)
    # At debug level the worker logs each sweep it runs (`Deployment.wait_for_sweeps`).
    deployment.worker = start_running(deployment, "--loglevel", "DEBUG")
    return deployment


def burst_articles(now: datetime) -> list[dict]:
    return [{
        "id": f"web:burst-{i}",
        "url": f"https://london-news-net.example/burst/{i}/",
        "title": f"Burst story {i}",
        "summary": f"Story number {i} of the burst.",
        "content_html": f"<p>Story <a href='/burst/{i + 1}/'>{i}</a>.</p>",
        "authors": ["Live Desk"],
        "section": "World" if i % 2 == 0 else "UK",
        "tags": ["Burst"],
        "image": {"url": f"https://london-news-net.example/media/{i}.jpg", "width": 1200, "height": 800},
        "language": "en",
        "published_at": (now - timedelta(seconds=i)).isoformat(),
    } for i in range(BURST)]


def builds(deployment, feed: str) -> list[str]:
    """The `changed=` field of each build of `feed` the worker logged."""
    return re.findall(rf"feed={re.escape(feed)} stage=feed-built .*?changed=(\S+)", deployment.log(deployment.worker))


def changed_files(deployment) -> list[str]:
    return [f for feed in ("all", "world") for changed in builds(deployment, feed) if changed != "none"
            for f in changed.split(",")]


def undelivered_feed_rows(deployment) -> int:
    store = Store(deployment.database_url)
    try:
        with store.session() as s:
            return s.scalar(select(func.count()).select_from(DeliveryRow)
                            .where(DeliveryRow.kind == "feed", DeliveryRow.status != "delivered"))
    finally:
        store.dispose()


def feed_ids(deployment, name: str) -> list[str]:
    path = deployment.feeds_dir / f"{name}.json"
    return [item["id"] for item in json.loads(path.read_bytes())["items"]] if path.exists() else []


def sitemap_urls(deployment) -> int:
    path = deployment.feeds_dir / "news-sitemap.xml"
    return path.read_text().count("<url>") if path.exists() else 0


def expected_ids(indexes) -> list[str]:
    return [f"tag:london-news-net.example,{datetime.now(timezone.utc).year}:web:burst-{i}" for i in indexes]


@pytest.mark.slow
def test_a_burst_is_coalesced_ends_in_the_right_state_and_pings_once_per_changed_file(feeds_running, hub):
    deployment = feeds_running
    now = datetime.now(timezone.utc).replace(microsecond=0)

    # when 500 articles are published one by one
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", PUBLISH_ONE_BY_ONE], input=json.dumps(burst_articles(now)), text=True,
                   env=deployment.env, cwd=REPO, check=True, timeout=300)
    burst_seconds = time.monotonic() - started

    # then the feeds end holding the newest stories of each
    wait_until(lambda: undelivered_feed_rows(deployment) == 0
               and feed_ids(deployment, "all") == expected_ids(range(FEED_LIMIT))
               and feed_ids(deployment, "world") == expected_ids(range(0, 2 * FEED_LIMIT, 2)),
               120, "the final state in every feed", interval=0.5)
    # and the news sitemap lists every one of them
    wait_until(lambda: sitemap_urls(deployment) == BURST, 60, "the final sitemap", interval=0.5)
    files = {f.name: f.read_bytes() for f in deployment.feeds_dir.iterdir() if not f.name.startswith(".")}
    for name in ("all", "world"):
        assert_valid_feed_files(files, FEEDS_URL, name)

    # and each feed was rebuilt a few times, not 500: at most once per window, plus the trailing build
    allowed = int(burst_seconds / WINDOW) + 3
    for name in ("all", "world"):
        count = len(builds(deployment, name))
        assert 1 <= count <= allowed, f"{name}: {count} builds for a {burst_seconds:.1f}s burst (allowed {allowed})"
        print(f"{name}: {count} builds for {BURST} articles published in {burst_seconds:.1f}s")

    # and the hub got exactly one publish ping per changed file, for the feed files only
    expected = changed_files(deployment)
    pings = hub.wait_for(lambda got: len(got) >= len(expected), 60)
    # nothing more arrives: the sweeps that would rebuild (and so ping) anything left ran meanwhile
    deployment.wait_for_sweeps(2)
    assert len(hub.received) == len(expected) and all(p.accepted for p in hub.received)
    topics = sorted(p.topic for p in pings)
    assert topics == sorted(f"{FEEDS_URL}/{f}" for f in expected)
    assert not any("sitemap" in t for t in topics)

    # when nothing changed and the feeds are built again by hand, no file changes and no ping is sent
    result = deployment.syndicate("feeds", "build", check=True)
    assert re.findall(r"(\S+)  (changed|unchanged)", result.stdout) == [
        ("all.rss", "unchanged"), ("all.atom", "unchanged"), ("all.json", "unchanged"),
        ("world.rss", "unchanged"), ("world.atom", "unchanged"), ("world.json", "unchanged"),
        ("news-sitemap.xml", "unchanged")]
    deployment.wait_for_sweeps(2)
    assert len(hub.received) == len(expected)

    # when a file is lost, `syndicate feeds build NAME` rewrites it and pings the hub for it alone
    (deployment.feeds_dir / "all.rss").unlink()
    result = deployment.syndicate("feeds", "build", "all", check=True)
    assert "all.rss  changed" in result.stdout and "all.atom  unchanged" in result.stdout
    got = hub.wait_for(lambda got: len(got) == len(expected) + 1, 30)
    assert got[-1].topic == f"{FEEDS_URL}/all.rss" and got[-1].accepted


@pytest.mark.slow
def test_a_failing_hub_is_retried_and_never_holds_up_a_build(feeds_running, hub, tmp_path):
    deployment = feeds_running
    hub.plan.extend([(503, b"busy")] * 3)
    story = dict(burst_articles(datetime.now(timezone.utc))[0], id="web:one", url="https://london-news-net.example/one/",
                 title="One story", section="UK")
    path = tmp_path / "one.json"
    path.write_text(json.dumps(story))

    deployment.syndicate("ingest", str(path), check=True)

    # the feed is rebuilt while the hub still fails
    wait_until(lambda: feed_ids(deployment, "all") and undelivered_feed_rows(deployment) == 0, 60, "the build")
    # and the three changed files reach the hub once each after the retries
    pings = hub.wait_for(lambda got: len([p for p in got if p.accepted]) >= 3, 90)
    accepted = sorted(p.topic for p in pings if p.accepted)
    assert accepted == sorted(f"{FEEDS_URL}/all.{ext}" for ext in ("rss", "atom", "json"))
    assert [p.status for p in pings if not p.accepted] == [503, 503, 503]
    log = deployment.log(deployment.worker)
    assert log.count("stage=websub-retry") == 3 and "stage=websub-pinged" in log
    assert builds(deployment, "world") == []  # a UK story does not touch the World feed


def test_feeds_build_names_an_unknown_feed(deployment):
    write_config(deployment.config, feeds=[{"name": "all", "title": "All"}, {"name": "world", "title": "World"}])
    result = deployment.syndicate("feeds", "build", "sport")
    assert result.returncode == 2 and "no feed named 'sport'" in result.stderr and "all, world" in result.stderr


def test_feeds_build_works_without_redis_and_says_what_it_skipped(deployment, tmp_path):
    # given a store with one story and no Redis reachable
    write_config(deployment.config, feeds=[{"name": "all", "title": "All"}],
                 extra='[websub]\nhubs = ["https://hub.example/"]\n')
    deployment.env["REDIS_URL"] = "redis://127.0.0.1:1/0"
    story = dict(burst_articles(datetime.now(timezone.utc))[0], id="web:one")
    path = tmp_path / "one.json"
    path.write_text(json.dumps(story))
    deployment.syndicate("ingest", str(path), check=True)  # stored; the build request is logged as not sent

    # when only the sitemap is built, then only it is written
    result = deployment.syndicate("feeds", "build", "news-sitemap", check=True)
    assert "news-sitemap.xml  changed" in result.stdout and "all.rss" not in result.stdout
    # when the feeds are built, they are written, and the missing lock and pings are named
    result = deployment.syndicate("feeds", "build", check=True)
    assert "all.rss  changed" in result.stdout and "news-sitemap.xml  unchanged" in result.stdout
    assert "redis unreachable" in result.stderr and "hubs will not be notified" in result.stderr
    assert feed_ids(deployment, "all") == [f"tag:london-news-net.example,{datetime.now(timezone.utc).year}:web:one"]
