"""WebSub (PubSubHubbub) publish pings: telling hubs that a feed file changed.

After a build changes a feed file's bytes, every hub in `[websub] hubs` gets one
form-encoded POST per changed file:

    hub.mode=publish&hub.url=<topic>&hub.topic=<topic>

where the topic is the file's public URL (`[site] feeds_url` + file name), the same
URL as the feed's `rel="self"` link. `hub.url` is what the original protocol and
Google's hub read; `hub.topic` what newer hubs read. A hub answers 2xx (usually 204).

Each ping is its own Celery task on the `feeds` queue, so a slow or failing hub
never holds up a build: 408, 425, 429, 5xx, timeouts and connection errors are retried
with Celery's exponential backoff and jitter; any other answer is logged and
dropped (the next change pings again, and a hub re-fetches the whole feed anyway).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger("syndicate.websub")

FEED_SUFFIXES = (".rss", ".atom", ".json")
TIMEOUT = 10.0
# Answers worth trying again later; any other 4xx (and a redirect) will not change by itself.
RETRYABLE_STATUS = {408, 425, 429}


class HubError(Exception):
    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def topic_url(feeds_url: str, file_name: str) -> str:
    return f"{feeds_url.rstrip('/')}/{file_name}"


def topics(config, changed_files) -> list[str]:
    """The public URLs of the changed feed files (the sitemap is not a WebSub topic)."""
    from worker.feeds.items import web_uri

    base = web_uri(config.site.feeds_url)
    return [topic_url(base, f) for f in changed_files if f.endswith(FEED_SUFFIXES)]


def display_url(url: str) -> str:
    """The hub URL for logs: no credentials, no query (hubs like Superfeedr put tokens there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_session: requests.Session | None = None


def _http() -> requests.Session:
    # One per process, so pings to a hub reuse its connection.
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = "syndicate-websub/1.0"
    return _session


def publish(hub: str, topic: str, timeout: float = TIMEOUT, session: requests.Session | None = None) -> int:
    """Send one publish ping; return the hub's status, or raise HubError saying whether to retry."""
    http = session or _http()
    data = {"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
    try:
        # Not following redirects: requests would turn the POST into a GET.
        response = http.post(hub, data=data, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        # Not str(exc): it repeats the URL with its query, where hubs keep tokens.
        raise HubError(f"{type(exc).__name__} reaching {display_url(hub)}", permanent=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return status
    detail = f"hub answered {status}: {response.text[:200]!r}"
    if 300 <= status < 400:
        detail += f" (redirect to {response.headers.get('location', '?')}; configure that URL in [websub] hubs)"
    raise HubError(detail, permanent=status < 500 and status not in RETRYABLE_STATUS)


def notify(config, changed_files) -> int:
    """Enqueue one ping per (hub, changed feed file); return how many."""
    from worker import enqueue

    count = 0
    for topic in topics(config, changed_files):
        for hub in config.websub.hubs:
            enqueue.ping_hub(hub, topic)
            count += 1
    return count
