"""Enqueueing the work of committed events: delivery tasks and coalesced feed rebuilds.
Called only after the transaction that stored the rows committed; a lost enqueue only
delays work (the sweep finds the rows due)."""

from __future__ import annotations

import logging

from config import SyndicationConfig
from worker.pipeline.events import Recorded

log = logging.getLogger("syndicate.pipeline")

# Deliveries per task: several articles stored together share a task up to this many.
DISPATCH_BATCH = 50


def broker_errors() -> tuple[type[BaseException], ...]:
    """What enqueueing raises when the broker cannot be reached (after Celery's own retries)."""
    import kombu.exceptions
    import redis

    return (kombu.exceptions.OperationalError, redis.RedisError)


def dispatch(recorded: list[Recorded], config: SyndicationConfig, warn_broker_down: bool = True) -> bool:
    """Enqueue the work for committed events. Call only after the transaction committed.

    Returns False when the broker could not be reached: nothing is lost (the rows are
    committed and due), the sweep enqueues them once the broker is back. One failed
    enqueue stops the rest, so a broker that is down costs one connection attempt.
    `warn_broker_down=False` is for a caller that tells its user itself (`ingest`)."""
    from worker import enqueue

    feeds: set[str] = set()
    for rec in recorded:
        if not rec.changed:
            continue
        feeds.update(rec.feed_names)
    # One task per article fan-out; several articles stored together share a task, up to
    # DISPATCH_BATCH deliveries (sends to different destinations, and to one, run in parallel).
    batches: list[list[int]] = []
    batch: list[int] = []
    for rec in recorded:
        ids = rec.partner_deliveries + rec.channel_deliveries
        if rec.changed and ids:
            if batch and len(batch) + len(ids) > DISPATCH_BATCH:
                batches.append(batch)
                batch = []
            batch += ids
    if batch:
        batches.append(batch)
    queued = True
    try:
        enqueue.deliver_many(batches)
    except broker_errors() as exc:
        queued = False
        waiting = sum(len(ids) for ids in batches)
        log.log(logging.WARNING if warn_broker_down else logging.DEBUG,
                "stage=not-queued deliveries=%d error=%s: they are stored and go out when the broker is back "
                "(the sweep)", waiting, exc)
    if any(rec.changed for rec in recorded):
        queued = request_feed_builds(feeds, config, warn_broker_down and queued) and queued
    return queued


def request_feed_builds(feeds: set[str], config: SyndicationConfig, warn: bool = True) -> bool:
    """Coalesced rebuilds of these feeds and the news sitemap (see worker.feeds.coalesce);
    False when Redis could not be reached."""
    from worker.feeds.coalesce import request_rebuilds

    try:
        request_rebuilds(feeds, config.feed_settings)
    except broker_errors() as exc:
        # The feeds' pending rows are committed: the sweep asks again once Redis answers.
        log.log(logging.WARNING if warn else logging.DEBUG, "stage=feeds-not-requested feeds=%s error=%s",
                ",".join(sorted(feeds)), exc)
        return False
    return True
