"""Direct tests of the Celery tasks in `tasks/`: each task is called in this process as a
worker would run it, against the run's real Redis (the broker) and a real store; what a
task enqueues is read back from the broker's queues in Redis (nothing is executed eagerly)."""

from __future__ import annotations

import base64
import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from tests.conftest import write_config


@pytest.fixture
def task_env(monkeypatch, tmp_path, store, redis_url):
    """Point the process's runtime (what tasks read: config, store, Redis, feeds dir) at this
    test's own; `configure(**write_config kwargs)` writes the configuration."""
    from worker import runtime

    config_path = tmp_path / "syndication.toml"
    write_config(config_path)
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config_path))
    monkeypatch.setenv("DATABASE_URL", store.url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("FEEDS_DIR", str(tmp_path / "feeds"))

    def configure(**kwargs):
        write_config(config_path, **kwargs)
        runtime.reset()
        _reset_engine()
        return runtime.config()

    runtime.reset()
    _reset_engine()
    _declare_queues()
    yield configure
    _reset_engine()
    runtime.reset()


def _declare_queues():
    """`redis_url` emptied the database, bindings included, and this process's Celery declared
    its queues once already: declare them again, or a message published now would be dropped."""
    from worker.celery import app

    with app.connection_for_write() as conn:
        for queue in app.conf.task_queues:
            queue.bind(conn.default_channel).declare()


def _reset_engine():
    from tasks.deliver import reset_engine

    reset_engine()


def queued(redis_client, queue: str) -> list[dict]:
    """The messages waiting in a broker queue: task name, args, kwargs, eta and retries."""
    found = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):  # LPUSHed: oldest last
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        eta = headers.get("eta")
        found.append({"task": headers["task"], "args": args, "kwargs": kwargs, "retries": headers.get("retries", 0),
                      "eta": datetime.fromisoformat(eta).astimezone(timezone.utc) if eta else None})
    return found


@contextmanager
def as_worker(task, retries: int = 0):
    """Run `task` as a worker runs a message (not called directly): a retry then goes to the
    broker with its countdown instead of re-raising."""
    queue = task.name.split(".")[1]  # tasks.<queue>.<name>, as worker.celery routes them
    task.push_request(id=str(uuid.uuid4()), retries=retries, called_directly=False, is_eager=False,
                      delivery_info={"exchange": queue, "routing_key": queue, "priority": None})
    try:
        yield task
    finally:
        task.pop_request()
