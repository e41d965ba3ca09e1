"""tasks.feeds: builds (and their retries on a disk error), the sweep's rebuild request, and
WebSub pings: retried on the broker while the hub may recover, dropped (and logged) when
the hub refuses for good."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from celery.exceptions import Retry

from tests.tasks.conftest import as_worker, queued
from tests.worker.delivery.conftest import article, store_article
from worker.store import utcnow

TOPIC = "https://london-news-net.example/feeds/all.rss"


@pytest.fixture
def feeds(task_env, hub):
    return task_env(feeds=[{"name": "all", "title": "All stories"}],
                    extra=f'[websub]\nhubs = ["{hub.url}"]\n[feed_settings]\nrebuild_window = "2s"\n')


def test_a_ping_the_hub_accepts_is_sent_once(task_env, hub, redis_client, caplog):
    from tasks.feeds import ping_hub

    redis_client.delete("feeds")
    with caplog.at_level(logging.INFO, "syndicate.feeds"), as_worker(ping_hub):
        ping_hub.run(hub.url, TOPIC)
    [ping] = hub.received
    assert ping.accepted and ping.topic == TOPIC
    assert "stage=websub-pinged" in caplog.text and queued(redis_client, "feeds") == []


@pytest.mark.parametrize("status", [503, 429, 408, 500])
def test_a_ping_the_hub_may_take_later_is_retried_on_the_broker(task_env, hub, redis_client, status):
    from tasks.feeds import ping_hub

    hub.plan.append((status, b"busy"))
    redis_client.delete("feeds")
    with pytest.raises(Retry), as_worker(ping_hub, retries=2):
        ping_hub(hub.url, TOPIC)
    [retry] = queued(redis_client, "feeds")
    assert (retry["task"], retry["args"], retry["retries"]) == ("tasks.feeds.ping_hub", [hub.url, TOPIC], 3)
    # exponential backoff with full jitter: anywhere from at once (no eta) to 2 ** 3 s for the third retry
    assert retry["eta"] is None or retry["eta"] <= utcnow() + timedelta(seconds=2 ** 3 + 1)
    assert [p.status for p in hub.received] == [status]


def test_a_ping_still_failing_after_its_last_retry_is_given_up(task_env, hub, redis_client):
    from tasks.feeds import HubUnavailable, ping_hub

    hub.plan.append((503, b"busy"))
    redis_client.delete("feeds")
    with pytest.raises(HubUnavailable), as_worker(ping_hub, retries=ping_hub.max_retries):
        ping_hub(hub.url, TOPIC)
    assert queued(redis_client, "feeds") == []


@pytest.mark.parametrize("status", [400, 404, 410, 302])
def test_a_ping_the_hub_refuses_for_good_is_dropped_and_logged(task_env, hub, redis_client, caplog, status):
    from tasks.feeds import ping_hub

    hub.plan.append((status, b"unknown topic"))
    redis_client.delete("feeds")
    with caplog.at_level(logging.INFO, "syndicate.feeds"), as_worker(ping_hub):
        assert ping_hub(hub.url, TOPIC) is None
    assert queued(redis_client, "feeds") == []
    [line] = [r for r in caplog.records if "stage=websub-failed" in r.getMessage()]
    assert line.levelno == logging.ERROR and "not retried" in line.getMessage()
    assert len(hub.received) == 1


def test_build_feed_writes_the_files_and_enqueues_one_ping_per_changed_file(feeds, store, redis_client, tmp_path):
    from tasks.feeds import build_feed

    store_article(store, feeds, article(1))
    redis_client.delete("feeds")
    with as_worker(build_feed):
        build_feed("all")
    assert {p.name for p in (tmp_path / "feeds").iterdir()} >= {"all.rss", "all.atom", "all.json"}
    pings = [m for m in queued(redis_client, "feeds") if m["task"] == "tasks.feeds.ping_hub"]
    assert sorted(m["args"][1].rsplit("/", 1)[1] for m in pings) == ["all.atom", "all.json", "all.rss"]
    # built again with nothing changed: no file changes, no ping
    redis_client.delete("feeds")
    with as_worker(build_feed):
        build_feed("all")
    assert [m for m in queued(redis_client, "feeds") if m["task"] == "tasks.feeds.ping_hub"] == []


def test_build_feed_on_a_disk_error_is_retried_later_on_the_broker(feeds, store, redis_client, tmp_path,
                                                                 monkeypatch):
    from tasks.feeds import build_feed

    store_article(store, feeds, article(1))
    (tmp_path / "feeds").write_text("a file where the feeds folder should be")  # writing fails: OSError
    redis_client.delete("feeds")
    with pytest.raises(Retry), as_worker(build_feed, retries=1):
        build_feed("all")
    retries = [m for m in queued(redis_client, "feeds") if m["task"] == "tasks.feeds.build_feed"]
    assert [(m["args"], m["retries"]) for m in retries] == [(["all"], 2)]
    # backoff: 5 s doubled per retry
    assert utcnow() + timedelta(seconds=8) <= retries[0]["eta"] <= utcnow() + timedelta(seconds=11)


def test_rebuild_feed_asks_for_one_coalesced_build_after_the_window(feeds, redis_client):
    from tasks.feeds import rebuild_feed

    redis_client.delete("feeds")
    rebuild_feed("all")
    rebuild_feed("all")  # a second request within the window joins the first
    builds = [m for m in queued(redis_client, "feeds") if m["task"] == "tasks.feeds.build_feed"]
    assert [m["args"] for m in builds] == [["all"]]
    assert builds[0]["eta"] >= utcnow() + timedelta(seconds=1)
