"""Delivering to partners: the policy that decides each outcome, the executor that
claims, gates, sends and records, partner health in Redis, and the SSRF guard."""

from worker.delivery.executor import PartnerDeliverer, RunResult, disable_partner  # noqa: F401
from worker.delivery.policy import Decision, DeliveryPolicy, parse_retry_after  # noqa: F401
