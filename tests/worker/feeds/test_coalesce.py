"""Coalescing on a real Redis: one scheduled build per feed per window, and a lock around builds."""

import threading

import pytest

from worker.feeds.coalesce import (
    BuildLockTimeout,
    build_lock,
    feed_target,
    request_build,
    scheduled_key,
    take_request,
)


def test_a_burst_of_requests_schedules_one_build(redis_client):
    scheduled = []
    for _ in range(1000):
        request_build(redis_client, feed_target("all"), 2.0, lambda target, window: scheduled.append((target, window)))
    assert scheduled == [("feed:all", 2.0)]
    # the marker outlives the window (in case the build is slow to start) but not forever
    assert 2 < redis_client.ttl(scheduled_key("feed:all")) <= 62


def test_each_feed_is_coalesced_on_its_own(redis_client):
    scheduled = []
    for name in ("all", "world", "all", "world"):
        request_build(redis_client, feed_target(name), 2.0, lambda target, window: scheduled.append(target))
    assert scheduled == ["feed:all", "feed:world"]


def test_a_change_after_the_build_took_the_request_schedules_the_next_build(redis_client):
    scheduled = []

    def schedule(target, window):
        scheduled.append(target)

    request_build(redis_client, "feed:all", 2.0, schedule)
    take_request(redis_client, "feed:all")  # the build starts: it is about to claim
    assert request_build(redis_client, "feed:all", 2.0, schedule) is True
    assert request_build(redis_client, "feed:all", 2.0, schedule) is False
    assert scheduled == ["feed:all", "feed:all"]


def test_a_request_whose_build_could_not_be_enqueued_is_not_remembered(redis_client):
    def broker_down(target, window):
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        request_build(redis_client, "feed:all", 2.0, broker_down)
    assert redis_client.get(scheduled_key("feed:all")) is None
    scheduled = []
    assert request_build(redis_client, "feed:all", 2.0, lambda t, w: scheduled.append(t))
    assert scheduled == ["feed:all"]


def test_two_builds_of_one_feed_never_overlap(redis_client):
    inside = threading.Event()
    release = threading.Event()

    def first_build():
        with build_lock(redis_client, "feed:all"):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=first_build)
    thread.start()
    assert inside.wait(10)
    try:
        with pytest.raises(BuildLockTimeout):
            with build_lock(redis_client, "feed:all", wait=0.2):
                pass
        with build_lock(redis_client, "feed:world", wait=0.2):
            pass  # another feed is not held up
    finally:
        release.set()
        thread.join(10)
    with build_lock(redis_client, "feed:all", wait=1):
        pass
