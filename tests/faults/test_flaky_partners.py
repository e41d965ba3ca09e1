"""Fault case 3: every partner fails 30% of its requests — 10% with a 500, 10% with a 429 and
`Retry-After: 1`, 10% by answering after the sender's timeout — and every message still
lands, under its one webhook-id, with no dead letter and no partner disabled."""

import random
import threading

import pytest

from tests.support.partner_server import Slow, retry_after

ARTICLES = 60  # × 10 partners = 600 deliveries (scaled down: each 429 pauses its partner 1 s)


def flaky(seed: int):
    rng = random.Random(seed)
    lock = threading.Lock()

    def reply(rec):
        with lock:
            roll = rng.random()
        if roll < 0.10:
            rec.fault = "500"
            return (500, {}, b'{"error":"internal"}')
        if roll < 0.20:
            rec.fault = "429"
            return retry_after(429, "1")
        if roll < 0.30:
            rec.fault = "timeout"  # the partner got it; its answer comes after the sender gave up
            return Slow(1.5)
        return (200, {}, b'{"ok":true}')

    return reply


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_partners_failing_thirty_percent_of_the_time(site, fleet):
    for i, server in enumerate(fleet):
        server.default = flaky(i)
    site.start()
    site.ingest(range(ARTICLES))
    total = ARTICLES * len(fleet)
    site.wait_delivered(total, 180)
    t = site.check("flaky-partners")
    faults = [getattr(r, "fault", None) for server in fleet for r in server.received]
    assert {"500", "429", "timeout"} <= set(faults), "the faults were not exercised"
    # Every repeat is a message whose answer the sender never had (or an error): the retries.
    assert t.repeats >= faults.count("timeout")
