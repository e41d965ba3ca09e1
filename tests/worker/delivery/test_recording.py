"""Recording each answer as it comes in (worker/delivery/recording.py): what a killed worker
can lose is the requests in flight, not a batch's worth of answers already in; and the
slots that bound both."""

import threading

from tests.conftest import wait_until
from tests.support.partner_server import Slow
from tests.worker.delivery.conftest import article, attempts, make_config, partner_entry, row, store_article
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
        self.not_answering: set[str] = set()

    def record(self, jobs):
        self.go.wait(10)
        self.written += [j.delivery_id for j in jobs]
        return []


class FakeJob:
    def __init__(self, delivery_id, key="partner:acme"):
        self.delivery_id, self.key, self.tracker, self.slot = delivery_id, key, None, None


def test_a_send_takes_a_slot_that_only_its_recording_gives_back():
    # Slots bound what a SIGKILL can repeat: a request in flight and an answer waiting for
    # the writer both hold one, so with every slot taken the next send waits.
    recorder = BlockingRecorder()
    line = RecordingLine(recorder, lambda jobs, later: None, most_unrecorded=3)
    try:
        sent = [FakeJob(i, key=f"partner:p{i}") for i in range(3)]
        assert all(line.take(job, timeout=1) for job in sent)
        assert line.unrecorded() == 3
        waiting = FakeJob(9, key="partner:p9")
        assert not line.take(waiting, timeout=0.3), "a fourth send went out with three unrecorded"
        for job in sent:  # answered, not yet written: still holding their slots
            line.put(job)
        assert not line.take(waiting, timeout=0.3)
        got = threading.Event()
        t = threading.Thread(target=lambda: line.take(waiting, timeout=10) and got.set())
        t.start()
        recorder.go.set()
        assert got.wait(5), "the send goes on once the answers are written"
        t.join(5)
        assert line.unrecorded() == 1 and sorted(recorder.written) == [0, 1, 2]
    finally:
        recorder.go.set()
        line.close()


def test_one_destination_holds_at_most_half_the_slots():
    recorder = BlockingRecorder()
    line = RecordingLine(recorder, lambda jobs, later: None, most_unrecorded=4)
    try:
        stuck = [FakeJob(i, key="partner:silent") for i in range(3)]
        assert line.take(stuck[0], timeout=1) and line.take(stuck[1], timeout=1)
        # a destination whose requests wait for their timeout cannot take the rest ...
        assert not line.take(stuck[2], timeout=0.2)
        # ... so another destination still sends
        assert line.take(FakeJob(7, key="partner:healthy"), timeout=1)
    finally:
        recorder.go.set()
        line.close()


def test_a_destination_that_stopped_answering_holds_one_slot():
    recorder = BlockingRecorder()
    recorder.not_answering = {"partner:down"}  # its last request timed out
    line = RecordingLine(recorder, lambda jobs, later: None, most_unrecorded=16)
    try:
        assert line.take(FakeJob(1, key="partner:down"), timeout=1)
        assert not line.take(FakeJob(2, key="partner:down"), timeout=0.2)
        assert all(line.take(FakeJob(i, key="partner:up"), timeout=1) for i in range(3, 11))
    finally:
        recorder.go.set()
        line.close()


def test_a_slot_for_a_send_not_made_is_given_back():
    line = RecordingLine(BlockingRecorder(), lambda jobs, later: None, most_unrecorded=1)
    try:
        job = FakeJob(1)
        assert line.take(job, timeout=1)
        line.give_back(job)  # a warm shutdown came before the request was written
        assert line.unrecorded() == 0 and job.slot is None
        assert line.take(FakeJob(2), timeout=1)
    finally:
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


def test_a_send_that_waited_past_its_lease_is_handed_back_not_sent(store, servers, deliverer_for):
    # One slot: the slow partner's request holds it while the other waits. Sent after its
    # lease ran out, the other could go out twice (the sweep takes an expired lease back),
    # so it is handed back, due at once, and its attempt closed without counting as a kill.
    from worker.delivery.engine import NOT_SENT_IN_LEASE

    slow, fast = servers(), servers()
    slow.default = Slow(2.5)
    config = make_config(partner_entry("slow", slow, timeout="3s"), partner_entry("fast", fast, timeout="3s"))
    ids = store_article(store, config, article(1))
    deliverer = deliverer_for(config, task_wait=0.05)
    deliverer.recording.most_unrecorded = deliverer.recording.most_per_destination = 1
    deliverer.lease_margin = 1  # lease 6 + 1 s; a 3 s partner must start within 1 s
    by_name = {row(store, i).destination: i for i in ids}
    waited = by_name["fast"]
    deliverer.run([by_name["slow"]])  # takes the one slot for 2.5 s
    deliverer.run([waited])
    wait_until(lambda: row(store, waited).status == "pending", 10, "the waiting send handed back")
    assert row(store, waited).last_error == NOT_SENT_IN_LEASE
    assert fast.received == []
    assert [(a.outcome, a.error_class) for a in attempts(store, waited)] == [("interrupted", "shutdown")]
    wait_until(lambda: row(store, by_name["slow"]).status == "delivered", 10, "the slow send recorded")
