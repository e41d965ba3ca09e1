"""Delivering to every destination kind — partners and social channels — on one engine:
the policy that decides each outcome, claim, gates (breaker, pauses, rate limits),
send through each kind's transport, record; destination health in Redis; the SSRF guard.

The engine and the policy are imported when first named, not with the package: storing an
article (`worker.pipeline`) needs only `worker.delivery.destinations`, and `syndicate
ingest` should not load the engine and every transport to store and enqueue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy_exports import lazy_getattr

_LAZY = {
    "DeliveryEngine": "worker.delivery.engine",
    "RunResult": "worker.delivery.engine",
    "Decision": "worker.delivery.policy",
    "DeliveryPolicy": "worker.delivery.policy",
    "parse_retry_after": "worker.delivery.policy",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from worker.delivery.engine import DeliveryEngine, RunResult  # noqa: F401
    from worker.delivery.policy import Decision, DeliveryPolicy, parse_retry_after  # noqa: F401


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
