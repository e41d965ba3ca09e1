"""The executor against a real store (SQLite and PostgreSQL), real Redis and a stand-in
partner that verifies signatures: every outcome, the gates, order, and the attempt log."""

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import wait_until
from tests.support.partner_server import RESET, Slow, redirect, retry_after
from tests.worker.delivery.conftest import (
    article, attempts, make_config, make_due, partner_entry, row, rows, store_article,
)
from worker.delivery.health import CircuitBreaker
from worker.store import DeliveryRow, DestinationStateRow, utcnow


def test_a_batch_is_delivered_signed_and_each_attempt_logged(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    [delivery_id] = store_article(store, config, article(1))
    server.plan.append((500, {}, b"busy"))
    deliverer = deliverer_for(config)

    # first attempt: the partner answers 500, so a retry is scheduled
    result = deliverer.run([delivery_id])
    assert [i for i, _ in result.later] == [delivery_id]
    r = row(store, delivery_id)
    assert (r.status, r.attempts, r.last_status_code) == ("pending", 1, 500)
    # a second run before it is due does nothing
    assert deliverer.run([delivery_id]).claimed == 0
    make_due(store, delivery_id)
    deliverer.run([delivery_id])

    # both attempts carried the same message id and verified at the partner
    assert [r.verified for r in server.received] == [True, True]
    assert {r.webhook_id for r in server.received} == {row(store, delivery_id).message_id}
    r = row(store, delivery_id)
    assert (r.status, r.attempts, r.delivered_at is not None) == ("delivered", 2, True)
    first, second = attempts(store, delivery_id)
    assert (first.status_code, first.outcome, first.error_class, first.response_body) == (500, "pending",
                                                                                         "http_500", "busy")
    assert first.started_at <= first.finished_at and first.duration_ms >= 0
    assert (second.status_code, second.outcome, second.error_class) == (200, "delivered", None)


FAILURES = [
    # (what the partner does, status after, error class, words in last_error)
    (redirect(302, "https://moved.example/in"), "pending", "http_302", "https://moved.example/in"),
    ((408, {}, b"timeout"), "pending", "http_408", "HTTP 408"),
    ((500, {}, b"oops"), "pending", "http_500", "HTTP 500"),
    ((502, {}, b""), "pending", "http_502", "HTTP 502"),
    (Slow(4.0), "pending", "timeout", "timeout"),
    (RESET, "pending", "connection_error", "connection_error"),
    ((400, {}, b'{"error":"no such section"}'), "failed", "http_400", "no such section"),
    ((404, {}, b""), "failed", "http_404", "HTTP 404"),
    ((422, {}, b"bad"), "failed", "http_422", "HTTP 422"),
]


@pytest.mark.parametrize("reply, status, error_class, words", FAILURES,
                         ids=["302", "408", "500", "502", "slow", "reset", "400", "404", "422"])
def test_each_way_a_partner_fails_leads_to_its_outcome(sqlite_url, request, redis_client, servers, reply, status,
                                                       error_class, words):
    from tests.conftest import migrated_copy
    from worker.delivery import DeliveryEngine
    from worker.store import Store

    migrated_copy(sqlite_url, request)
    store = Store(sqlite_url)
    server = servers()
    server.plan.append(reply)
    config = make_config(partner_entry("acme", server, timeout="1s"))
    [delivery_id] = store_article(store, config, article(1))
    # Wait for the send here (the timeout is 1 s): this table is about outcomes, not about
    # leaving slow sends to the background.
    deliverer = DeliveryEngine(store, config, redis_client=redis_client, task_wait=5)
    try:
        result = deliverer.run([delivery_id])
    finally:
        deliverer.pool.shutdown()
    r = row(store, delivery_id)
    assert r.status == status and r.attempts == 1
    assert words in r.last_error
    [attempt] = attempts(store, delivery_id)
    assert attempt.error_class == error_class and attempt.outcome == status
    assert (len(result.later) == 1) == (status == "pending")
    if status == "pending":
        assert r.next_attempt_at > utcnow()
    # the request the partner failed was one a real partner accepts: signed, fresh, JSON, right path
    server.assert_only_valid()
    [got] = server.received
    assert got.verified and got.path == "/hooks"
    store.dispose()


def test_429_and_503_wait_as_long_as_retry_after_says(store, servers, deliverer_for):
    server = servers()
    when = (utcnow() + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    server.plan.extend([retry_after(429, "40"), retry_after(503, when)])
    config = make_config(partner_entry("acme", server))
    first = store_article(store, config, article(1))[0]
    second = store_article(store, config, article(2))[0]
    deliverer = deliverer_for(config, lanes=1)
    deliverer.run([first, second])
    by_id = {r.id: r for r in rows(store)}
    assert 39 <= (by_id[first].next_attempt_at - utcnow()).total_seconds() <= 45
    assert 85 <= (by_id[second].next_attempt_at - utcnow()).total_seconds() <= 100


def test_after_the_last_scheduled_attempt_the_delivery_is_dead(store, servers, deliverer_for):
    server = servers()
    server.default = (503, {}, b"down")
    config = make_config(partner_entry("acme", server, retry_schedule=["1s", "1s"]))
    [delivery_id] = store_article(store, config, article(1))
    deliverer = deliverer_for(config)
    for _ in range(3):
        deliverer.run([delivery_id])
        make_due(store, delivery_id)
    r = row(store, delivery_id)
    assert (r.status, r.attempts) == ("dead", 3) and "gave up after 3 attempts" in r.last_error
    assert r.next_attempt_at is None
    assert deliverer.run([delivery_id]).claimed == 0
    assert len(server.received) == 3 and len({x.webhook_id for x in server.received}) == 1


def test_410_disables_the_partner_and_its_deliveries_wait_for_it(store, servers, deliverer_for, caplog):
    server = servers()
    server.plan.append((410, {}, b"gone"))
    config = make_config(partner_entry("acme", server))
    first = store_article(store, config, article(1))[0]
    deliverer = deliverer_for(config)
    deliverer.run([first])
    with store.session() as s:
        state = s.get(DestinationStateRow, ("partner", "acme"))
        assert state.disabled and state.disabled_by == "policy" and "410" in state.disabled_reason
    assert "partner=acme stage=disabled" in caplog.text
    # no more attempts: neither the 410'd delivery nor a new one is sent
    second = store_article(store, config, article(2))[0]
    make_due(store, first)
    assert deliverer.run([first, second]).claimed == 0
    assert len(server.received) == 1
    assert {r.status for r in rows(store)} == {"pending"}
    # enabled again: both go out
    with store.session() as s:
        s.execute(update(DestinationStateRow).values(disabled=False))
    deliverer.run([first, second])
    assert {r.status for r in rows(store)} == {"delivered"}
    assert len(server.verified()) == 3


def test_the_rate_limit_holds_deliveries_back_without_spending_attempts(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server, rate_limit="2/s"))
    ids = [store_article(store, config, article(n))[0] for n in range(5)]
    deliverer = deliverer_for(config)
    result = deliverer.run(ids)
    assert (result.sent, result.held) == (2, 3)
    held = [r for r in rows(store) if r.status == "pending"]
    assert len(held) == 3 and all(r.attempts == 0 for r in held)
    assert all(r.next_attempt_at > utcnow() for r in held)
    assert len(attempts(store)) == 2 and len(server.received) == 2
    # as the budget refills, the rest go
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(r.status != "delivered" for r in rows(store)):
        time.sleep(0.3)
        deliverer.run(ids)
    assert all(r.status == "delivered" and r.attempts == 1 for r in rows(store))


def test_the_breaker_pauses_a_partner_that_fails_every_attempt(store, redis_client, servers, deliverer_for):
    server = servers()
    server.default = (500, {}, b"down")
    config = make_config(partner_entry("acme", server, retry_schedule=["1s"] * 10))
    breaker = CircuitBreaker(redis_client, threshold=3, cooloff=600)
    deliverer = deliverer_for(config, breaker=breaker)
    ids = [store_article(store, config, article(n))[0] for n in range(3)]
    deliverer.run(ids)
    assert breaker.state("partner:acme").state == "open"
    assert len(server.received) == 3

    # while open: nothing is sent and no attempt is spent
    make_due(store, *ids)
    new = store_article(store, config, article(9))[0]
    result = deliverer.run(ids + [new])
    assert result.sent == 0 and result.held == 4
    assert len(server.received) == 3
    assert row(store, new).attempts == 0 and row(store, new).next_attempt_at > utcnow()

    # after the cool-off one probe goes; it succeeds, the circuit closes and the rest follow
    server.default = (200, {}, b"{}")
    cool_off(redis_client, breaker, "partner:acme")
    make_due(store, *ids, new)
    result = deliverer.run(ids + [new])
    assert result.sent == 1 and len(server.received) == 4
    assert breaker.state("partner:acme").state == "closed"
    make_due(store, *ids, new)
    deliverer.run(ids + [new])
    assert {r.status for r in rows(store)} == {"delivered"}
    server.assert_only_valid()


def cool_off(redis_client, breaker, key):
    """Pretend the breaker's (10-minute) cool-off has passed, as make_due does for rows:
    no race with the real clock."""
    _, open_until, _, _ = breaker._keys(key)
    assert breaker.state(key).state == "open"
    redis_client.set(open_until, time.time() - 1)


def test_a_slow_partner_never_delays_a_healthy_one(store, servers, deliverer_for):
    slow, fast = servers(), servers()
    slow.default = Slow(4.0)
    config = make_config(partner_entry("slow", slow, timeout="8s"), partner_entry("fast", fast))
    deliverer = deliverer_for(config, task_wait=0.5, lanes=1)
    # one article fans out to both: the task returns with the fast one recorded
    first = store_article(store, config, article(1))
    result = deliverer.run(first)
    assert result.background == 1
    by_partner = {r.destination: r for r in rows(store, *first)}
    assert by_partner["fast"].status == "delivered"
    assert by_partner["slow"].status == "sending"
    slow_id = by_partner["slow"].id
    # a second article while the slow partner's only lane is busy: the fast one goes, the slow one waits
    second = store_article(store, config, article(2))
    result = deliverer.run(second)
    by_partner = {r.destination: r for r in rows(store, *second)}
    assert by_partner["fast"].status == "delivered"
    assert by_partner["slow"].status == "pending" and by_partner["slow"].attempts == 0
    # the slow send finishes in the background and records itself
    wait_until(lambda: row(store, slow_id).status == "delivered", 30, "the slow partner's delivery to be recorded")
    assert len(slow.verified()) == 1


def test_an_overtaken_version_is_superseded_when_claimed(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    [old] = store_article(store, config, article(1))
    # the old version was on its way when the correction came in, then its attempt failed
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == old).values(status="sending",
                                                                           lease_until=utcnow()))
    [new] = store_article(store, config, article(1, title="Corrected headline"))
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == old).values(status="pending", lease_until=None))
    result = deliverer_for(config).run([old, new])
    assert result.superseded == 1
    assert row(store, old).status == "superseded" and row(store, new).status == "delivered"
    assert [r.message["data"]["title"] for r in server.received] == ["Corrected headline"]


def test_a_newer_version_waits_while_the_older_one_is_in_flight(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    [old] = store_article(store, config, article(1))
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == old).values(
            status="sending", lease_until=utcnow() + timedelta(seconds=30)))
    [new] = store_article(store, config, article(1, title="Corrected headline"))
    result = deliverer_for(config).run([new])
    assert result.claimed == 0 and [i for i, _ in result.later] == [new]
    assert server.received == [] and row(store, new).status == "pending"


def test_no_secret_or_signature_is_kept_from_a_partner_that_echoes_them(store, servers, deliverer_for):
    server = servers()
    server.plan.append(lambda rec: (500, {}, (rec.headers["webhook-signature"] + " " + server.secret).encode()))
    config = make_config(partner_entry("acme", server))
    [delivery_id] = store_article(store, config, article(1))
    deliverer_for(config).run([delivery_id])
    [attempt] = attempts(store, delivery_id)
    signature = server.received[0].headers["webhook-signature"]
    kept = attempt.response_body + attempt.error + row(store, delivery_id).last_error
    assert "[redacted]" in kept
    assert signature not in kept and server.secret not in kept
    assert server.secret.removeprefix("whsec_") not in kept


def test_a_partner_removed_from_the_configuration_fails_its_deliveries(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    [delivery_id] = store_article(store, config, article(1))
    deliverer_for(make_config(partner_entry("other", server))).run([delivery_id])
    r = row(store, delivery_id)
    assert r.status == "failed" and "no longer configured" in r.last_error
    with store.session() as s:
        assert s.scalars(select(DestinationStateRow)).all() == []


def test_a_claim_whose_worker_died_is_taken_back_and_its_attempt_closed(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    [delivery_id] = store_article(store, config, article(1))
    # a worker claimed it, wrote its attempt row, and died before recording anything
    from worker.store import AttemptRow

    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(
            status="sending", lease_until=utcnow() + timedelta(seconds=60)))
        s.add(AttemptRow(delivery_id=delivery_id, started_at=utcnow()))
    deliverer = deliverer_for(config)
    # while its lease runs, nobody else takes it
    assert deliverer.run([delivery_id]).claimed == 0
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(
            lease_until=utcnow() - timedelta(seconds=1)))
    assert deliverer.run([delivery_id]).claimed == 1
    assert row(store, delivery_id).status == "delivered"
    dead_attempt, attempt = attempts(store, delivery_id)
    assert (dead_attempt.outcome, dead_attempt.error_class) == ("interrupted", "interrupted")
    assert attempt.outcome == "delivered"
    assert len(server.received) == 1
