"""Celery tasks: thin wrappers that take ids, load what they need and call into `worker/`.

Importing this package installs the Celery implementation of `worker.enqueue`, the one
interface through which domain code schedules work."""

from worker import enqueue


# Task names, for senders that enqueue by name without importing the task's module (and
# with it the delivery engine or the feed builder): `syndicate ingest`, polls.
DELIVER_BATCH = "tasks.deliver.deliver_batch"
BUILD_FEED = "tasks.feeds.build_feed"
BUILD_SITEMAP = "tasks.feeds.build_news_sitemap"


class CeleryScheduler:
    """`worker.enqueue.Scheduler` on Celery (task modules are imported on first use)."""

    def deliver(self, delivery_ids: list[int], countdown: float = 0) -> None:
        from tasks.deliver import deliver_batch

        if countdown > 0:
            deliver_batch.apply_async((delivery_ids,), countdown=countdown)
        else:
            deliver_batch.delay(delivery_ids)

    def deliver_many(self, batches: list[list[int]]) -> None:
        from worker.celery import app

        # Sent by name: the sender (`syndicate ingest`, a poll) need not import the delivery
        # engine. kombu's publish batch: the messages go to Redis in one pipeline at the end,
        # not one LPUSH round trip each. `argsrepr` spares Celery a repr of every id list.
        with app.producer_or_acquire() as producer, producer.batch():
            for ids in batches:
                app.send_task(DELIVER_BATCH, (ids,), producer=producer, argsrepr=f"({len(ids)} delivery ids)")

    def build(self, target: str, countdown: float) -> None:
        """Enqueue the build of a coalescing target (see worker.feeds.coalesce) in `countdown` seconds."""
        from worker.celery import app
        from worker.feeds.coalesce import SITEMAP_TARGET

        if target == SITEMAP_TARGET:
            app.send_task(BUILD_SITEMAP, countdown=countdown)
        else:
            app.send_task(BUILD_FEED, (target.removeprefix("feed:"),), countdown=countdown)

    def ping_hub(self, hub: str, topic: str) -> None:
        from tasks.feeds import ping_hub

        ping_hub.delay(hub, topic)

    def poll_source(self, name: str) -> None:
        from tasks.watch import poll_source

        poll_source.delay(name)


enqueue.install(CeleryScheduler())
