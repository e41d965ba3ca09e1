"""tasks.deliver: a batch delivered by the task, and `schedule_later`'s cut-off between a
broker countdown and the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.tasks.conftest import queued
from tests.worker.delivery.conftest import article, rows, store_article
from worker.store import utcnow


@pytest.fixture
def acme(task_env, partner):
    return task_env(partners=[{"name": "acme", "url": partner.url, "secret": partner.secret,
                               "allow_private": True, "retry_schedule": ["1s", "1s"]}])


def test_deliver_batch_sends_the_rows_it_is_given_and_says_what_it_did(acme, store, partner):
    from tasks.deliver import deliver_batch

    ids = store_article(store, acme, article(1)) + store_article(store, acme, article(2))
    result = deliver_batch(ids)
    assert result == {"claimed": 2, "sent": 2, "held": 0, "superseded": 0, "poisoned": 0}
    assert {r.status for r in rows(store, *ids)} == {"delivered"}
    assert sorted(r.message["data"]["id"] for r in partner.received) == ["web:story-1", "web:story-2"]
    partner.assert_only_valid()
    # given the same ids again (a duplicate message), nothing is sent twice
    assert deliver_batch(ids)["claimed"] == 0 and len(partner.received) == 2


def test_a_failed_send_is_scheduled_again_on_the_broker_with_its_countdown(acme, store, partner, redis_client):
    from tasks.deliver import deliver_batch

    partner.plan.append((503, {}, b"down"))
    [delivery_id] = store_article(store, acme, article(1))
    redis_client.delete("deliver")
    before = utcnow()
    deliver_batch([delivery_id])
    [message] = queued(redis_client, "deliver")
    assert message["task"] == "tasks.deliver.deliver_batch" and message["args"] == [[delivery_id]]
    # the 1 s retry, rounded up so that the task never arrives before the row is due
    assert before + timedelta(seconds=1) <= message["eta"] <= utcnow() + timedelta(seconds=2)
    assert message["eta"] >= rows(store, delivery_id)[0].next_attempt_at.replace(tzinfo=message["eta"].tzinfo)


def test_schedule_later_gives_soon_rows_to_the_broker_and_leaves_later_ones_to_the_sweep(task_env, redis_client):
    from config.tunables import tunables
    from tasks.deliver import schedule_later

    now = utcnow()
    cutoff = tunables().max_broker_countdown
    redis_client.delete("deliver")
    schedule_later([
        (1, now + timedelta(seconds=10.2)),
        (2, now + timedelta(seconds=10.4)),  # due in the same second: one task for both
        (3, now + timedelta(seconds=cutoff - 5)),  # just inside the cut-off
        (4, now + timedelta(seconds=cutoff + 5)),  # beyond it: the sweep's
        (5, now - timedelta(seconds=3)),  # already due: at once
    ])
    messages = queued(redis_client, "deliver")
    by_ids = {tuple(m["args"][0]): m for m in messages}
    assert set(by_ids) == {(5,), (1, 2), (3,)}
    assert all(4 not in m["args"][0] for m in messages)
    assert by_ids[(5,)]["eta"] is None or by_ids[(5,)]["eta"] <= utcnow() + timedelta(seconds=1)
    assert now + timedelta(seconds=10.4) <= by_ids[(1, 2)]["eta"] <= now + timedelta(seconds=12)
    assert by_ids[(3,)]["eta"] >= now + timedelta(seconds=cutoff - 5)


def test_schedule_later_splits_a_big_bucket_into_tasks_of_100(task_env, redis_client):
    from tasks.deliver import schedule_later

    when = utcnow() + timedelta(seconds=5)
    redis_client.delete("deliver")
    schedule_later([(i, when) for i in range(250)])
    assert [len(m["args"][0]) for m in queued(redis_client, "deliver")] == [100, 100, 50]
