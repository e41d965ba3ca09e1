"""The one way domain code schedules work. `tasks/` implements it (with Celery) and
installs itself when imported; domain code never imports `tasks/`.

Everything scheduled here is also recorded in the store first (delivery rows, pending
feed rows), so a lost or failed enqueue only delays work: the sweep finds it.
"""

from __future__ import annotations

from typing import Protocol


class Scheduler(Protocol):
    def deliver(self, delivery_ids: list[int], countdown: float = 0) -> None:
        """Run these delivery rows (of any destination kind) after `countdown` seconds."""

    def deliver_many(self, batches: list[list[int]]) -> None:
        """Run each list of delivery rows as a task of its own, now (one broker round trip
        for all where the broker allows; a scheduler without it gets one `deliver` each)."""

    def build(self, target: str, countdown: float) -> None:
        """Build a coalescing target (`feed:<name>` or the sitemap) after `countdown` seconds."""

    def ping_hub(self, hub: str, topic: str) -> None:
        """Tell a WebSub hub that `topic` changed."""

    def poll_source(self, name: str) -> None:
        """Poll one source now."""


class NoScheduler(RuntimeError):
    def __init__(self):
        super().__init__("no scheduler is installed: import `tasks` (the Celery tasks) before scheduling work")


_scheduler: Scheduler | None = None


def install(scheduler: Scheduler) -> None:
    global _scheduler
    _scheduler = scheduler


def scheduler() -> Scheduler:
    if _scheduler is None:
        raise NoScheduler()
    return _scheduler


def deliver(delivery_ids: list[int], countdown: float = 0) -> None:
    scheduler().deliver(delivery_ids, countdown)


def deliver_many(batches: list[list[int]]) -> None:
    if not batches:
        return
    installed = scheduler()
    many = getattr(installed, "deliver_many", None)
    if many is not None:
        many(batches)
        return
    for ids in batches:
        installed.deliver(ids)


def build(target: str, countdown: float) -> None:
    scheduler().build(target, countdown)


def ping_hub(hub: str, topic: str) -> None:
    scheduler().ping_hub(hub, topic)


def poll_source(name: str) -> None:
    scheduler().poll_source(name)
