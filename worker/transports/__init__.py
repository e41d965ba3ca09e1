"""One transport class per destination type, behind one interface (`base.Transport`).

Transports are found by type name and imported on first use, so a process that
never posts to X does not import its OAuth library.
"""

from __future__ import annotations

import importlib
import threading

from worker.transports.base import Outcome, Post, Transport, TransportError  # noqa: F401

# destination type → "module:Class"
REGISTRY = {
    "webhook": "worker.transports.webhook:WebhookTransport",
    "mastodon": "worker.transports.mastodon:MastodonTransport",
    "bluesky": "worker.transports.bluesky:BlueskyTransport",
    "telegram": "worker.transports.telegram:TelegramTransport",
    "x": "worker.transports.x:XTransport",
    "facebook": "worker.transports.facebook:FacebookTransport",
    "linkedin": "worker.transports.linkedin:LinkedInTransport",
    "threads": "worker.transports.threads:ThreadsTransport",
}


def transport_class(type_name: str) -> type[Transport]:
    module, _, cls = REGISTRY[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)


class Transports:
    """One transport instance per type for this process (they hold pools and sessions).
    `redis_client` is shared state some platforms need across workers (a Bluesky session)."""

    def __init__(self, redis_client=None, overrides: dict[str, Transport] | None = None):
        self.redis_client = redis_client
        self._made: dict[str, Transport] = dict(overrides or {})
        self._lock = threading.Lock()

    def __getitem__(self, type_name: str) -> Transport:
        t = self._made.get(type_name)
        if t is None:
            with self._lock:
                t = self._made.get(type_name)
                if t is None:
                    t = self._made[type_name] = transport_class(type_name)(redis_client=self.redis_client)
        return t

    def close(self) -> None:
        for t in self._made.values():
            t.close()
