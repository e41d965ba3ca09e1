"""Delivering to every destination kind — partners and social channels — on one engine:
the policy that decides each outcome, claim, gates (breaker, pauses, rate limits),
send through each kind's transport, record; destination health in Redis; the SSRF guard."""

from worker.delivery.engine import DeliveryEngine, RunResult  # noqa: F401
from worker.delivery.policy import Decision, DeliveryPolicy, parse_retry_after  # noqa: F401
