"""How log lines look: readable text by default, one JSON object per line with
`LOG_FORMAT=json`; and Celery's routine lines for periodic tasks kept out of the log.

`worker.observability.setup_logging` picks the formatter with `formatter_from_env()`.
The redaction filter runs on the handler before formatting, so both formats carry
only scrubbed messages.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Iterable

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has; anything else was passed with `extra=` and goes into JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields
    (delivery lines pass article_id, destination, attempt and outcome that way)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter_from_env(env: dict | None = None) -> logging.Formatter:
    """`LOG_FORMAT=json` → JsonFormatter; anything else (or unset) → readable text."""
    value = (os.environ if env is None else env).get("LOG_FORMAT", "text").strip().lower()
    return JsonFormatter() if value == "json" else logging.Formatter(TEXT_FORMAT)


class QuietPeriodicTasks(logging.Filter):
    """Drops Celery's per-run lines for the beat schedule's own tasks ("Task … received",
    "Task … succeeded", "Scheduler: Sending due task …"): with a sweep every few seconds
    they were most of an idle worker's log. Failures and everything else still pass."""

    def __init__(self, task_names: Iterable[str]):
        super().__init__()
        self.task_names = frozenset(task_names)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            return args.get("name") not in self.task_names
        if isinstance(args, tuple) and record.name == "celery.beat" and len(args) >= 2:
            return args[1] not in self.task_names
        return True


# The loggers that write those lines (a filter on a logger sees only its own records).
CELERY_ROUTINE_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


def quiet_periodic_tasks(task_names: Iterable[str], loglevel: str | None = None) -> bool:
    """Install the filter unless the process runs at debug level; returns whether it did."""
    level = (loglevel or os.environ.get("SYNDICATE_LOG_LEVEL") or "INFO").upper()
    if level == "DEBUG":
        return False
    quiet = QuietPeriodicTasks(task_names)
    for name in CELERY_ROUTINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietPeriodicTasks) for f in logger.filters):
            logger.addFilter(quiet)
    return True
