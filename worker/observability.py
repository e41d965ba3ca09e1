"""Logging and Sentry, with every configured secret scrubbed before it leaves the process."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Iterable

_installed_secrets: list[str] = []
_SIGNATURE_RE = re.compile(r"v1,[A-Za-z0-9+/=]{20,}")


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    for secret in (_installed_secrets if secrets is None else secrets):
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    return _SIGNATURE_RE.sub("v1,[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_secrets(secrets: Iterable[str]) -> None:
    _installed_secrets[:] = sorted({s for s in secrets if s}, key=len, reverse=True)


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_syndicate", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._syndicate = True  # type: ignore[attr-defined]
    from worker.logformat import formatter_from_env  # text, or JSON lines with LOG_FORMAT=json

    handler.setFormatter(formatter_from_env())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs with query strings at DEBUG; keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def before_send(event: dict, hint: dict) -> dict:
    """Sentry hook: no secret or signature leaves in an error report."""
    return _scrub(event)


def init_sentry(dsn: str | None, environment_name: str | None = None) -> bool:
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[CeleryIntegration(monitor_beat_tasks=True)],
        send_default_pii=False,
        before_send=before_send,
        before_send_transaction=before_send,
        environment=environment_name,
        traces_sample_rate=0.0,
    )
    return True


def configure_process() -> None:
    """Logging, secret scrubbing and Sentry for a worker, beat or CLI process."""
    from config import ConfigError
    from worker import runtime

    setup_logging()
    try:
        install_secrets(runtime.config().secrets())
    except ConfigError:
        pass  # reported where the configuration is used
    init_sentry(runtime.environment().sentry_dsn)
