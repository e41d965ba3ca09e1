"""Fault case 6: two worker processes on one PostgreSQL store and one Redis, as two machines
would run them — `syndicate run` (worker and beat) on one, `syndicate worker` on the other,
each in a UTS namespace of its own with its own hostname, so node names and the attempt
rows' worker names differ. Each delivery is claimed by one of them; none is sent twice."""

import pytest
from sqlalchemy import func, select

from tests.faults.conftest import unshare_works

ARTICLES = 100  # × 10 partners = 1,000 deliveries


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_machines_share_the_work_and_send_each_message_once(site, fleet):
    from worker.store import AttemptRow

    if not unshare_works():
        pytest.fail("`unshare --uts` is needed to give each worker its own hostname (run as root)")
    a = site.start("run", node="machine-a")
    b = site.start("worker", node="machine-b")
    site.ingest(range(ARTICLES))
    total = ARTICLES * len(fleet)
    site.wait_delivered(total, 120)
    assert a.poll() is None and b.poll() is None
    assert "syndicate@machine-a ready." in site.log(a) and "syndicate@machine-b ready." in site.log(b)
    with site.store.session() as s:
        machine = func.split_part(AttemptRow.worker, ":", 1)
        per_machine = dict(s.execute(select(machine, func.count()).group_by(machine)).all())
    print(f"\ntwo-machines: attempts per machine {per_machine}")
    assert set(per_machine) == {"machine-a", "machine-b"}, per_machine
    site.check("two-machines")
