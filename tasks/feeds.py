"""Feed tasks (queue `feeds`): coalesced builds, the news sitemap, and WebSub pings."""

import logging

from tasks import BUILD_FEED, BUILD_SITEMAP
from worker import runtime
from worker.celery import MAX_BROKER_COUNTDOWN, app
from worker.feeds import build_news_sitemap, rebuild
from worker.feeds.coalesce import (
    SITEMAP_TARGET,
    BuildLockTimeout,
    build_lock,
    feed_target,
    request_rebuilds,
    take_request,
)
from worker.observability import report_feed_failed
from worker.websub import HubError, display_url, notify, publish

log = logging.getLogger("syndicate.feeds")


def _backoff(retries: int) -> float:
    return min(float(MAX_BROKER_COUNTDOWN), 5.0 * 2 ** retries)


@app.task(name="tasks.feeds.rebuild_feed")
def rebuild_feed(name: str) -> None:
    """Something in this feed changed (the sweep's entry point): ask for a coalesced build."""
    request_rebuilds([name], runtime.config().feed_settings)


@app.task(name=BUILD_FEED, bind=True, max_retries=None)
def build_feed(self, name: str, force: bool = False) -> None:
    client = runtime.redis_client()
    target = feed_target(name)
    take_request(client, target)
    config = runtime.config()
    try:
        with build_lock(client, target):
            result = rebuild(runtime.store(), config, runtime.environment().feeds_dir, name, force=force)
    except BuildLockTimeout as exc:
        raise self.retry(exc=exc, countdown=5)
    except OSError as exc:
        # A full disk or a permissions slip: the rows went back to pending; try again
        # (the sweep would too, later).
        report_feed_failed(feed=name, exc=exc, will_retry=True, retries=self.request.retries)  # monitoring
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries))
    if result is not None and result.changed and config.websub.hubs:
        notify(config, result.changed)


@app.task(name=BUILD_SITEMAP, bind=True, max_retries=None)
def build_sitemap(self) -> None:
    client = runtime.redis_client()
    take_request(client, SITEMAP_TARGET)
    try:
        with build_lock(client, SITEMAP_TARGET):
            build_news_sitemap(runtime.store(), runtime.config(), runtime.environment().feeds_dir)
    except BuildLockTimeout as exc:
        raise self.retry(exc=exc, countdown=5)
    except OSError as exc:
        report_feed_failed(feed="news-sitemap", exc=exc, will_retry=True, retries=self.request.retries)  # monitoring
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries))


class HubUnavailable(Exception):
    """A ping that may succeed later (timeout, connection error, 408, 429, 5xx)."""


@app.task(name="tasks.feeds.ping_hub", bind=True, autoretry_for=(HubUnavailable,), retry_backoff=2,
          retry_backoff_max=MAX_BROKER_COUNTDOWN, retry_jitter=True, max_retries=10)
def ping_hub(self, hub: str, topic: str) -> None:
    try:
        status = publish(hub, topic)
    except HubError as exc:
        if exc.permanent:
            log.error("stage=websub-failed hub=%s topic=%s error=%s (not retried)", display_url(hub), topic, exc)
            return
        log.warning("stage=websub-retry hub=%s topic=%s attempt=%d error=%s", display_url(hub), topic,
                    self.request.retries + 1, exc)
        raise HubUnavailable(str(exc)) from None
    log.info("stage=websub-pinged hub=%s topic=%s status=%d", display_url(hub), topic, status)
