"""Process logging: one stderr handler whose lines never carry a secret."""

from __future__ import annotations

import logging
import os
import sys

from worker.observability.redaction import redact


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: str | None = None) -> None:
    """Our handler on the root logger, at `level`, else SYNDICATE_LOG_LEVEL (every process:
    `run`, `worker` and `beat` set it from --loglevel), else INFO. Never below INFO: at
    DEBUG the root logger would have SQLAlchemy log every statement (Celery's own DEBUG
    lines do not need it)."""
    name = (level or os.environ.get("SYNDICATE_LOG_LEVEL") or "INFO").upper()
    number = logging.getLevelName(name)
    # An unknown name gives the default rather than a crash.
    level = logging.getLevelName(max(number, logging.INFO)) if isinstance(number, int) else "INFO"
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
