"""tasks.maintenance.sweep: what is due and not on its way is enqueued again, one batch per
destination (at most 50 ids), feeds as rebuild requests; what is on its way, or waits for
a disabled destination, is left alone."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.tasks.conftest import queued
from tests.worker.delivery.conftest import article, rows, store_article
from worker.store import DeliveryRow, DestinationStateRow, utcnow


@pytest.fixture
def config(task_env, partner):
    return task_env(partners=[{"name": "acme", "url": partner.url, "secret": partner.secret,
                               "allow_private": True},
                              {"name": "other", "url": partner.url, "secret": partner.secret,
                               "allow_private": True}],
                    feeds=[{"name": "all", "title": "All stories"}])


def lose_messages(store, *ids):
    """Rows are marked queued when stored (their message goes after the commit): pretend that
    message was queued longer ago than requeue_after and never ran."""
    from config.tunables import tunables

    stale = utcnow() - timedelta(seconds=tunables().requeue_after + 5)
    with store.session() as s:
        q = update(DeliveryRow).values(queued_at=stale)
        s.execute(q.where(DeliveryRow.id.in_(ids)) if ids else q)


def sweep_now(redis_client):
    from tasks.maintenance import sweep

    for queue in ("deliver", "feeds"):
        redis_client.delete(queue)
    return sweep()


def test_rows_whose_message_was_lost_go_out_one_batch_per_destination_and_feeds_as_rebuilds(
        config, store, redis_client):
    ids = store_article(store, config, article(1)) + store_article(store, config, article(2))
    # just stored, their messages on the way: not the sweep's
    assert sweep_now(redis_client) == 0
    lose_messages(store)
    assert sweep_now(redis_client) == 6  # 2 articles x (2 partners + 1 feed)
    batches = sorted(sorted(m["args"][0]) for m in queued(redis_client, "deliver"))
    by_partner = {}
    for r in rows(store, *ids):
        by_partner.setdefault(r.destination, []).append(r.id)
    assert batches == sorted(sorted(v) for v in by_partner.values())
    assert [(m["task"], m["args"]) for m in queued(redis_client, "feeds")] == [("tasks.feeds.rebuild_feed", ["all"])]
    assert all(r.queued_at is not None for r in rows(store, *ids))
    # on their way now: the next sweep leaves them alone
    assert sweep_now(redis_client) == 0 and queued(redis_client, "deliver") == []


def test_a_claim_whose_lease_ran_out_is_enqueued_again(config, store, redis_client):
    [first, _] = store_article(store, config, article(1))
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == first).values(
            status="sending", lease_until=utcnow() - timedelta(seconds=1)))
    assert sweep_now(redis_client) == 1
    assert [m["args"][0] for m in queued(redis_client, "deliver")] == [[first]]


def test_a_disabled_destinations_rows_wait_for_it(config, store, redis_client):
    ids = store_article(store, config, article(1))
    with store.session() as s:
        s.add(DestinationStateRow(kind="partner", name="acme", disabled=True, disabled_by="operator",
                                  disabled_reason="maintenance"))
    lose_messages(store)
    sweep_now(redis_client)
    swept = [i for m in queued(redis_client, "deliver") for i in m["args"][0]]
    acme = [r.id for r in rows(store, *ids) if r.destination == "acme"]
    assert acme and not set(acme) & set(swept) and swept


def test_many_rows_of_one_destination_go_in_batches_of_50(task_env, partner, store, redis_client):
    config = task_env(partners=[{"name": "acme", "url": partner.url, "secret": partner.secret,
                                 "allow_private": True}])
    for n in range(120):
        store_article(store, config, article(n))
    lose_messages(store)
    assert sweep_now(redis_client) == 120
    assert sorted(len(m["args"][0]) for m in queued(redis_client, "deliver")) == [20, 50, 50]


def test_a_row_of_an_unknown_kind_is_logged_and_left(config, store, redis_client, caplog):
    [first, _] = store_article(store, config, article(1))
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id == first).values(kind="carrier-pigeon"))
    lose_messages(store)
    with caplog.at_level(logging.INFO, "syndicate.sweep"):
        sweep_now(redis_client)
    assert "1 due rows of an unknown kind" in caplog.text
    assert first not in [i for m in queued(redis_client, "deliver") for i in m["args"][0]]
