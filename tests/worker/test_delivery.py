"""The retry policy, and one batch delivered over HTTP to a partner that verifies signatures."""

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from config import parse_config
from tests.conftest import REPO
from worker.articles import parse_article
from worker.delivery import DeliveryPolicy, PartnerDeliverer, parse_retry_after
from worker.pipeline import record_article
from worker.store import AttemptRow, DeliveryRow
from worker.transports import Outcome
from worker.transports.webhook import MAX_BODY_BYTES, TRUNCATION_MARKER, message_body

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
SCHEDULE = [5.0, 300.0, 1800.0]
EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())


@pytest.fixture
def policy():
    return DeliveryPolicy(jitter=0.1, rng=random.Random(7))


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(policy, status):
    assert policy.decide(Outcome(status_code=status), 1, SCHEDULE, NOW).status == "delivered"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_fail_at_once(policy, status):
    assert policy.decide(Outcome(status_code=status), 1, SCHEDULE, NOW).status == "failed"


@pytest.mark.parametrize("outcome", [Outcome(status_code=500), Outcome(status_code=503), Outcome(status_code=408),
                                     Outcome(status_code=429), Outcome(error_class="timeout", error="read timed out"),
                                     Outcome(error_class="connection_error", error="refused"),
                                     Outcome(status_code=301, location="https://elsewhere.example")])
def test_transient_failures_retry_on_the_schedule_with_jitter(policy, outcome):
    decision = policy.decide(outcome, 2, SCHEDULE, NOW)
    assert decision.status == "pending"
    delay = (decision.next_attempt_at - NOW).total_seconds()
    assert 300 <= delay <= 330


def test_a_redirect_names_its_location(policy):
    decision = policy.decide(Outcome(status_code=302, location="https://elsewhere.example/h"), 1, SCHEDULE, NOW)
    assert "https://elsewhere.example/h" in decision.reason


def test_after_the_last_scheduled_attempt_it_is_dead(policy):
    assert policy.decide(Outcome(status_code=500), len(SCHEDULE) + 1, SCHEDULE, NOW).status == "dead"
    assert policy.decide(Outcome(status_code=500), len(SCHEDULE), SCHEDULE, NOW).status == "pending"


def test_retry_after_is_honoured_for_429_and_clamped(policy):
    decision = policy.decide(Outcome(status_code=429, retry_after="120"), 1, SCHEDULE, NOW)
    assert 120 <= (decision.next_attempt_at - NOW).total_seconds() <= 132
    assert parse_retry_after("999999", NOW) == 6 * 3600
    assert parse_retry_after("Thu, 26 Nov 2026 12:10:00 GMT", NOW) == 600
    assert parse_retry_after("garbage", NOW) is None


def test_a_body_over_1mb_is_cut_with_a_marker_not_dropped():
    data = {"id": "web:1", "content_html": "é" * 700_000}
    body = message_body("article.published", data, NOW)
    assert len(body.encode()) <= MAX_BODY_BYTES
    parsed = json.loads(body)
    assert parsed["data"]["content_html"].endswith(TRUNCATION_MARKER) and parsed["data"]["truncated"] is True


def test_a_batch_is_delivered_signed_and_recorded(store, partner, partner_secret):
    config = parse_config(f"""
[site]
title = "LNN"
url = "https://lnn.example"
feeds_url = "https://lnn.example/feeds"
[[partners]]
name = "acme"
url = "{partner.url}"
secret = "{partner_secret}"
allow_private = true
""", "t.toml", {})
    with store.session() as s:
        rec = record_article(s, parse_article(EXAMPLE, "t"), config)
    partner.plan.append((500, {}, b"busy"))
    deliverer = PartnerDeliverer(store, config)

    # first attempt: the partner answers 500, so a retry is scheduled
    retries = deliverer.run(rec.partner_deliveries).later
    assert len(retries) == 1
    with store.session() as s:
        row = s.get(DeliveryRow, rec.partner_deliveries[0])
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
        # a second run before it is due does nothing
    assert deliverer.run(rec.partner_deliveries).claimed == 0
    with store.session() as s:
        s.get(DeliveryRow, rec.partner_deliveries[0]).next_attempt_at = NOW - timedelta(days=1)
    deliverer.run(rec.partner_deliveries)

    # both attempts carried the same message id and verified at the partner
    assert [r.verified for r in partner.received] == [True, True]
    assert len({r.webhook_id for r in partner.received}) == 1
    message = partner.received[-1].message
    assert message["type"] == "article.published" and message["data"]["id"] == EXAMPLE["id"]
    with store.session() as s:
        row = s.get(DeliveryRow, rec.partner_deliveries[0])
        assert (row.status, row.attempts) == ("delivered", 2)
        attempts = s.scalars(select(AttemptRow).order_by(AttemptRow.id)).all()
        assert [(a.status_code, a.outcome) for a in attempts] == [(500, "pending"), (200, "delivered")]
        assert all(partner_secret not in (a.response_body or "") + (a.error or "") for a in attempts)
