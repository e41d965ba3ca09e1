"""The gates fail open: with Redis unreachable (a restart, a network blip), breaker, pauses
and rate limits are advisory, so deliveries go out rather than stranding, and the log says so."""

from __future__ import annotations

import logging

import redis

from tests.worker.delivery.conftest import article, make_config, partner_entry, rows, store_article


def test_deliveries_go_out_when_redis_is_unreachable(store, servers, deliverer_for, caplog):
    server = servers()
    config = make_config(partner_entry("acme", server, rate_limit="2/s"))
    ids = [store_article(store, config, article(n))[0] for n in range(3)]
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    deliverer = deliverer_for(config, redis_client=unreachable)
    with caplog.at_level(logging.WARNING):
        result = deliverer.run(ids)
    assert result.sent == 3  # the 2/s limit could not be read: not held back
    assert {r.status for r in rows(store, *ids)} == {"delivered"}
    assert "unavailable in Redis; sending without it" in caplog.text
    server.assert_only_valid()
    assert len(server.received) == 3
