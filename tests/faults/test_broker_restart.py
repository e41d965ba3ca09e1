"""Fault case 2: the broker restarts under `syndicate run` mid-burst: a redis-server of the
test's own, with its append-only file, SIGKILLed and started again on the same port.

The process must ride it out (it used to exit with status 0; see worker/kombu_redis_fix.py)
and every delivery must land, once per webhook-id."""

import pytest

from tests.conftest import wait_until
from tests.faults.conftest import Site
from tests.support.redis_server import RedisServer

ARTICLES = 100  # × 10 partners = 1,000 deliveries
RESTARTS = 3


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_syndicate_run_rides_out_redis_restarts(tmp_path, pg_url, fleet, own_redis):
    site = Site(tmp_path, own_redis.url, pg_url, fleet)
    # Rate-limited partners: held-back deliveries wait as countdown messages, which the worker
    # holds unacknowledged while it waits (BRPOP) for more — the state the restart used to kill.
    site.configure(rate_limit="10/s")
    try:
        run = site.start()
        site.ingest(range(ARTICLES))
        total = ARTICLES * len(fleet)
        for r in range(RESTARTS):
            threshold = total * (r + 1) // (RESTARTS + 2)
            wait_until(lambda: site.received() >= threshold, 120, f"{threshold} receipts before restart {r + 1}")
            own_redis.restart(down_for=1.0)
            wait_until(lambda: "Connected to redis" in site.log(run).split("Connection to broker lost")[-1]
                       or run.poll() is not None, 60, "the worker to reconnect")
            assert run.poll() is None, f"syndicate run exited ({run.returncode}) when Redis restarted"
        assert site.statuses()["delivered"] < total, "the burst was over before the last restart"
        site.wait_delivered(total, 120)
        assert run.poll() is None, "syndicate run exited"
        log = site.log(run)
        assert log.count("Connection to broker lost") >= RESTARTS
        assert "Unrecoverable error" not in log
        site.check("redis-restart")
    finally:
        site.stop_all()
