"""Fault case 1: deliveries to ten partners while the worker is SIGKILLed five times and
restarted (as a supervisor would), mid-burst each time.

Nothing is lost and no message goes out under a second webhook-id. A SIGKILL does lose
the answers of the requests in flight at that moment (the partner took them; the worker
died before recording the answer), so those go out again under the same id. Each send
holds one of its process's `SYNDICATE_MOST_UNRECORDED` slots from before its request is
written until its outcome is recorded (worker/delivery/recording.py), so a kill repeats
at most that many messages per pool process. Two runs prove it:

- the default (16 slots, two pool processes): every duplicate is an answer a kill cut off,
  and there are at most 16 × 2 a kill (measured 11-28 a kill, 4.3-5.3% of 2,000);
- the strict setting (1 slot, one pool process): at most one a kill, under the issue's
  0.5% (measured exactly 1 a kill, 0.25%), at about 45 deliveries/s with these 20 ms
  partners against about 1,000/s by default. docs/reliability-delivery.md has the trade-off.
"""

import time

import pytest
from sqlalchemy import select

from tests.conftest import wait_until

ARTICLES = 200  # × 10 partners = 2,000 deliveries
KILLS = 5


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("slots,concurrency", [(16, 2), (1, 1)], ids=["default", "strict"])
def test_worker_sigkilled_five_times_loses_nothing(site, fleet, slots, concurrency):
    for server in fleet:
        server.delay = 0.02  # a partner's own work per request
    site.deployment.env["SYNDICATE_MOST_UNRECORDED"] = str(slots)
    # Stored and queued first, so every kill below cuts a worker in the middle of a burst.
    site.ingest(range(ARTICLES))
    total = ARTICLES * len(fleet)
    step = total // (KILLS + 2)
    worker = site.start(concurrency=concurrency)
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
        worker = site.start(concurrency=concurrency)
    assert site.statuses()["delivered"] < total, "the burst was over before the last kill: nothing was tested"
    site.wait_delivered(total, 180)
    bound = KILLS * concurrency * slots  # what the slots let a kill repeat
    t = site.check(f"worker-killed-{slots}-slots", duplicate_bound=bound if slots > 1 else None,
                   extra={"answers_lost_per_kill": per_kill, "bound": bound})
    # Every duplicate is a message whose answer a kill cut off: none comes from a live worker
    # (a lease running out under it, the sweep, a second claim).
    assert t.duplicates <= len(cut_off), f"{t.duplicates} duplicates, {len(cut_off)} explained by the kills"
    assert max(per_kill) <= concurrency * slots, f"a kill cut off more answers than slots: {per_kill}"


def answers_lost(site, fleet) -> set:
    """(partner, webhook-id) of rows still `sending` (claimed by the dead worker) that the
    partner has received: the kill lost their answers, so they go out again."""
    from worker.store import DeliveryRow

    with site.store.session() as s:
        sending = set(s.execute(select(DeliveryRow.destination, DeliveryRow.message_id)
                                .where(DeliveryRow.kind == "partner", DeliveryRow.status == "sending")).all())
    got = {(f"p{i}", r.webhook_id) for i, server in enumerate(fleet) for r in list(server.received)}
    return {x for x in sending if x in got}
