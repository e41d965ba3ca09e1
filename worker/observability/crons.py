"""Sentry Crons for every beat schedule, including the ones faster than Crons accepts.

Sentry Crons takes schedules of a minute or more; the sweep and the source poller run
every few seconds. So the schedules are watched from the side:

- every run of a scheduled task that succeeds records its time in Redis
  (`task_success` signal, in whichever worker ran it);
- each worker's main process runs a heartbeat thread: every SYNDICATE_HEARTBEAT_INTERVAL
  seconds (60 by default) one of the workers (a Redis lock decides which) checks in one
  monitor per beat entry, `syndicate-<entry name>`: **ok** when the task ran within
  `stale_after(period)`, **error** when it did not (beat stopped, or the task fails or
  hangs every time). The monitors are upserted with a one-minute interval schedule.

So a stopped beat gives an error check-in within a few minutes while workers still run,
and a deployment whose workers are all gone gives missed check-ins (Sentry's side).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from datetime import timedelta

log = logging.getLogger("syndicate.monitoring")

LAST_RUN_PREFIX = "syndicate:monitor:last-run:"
HEARTBEAT_LOCK = "syndicate:monitor:heartbeat"


def heartbeat_interval() -> float:
    return max(0.2, float(os.environ.get("SYNDICATE_HEARTBEAT_INTERVAL", "60")))


def monitor_slug(entry_name: str) -> str:
    """A Crons slug: lower-case letters, digits, '-' and '_', at most 50 characters."""
    return ("syndicate-" + re.sub(r"[^a-z0-9_-]+", "-", entry_name.lower())).strip("-")[:50]


def period_seconds(schedule) -> float | None:
    """The period of a beat schedule (a number, a timedelta or a celery `schedule`); None for
    others (crontab), which are not watched."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)
    if isinstance(run_every, timedelta):
        return run_every.total_seconds()
    return None


def stale_after(period: float, interval: float | None = None) -> float:
    """How long a schedule may go without a successful run before its monitor is in error."""
    interval = heartbeat_interval() if interval is None else interval
    return max(3 * period, 2 * interval)


def monitor_config(interval: float | None = None) -> dict:
    interval = heartbeat_interval() if interval is None else interval
    return {"schedule": {"type": "interval", "value": max(1, math.ceil(interval / 60)), "unit": "minute"},
            "checkin_margin": 2, "max_runtime": 1, "failure_issue_threshold": 1, "recovery_threshold": 1}


def watched(beat_schedule: dict) -> dict[str, tuple[str, float]]:
    """slug → (task name, period) for every beat entry with a fixed period."""
    found = {}
    for name, entry in (beat_schedule or {}).items():
        period = period_seconds(entry.get("schedule"))
        if period is not None and entry.get("task"):
            found[monitor_slug(name)] = (entry["task"], period)
    return found


# --- in the workers -------------------------------------------------------------------

def _redis(app):
    import redis

    return redis.Redis.from_url(app.conf.broker_url, socket_timeout=5, socket_connect_timeout=5)


_run_clients: dict[int, object] = {}


def record_run(sender=None, **_) -> None:
    """`task_success`: a scheduled task ran; note when (other tasks are ignored)."""
    app = getattr(sender, "app", None)
    name = getattr(sender, "name", None)
    if app is None or not any(e.get("task") == name for e in (app.conf.beat_schedule or {}).values()):
        return
    try:
        client = _run_clients.get(os.getpid())
        if client is None:
            client = _run_clients[os.getpid()] = _redis(app)
        client.set(LAST_RUN_PREFIX + name, repr(time.time()), ex=7 * 86400)
    except Exception:  # noqa: BLE001 - monitoring must never fail a task
        log.warning("could not record the run of %s for Sentry Crons", name, exc_info=True)


def check_in_schedules(app, client, started_at: float, now: float | None = None,
                       interval: float | None = None) -> dict[str, str]:
    """One heartbeat: a check-in per watched schedule (unless another worker made this
    interval's). Returns slug → status sent."""
    from sentry_sdk.crons import capture_checkin

    interval = heartbeat_interval() if interval is None else interval
    if not client.set(HEARTBEAT_LOCK, str(os.getpid()), nx=True, px=max(100, int(interval * 900))):
        return {}
    now = time.time() if now is None else now
    sent = {}
    for slug, (task, period) in watched(app.conf.beat_schedule).items():
        raw = client.get(LAST_RUN_PREFIX + task)
        last = float(raw) if raw else None
        limit = stale_after(period, interval)
        if last is None and now - started_at < limit:
            continue  # just started: the schedule has not had its chance yet
        status = "ok" if last is not None and now - last <= limit else "error"
        if status == "error":
            ago = f"{round(now - last)}s ago" if last is not None else "not since this worker started"
            log.warning("schedule %s (%s) last ran %s: is beat running?", slug, task, ago)
        capture_checkin(monitor_slug=slug, status=status, monitor_config=monitor_config(interval))
        sent[slug] = status
    return sent


class Heartbeat:
    def __init__(self, app):
        self.app = app
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sentry-crons-heartbeat", daemon=True)

    def _loop(self) -> None:
        started, client = time.time(), _redis(self.app)
        while not self.stop.wait(heartbeat_interval()):
            try:
                check_in_schedules(self.app, client, started)
            except Exception:  # noqa: BLE001 - Redis away for a moment: try again next beat
                log.warning("Sentry Crons heartbeat failed; trying again", exc_info=True)


_heartbeat: Heartbeat | None = None


def _start_heartbeat(sender=None, **_) -> None:
    global _heartbeat
    app = getattr(sender, "app", None)
    if app is None or _heartbeat is not None:
        return
    _heartbeat = Heartbeat(app)
    _heartbeat.thread.start()


def _stop_heartbeat(**_) -> None:
    if _heartbeat is not None:
        _heartbeat.stop.set()


_connected = False


def connect_signals() -> None:
    """Record scheduled runs in every worker; run the heartbeat in each worker's main process."""
    global _connected
    if _connected:
        return
    from celery import signals

    signals.task_success.connect(record_run, weak=False)
    signals.worker_ready.connect(_start_heartbeat, weak=False)
    signals.worker_shutting_down.connect(_stop_heartbeat, weak=False)
    _connected = True
