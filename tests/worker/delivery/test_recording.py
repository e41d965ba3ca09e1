"""Recording each answer as it comes in (worker/delivery/recording.py): what a killed worker
can lose is the requests in flight, not a batch's worth of answers already in."""

import threading

from tests.conftest import wait_until
from tests.support.partner_server import Slow
from tests.worker.delivery.conftest import article, make_config, partner_entry, row, store_article
from worker.delivery.recording import RecordingLine


def test_an_answer_is_recorded_while_the_lane_sends_the_next(store, servers, deliverer_for):
    server = servers()
    server.default = Slow(0.6)
    config = make_config(partner_entry("acme", server, timeout="5s"))
    ids = [store_article(store, config, article(n))[0] for n in range(3)]
    # One lane: the three go one after another; the task does not wait for them.
    deliverer = deliverer_for(config, task_wait=0.05, lanes=1)
    deliverer.run(ids)
    wait_until(lambda: row(store, ids[0]).status == "delivered", 10, "the first answer recorded")
    # ... while the same lane is still sending the others
    assert [row(store, i).status for i in ids[1:]] == ["sending", "sending"]
    wait_until(lambda: all(row(store, i).status == "delivered" for i in ids), 10, "the rest recorded")


def test_what_finishes_within_the_wait_is_recorded_before_the_run_returns(store, servers, deliverer_for):
    server = servers()
    config = make_config(partner_entry("acme", server))
    ids = [store_article(store, config, article(n))[0] for n in range(4)]
    deliverer = deliverer_for(config)
    result = deliverer.run(ids)
    # what finished within the task's wait is recorded before the task returns
    assert result.background == 0
    assert all(row(store, i).status == "delivered" for i in ids)
    assert len(server.received) == 4


class BlockingRecorder:
    """A recorder whose writes wait for the test (the database being slow)."""

    def __init__(self):
        self.go = threading.Event()
        self.written: list[int] = []

    def record(self, jobs):
        self.go.wait(10)
        self.written += [j.delivery_id for j in jobs]
        return []


class FakeJob:
    def __init__(self, delivery_id):
        self.delivery_id, self.tracker = delivery_id, None


def test_sends_wait_while_the_writer_is_behind():
    recorder = BlockingRecorder()
    line = RecordingLine(recorder, lambda jobs, later: None, most_unrecorded=3)
    try:
        for i in range(3):
            line.put(FakeJob(i))
        waited = threading.Event()

        def sender():
            line.wait_room(timeout=10)
            waited.set()

        t = threading.Thread(target=sender)
        t.start()
        # three answers unrecorded: the next send waits for the writer
        assert not waited.wait(0.3)
        recorder.go.set()
        assert waited.wait(5), "the send goes on once the backlog is written"
        t.join(5)
        assert line.drain(5) and sorted(recorder.written) == [0, 1, 2]
    finally:
        recorder.go.set()
        line.close()


def test_a_success_after_failures_resets_the_breakers_count(store, servers, deliverer_for, redis_client):
    # Successes to a destination healthy when claimed skip the breaker's round trip; after
    # failures (counted by this process, or seen at claim) a success still resets the count.
    from tests.worker.delivery.conftest import make_due
    from worker.delivery.health import CircuitBreaker

    server = servers()
    config = make_config(partner_entry("acme", server, retry_schedule=["1s"] * 5))
    breaker = CircuitBreaker(redis_client, threshold=10, cooloff=60)
    deliverer = deliverer_for(config, breaker=breaker)
    ids = [store_article(store, config, article(n))[0] for n in range(3)]
    server.plan += [(500, {}, b"busy")] * 3
    deliverer.run(ids)
    assert breaker.state("partner:acme").failures == 3
    make_due(store, *ids)
    deliverer.run(ids)
    assert all(row(store, i).status == "delivered" for i in ids)
    assert breaker.state("partner:acme").failures == 0
    # healthy now: more successes leave no state behind in Redis
    more = [store_article(store, config, article(n))[0] for n in range(3, 6)]
    deliverer.run(more)
    assert all(row(store, i).status == "delivered" for i in more)
    assert breaker.state("partner:acme").failures == 0
