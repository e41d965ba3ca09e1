"""SIGHUP and `syndicate reload` make a running worker use the changed configuration
file, in the same process (no restart), after checking it: a broken file is refused and
the worker keeps the configuration it has."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from tests.conftest import BIN, Deployment, wait_until, write_config

DROP = '[[sources]]\nname = "drop"\ntype = "directory"\npath = "{path}"\ninterval = "1h"\n'


@pytest.fixture
def worker(tmp_path, redis_url):
    config = write_config(tmp_path / "syndication.toml", feeds=[{"name": "all", "title": "All"}])
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{tmp_path}/store.db",
                "SYNDICATE_CONFIG": str(config), "FEEDS_DIR": str(tmp_path / "feeds"), "PYTHONUNBUFFERED": "1",
                "SYNDICATE_SOFT_SHUTDOWN": "1"})
    stack = Deployment(tmp_path, env, config, env["DATABASE_URL"])
    stack.syndicate("migrate", check=True)
    proc = stack.start("worker", "--concurrency", "1", "-Q", "watch")
    wait_until(lambda: proc.poll() is not None or "ready." in stack.log(proc), 90, "the worker to be ready")
    assert proc.poll() is None, stack.log(proc)
    yield stack, proc
    stack.stop_all()


def _poll_drop():
    from worker.celery import app

    app.send_task("tasks.watch.poll_source", args=["drop"], queue="watch")


def test_sighup_reloads_in_place_and_a_broken_file_is_refused(worker, tmp_path):
    stack, proc = worker
    folder = tmp_path / "incoming"
    _poll_drop()
    wait_until(lambda: "source=drop is no longer in the configuration" in stack.log(proc), 60,
               "the worker to run the poll under its first configuration")

    write_config(stack.config, feeds=[{"name": "all", "title": "All"}], extra=DROP.format(path=folder))
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in stack.log(proc), 60, "the reload")
    _poll_drop()
    wait_until(lambda: folder.is_dir(), 60, "the new source's folder to be made by a poll")

    stack.config.write_text("[site\nbroken")
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "still using the previous configuration" in stack.log(proc), 60, "the refusal")
    shutil.rmtree(folder)
    _poll_drop()
    wait_until(lambda: folder.is_dir(), 60, "a poll under the configuration kept")
    assert proc.poll() is None and "Restarting celery worker" not in stack.log(proc)


def test_syndicate_reload_reaches_the_worker_and_refuses_a_broken_file(worker, tmp_path):
    stack, proc = worker
    write_config(stack.config, feeds=[{"name": "all", "title": "All"}], extra=DROP.format(path=tmp_path / "in"))
    result = stack.syndicate("reload", "--timeout", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration reloaded" in result.stdout and "1 source(s)" in result.stdout

    stack.config.write_text("[site\nbroken")
    result = stack.syndicate("reload")
    assert result.returncode == 2 and "nothing reloaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_reload_with_no_worker_says_so(tmp_path, redis_url):
    config = write_config(tmp_path / "syndication.toml")
    env = {**os.environ, "REDIS_URL": redis_url, "SYNDICATE_CONFIG": str(config),
           "DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    result = subprocess.run([str(BIN / "syndicate"), "reload", "--timeout", "1", "--beat-pidfile",
                             str(tmp_path / "none.pid")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "no worker answered" in result.stderr
