"""One Sentry setup for every process (worker, beat, each CLI command).

- Release `syndicate@<package version>`, environment from `SENTRY_ENVIRONMENT`.
- `CeleryIntegration`; with `SENTRY_TRACES_SAMPLE_RATE` above 0, task transactions carry
  `queue.publish` / `queue.process` spans for Sentry's Queues view (queue name, message id,
  retry count, receive latency). Our queues have their own direct exchanges, for which the
  SDK leaves the queue name out; `_note_published_queue` and `_note_task_queue` put it in.
- No trace propagation to anyone: `trace_propagation_targets=[]`, so the stdlib
  integration (which patches http.client, used by every transport and by urllib3) adds
  no `sentry-trace` or `baggage` header to a request to a partner, channel, source or hub.
  Celery messages (our own broker) still carry the trace, which links publish to process.
- An ERROR log line without an exception is a breadcrumb, not an event: what deserves an
  issue is reported by `worker.observability.capture` with its own fingerprint and
  context. An error logged *with* an exception still becomes an event, with its stack.
- Nothing secret leaves: an `EventScrubber` (recursive, with every secret key name),
  then `before_send` / `before_send_transaction` / `before_breadcrumb` redact every
  string by value and by shape (see redaction.py); local variables are kept only for our
  own frames, never for a library's (which may hold decoded keys or prepared headers).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from worker.observability.redaction import installed_keys, scrub

log = logging.getLogger("syndicate.observability")

IN_APP = ["worker", "tasks", "config"]
# Key names whose values never leave, whatever their value (compared in lower case).
SECRET_KEY_NAMES = [
    "secret", "previous_secret", "app_password", "password", "token", "page_token", "access_token",
    "access_token_secret", "consumer_key", "consumer_secret", "webhook-signature", "signature",
    "authorization", "proxy-authorization", "x-api-key", "api-key", "api_key", "accessjwt", "refreshjwt",
]


def release() -> str:
    from importlib import metadata

    try:
        return f"syndicate@{metadata.version('syndicate')}"
    except metadata.PackageNotFoundError:
        return "syndicate@unknown"


@dataclass(frozen=True)
class SentrySettings:
    dsn: str | None = None
    environment: str = "production"
    traces_sample_rate: float = 0.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "SentrySettings":
        """From SENTRY_DSN, SENTRY_ENVIRONMENT and SENTRY_TRACES_SAMPLE_RATE; a bad rate is
        reported in the log and taken as 0 (an unreadable rate must not stop a worker)."""
        env = dict(os.environ if env is None else env)
        raw = (env.get("SENTRY_TRACES_SAMPLE_RATE") or "0").strip()
        try:
            rate = float(raw)
            if not 0.0 <= rate <= 1.0:
                raise ValueError
        except ValueError:
            log.warning("SENTRY_TRACES_SAMPLE_RATE=%r is not a number from 0 to 1; tracing stays off", raw)
            rate = 0.0
        return cls(dsn=(env.get("SENTRY_DSN") or "").strip() or None,
                   environment=(env.get("SENTRY_ENVIRONMENT") or "").strip() or "production",
                   traces_sample_rate=rate)


# (settings, transport, full setup?) of the client this process set up, or None.
_active: tuple | None = None
_lock = threading.Lock()


def init_sentry(settings: SentrySettings, transport=None, command: bool = False) -> bool:
    """Initialise the SDK (once per process and settings); False when no DSN is set.
    `transport` replaces the SDK's own (sentry-test uses one that waits for the answer).

    `command`: a CLI command, which runs no task. Without tracing it gets the SDK's default
    integrations and logging only, not Celery's nor the ones the SDK enables for every
    installed library (importing Celery and trying ~40 integrations cost `syndicate status`
    about 0.25 s), and its scrubber starts from the static key names: the configuration's
    key names reach `before_send` when it first redacts (`scrub` installs them)."""
    global _active
    if not settings.dsn:
        return False
    light = command and not settings.traces_sample_rate
    with _lock:
        # Set up again only to add what a light setup left out (a command that goes on to
        # run tasks or enqueue them calls configure_process() again).
        if transport is None and _active is not None and _active[:2] == (settings, None) and (_active[2] or not light):
            return True
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

        integrations = [LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)]
        if not light:
            from sentry_sdk.integrations.celery import CeleryIntegration

            # Crons are checked in by worker.observability.crons (Sentry refuses our 5 s schedules).
            integrations.insert(0, CeleryIntegration(monitor_beat_tasks=False, propagate_traces=True))
        keys = set() if light else installed_keys()
        denylist = sorted({k.lower() for k in DEFAULT_DENYLIST} | set(SECRET_KEY_NAMES) | keys)
        sentry_sdk.init(
            dsn=settings.dsn,
            environment=settings.environment,
            release=release(),
            integrations=integrations,
            auto_enabling_integrations=not light,
            traces_sample_rate=settings.traces_sample_rate,
            trace_propagation_targets=[],
            event_scrubber=EventScrubber(denylist=denylist, recursive=True),
            before_send=before_send,
            before_send_transaction=before_send_transaction,
            before_breadcrumb=before_breadcrumb,
            include_local_variables=True,
            in_app_include=IN_APP,
            **({"transport": transport} if transport is not None else {}),
        )
        if not light:
            _connect_queue_signals()
        _active = (settings, transport, not light)
        return True


def sentry_enabled() -> bool:
    return _active is not None


# --- hooks -------------------------------------------------------------------------

def _frames(event: dict):
    for section in ("exception", "threads"):
        for value in (event.get(section) or {}).get("values") or []:
            yield from ((value.get("stacktrace") or {}).get("frames") or [])


def before_send(event: dict, hint: dict) -> dict | None:
    """Sentry hook for errors (and check-ins): drop log lines that are not exceptions (they are
    breadcrumbs; capture.py reports what deserves an issue), keep local variables of our own
    frames only, and redact every string."""
    if "log_record" in (hint or {}) and not event.get("exception"):
        return None
    for frame in _frames(event):
        if not frame.get("in_app"):
            frame.pop("vars", None)
    return scrub(event)


def before_send_transaction(event: dict, hint: dict) -> dict:
    """Sentry hook for transactions: name the queue on queue spans; redact span descriptions
    (URLs) and data."""
    _fill_queue_names(event)
    return scrub(event)


def before_breadcrumb(crumb: dict, hint: dict) -> dict:
    return scrub(crumb)


# --- queue names for the Queues view ---------------------------------------------------

QUEUE_KEY = "messaging.destination.name"
_published: "OrderedDict[str, str]" = OrderedDict()
_published_lock = threading.Lock()
_PUBLISHED_KEEP = 10_000
_signals_connected = False


def _note_published_queue(sender=None, headers=None, routing_key=None, **_):
    """After a message is published: remember its queue by message id, for its publish span."""
    task_id = (headers or {}).get("id")
    if task_id and routing_key:
        with _published_lock:
            _published[task_id] = routing_key
            while len(_published) > _PUBLISHED_KEEP:
                _published.popitem(last=False)


def _note_task_queue(task=None, **_):
    """Before a task runs: its queue on the task's transaction (and as a tag on its events)."""
    import sentry_sdk

    try:
        queue = (task.request.delivery_info or {}).get("routing_key")
    except AttributeError:
        return
    if not queue:
        return
    span = sentry_sdk.get_current_span()
    if span is not None:
        span.set_data(QUEUE_KEY, queue)
    sentry_sdk.get_isolation_scope().set_tag("queue", queue)


def _fill_queue_names(event: dict) -> None:
    process_queue = (((event.get("contexts") or {}).get("trace") or {}).get("data") or {}).get(QUEUE_KEY)
    for span in event.get("spans") or []:
        data = span.setdefault("data", {})
        if QUEUE_KEY in data:
            continue
        if span.get("op") == "queue.process" and process_queue:
            data[QUEUE_KEY] = process_queue
        elif span.get("op") == "queue.publish":
            with _published_lock:
                queue = _published.get(data.get("messaging.message.id") or "")
            if queue:
                data[QUEUE_KEY] = queue


def _connect_queue_signals() -> None:
    global _signals_connected
    if _signals_connected:
        return
    from celery import signals

    signals.after_task_publish.connect(_note_published_queue, weak=False)
    signals.task_prerun.connect(_note_task_queue, weak=False)
    _signals_connected = True


def flush(timeout: float = 5.0) -> None:
    if _active is not None:
        import sentry_sdk

        sentry_sdk.flush(timeout=timeout)


def shutdown() -> None:
    """Close the client (tests; a process that re-initialises with other settings)."""
    global _active
    import sentry_sdk

    with _lock:
        client = sentry_sdk.get_client()
        if client.is_active():
            client.close(timeout=5.0)
        _active = None


def as_event_tags(values: dict[str, Any]) -> dict[str, str]:
    """Tag values as Sentry keeps them: strings of at most 200 characters, none empty."""
    return {k: str(v)[:200] for k, v in values.items() if v is not None and str(v) != ""}
