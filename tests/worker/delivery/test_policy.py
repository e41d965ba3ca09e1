"""The one function that decides what an attempt's outcome means."""

import random
from datetime import datetime, timedelta, timezone

import pytest

from worker.delivery import DeliveryPolicy, parse_retry_after
from worker.transports import Outcome

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
SCHEDULE = [5.0, 300.0, 1800.0]


@pytest.fixture
def policy():
    return DeliveryPolicy(jitter=0.1, rng=random.Random(7))


def delay(decision) -> float:
    return (decision.next_attempt_at - NOW).total_seconds()


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(policy, status):
    assert policy.decide(Outcome(status_code=status), 1, SCHEDULE, NOW).status == "delivered"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422, 451])
def test_other_4xx_fail_at_once(policy, status):
    decision = policy.decide(Outcome(status_code=status, body="bad"), 1, SCHEDULE, NOW)
    assert decision.status == "failed" and not decision.disable_destination
    assert f"HTTP {status}" in decision.reason


def test_410_disables_the_partner_and_keeps_the_delivery_waiting(policy):
    decision = policy.decide(Outcome(status_code=410), 3, SCHEDULE, NOW)
    assert decision.disable_destination
    assert decision.status == "pending" and decision.next_attempt_at == NOW
    assert "destinations enable" in decision.reason


@pytest.mark.parametrize("outcome, ill", [
    (Outcome(status_code=500), True), (Outcome(status_code=502), True), (Outcome(status_code=503), True),
    (Outcome(status_code=504), True), (Outcome(status_code=408), True),
    (Outcome(error_class="timeout", error="read timed out"), True),
    (Outcome(error_class="connection_error", error="connection reset by peer"), True),
    (Outcome(error_class="dns_error", error="name or service not known"), True),
    # Retried, but not a sign of ill health: the breaker does not count them.
    (Outcome(status_code=429), False),
    (Outcome(status_code=301, location="https://elsewhere.example"), False),
    (Outcome(status_code=307, location="https://elsewhere.example"), False),
    (Outcome(status_code=400, retryable=True, error="(#4) Application request limit reached"), False),
])
def test_transient_failures_retry_on_the_schedule_with_jitter(policy, outcome, ill):
    decision = policy.decide(outcome, 2, SCHEDULE, NOW)
    assert decision.status == "pending" and decision.endpoint_failed == ill
    assert decision.pause_until is None
    assert 300 <= delay(decision) <= 330


def test_jitter_spreads_retries_of_the_same_attempt():
    policy = DeliveryPolicy(jitter=0.1, rng=random.Random(3))
    delays = {delay(policy.decide(Outcome(status_code=500), 1, SCHEDULE, NOW)) for _ in range(20)}
    assert len(delays) > 10 and all(5.0 <= d <= 5.5 for d in delays)


def test_a_redirect_is_a_failure_that_names_its_location(policy):
    decision = policy.decide(Outcome(status_code=302, location="https://elsewhere.example/h"), 1, SCHEDULE, NOW)
    assert decision.status == "pending"
    assert "https://elsewhere.example/h" in decision.reason and "not followed" in decision.reason


def test_after_the_last_scheduled_attempt_it_is_dead(policy):
    # the first attempt is immediate, then one per schedule entry: 1 + 3 attempts in all
    assert policy.decide(Outcome(status_code=500), len(SCHEDULE), SCHEDULE, NOW).status == "pending"
    dead = policy.decide(Outcome(status_code=500), len(SCHEDULE) + 1, SCHEDULE, NOW)
    assert dead.status == "dead" and "gave up after 4 attempts" in dead.reason


def test_a_refused_private_address_fails_without_retrying(policy):
    decision = policy.decide(Outcome(error_class="blocked_address", error="refused"), 1, SCHEDULE, NOW)
    assert decision.status == "failed"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pauses_the_destination_and_does_not_count_as_ill_health(policy, status):
    decision = policy.decide(Outcome(status_code=status, retry_after="120"), 1, SCHEDULE, NOW)
    assert decision.status == "pending" and not decision.endpoint_failed
    assert decision.pause_until == NOW + timedelta(seconds=120)
    assert 120 <= delay(decision) <= 132


def test_pacing_spends_no_retry_and_never_makes_a_delivery_dead(policy):
    # Past the last scheduled attempt, a 429 with Retry-After is still paced, not dead.
    decision = policy.decide(Outcome(status_code=429, retry_after="1"), len(SCHEDULE) + 5, SCHEDULE, NOW)
    assert decision.status == "pending" and 1 <= delay(decision) <= 1.1


def test_a_retry_after_is_capped_by_the_longest_pause(policy):
    capped = DeliveryPolicy(jitter=0, pause_max=600).decide(Outcome(status_code=429, retry_after="5000"), 1,
                                                            SCHEDULE, NOW)
    assert delay(capped) == 600 and capped.pause_until == NOW + timedelta(seconds=600)


def test_skipped_is_final_and_disable_waits(policy):
    assert policy.decide(Outcome.skip("not editable"), 1, SCHEDULE, NOW).status == "skipped"
    decision = policy.decide(Outcome(status_code=401, disable="credentials rejected"), 1, SCHEDULE, NOW)
    assert decision.status == "pending" and decision.disable_destination
    assert "credentials rejected" in decision.reason
    assert policy.decide(Outcome(status_code=500, retryable=False), 1, SCHEDULE, NOW).status == "failed"


def test_retry_after_as_an_http_date(policy):
    decision = policy.decide(Outcome(status_code=503, retry_after="Thu, 26 Nov 2026 12:10:00 GMT"), 1, SCHEDULE,
                             NOW)
    assert 600 <= delay(decision) <= 660


def test_retry_after_is_ignored_on_500_which_counts_as_ill_health(policy):
    decision = policy.decide(Outcome(status_code=500, retry_after="3000"), 1, SCHEDULE, NOW)
    assert 5 <= delay(decision) <= 5.5 and decision.endpoint_failed and decision.pause_until is None


@pytest.mark.parametrize("value, seconds", [
    ("999999", 6 * 3600), ("0", 1), ("30", 30), ("Thu, 26 Nov 2026 12:10:00 GMT", 600),
    ("Thu, 26 Nov 2026 11:00:00 GMT", 1), ("garbage", None), ("", None), (None, None), ("-5", None),
    ("Thu, 99 Nov 2026 12:10:00 GMT", None),
])
def test_retry_after_is_parsed_and_clamped(value, seconds):
    assert parse_retry_after(value, NOW) == seconds
