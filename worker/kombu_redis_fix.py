"""A fix for kombu's Redis transport: a worker must survive its broker restarting.

The bug (kombu 5.x, at least up to 5.7.0 with redis-py 8; reproduced by
`tests/faults/test_broker_restart.py`): when Redis goes away while the worker's
consumer has a BRPOP in flight, Celery's consumer calls `Connection.collect()`
(celery/worker/consumer/consumer.py, `on_connection_error_after_connected`). That
closes the default channel, but the Redis channel's `close()` fails half-way with a
connection error (reading the pending BRPOP reply, then deleting auto-delete fanout
bindings) before it is marked closed; `maybe_close_channel` swallows the error and
`collect()` then detaches the transport (`_do_close_transport`: `transport.client =
None`, kombu/connection.py). The next close of that channel (Celery closes the
connection right after) drops the channel's pool and restores unacknowledged
messages, which builds a new pool from `self.connection.client` — now None —
so `Channel._connparams` raises `AttributeError: 'NoneType' object has no attribute
'hostname'` (kombu/transport/redis.py, `_connparams`). An AttributeError is neither a
connection nor a channel error, so neither kombu's `maybe_close_channel` nor Celery's
`ignore_errors` catches it: it leaves `Consumer.start`, `WorkController.start` logs
"Unrecoverable error" and the worker stops. Every later ack of a message received on
the old channel fails the same way.

The fix: a channel whose transport was detached reports what happened — its
connection is gone — as the connection error it is. Every caller already handles that
(close ignores it, an ack logs it and the message is redelivered), and the consumer
reconnects as it does for any other connection loss. Nothing is lost: the messages
that could not be restored stay in Redis's unacked set and come back after the
visibility timeout, and the store's sweep re-enqueues their deliveries long before.
"""

from __future__ import annotations

import redis.exceptions


class ChannelDetached(redis.exceptions.ConnectionError):
    """The channel's connection was closed (its transport detached): reconnect."""


def apply() -> None:
    """Patch `kombu.transport.redis.Channel._connparams` once per process."""
    from kombu.transport import redis as transport

    original = transport.Channel._connparams
    if getattr(original, "syndicate_fix", False):
        return

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise ChannelDetached("the broker connection of this channel was closed (the broker went away)")
        return original(self, asynchronous=asynchronous)

    _connparams.syndicate_fix = True  # type: ignore[attr-defined]
    _connparams.__wrapped__ = original  # type: ignore[attr-defined]
    transport.Channel._connparams = _connparams
