"""`syndicate health` exits 0 when all is well and non-zero for each cause: Redis or the
database not answering, no worker answering a ping, beat not running its schedule on
time, and a due delivery waiting longer than --max-wait."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import BIN, Deployment, wait_until, write_config
from worker.operations.health import check_backlog, check_beat
from worker.store import ArticleRow, DeliveryRow, DestinationStateRow, EventRow, utcnow


def _health(env: dict, *args: str) -> tuple[int, dict]:
    result = subprocess.run([str(BIN / "syndicate"), "health", "--json", *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


@pytest.fixture
def env(tmp_path, redis_url):
    config = write_config(tmp_path / "syndication.toml", feeds=[{"name": "all", "title": "All"}])
    values = dict(os.environ)
    values.update({"REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path}/store.db",
                   "SYNDICATE_CONFIG": str(config), "FEEDS_DIR": str(tmp_path / "feeds"),
                   "SYNDICATE_SWEEP_INTERVAL": "1", "SYNDICATE_SOFT_SHUTDOWN": "1", "PYTHONUNBUFFERED": "1"})
    subprocess.run([str(BIN / "syndicate"), "migrate"], env=values, check=True, capture_output=True, timeout=120)
    return values


def _due_delivery(store, waited: timedelta, destination: str = "acme") -> int:
    now = utcnow()
    article_id = f"t:{uuid.uuid4().hex[:8]}"
    with store.session() as s:
        s.add(ArticleRow(id=article_id, source="t", url="https://n.example/a", title="A", published_at=now,
                         updated_at=now, version="v1"))
        s.flush()
        event = EventRow(article_id=article_id, version="v1", type="article.published", data={})
        s.add(event)
        s.flush()
        row = DeliveryRow(event_id=event.id, article_id=article_id, version="v1", event_type="article.published",
                          kind="partner", destination=destination, message_id=uuid.uuid4().hex, status="pending",
                          next_attempt_at=now - waited)
        s.add(row)
        s.flush()
        return row.id


def test_all_well_exits_0_and_a_stopped_worker_turns_it_non_zero(env, tmp_path, redis_client):
    from worker.celery import REDBEAT_KEY_PREFIX

    stack = Deployment(tmp_path, env, Path(env["SYNDICATE_CONFIG"]), env["DATABASE_URL"])
    try:
        proc = stack.start("run", "--concurrency", "1")
        keys = [REDBEAT_KEY_PREFIX + name for name in ("sweep-due-deliveries", "poll-due-sources")]
        wait_until(lambda: proc.poll() is not None or (all(redis_client.hget(k, "meta") for k in keys)
                                                        and "ready." in stack.log(proc)), 90,
                   "the worker to be ready and beat to run its schedule")
        assert proc.poll() is None, stack.log(proc)
        code, checks = _health(env)
        assert code == 0, checks
        assert all(c["ok"] for c in checks.values())
        stack.stop(proc)
        # Celery's own line per periodic run is off at the default log level (it was most of an idle log).
        log = stack.log(proc)
        assert "ready." in log
        assert "Task tasks.maintenance.sweep[" not in log and "Sending due task" not in log, log
    finally:
        stack.stop_all()
    code, checks = _health(env, "--check", "workers")
    assert code == 1 and not checks["workers"]["ok"]
    assert "no worker answered" in checks["workers"]["detail"]


def test_redis_not_answering_turns_it_non_zero(env):
    code, checks = _health({**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert code == 1 and not checks["redis"]["ok"]
    assert checks["database"]["ok"]


def test_the_database_not_answering_turns_it_non_zero(env):
    code, checks = _health({**env, "DATABASE_URL": "postgresql://syndicate:s3cret-pw@127.0.0.1:1/nothing"},
                           "--check", "redis", "--check", "database", "--check", "backlog")
    assert code == 1 and not checks["database"]["ok"] and checks["redis"]["ok"]
    assert "s3cret-pw" not in json.dumps(checks)


def test_beat_that_never_ran_turns_it_non_zero(env):
    code, checks = _health(env, "--check", "beat")
    assert code == 1 and "has never run" in checks["beat"]["detail"]


def test_beat_behind_its_schedule_is_reported_late(redis_client):
    from redbeat.schedulers import RedBeatJSONEncoder

    now = utcnow()
    for name, ago in (("sweep", 3), ("poll", 600)):
        redis_client.hset(f"test:beat:{name}", "meta", json.dumps({"last_run_at": now - timedelta(seconds=ago)},
                                                                  cls=RedBeatJSONEncoder))
    on_time = check_beat(redis_client, "test:beat:", {"sweep": 5.0}, now)
    assert on_time.ok, on_time.detail
    late = check_beat(redis_client, "test:beat:", {"sweep": 5.0, "poll": 5.0}, now)
    assert not late.ok and "poll last ran 10m ago" in late.detail


def test_a_due_delivery_waiting_too_long_turns_it_non_zero(env):
    from worker.store import Store

    store = Store(env["DATABASE_URL"])
    _due_delivery(store, timedelta(minutes=10))
    code, checks = _health(env, "--check", "database", "--check", "backlog")
    assert code == 1 and "the oldest waiting 10m" in checks["backlog"]["detail"]
    code, _ = _health(env, "--check", "database", "--check", "backlog", "--max-wait", "1h")
    assert code == 0
    store.dispose()


def test_the_backlog_ignores_partners_disabled_on_purpose(store):
    now = utcnow()
    assert check_backlog(store, now).ok
    _due_delivery(store, timedelta(minutes=10), destination="gone")
    assert not check_backlog(store, now).ok
    with store.session() as s:
        s.add(DestinationStateRow(kind="partner", name="gone", disabled=True, disabled_by="policy", changed_at=now))
    assert check_backlog(store, now).ok
    _due_delivery(store, timedelta(seconds=30))
    result = check_backlog(store, now, max_wait=timedelta(minutes=5))
    assert result.ok and "1 due delivery" in result.detail
