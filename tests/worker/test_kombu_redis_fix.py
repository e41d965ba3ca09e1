"""The kombu Redis transport fix (worker/kombu_redis_fix.py), against a redis-server of
the test's own that is killed under a consumer with a BRPOP in flight and unacked
messages: exactly the state Celery's consumer is in when Redis restarts."""

from __future__ import annotations

import socket

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from tests.support.redis_server import RedisServer
from worker import kombu_redis_fix


@pytest.fixture
def server(tmp_path):
    srv = RedisServer(tmp_path / "redis").start()
    yield srv
    srv.stop()


def consumer_when_redis_dies(server):
    """A connection whose default channel holds an unacked message, a BRPOP in flight and
    an auto-delete fanout binding (as a Celery worker's does); then Redis dies and the
    connection is collected, as Celery's consumer does on a connection loss."""
    work = Queue("deliver", Exchange("deliver", "direct"), "deliver")
    broadcast = Queue("broadcast", Exchange("broadcast", "fanout"), auto_delete=True)
    conn = Connection(server.url)
    channel = conn.default_channel
    Producer(channel).publish({"ids": [1]}, exchange=work.exchange, routing_key="deliver", declare=[work])
    received = []
    Consumer(channel, [work, broadcast], callbacks=[lambda body, message: received.append(message)]).consume()
    conn.drain_events(timeout=5)
    try:
        conn.drain_events(timeout=0.2)  # leaves a BRPOP waiting for its answer
    except socket.timeout:
        pass
    assert received and channel._in_poll
    server.stop()
    conn.collect(socket_timeout=2)
    return conn, received[0]


def test_a_collected_connection_closes_and_its_acks_are_connection_errors(server):
    kombu_redis_fix.apply()
    conn, message = consumer_when_redis_dies(server)
    conn.close()  # the close that made the worker exit: no AttributeError now
    with pytest.raises(kombu_redis.Transport.connection_errors) as caught:
        message.ack()  # a task finishing after the loss: logged by Celery, the message comes back later
    assert isinstance(caught.value, kombu_redis_fix.ChannelDetached)


def test_applying_twice_patches_once():
    kombu_redis_fix.apply()
    patched = kombu_redis.Channel._connparams
    kombu_redis_fix.apply()
    assert kombu_redis.Channel._connparams is patched
    assert patched.__wrapped__.__name__ == "_connparams" and not hasattr(patched.__wrapped__, "syndicate_fix")


def test_without_the_fix_kombu_still_fails_this_way(server, monkeypatch):
    """The bug itself, so that the day kombu fixes it this test says the patch can go."""
    kombu_redis_fix.apply()
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", kombu_redis.Channel._connparams.__wrapped__)
    conn, _ = consumer_when_redis_dies(server)
    with pytest.raises(AttributeError, match="hostname"):
        conn.close()
