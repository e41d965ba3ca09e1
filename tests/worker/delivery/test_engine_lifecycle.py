"""The engine's life cycle beyond one attempt: pacing a destination that asks to slow down,
handing work back on a warm shutdown, and poison messages that keep killing workers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.conftest import wait_until
from tests.support.partner_server import Slow, retry_after
from tests.worker.delivery.conftest import article, attempts, make_config, make_due, partner_entry, row, store_article
from worker.delivery.health import CircuitBreaker
from worker.store import AttemptRow, DeliveryRow, utcnow


def settled(store, ids) -> None:
    """Wait for sends a run left in the background (a loaded machine) to be recorded."""
    wait_until(lambda: all(row(store, i).status != "sending" for i in ids), 15, "the sends to be recorded")


def test_a_partner_pacing_with_retry_after_is_paused_not_broken(store, redis_client, servers, deliverer_for):
    # Issue 9: 429 + Retry-After: 1 to the first two tries of each message used to trip the
    # breaker and leave messages undelivered for hours.
    server = servers()
    config = make_config(partner_entry("acme", server, retry_schedule=["5m"] * 3))
    breaker = CircuitBreaker(redis_client, threshold=3, cooloff=60)
    deliverer = deliverer_for(config, breaker=breaker)
    ids = [store_article(store, config, article(n))[0] for n in range(8)]
    for _ in range(16):
        server.plan.append(retry_after(429, "1"))
    deliverer.run(ids)
    settled(store, ids)
    assert breaker.state("partner:acme").state == "closed"
    # every delivery is due again about a second later, not after the 5-minute schedule
    for delivery_id in ids:
        r = row(store, delivery_id)
        if r.status == "pending":
            assert r.next_attempt_at - utcnow() < timedelta(seconds=3)
    # the pause is shared: until it ends, no worker sends to the partner
    assert deliverer.gates.pacer.paused_until(["partner:acme"])
    for _ in range(10):
        make_due(store, *ids)
        deliverer.gates.pacer.clear("partner:acme")  # the pause ends, as the clock would end it
        deliverer.run(ids)
        settled(store, ids)
        if all(row(store, i).status == "delivered" for i in ids):
            break
    assert all(row(store, i).status == "delivered" for i in ids)
    assert breaker.state("partner:acme").state == "closed"


def test_a_warm_shutdown_hands_unfinished_sends_back_at_once(store, servers, deliverer_for):
    server = servers()
    server.default = Slow(3.0)
    config = make_config(partner_entry("slow", server, timeout="5s"))
    ids = [store_article(store, config, article(n))[0] for n in range(3)]
    deliverer = deliverer_for(config, task_wait=0.1, lanes=1)
    result = deliverer.run(ids)
    assert result.background == 1  # one lane, still sending in the background
    released = deliverer.shutdown(timeout=0.2)
    assert released, "the claimed rows not finished were handed back"
    for delivery_id in released:
        r = row(store, delivery_id)
        # due now, not after the lease; the attempt does not count against the schedule
        assert r.status == "pending" and r.next_attempt_at <= utcnow() and r.lease_until is None
        assert r.attempts == 0 and "shutdown" in r.last_error
    # no open attempt is left behind, and none counts as a worker killed
    assert all(a.finished_at is not None and a.error_class != "interrupted" for a in attempts(store)
               if a.delivery_id in released)


def test_a_message_that_kills_its_worker_three_times_goes_dead(store, servers, deliverer_for):
    server = servers()
    server.default = (500, {}, b"")
    config = make_config(partner_entry("acme", server, retry_schedule=["1s"] * 10))
    [delivery_id] = store_article(store, config, article(1))
    deliverer = deliverer_for(config)
    for kill in range(3):
        # A worker claimed it, wrote its attempt row, and died mid-send: the row stays
        # `sending` with an open attempt until its lease runs out.
        now = utcnow()
        with store.session() as s:
            s.add(AttemptRow(delivery_id=delivery_id, started_at=now - timedelta(seconds=60), worker=f"w:{kill}"))
            s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id)
                      .values(status="sending", lease_until=now - timedelta(seconds=1)))
        result = deliverer.run([delivery_id])
        if kill < 2:
            # taken back and tried again (the partner answers 500: it stays pending)
            assert result.claimed == 1 and result.poisoned == 0
            assert row(store, delivery_id).attempts == 2 * (kill + 1)  # the killed attempt counts too
        else:
            assert result.poisoned == 1 and result.claimed == 0
    r = row(store, delivery_id)
    assert r.status == "dead" and "poison message" in r.last_error
    assert sum(1 for a in attempts(store, delivery_id) if a.error_class == "interrupted") == 3
