"""Nothing is lost and nothing goes out under two ids when a worker is SIGKILLed in the
middle of a burst, or when Redis restarts (losing every queued message)."""

import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter

import pytest
import redis as redis_lib
from sqlalchemy import select

from tests.conftest import wait_until, write_config
from tests.worker.delivery.conftest import article, start_worker
from worker.store import DeliveryRow, Store

BURST = 40
# A short lease and re-enqueue delay so a killed worker's rows come back within seconds.
FAST_RECOVERY = {"SYNDICATE_LEASE_MARGIN": 3, "SYNDICATE_REQUEUE_AFTER": 2, "SYNDICATE_BREAKER_THRESHOLD": 1000}


def configure(deployment, partner):
    """The stand-in partner with a rate limit, so the burst takes a few seconds and is held
    back in waves, each wave waiting as a countdown message in Redis: exactly what a crash
    or a Redis restart could lose."""
    write_config(deployment.config, partners=[{
        "name": "acme", "url": partner.url, "secret": partner.secret, "allow_private": True,
        "retry_schedule": ["1s", "1s", "1s"], "timeout": "2s", "rate_limit": "10/s"}])


def statuses(database_url) -> Counter:
    store = Store(database_url)
    try:
        with store.session() as s:
            return Counter(s.scalars(select(DeliveryRow.status).where(DeliveryRow.kind == "partner")))
    finally:
        store.dispose()


def ingest_burst(deployment, tmp_path, start=0, count=BURST, name="burst.json"):
    path = tmp_path / name
    path.write_text(json.dumps([article(n) for n in range(start, start + count)]))
    return deployment.syndicate("ingest", str(path))


def assert_every_message_arrived_once_per_id(partner, expected: int):
    per_message = partner.ids_per_message()
    stories = {key[0] for key in per_message}
    assert stories == {f"web:story-{n}" for n in range(expected)}, "a story never reached the partner"
    # the partner deduplicates by webhook-id: each message must have come under one id only
    assert all(len(ids) == 1 for ids in per_message.values()), {k: v for k, v in per_message.items() if len(v) > 1}
    # and every request that arrived whole was one a real partner accepts; a request cut off by a
    # killed worker never reached the partner's application (counted in `incomplete`)
    partner.assert_only_valid(incomplete=partner.incomplete)


def test_a_worker_killed_mid_burst_loses_nothing(deployment, partner, tmp_path):
    configure(deployment, partner)
    partner.delay = 0.05
    worker = start_worker(deployment, **FAST_RECOVERY)
    ingest_burst(deployment, tmp_path)
    partner.wait_for(lambda got: len(got) >= 12, 60)

    # SIGKILL the worker by its own pid (and its pool children, in the session it leads)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the pool children went with it
    delivered_at_kill = statuses(deployment.database_url)["delivered"]
    assert delivered_at_kill < BURST, "the burst was over before the kill; nothing was tested"

    start_worker(deployment, **FAST_RECOVERY)
    wait_until(lambda: statuses(deployment.database_url) == Counter(delivered=BURST), 120,
               "every delivery to be made after the restart")
    assert_every_message_arrived_once_per_id(partner, BURST)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own (never the shared one), without persistence, so a
    restart loses every queued message."""

    def __init__(self, root):
        self.root, self.port, self.proc = root, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis_lib.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 20, "redis-server to answer")
        client.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # no chance to save anything
            self.proc.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis_lib.ConnectionError:
        return False


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_a_redis_restart_loses_nothing(deployment, partner, own_redis, tmp_path):
    deployment.env["REDIS_URL"] = own_redis.url
    configure(deployment, partner)
    partner.delay = 0.05
    workers = [start_worker(deployment, **FAST_RECOVERY)]
    ingest_burst(deployment, tmp_path)
    partner.wait_for(lambda got: len(got) >= 12, 60)

    # Redis goes away with every queued message, and comes back empty
    own_redis.stop()
    assert statuses(deployment.database_url)["delivered"] < BURST, "the burst was over before the restart"
    time.sleep(2)
    own_redis.start()

    def supervised_until_done():
        # The worker may exit when the broker drops mid-task (a kombu bug when it restores
        # unacknowledged messages on a closed connection); like compose's restart policy, start
        # it again. Either way the store, not the broker, knows what is left to send.
        if workers[-1].poll() is not None:
            workers.append(start_worker(deployment, **FAST_RECOVERY))
        return statuses(deployment.database_url) == Counter(delivered=BURST)

    wait_until(supervised_until_done, 120, "every delivery to be made after Redis came back")
    assert_every_message_arrived_once_per_id(partner, BURST)


def test_sigterm_stops_a_held_up_worker_within_the_soft_shutdown(deployment, partner, tmp_path):
    """SIGTERM gives running sends SYNDICATE_SOFT_SHUTDOWN (2 s here), then the worker exits,
    however long its tasks would take. Here the one delivery task waits on a partner that takes
    25 s to answer (inside a 30 s timeout and task wait): Celery's own SIGTERM, a warm shutdown,
    waited for it with no limit (and the embedded beat kept sending meanwhile)."""
    write_config(deployment.config, partners=[{
        "name": "acme", "url": partner.url, "secret": partner.secret, "allow_private": True,
        "retry_schedule": ["1s", "1s", "1s"], "timeout": "30s"}])
    partner.delay = 25
    worker = start_worker(deployment, SYNDICATE_DELIVERY_TASK_WAIT=30, **{**FAST_RECOVERY, "SYNDICATE_SOFT_SHUTDOWN": "2"})
    ingest_burst(deployment, tmp_path, count=1)
    partner.wait_for(lambda got: len(got) >= 1, 30)

    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"syndicate run still running 15 s after SIGTERM (soft shutdown 2 s)\n{deployment.log(worker)}")
    took = time.monotonic() - started
    rows = statuses(deployment.database_url)
    print(f"\nexit {took:.1f}s after SIGTERM; rows {dict(rows)}")
    assert took < 2 + 6, f"exited {took:.1f}s after SIGTERM; the soft shutdown is 2 s"
    assert worker.returncode == 0, deployment.log(worker)
    # The cut-off send's row was handed back as the pool stopped: due now, not after its lease.
    assert rows == Counter(pending=1), rows
    assert "handed back 1 deliveries" in deployment.log(worker)
