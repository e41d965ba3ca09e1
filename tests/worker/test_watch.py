"""Polling orchestration: one poll at a time, failures reported once, scheduling, and the
whole thing under `syndicate run` against the stand-in WordPress while posts change."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import BIN, Deployment, start_running, wait_until, write_config
from tests.support.wordpress_server import wordpress  # noqa: F401
from tests.worker.sources.helpers import events, poll, source_config
from worker.store import EventRow, SourceStateRow, Store, utcnow
from worker.watch import LOCK_PREFIX, due_sources, lock_ttl


def wp_config(server, **extra):
    return source_config(name="wp", type="wordpress", url=server.url, interval="1s", timeout="1s", **extra)


def state(store) -> SourceStateRow:
    with store.session() as s:
        return s.get(SourceStateRow, "wp")


def watch_records(caplog, level, fragment):
    return [r for r in caplog.records if r.name == "syndicate.watch" and r.levelno == level
            and fragment in r.getMessage()]


# --- failures -----------------------------------------------------------------------------

def test_a_source_down_for_several_polls_is_reported_once_keeps_its_cursor_and_once_on_recovery(
        wordpress, store, redis_client, caplog):
    config = wp_config(wordpress)
    poll(config, store, redis_client)
    cursor = state(store).cursor
    caplog.clear()

    # when the site fails four polls in a row, four different ways
    results = []
    with caplog.at_level(logging.INFO):
        for mode in ("500", "timeout", "invalid_json", "401"):
            wordpress.fail_with(mode)
            results.append(poll(config, store, redis_client))
        published_meanwhile = wordpress.publish("Filed during the outage")
        wordpress.fail_with(None)
        recovered = poll(config, store, redis_client)
        poll(config, store, redis_client)

    # then every failed poll kept the cursor, with a growing delay before the next
    assert [r.status for r in results] == ["failed"] * 4
    assert [r.consecutive_failures for r in results] == [1, 2, 3, 4]
    delays = [(r.next_poll_at - utcnow()).total_seconds() for r in results]
    assert delays[1] < delays[2] and delays[-1] >= 500  # 401 is permanent: straight to the longest wait
    # and it was reported once when it started failing, once on recovery
    assert len(watch_records(caplog, logging.ERROR, "source=wp is failing")) == 1
    assert len(watch_records(caplog, logging.INFO, "source=wp still failing")) == 3
    assert len(watch_records(caplog, logging.WARNING, "source=wp recovered after 4 failed poll(s)")) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "is failing" not in r.getMessage()]
    # and nothing was lost: the post filed meanwhile arrived once
    assert recovered.status == "ok" and recovered.published == 1
    assert events(store, f"wp:{published_meanwhile}") == [(f"wp:{published_meanwhile}", "article.published")]
    now = state(store)
    assert now.consecutive_failures == 0 and now.failing_since is None and now.last_error is None
    assert now.cursor["modified_gmt"] >= cursor["modified_gmt"]


def test_failure_state_is_kept_in_source_state_between_polls(wordpress, store, redis_client):
    config = wp_config(wordpress)
    wordpress.fail_with("500")
    poll(config, store, redis_client)
    poll(config, store, redis_client)
    row = state(store)
    assert row.consecutive_failures == 2 and row.failing_since is not None
    assert "HTTP 500" in row.last_error and row.last_success_at is None
    assert row.cursor == {}


# --- one poll at a time ----------------------------------------------------------------------

def test_a_poll_that_finds_the_lock_held_skips_says_so_and_touches_nothing(wordpress, store, redis_client, caplog):
    config = wp_config(wordpress)
    held = redis_client.lock(LOCK_PREFIX + "wp", timeout=30)
    assert held.acquire(blocking=False)
    with caplog.at_level(logging.INFO):
        result = poll(config, store, redis_client)
    assert result.status == "skipped"
    assert "source=wp poll skipped: another poll of it is running" in caplog.text
    assert wordpress.requests == [] and events(store) == []
    held.release()
    assert poll(config, store, redis_client).published == 12


def test_the_lock_expires_so_a_poller_that_died_holding_it_does_not_stop_polling(wordpress, store, redis_client):
    config = wp_config(wordpress)
    # a poller that died holding the lock: the lock it took has an expiry of lock_ttl
    wordpress.delay = 0.3
    polled = threading.Thread(target=poll, args=(config, store, redis_client))
    polled.start()
    wait_until(lambda: redis_client.exists(LOCK_PREFIX + "wp"), 10, "the poll to take its lock")
    ttl_ms = redis_client.pttl(LOCK_PREFIX + "wp")
    assert 0 < ttl_ms <= lock_ttl(config.sources[0]) * 1000
    polled.join(30)
    wordpress.delay = 0.0
    # a dead worker's lock, with a long expiry so the skip cannot race the clock
    redis_client.set(LOCK_PREFIX + "wp", "a dead worker's token", px=60_000)
    assert poll(config, store, redis_client).status == "skipped"
    # when it lapses (made to lapse now, rather than waiting a real minute), polling resumes
    redis_client.pexpire(LOCK_PREFIX + "wp", 1)
    wait_until(lambda: not redis_client.exists(LOCK_PREFIX + "wp"), 10, "the lock to lapse")
    assert poll(config, store, redis_client).status == "ok"


# --- scheduling ------------------------------------------------------------------------------

def test_due_sources_hands_each_due_source_out_once_until_its_next_poll(wordpress, store, redis_client):
    config = wp_config(wordpress)
    assert due_sources(config, store) == ["wp"]
    assert due_sources(config, store) == []  # leased while its poll is queued
    poll(config, store, redis_client)  # a poll sets the next one `interval` ahead
    assert due_sources(config, store) == []
    assert due_sources(config, store, now=utcnow() + timedelta(seconds=2)) == ["wp"]


# --- real processes ----------------------------------------------------------------------------

SOURCE_TOML = """
[[sources]]
name = "wp"
type = "wordpress"
url = "{url}"
interval = "1s"
timeout = "{timeout}"
"""


def configure(deployment: Deployment, server, *, partners=(), feeds=(), timeout="5s") -> None:
    write_config(deployment.config, partners=list(partners), feeds=list(feeds),
                 extra=SOURCE_TOML.format(url=server.url, timeout=timeout))


def stored_events(database_url) -> list[tuple[str, str]]:
    store = Store(database_url)
    try:
        with store.session() as s:
            return [(e.article_id, e.type) for e in s.scalars(select(EventRow).order_by(EventRow.id))]
    finally:
        store.dispose()


def start_worker(deployment: Deployment) -> subprocess.Popen:
    # At debug level the worker logs each sweep it runs (`Deployment.wait_for_sweeps`).
    return start_running(deployment, "--loglevel", "DEBUG")


def wait_for_polls(wordpress, count: int = 3, timeout: float = 60) -> None:
    """Evidence that the worker polled again: `count` more polls reached WordPress (each reads
    the posts ordered by modification time)."""
    def polls() -> int:
        return len([r for r in wordpress.requests if r.param("orderby") == "modified"])

    start = polls()
    wait_until(lambda: polls() >= start + count, timeout, f"{count} more polls")


@pytest.mark.slow
def test_two_pollers_started_at_once_exactly_one_polls(deployment, wordpress):
    # given a slow WordPress, so a poll holds its lock for seconds
    configure(deployment, wordpress)
    deployment.syndicate("migrate", check=True)
    wordpress.delay = 1.0

    # when two `syndicate poll wp` start together
    procs = [subprocess.Popen([str(BIN / "syndicate"), "poll", "wp"], env=deployment.env, cwd=deployment.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]

    # then one polled and the other said it skipped
    stdout = [out for out, _ in outputs]
    assert sum("skipped: another poll of this source is running" in out for out in stdout) == 1, outputs
    assert sum("12 published" in out for out in stdout) == 1, outputs
    assert all(p.returncode == 0 for p in procs)
    # and WordPress saw one poll's requests, and each post made one event
    assert len([r for r in wordpress.requests if r.param("orderby") == "modified"]) == 1
    assert Counter(stored_events(deployment.database_url)).most_common(1)[0][1] == 1
    assert len(stored_events(deployment.database_url)) == 12


@pytest.mark.slow
def test_a_worker_killed_mid_poll_and_restarted_misses_nothing_and_repeats_nothing(deployment, wordpress,
                                                                                   redis_client):
    # given `syndicate run` polling a slow WordPress (timeout 2s: the lock lapses 14s after a death)
    configure(deployment, wordpress, timeout="2s")
    deployment.syndicate("migrate", check=True)
    wordpress.delay = 0.4
    worker = start_worker(deployment)
    wait_until(lambda: len(stored_events(deployment.database_url)) == 12, 60, "the fixture's 12 posts")

    # when posts change and the worker is killed while it is reading them
    added = [wordpress.publish(f"Late story {i}") for i in range(3)]
    wordpress.edit(101, title="Putin and Sharaa meet (corrected)")
    seen = len(wordpress.requests)
    wait_until(lambda: len(wordpress.requests) > seen, 30, "a poll to start")
    deployment.stop(worker, sig=signal.SIGKILL)
    # (it died mid-poll: its lock is still there, left to lapse)
    assert redis_client.exists(LOCK_PREFIX + "wp")
    wordpress.unpublish(102)
    start_worker(deployment)

    # then every change arrives exactly once
    expected = Counter({(f"wp:{i}", "article.published"): 1 for i in list(range(101, 113)) + added})
    expected[("wp:101", "article.updated")] = 1
    expected[("wp:102", "article.unpublished")] = 1
    wait_until(lambda: Counter(stored_events(deployment.database_url)) == expected, 90,
               "every change to be stored once")
    wait_for_polls(wordpress, 3)  # a few more polls change nothing
    assert Counter(stored_events(deployment.database_url)) == expected


@pytest.mark.slow
def test_done_when_every_change_made_while_syndicate_run_polls_yields_exactly_one_event(
        deployment, wordpress, partner, partner_secret):
    """Posts are published, edited and unpublished while `syndicate run` polls the stand-in
    WordPress; the worker is restarted mid-run. Every change yields exactly one event of the
    right type in the store and one message at the partner; nothing is missed."""
    configure(deployment, wordpress,
              partners=[{"name": "acme", "url": partner.url, "secret": partner_secret, "allow_private": True,
                         "retry_schedule": ["1s", "1s", "1s"]}],
              feeds=[{"name": "all", "title": "All stories"}])
    deployment.syndicate("migrate", check=True)
    worker = start_worker(deployment)
    expected: list[tuple[str, str]] = [(f"wp:{i}", "article.published") for i in range(101, 113)]

    def partner_events() -> Counter:
        by_message = {r.webhook_id: r for r in partner.verified()}  # a redelivery repeats its webhook-id
        return Counter((r.message["data"]["id"], r.message["type"]) for r in by_message.values())

    def settled():
        return Counter(stored_events(deployment.database_url)) == Counter(expected) \
            and partner_events() == Counter(expected)

    wait_until(settled, 90, "the fixture's posts at the partner")

    # while it polls: two new posts, a correction, a re-save with only whitespace changed,
    # a post taken back to draft and one deleted
    first = wordpress.publish("Storm closes Channel ports")
    second = wordpress.publish("Minister resigns over expenses")
    wordpress.edit(102, title="Drought and frost: emergency declared in southern Russia")
    body = wordpress.post(104)["content"]["rendered"]
    wordpress.edit(104, content=body.replace("</p>\n<p>", "</p>\n\n  <p>"))
    wordpress.unpublish(106)
    wordpress.delete(107)
    expected += [(f"wp:{first}", "article.published"), (f"wp:{second}", "article.published"),
                 ("wp:102", "article.updated"), ("wp:106", "article.unpublished"),
                 ("wp:107", "article.unpublished")]
    wait_until(settled, 90, "the first round of changes")

    # the worker restarts mid-run, with changes made while it is down
    deployment.stop(worker)
    third = wordpress.publish("Late goal sends City top")
    wordpress.edit(first, title="Storm closes Channel ports for a second day")
    wordpress.trash(108)
    wordpress.edit(106, status="publish")  # back from draft
    worker = start_worker(deployment)
    expected += [(f"wp:{third}", "article.published"), (f"wp:{first}", "article.updated"),
                 ("wp:108", "article.unpublished"), ("wp:106", "article.published")]
    wait_until(settled, 90, "the changes made across the restart")

    # and more polls and sweeps later, still nothing more
    wait_for_polls(wordpress, 3)
    deployment.wait_for_sweeps(2)
    assert Counter(stored_events(deployment.database_url)) == Counter(expected)
    assert partner_events() == Counter(expected)
    partner.assert_only_valid()
    report = json.loads(deployment.syndicate("status", "wp:102", "--json", check=True).stdout)
    assert [d["event"] for d in report["deliveries"] if d["kind"] == "partner"] == \
        ["article.published", "article.updated"]
