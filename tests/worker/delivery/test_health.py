"""Partner health in Redis: the shared rate limit and the circuit breaker. Both take a
clock, so nothing here races the real one."""

import pytest

from config.common import destination_rate
from worker.delivery.health import CircuitBreaker, RateLimiter


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_rate_limit_grants_a_burst_then_one_per_interval(redis_client):
    clock = Clock()
    limiter = RateLimiter(redis_client, clock=clock)
    granted, wait = limiter.take("acme", (20, 1.0), 50)
    assert granted == 20 and wait == pytest.approx(0.05)
    granted, wait = limiter.take("acme", (20, 1.0), 5)
    assert granted == 0 and wait == pytest.approx(0.05)
    clock.now += 0.12
    granted, wait = limiter.take("acme", (20, 1.0), 5)
    assert granted == 2 and wait == pytest.approx(0.03)


@pytest.mark.parametrize("rate, count, per", [("30/m", 30, 60.0), ("600/h", 600, 3600.0), ("2/h", 2, 3600.0)])
def test_rate_limits_per_minute_and_per_hour(redis_client, rate, count, per):
    assert destination_rate(rate) == (count, per)
    clock = Clock()
    limiter = RateLimiter(redis_client, clock=clock)
    interval = per / count
    assert limiter.take("acme", (count, per), count + 10)[0] == count  # one period's burst
    granted, wait = limiter.take("acme", (count, per), 1)
    assert granted == 0 and wait == pytest.approx(interval, abs=0.002)
    clock.now += interval - 0.5
    assert limiter.take("acme", (count, per), 1)[0] == 0
    clock.now += 0.5
    assert limiter.take("acme", (count, per), 5)[0] == 1
    clock.now += per  # a quiet period earns a whole burst again, never more
    assert limiter.take("acme", (count, per), count + 10)[0] == count


def test_without_a_clock_the_limit_runs_on_redis_time(redis_client):
    granted, wait = RateLimiter(redis_client).take("acme", (2, 3600.0), 5)
    assert granted == 2 and 1700 < wait <= 1800


def test_the_rate_limit_is_shared_between_limiters_and_separate_per_partner(redis_client):
    # two workers (two limiter objects) draw from the same budget
    a, b = RateLimiter(redis_client), RateLimiter(redis_client)
    assert a.take("acme", (10, 60.0), 6)[0] == 6
    assert b.take("acme", (10, 60.0), 6)[0] == 4
    assert b.take("other", (10, 60.0), 6)[0] == 6


def test_the_breaker_opens_after_the_threshold_and_probes_once_after_the_cooloff(redis_client):
    breaker = CircuitBreaker(redis_client, threshold=10, cooloff=30, cooloff_max=100)
    now = 1_000_000.0
    assert breaker.record("acme", 0, 9, now) is None
    assert breaker.admit("acme", 5, probe_ttl=5, now=now) == (5, 0.0)
    assert breaker.record("acme", 0, 1, now) == "opened"
    allowed, wait = breaker.admit("acme", 5, probe_ttl=5, now=now + 1)
    assert allowed == 0 and 28 <= wait <= 30
    # after the cool-off: one probe for one worker, the others wait for its answer
    assert breaker.admit("acme", 5, probe_ttl=5, now=now + 31)[0] == 1
    assert breaker.admit("acme", 5, probe_ttl=5, now=now + 31)[0] == 0
    # the probe fails: open again, for twice as long
    assert breaker.record("acme", 0, 1, now + 32) == "opened"
    assert breaker.state("acme", now + 33).state == "open"
    assert breaker.state("acme", now + 33).open_until == now + 32 + 60
    # a later probe succeeds: closed, streak forgotten
    assert breaker.admit("acme", 5, probe_ttl=5, now=now + 93)[0] == 1
    assert breaker.record("acme", 1, 0, now + 93) == "closed"
    st = breaker.state("acme", now + 94)
    assert (st.state, st.failures) == ("closed", 0)
    assert breaker.admit("acme", 5, probe_ttl=5, now=now + 94) == (5, 0.0)


def test_a_success_resets_the_failure_streak(redis_client):
    breaker = CircuitBreaker(redis_client, threshold=3, cooloff=30)
    breaker.record("acme", 0, 2)
    breaker.record("acme", 1, 0)
    breaker.record("acme", 0, 2)
    assert breaker.state("acme").state == "closed"


def test_a_pause_is_shared_and_never_shortened(redis_client):
    from worker.delivery.health import Pacer

    pacer, other_worker = Pacer(redis_client), Pacer(redis_client)
    pacer.pause("partner:acme", until=1_000_060.0, now=1_000_000.0)
    other_worker.pause("partner:acme", until=1_000_010.0, now=1_000_000.0)  # shorter: ignored
    assert other_worker.paused_until(["partner:acme", "partner:other"], now=1_000_000.0) == {
        "partner:acme": 1_000_060.0}
    other_worker.pause("partner:acme", until=1_000_120.0, now=1_000_000.0)  # longer: kept
    assert pacer.paused_until(["partner:acme"], now=1_000_000.0) == {"partner:acme": 1_000_120.0}
    assert pacer.paused_until(["partner:acme"], now=1_000_200.0) == {}
