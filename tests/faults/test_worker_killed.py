"""Fault case 1: deliveries to ten partners while the worker is SIGKILLed five times and
restarted (as a supervisor would), mid-burst each time.

Nothing is lost and no message goes out under a second webhook-id. A SIGKILL does lose
the answers of the requests in flight at that moment (the partner took them; the worker
died before recording the answer), so those go out again under the same id. The engine
records each answer as it comes in (worker/delivery/recording.py), so what a kill loses
is the requests in flight plus at most SYNDICATE_MOST_UNRECORDED answers a process:
measured 20-50 per kill here, 5.5-8.6% of 2,000 over five kills, against the issue's 0.5%
(2 per kill: not reachable at ~1,000 deliveries/s with partners taking 20 ms; see
docs/reliability-delivery.md). The case asserts every duplicate is one of those answers
lost to a kill, and bounds them by what the pool processes can have claimed.
"""

import time

import pytest
from sqlalchemy import select

from tests.conftest import wait_until
from worker.pipeline import DISPATCH_BATCH

ARTICLES = 200  # × 10 partners = 2,000 deliveries
KILLS = 5
CONCURRENCY = 2


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_worker_sigkilled_five_times_loses_nothing(site, fleet):
    for server in fleet:
        server.delay = 0.02  # a partner's own work per request
    # Stored and queued first, so every kill below cuts a worker in the middle of a burst.
    site.ingest(range(ARTICLES))
    total = ARTICLES * len(fleet)
    step = total // (KILLS + 2)
    worker = site.start(concurrency=CONCURRENCY)
    cut_off: set = set()
    per_kill = []
    for k in range(KILLS):
        threshold = site.received() + step
        wait_until(lambda: site.received() >= threshold, 120, f"{threshold} receipts before kill {k + 1}",
                   interval=0.005)
        site.kill(worker)
        time.sleep(0.2)  # requests already written reach the partner
        lost = answers_lost(site, fleet) - cut_off
        per_kill.append(len(lost))
        cut_off |= lost
        worker = site.start(concurrency=CONCURRENCY)
    assert site.statuses()["delivered"] < total, "the burst was over before the last kill: nothing was tested"
    site.wait_delivered(total, 180)
    t = site.check("worker-killed", duplicate_bound=KILLS * CONCURRENCY * DISPATCH_BATCH,
                   extra={"answers_lost_per_kill": per_kill})
    # Every duplicate is a message whose answer a kill cut off: none comes from a live worker
    # (a lease running out under it, the sweep, a second claim).
    assert t.duplicates <= len(cut_off), f"{t.duplicates} duplicates, {len(cut_off)} explained by the kills"


def answers_lost(site, fleet) -> set:
    """(partner, webhook-id) of rows still `sending` (claimed by the dead worker) that the
    partner has received: the kill lost their answers, so they go out again."""
    from worker.store import DeliveryRow

    with site.store.session() as s:
        sending = set(s.execute(select(DeliveryRow.destination, DeliveryRow.message_id)
                                .where(DeliveryRow.kind == "partner", DeliveryRow.status == "sending")).all())
    got = {(f"p{i}", r.webhook_id) for i, server in enumerate(fleet) for r in list(server.received)}
    return {x for x in sending if x in got}
