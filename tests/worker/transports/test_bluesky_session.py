"""Bluesky sessions: made once, shared by every worker through Redis (or per process
without it), refreshed on ExpiredToken, re-made only when a refresh is refused."""

from __future__ import annotations

import threading

import pytest
import redis as redis_lib

from tests.support.bluesky_server import (
    CREATE_RECORD,
    CREATE_SESSION,
    REFRESH_SESSION,
    BlueskyServer,
)
from tests.worker.transports.bluesky_helpers import HANDLE, Row, article, assert_no_secrets, channel, reading
from worker.transports.bluesky import BlueskyTransport
from worker.transports.bluesky_session import Sessions


@pytest.fixture
def pds():
    server = BlueskyServer(handle=HANDLE).start()
    yield server
    server.stop()


@pytest.fixture
def workers(redis_url):
    """Transports as separate worker processes would hold them: each its own Redis client."""
    made = []

    def make(shared: bool = True) -> BlueskyTransport:
        t = BlueskyTransport(redis_client=redis_lib.Redis.from_url(redis_url) if shared else None)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()
        if t.redis is not None:
            t.redis.close()


def _post(transport, dest, n: int = 1) -> list:
    return [Row(transport, dest, article("putin", id=f"wp:{i}")).attempt() for i in range(n)]


def _in_threads(fns) -> list:
    """Run the callables at the same moment, one thread each; their results in order."""
    start = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def run(i, fn):
        start.wait()
        results[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_one_session_for_many_posts(pds, workers):
    dest = channel(pds)
    outcomes = _post(workers(), dest, 5)
    assert [reading(o) for o in outcomes] == ["delivered"] * 5
    assert len(pds.seen(CREATE_SESSION)) == 1 and len(pds.records) == 5


def test_workers_share_the_session_through_redis(pds, workers, redis_client):
    dest = channel(pds)
    _post(workers(), dest)
    _post(workers(), dest)
    assert len(pds.seen(CREATE_SESSION)) == 1
    stored = redis_client.get(Sessions.key(dest))
    assert stored and HANDLE.encode() in stored


def test_workers_starting_together_create_one_session(pds, workers):
    dest = channel(pds)
    pds.slow(CREATE_SESSION, 0.3)  # the first sign-in takes a while; the others must wait for it
    transports = [workers() for _ in range(4)]
    outcomes = _in_threads([lambda t=t, i=i: Row(t, dest, article("putin", id=f"wp:{i}")).attempt()
                            for i, t in enumerate(transports)])
    assert [reading(o) for o in outcomes] == ["delivered"] * 4
    assert len(pds.seen(CREATE_SESSION)) == 1 and len(pds.records) == 4
    assert pds.refused() == []


def test_an_expired_token_is_refreshed_once_and_no_session_is_created(pds, workers):
    dest = channel(pds)
    transports = [workers() for _ in range(4)]
    _post(transports[0], dest)
    pds.expire_access_tokens()

    outcomes = _in_threads([lambda t=t, i=i: Row(t, dest, article("putin", id=f"wp:x{i}")).attempt()
                            for i, t in enumerate(transports)])

    assert [reading(o) for o in outcomes] == ["delivered"] * 4
    # Refresh tokens rotate: a second refresh of the same token would have been refused.
    assert [r.status for r in pds.seen(REFRESH_SESSION)] == [200]
    assert len(pds.seen(CREATE_SESSION)) == 1 and len(pds.records) == 5


def test_a_refused_refresh_creates_a_new_session(pds, workers, caplog):
    caplog.set_level("DEBUG")
    dest = channel(pds)
    t = workers()
    outcomes = _post(t, dest)
    pds.expire_access_tokens()
    pds.revoke_refresh_tokens()

    outcomes += _post(t, dest)

    assert reading(outcomes[-1]) == "delivered"
    assert [r.status for r in pds.seen(REFRESH_SESSION)] == [400]
    assert len(pds.seen(CREATE_SESSION)) == 2
    assert_no_secrets(pds, outcomes, caplog)


def test_a_refresh_the_server_cannot_answer_waits_instead_of_signing_in_again(pds, workers):
    dest = channel(pds)
    t = workers()
    _post(t, dest)
    pds.expire_access_tokens()
    pds.fail(REFRESH_SESSION, 503, {"error": "InternalServerError", "message": "down"})

    outcome = _post(t, dest)[0]

    assert outcome.status_code == 503 and reading(outcome) == "retry"
    assert len(pds.seen(CREATE_SESSION)) == 1
    assert reading(_post(t, dest)[0]) == "delivered"  # next time the refresh works
    assert len(pds.seen(CREATE_SESSION)) == 1


def test_without_redis_each_process_keeps_its_own_session(pds, workers):
    dest = channel(pds)
    t = workers(shared=False)
    pds.slow(CREATE_SESSION, 0.3)
    outcomes = _in_threads([lambda i=i: Row(t, dest, article("putin", id=f"wp:{i}")).attempt() for i in range(3)])
    assert [reading(o) for o in outcomes] == ["delivered"] * 3
    pds.expire_access_tokens()
    assert reading(_post(t, dest)[0]) == "delivered"
    assert len(pds.seen(CREATE_SESSION)) == 1 and len(pds.seen(REFRESH_SESSION)) == 1


def test_a_lost_sign_in_answer_is_retried(pds, workers):
    dest = channel(pds)
    t = workers()
    pds.lose_answer(CREATE_SESSION)
    first = _post(t, dest)[0]
    assert first.status_code is None and reading(first) == "retry"
    assert reading(_post(t, dest)[0]) == "delivered"
    assert len(pds.seen(CREATE_SESSION)) == 2


def test_an_account_refused_even_with_a_fresh_session_disables_the_channel(pds, workers):
    dest = channel(pds)
    pds.fail(CREATE_RECORD, 401, {"error": "AccountTakedown", "message": "Account has been taken down"}, times=2)
    outcome = _post(workers(), dest)[0]
    assert reading(outcome) == "disable" and "AccountTakedown" in outcome.disable
    assert pds.records == {}


def test_a_redis_outage_is_a_retry_not_a_crash(pds):
    dest = channel(pds)
    t = BlueskyTransport(redis_client=redis_lib.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1))
    try:
        outcome = _post(t, dest)[0]
    finally:
        t.close()
    assert reading(outcome) == "retry" and outcome.error_class == "session_store_error"
    assert pds.requests == []
