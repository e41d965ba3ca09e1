"""Group commit of finished sends, and the bound on what a crash can repeat.

Every send is handed to one recording thread the moment its answer is in, and that thread
writes whatever has finished since its last write in one transaction (`Recorder.record`).
Why not record per lane or per batch: a worker killed between a partner's answer and the
write sends that message again (under the same webhook-id) once the lease runs out, so every
millisecond an answer waits unrecorded is a window for a duplicate. Recording each answer at
once shrinks that window to the requests truly in flight, and under load many answers still
share a transaction (they pile up while the previous write runs), so the database sees no
more statements than before.

A send takes a slot before its request is written and gives it back when its outcome is
recorded; a process has `SYNDICATE_MOST_UNRECORDED` slots. So a SIGKILL repeats at most
that many messages per pool process: the requests in flight and the answers not yet
written are all holding slots. No destination holds more than half of them, and one whose
last request got no answer at all (a timeout, a refused connection) holds one, so a
destination that stops answering (its requests wait for their timeout) cannot take the
slots the others need.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Callable

from worker.delivery.record import RECORD_RETRY_FOR, Job, Recorder

log = logging.getLogger("syndicate.delivery")

# Most jobs written in one transaction.
MOST_PER_WRITE = 500

Later = list[tuple[int, datetime]]


class RunTracker:
    """What one `DeliveryEngine.run` waits for: its jobs recorded, and their retries."""

    def __init__(self):
        self._cond = threading.Condition()
        self._recorded: set[int] = set()
        self.later: Later = []

    def recorded(self, ids: list[int], later: Later) -> None:
        with self._cond:
            self._recorded.update(ids)
            self.later += later
            self._cond.notify_all()

    def wait_for(self, ids: set[int], timeout: float) -> bool:
        """Wait until every one of `ids` is recorded (or given up on); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: ids <= self._recorded, timeout)


class RecordingLine:
    """One thread per process recording finished jobs, many to a write."""

    def __init__(self, recorder: Recorder, on_recorded: Callable[[list[Job], Later], None],
                 most_unrecorded: int):
        # Slots (`SYNDICATE_MOST_UNRECORDED`): without a bound, sending threads outrun the
        # one writing (they share one interpreter lock), and a kill then finds many requests
        # in flight and a backlog of answers accepted by partners but not recorded.
        self.most_unrecorded = most_unrecorded
        self.most_per_destination = max(1, (most_unrecorded + 1) // 2)
        self._by_destination: dict[str, int] = {}
        self.recorder = recorder
        self.on_recorded = on_recorded
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None

    def take(self, job: Job, timeout: float) -> bool:
        """Before a send: wait up to `timeout` for a slot for `job` (False if none came)."""
        key = job.key
        silent = self.recorder.not_answering
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending < self.most_unrecorded
                                       and self._by_destination.get(key, 0) < self._share(key, silent),
                                       timeout):
                return False
            self._pending += 1
            self._by_destination[key] = self._by_destination.get(key, 0) + 1
            job.slot = key
            return True

    def _share(self, key: str, silent) -> int:
        """Slots one destination may hold: half, or one while its last request here got no
        answer at all (its requests would each hold a slot until their timeout)."""
        return 1 if key in silent else self.most_per_destination

    def give_back(self, job: Job) -> None:
        """A slot taken for a send that was not made (a warm shutdown came first)."""
        with self._idle:
            if job.slot is not None:
                self._pending -= 1
                self._by_destination[job.slot] -= 1
                job.slot = None
                self._idle.notify_all()

    def unrecorded(self) -> int:
        """Sends taken and not yet recorded (in flight, or answered and waiting for the writer)."""
        with self._lock:
            return self._pending

    def put(self, job: Job) -> None:
        """A finished job to record (it holds a slot if it was sent; one not sent takes one now)."""
        with self._lock:
            if job.slot is None:
                self._pending += 1
            if self._thread is None:
                # Started on first use, so a pool process forked from a parent that built an
                # engine still gets a thread of its own.
                self._thread = threading.Thread(target=self._loop, name="deliver-record", daemon=True)
                self._thread.start()
        self._queue.put(job)

    def drain(self, timeout: float) -> bool:
        """Wait until every job handed in so far is recorded; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < MOST_PER_WRITE:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this write
                    break
                jobs.append(nxt)
            self._write(jobs)

    def _write(self, jobs: list[Job]) -> None:
        later: Later | None
        try:
            later = self.recorder.record(jobs)
        except Exception:  # noqa: BLE001 - the lease runs out and the sweep takes the rows again
            log.exception("recording %d delivery outcomes failed (the database did not answer for %.0fs); "
                          "their leases run out and the sweep sends them again", len(jobs), RECORD_RETRY_FOR)
            later = None
        try:
            self.on_recorded(jobs, later)
        except Exception:  # noqa: BLE001 - a callback must not stop the recording thread
            log.exception("after recording %d delivery outcomes", len(jobs))
        finally:
            with self._idle:
                self._pending -= len(jobs)
                for job in jobs:
                    if job.slot is not None:
                        self._by_destination[job.slot] -= 1
                self._idle.notify_all()

