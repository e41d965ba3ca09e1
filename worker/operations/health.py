"""Is the deployment healthy? The checks behind `syndicate health` and the compose healthchecks.

Each check answers with a `Check` (name, ok, detail); the report is healthy only when
every check that ran is. What each one proves:

- redis: the broker answers a PING.
- database: the store answers `SELECT 1`.
- workers: at least one worker answers a Celery ping (or, with `node`, that one worker:
  a container's healthcheck asks after its own worker, not whether any other is alive).
- beat: every entry of the beat schedule has run within its interval plus a grace. The
  times come from celery-redbeat's own records in Redis (`last_run_at` per entry), so a
  beat that is up but stuck, or two beats both waiting on the lock, fail as well.
- backlog: the oldest due delivery (pending, next attempt in the past) has waited no
  longer than `max_wait`. Deliveries to a partner an operator or a 410 disabled wait by
  design and are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Iterable

CHECKS = ("redis", "database", "workers", "beat", "backlog")
DEFAULT_MAX_WAIT = timedelta(minutes=5)
PING_TIMEOUT = 2.0
# A schedule entry is late once it has not run for this many intervals (and at least BEAT_GRACE_MIN).
BEAT_GRACE_INTERVALS = 3
BEAT_GRACE_MIN = timedelta(seconds=30)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict:
        return {"healthy": self.healthy, "checks": [asdict(c) for c in self.checks]}


def _error(exc: BaseException) -> str:
    """One line naming the failure, without URLs (which may carry passwords)."""
    from worker.observability import redact

    text = str(exc).splitlines()[0] if str(exc) else ""
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def check_redis(client) -> Check:
    try:
        client.ping()
        return Check("redis", True, "answers")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Check("redis", False, f"does not answer ({_error(exc)})")


def check_database(store) -> Check:
    try:
        store.ping()
    except Exception as exc:  # noqa: BLE001
        return Check("database", False, f"does not answer ({_error(exc)})")
    return Check("database", True, f"answers ({store.engine.dialect.name})")


def check_workers(app, node: str | None = None, timeout: float = PING_TIMEOUT) -> Check:
    try:
        replies = app.control.ping(destination=[node] if node else None, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        return Check("workers", False, f"cannot ping ({_error(exc)})")
    names = sorted(name for reply in replies for name, answer in reply.items() if answer.get("ok") == "pong")
    if not names:
        who = f"worker {node}" if node else "no worker"
        return Check("workers", False, f"{who} answered a ping within {timeout:g}s")
    return Check("workers", True, f"{len(names)} answered: {', '.join(names)}")


def schedule_intervals(app) -> dict[str, float]:
    """Seconds between runs of each beat schedule entry (entries with a plain interval)."""
    intervals = {}
    for name, entry in app.conf.beat_schedule.items():
        schedule = entry["schedule"]
        if isinstance(schedule, (int, float)):
            intervals[name] = float(schedule)
        elif isinstance(schedule, timedelta):
            intervals[name] = schedule.total_seconds()
        elif hasattr(schedule, "run_every"):  # celery.schedules.schedule; crontabs are not checked
            intervals[name] = schedule.run_every.total_seconds()
    return intervals


def beat_last_runs(client, key_prefix: str, names: Iterable[str]) -> dict[str, datetime | None]:
    """When redbeat last sent each entry (None: never)."""
    from redbeat.schedulers import RedBeatSchedulerEntry

    return {name: RedBeatSchedulerEntry.decode_meta(client.hget(key_prefix + name, "meta"))["last_run_at"]
            for name in names}


def check_beat(client, key_prefix: str, intervals: dict[str, float], now: datetime) -> Check:
    try:
        last_runs = beat_last_runs(client, key_prefix, intervals)
    except Exception as exc:  # noqa: BLE001
        return Check("beat", False, f"cannot read the schedule from Redis ({_error(exc)})")
    late = []
    for name, interval in sorted(intervals.items()):
        last = last_runs[name]
        allowed = max(timedelta(seconds=interval * BEAT_GRACE_INTERVALS), BEAT_GRACE_MIN)
        if last is None:
            late.append(f"{name} has never run")
        elif now - last > allowed:
            late.append(f"{name} last ran {_ago(now - last)} ago (every {interval:g}s)")
    if late:
        return Check("beat", False, "schedule not run on time: " + "; ".join(late)
                     + " — is `syndicate beat` running?")
    newest = max(last_runs.values())
    return Check("beat", True, f"schedule on time (last run {_ago(now - newest)} ago)")


def check_backlog(store, now: datetime, max_wait: timedelta = DEFAULT_MAX_WAIT) -> Check:
    from sqlalchemy import func, select

    from worker.delivery.destinations import disabled_row_clause
    from worker.store import DeliveryRow
    try:
        if not store.is_migrated():
            return Check("backlog", False, "the store has no schema yet: run `syndicate migrate`")
        with store.session() as s:
            oldest, count = s.execute(
                select(func.min(DeliveryRow.next_attempt_at), func.count())
                .where(DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now,
                       ~disabled_row_clause())
            ).one()
    except Exception as exc:  # noqa: BLE001
        return Check("backlog", False, f"cannot read deliveries ({_error(exc)})")
    if oldest is None:
        return Check("backlog", True, "no delivery is waiting")
    waited = now - oldest
    detail = f"{count} due deliver{'y' if count == 1 else 'ies'}, the oldest waiting {_ago(waited)}"
    if waited > max_wait:
        return Check("backlog", False, f"{detail} (more than {_ago(max_wait)}) — are the workers keeping up?")
    return Check("backlog", True, detail)


def _ago(delta: timedelta) -> str:
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def run_checks(only: Iterable[str] = CHECKS, *, max_wait: timedelta = DEFAULT_MAX_WAIT, node: str | None = None,
               now: datetime | None = None) -> HealthReport:
    """Run the named checks against this process's environment (REDIS_URL, DATABASE_URL).

    Checks that need Redis are reported failed, not attempted, when Redis does not answer
    (a ping to a broker that is down would only wait for its timeout)."""
    from worker import runtime
    from worker.store import utcnow

    wanted = [name for name in CHECKS if name in set(only)]
    now = now or utcnow()
    report = HealthReport()
    redis_ok = True
    if {"redis", "workers", "beat"} & set(wanted):
        redis_check = check_redis(runtime.redis_client())
        redis_ok = redis_check.ok
        if "redis" in wanted:
            report.checks.append(redis_check)
    if "database" in wanted or "backlog" in wanted:
        store = runtime.store()
        database_check = check_database(store)
        if "database" in wanted:
            report.checks.append(database_check)
    for name in ("workers", "beat"):
        if name in wanted and not redis_ok:
            report.checks.append(Check(name, False, "not checked: Redis does not answer"))
    if "workers" in wanted and redis_ok:
        from worker.celery import app

        report.checks.append(check_workers(app, node))
    if "beat" in wanted and redis_ok:
        from worker.celery import REDBEAT_KEY_PREFIX, app

        report.checks.append(check_beat(runtime.redis_client(), REDBEAT_KEY_PREFIX, schedule_intervals(app), now))
    if "backlog" in wanted:
        if database_check.ok:
            report.checks.append(check_backlog(store, now, max_wait))
        else:
            report.checks.append(Check("backlog", False, "not checked: the database does not answer"))
    return report
