"""docker-compose.yml follows the Compose Specification, and its services' own commands
run here against local Redis and PostgreSQL (no Docker engine on these machines).

The commands and environments come from the file itself (tests/compose.py reads it
as Compose would), so these tests prove the file, not a copy of it.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request

import jsonschema
import pytest

from config import parse_duration
from tests import compose
from tests.conftest import BIN, FIXTURES, REPO, Deployment, wait_until

# What an operator would put in .env for a small machine; everything else is .env.example's.
ENV_OVERRIDES = {"WORKER_CONCURRENCY": "1", "SYNDICATE_SOFT_SHUTDOWN": "2"}
APP_SERVICES = ("migrate", "worker", "beat", "flower")


@pytest.fixture(scope="module")
def doc():
    data, _ = compose.load()
    return data


def test_the_file_validates_against_the_compose_specification(doc):
    # tests/fixtures/schemas/compose-spec.json: the spec's schema (origin in tests/fixtures/README.md).
    schema = json.loads((FIXTURES / "schemas" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)
    assert "version" not in doc


def test_the_services_are_set_up_as_operations_need(doc):
    _, variables = compose.load()
    services = {name: compose.LocalService(name, doc, variables).spec for name in doc["services"]}
    assert set(services) == {"redis", "postgres", "migrate", "worker", "beat", "flower", "feeds"}
    redis_command = services["redis"]["command"]
    for flag, value in (("--appendonly", "yes"), ("--appendfsync", "everysec"), ("--maxmemory-policy", "noeviction")):
        assert redis_command[redis_command.index(flag) + 1] == value
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"]
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in doc["volumes"], f"{name} keeps its data in a named volume"
    for name in ("worker", "beat", "flower"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["restart"] == "no"
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker, "a fixed name or port would stop --scale"
    soft = parse_duration(worker["environment"]["SYNDICATE_SOFT_SHUTDOWN"] + "s")
    assert parse_duration(worker["stop_grace_period"]) > soft
    assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT"  # SIGTERM starts the soft shutdown
    assert worker["healthcheck"]["test"][1:3] == ["syndicate", "health"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == variables["FLOWER_BASIC_AUTH"]
    feeds = services["feeds"]
    assert "feeds:/srv/feeds:ro" in feeds["volumes"]
    assert "./deploy/nginx/feeds.conf:/etc/nginx/conf.d/default.conf:ro" in feeds["volumes"]


def test_compose_refuses_to_start_without_the_passwords_from_env(doc):
    variables = compose.read_env_file(REPO / ".env.example")
    del variables["FLOWER_BASIC_AUTH"]
    with pytest.raises(ValueError, match="FLOWER_BASIC_AUTH"):
        compose.interpolate(doc["services"]["flower"], variables)


# --- the services' commands, run here -------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stack(tmp_path, redis_url, pg_server_url):
    """Runs compose services as local processes; every one is stopped by its own pid."""
    doc, variables = compose.load(ENV_OVERRIDES)
    addresses = {"redis": redis_url, "postgres": pg_server_url}

    class Stack(Deployment):
        def service(self, name: str) -> compose.LocalService:
            return compose.LocalService(name, doc, variables)

        def env_of(self, name: str) -> dict[str, str]:
            service = self.service(name)
            mounts = {}
            for target, source in service.volume_targets().items():
                local = (REPO / source).resolve() if source.startswith(".") else tmp_path / "volumes" / source
                if not source.startswith("."):
                    local.mkdir(parents=True, exist_ok=True)
                mounts[target] = local
            env = dict(self.env)
            env.update(service.environment(addresses, mounts))
            return env

        def run_service(self, name: str, *, extra: tuple[str, ...] = (), instance: str = ""):
            service = self.service(name)
            assert service.command[0] == "syndicate"
            self.env_saved, self.env = self.env, self.env_of(name)
            try:
                return self.start(*service.command[1:], *extra, name=name + instance)
            finally:
                self.env = self.env_saved

    import os

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "FEEDS_DIR")}
    env["PYTHONUNBUFFERED"] = "1"
    root = tmp_path / "app"  # the container's working directory (/app)
    root.mkdir()
    stack = Stack(root, env, REPO / "config" / "syndication.example.toml", pg_server_url)
    yield stack
    stack.stop_all()


def test_migrate_exits_0_then_the_worker_answers_a_ping_and_its_healthcheck_passes(stack):
    migrate = stack.run_service("migrate")
    assert migrate.wait(120) == 0, stack.log(migrate)
    worker = stack.run_service("worker")
    from worker.celery import app  # this process's app uses the same Redis database

    replies = wait_until(lambda: worker.poll() is not None or app.control.ping(timeout=0.5), 90,
                         "the worker to answer a ping")
    assert worker.poll() is None, stack.log(worker)
    assert any(answer.get("ok") == "pong" for reply in replies for answer in reply.values())
    # The compose healthcheck command, as Docker would run it inside the worker's container.
    health = stack.service("worker").spec["healthcheck"]["test"][1:]
    env = stack.env_of("worker")
    import subprocess

    result = subprocess.run([str(BIN / health[0]), *health[1:]], env=env, cwd=stack.root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_beat_stays_standby_while_the_first_holds_the_lock_then_takes_over(stack, redis_client):
    from worker.celery import REDBEAT_KEY_PREFIX

    assert stack.run_service("migrate").wait(120) == 0
    first = stack.run_service("beat", instance="-first")
    wait_until(lambda: b"beat: Acquired lock" in open(first.log_path, "rb").read() or first.poll() is not None,
               60, "the first beat to take the lock")
    assert first.poll() is None, stack.log(first)
    second = stack.run_service("beat", instance="-second")
    wait_until(lambda: b"beat: Starting" in open(second.log_path, "rb").read() or second.poll() is not None,
               60, "the second beat to start")
    # Evidence of time passing with both up: the first sends the sweep twice more meanwhile.
    key = REDBEAT_KEY_PREFIX + "sweep-due-deliveries"
    seen = set()
    wait_until(lambda: seen.add(redis_client.hget(key, "meta")) or len(seen - {None}) >= 3, 60,
               "the first beat to run its schedule")
    assert second.poll() is None, stack.log(second)
    assert "Acquired lock" not in stack.log(second), "two beats were active at once"
    stack.stop(first)
    wait_until(lambda: b"beat: Acquired lock" in open(second.log_path, "rb").read(), 60,
               "the standby beat to take over")


def test_flower_answers_behind_basic_auth(stack):
    assert stack.run_service("migrate").wait(120) == 0
    port = _free_port()
    flower = stack.run_service("flower", extra=("--port", str(port), "--address", "127.0.0.1"))
    url = f"http://127.0.0.1:{port}/"

    def status(auth: str | None) -> int | None:
        request = urllib.request.Request(url)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    wait_until(lambda: flower.poll() is not None or status(None) is not None, 60, "flower to listen")
    assert flower.poll() is None, stack.log(flower)
    assert status(None) == 401
    assert status("admin:wrong") == 401
    assert status(stack.env_of("flower")["FLOWER_BASIC_AUTH"]) == 200
