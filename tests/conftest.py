"""Shared fixtures: a Redis database number and PostgreSQL database of this run's own,
stores on SQLite and PostgreSQL, a stand-in partner, and real worker processes.

Each test run claims a free Redis database number (a key with expiry in db 0 says
which run holds it) and creates its own PostgreSQL database, dropping it at the end,
so concurrent runs never see each other's queues or rows.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text

from tests.support.partner_server import PartnerServer

REPO = Path(__file__).resolve().parent.parent
# Data the tests read lives in the repository (origins in tests/fixtures/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# --- Redis -----------------------------------------------------------------------

_claim: dict = {}


def pytest_configure(config):
    """Claim a Redis database number for this run before any test module is imported, and
    point this process's REDIS_URL (which the Celery app reads at import) and default store
    at this run's own places, so nothing a test does in-process reaches another run's queues."""
    admin = redis_lib.Redis.from_url(f"{REDIS_BASE}/0")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for number in range(1, 16):
        if admin.set(f"syndicate-tests:db-claim:{number}", token, nx=True, ex=3 * 3600):
            break
    else:
        raise pytest.UsageError("no free Redis database number (1-15) for this test run")
    redis_lib.Redis.from_url(f"{REDIS_BASE}/{number}").flushdb()
    scratch = tempfile.mkdtemp(prefix="syndicate-tests-")
    _claim.update(number=number, token=token, scratch=scratch)
    os.environ["REDIS_URL"] = f"{REDIS_BASE}/{number}"
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch}/default.db"
    os.environ["FEEDS_DIR"] = f"{scratch}/feeds"
    os.environ.pop("SENTRY_DSN", None)
    # In-process code that stores articles enqueues through worker.enqueue: install the Celery
    # implementation now that REDIS_URL points at this run's own database.
    import tasks  # noqa: F401


# Fixtures that start real `syndicate` processes: a test using one is slow whether or not its
# module says so (`pytest -m "not slow"` is the quick loop; CI runs everything).
PROCESS_FIXTURES = {"deployment", "running", "module_running", "feeds_running", "stack", "world"}
# Tests that start a worker without one of those fixtures.
PROCESS_TESTS = (
    "tests/worker/operations/test_reload.py::test_syndicate_reload_reaches_the_worker",
    "tests/worker/operations/test_reload.py::test_sighup_reloads_in_place",
    "tests/worker/operations/test_health.py::test_all_well_exits_0_and_a_stopped_worker",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) or item.nodeid.startswith(PROCESS_TESTS):
            item.add_marker(pytest.mark.slow)


def pytest_unconfigure(config):
    if not _claim:
        return
    number, token = _claim["number"], _claim["token"]
    redis_lib.Redis.from_url(f"{REDIS_BASE}/{number}").flushdb()
    admin = redis_lib.Redis.from_url(f"{REDIS_BASE}/0")
    if admin.get(f"syndicate-tests:db-claim:{number}") == token.encode():
        admin.delete(f"syndicate-tests:db-claim:{number}")
    shutil.rmtree(_claim["scratch"], ignore_errors=True)


@pytest.fixture(scope="session")
def redis_db() -> int:
    """The Redis database number held by this run alone (claimed in pytest_configure)."""
    return _claim["number"]


@pytest.fixture
def redis_url(redis_db) -> str:
    url = f"{REDIS_BASE}/{redis_db}"
    redis_lib.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


# --- databases ------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_server_url():
    """A PostgreSQL database made for this run and dropped after it."""
    name = f"syndicate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _pg_schema_url(server_url: str) -> str:
    """A fresh schema in the run's database, selected through the connection's search_path."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{server_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each test using this runs twice: on a SQLite file and on PostgreSQL (not migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return _pg_schema_url(request.getfixturevalue("pg_server_url"))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


# Migrating from scratch takes Alembic about half a second; a store fixture instead copies a
# store migrated once per run (SQLite: the file; PostgreSQL: the migration's statements,
# recorded once and replayed into the test's own schema in one transaction).

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    from worker.store import Store

    path = tmp_path_factory.mktemp("template") / "store.db"
    template = Store(f"sqlite:///{path}")
    template.migrate()
    with template.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    template.dispose()
    return path


@pytest.fixture(scope="session")
def pg_migration_statements(pg_server_url) -> list[tuple[str, object]]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from worker.store import Store

    recorded: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SELECT", "SHOW")):
            recorded.append((statement, parameters))

    template = Store(_pg_schema_url(pg_server_url))
    event.listen(Engine, "before_cursor_execute", record)
    try:
        template.migrate()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    template.dispose()
    return recorded


def migrated_copy(database_url: str, request) -> None:
    """Give the (empty) database at `database_url` the migrated schema, from the run's template."""
    if database_url.startswith("sqlite"):
        shutil.copyfile(request.getfixturevalue("sqlite_template"), database_url.split("///", 1)[1])
        return
    statements = request.getfixturevalue("pg_migration_statements")
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for statement, parameters in statements:
            conn.exec_driver_sql(statement, parameters or ())
    engine.dispose()


@pytest.fixture
def store(database_url, request):
    from worker.store import Store

    migrated_copy(database_url, request)
    s = Store(database_url)
    yield s
    s.dispose()


# --- configuration and processes ------------------------------------------------

@pytest.fixture
def partner_secret() -> str:
    return new_secret()


@pytest.fixture
def partner(partner_secret):
    server = PartnerServer(partner_secret).start()
    yield server
    server.stop()


@pytest.fixture
def hub():
    """The stand-in WebSub hub (tests/support/websub_hub.py)."""
    from tests.support.websub_hub import WebSubHub

    server = WebSubHub().start()
    yield server
    server.stop()


def write_config(path: Path, *, partners: list[dict] = (), feeds: list[dict] = (), extra: str = "") -> Path:
    """A syndication.toml with the given partners and feeds."""
    lines = [textwrap.dedent("""\
        [site]
        title = "London News Net"
        url = "https://london-news-net.example"
        language = "en"
        feeds_url = "https://london-news-net.example/feeds"
        """)]
    for feed in feeds:
        lines.append("[[feeds]]")
        lines += [f"{k} = {_toml(v)}" for k, v in feed.items()]
    for p in partners:
        lines.append("[[partners]]")
        lines += [f"{k} = {_toml(v)}" for k, v in p.items()]
    lines.append(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def deployment_database_url(request, tmp_path) -> str:
    """The store of a deployment of real processes: PostgreSQL, as in production. The SQLite store
    keeps its own fast in-process tests; a real-process test whose behaviour depends on the store
    runs on both with `@pytest.mark.parametrize("deployment_database_url", ["sqlite", "postgresql"],
    indirect=True)`."""
    if getattr(request, "param", "postgresql") == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return _pg_schema_url(request.getfixturevalue("pg_server_url"))


@pytest.fixture
def deployment(tmp_path, redis_url, deployment_database_url, partner, partner_secret):
    """Environment for processes of one deployment: its own Redis db, store, feeds dir and config."""
    deployment = make_deployment(tmp_path, redis_url, deployment_database_url, partner)
    yield deployment
    # Every process a test started is stopped by it, whatever the test's outcome.
    deployment.stop_all()


def make_deployment(root: Path, redis_url: str, database_url: str, partner: PartnerServer,
                    **env_changes: str) -> "Deployment":
    """A deployment with partner `acme` (at `partner`) and feeds `all` and `world`."""
    config = write_config(
        root / "syndication.toml",
        partners=[{"name": "acme", "url": partner.url, "secret": partner.secret, "allow_private": True,
                   "retry_schedule": ["1s", "1s", "1s"]}],
        feeds=[{"name": "all", "title": "All stories"}, {"name": "world", "title": "World", "sections": ["World"]}],
    )
    env = dict(os.environ)
    env.update({
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "FEEDS_DIR": str(root / "feeds"),
        "SYNDICATE_CONFIG": str(config),
        "SYNDICATE_SWEEP_INTERVAL": "1",
        "SYNDICATE_BEAT_SCHEDULE": str(root / "beat-schedule"),
        # Each stop of `run`/`worker` takes this window plus ~2 s (REMAP_SIGTERM: docs/operations.md).
        "SYNDICATE_SOFT_SHUTDOWN": "1",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(env_changes)
    env.pop("SENTRY_DSN", None)
    return Deployment(root, env, config, database_url)


@pytest.fixture(scope="module")
def module_partner():
    """One stand-in partner for a module that shares one deployment."""
    server = PartnerServer(new_secret()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def module_running(tmp_path_factory, redis_db, pg_server_url, module_partner):
    """One `syndicate run` (PostgreSQL store, partner `module_partner`) shared by a module's
    read-mostly cases; each case uses articles of its own. It logs at debug level, so that
    `Deployment.wait_for_sweeps` can count the sweeps that ran. A module using this must not
    use `redis_url` or `redis_client` (they empty the deployment's Redis database)."""
    redis_url = f"{REDIS_BASE}/{redis_db}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    # Rows committed but never enqueued are re-enqueued by the sweep after 3 s, not a minute;
    # the breaker keeps its real threshold, with a cool-off of seconds, not a minute.
    deployment = make_deployment(tmp_path_factory.mktemp("deployment"), redis_url,
                                 _pg_schema_url(pg_server_url), module_partner, SYNDICATE_REQUEUE_AFTER="3",
                                 SYNDICATE_BREAKER_COOLOFF="5")
    deployment.syndicate("migrate", check=True)
    start_running(deployment, "--loglevel", "DEBUG")
    yield deployment
    deployment.stop_all()


def start_running(deployment: "Deployment", *args: str) -> subprocess.Popen:
    proc = deployment.start("run", "--concurrency", "2", *args)
    wait_until(lambda: b"ready." in Path(proc.log_path).read_bytes() or proc.poll() is not None, 60,
               "worker to start")
    assert proc.poll() is None, deployment.log(proc)
    return proc


SWEEP_DONE = re.compile(r"Task tasks\.maintenance\.sweep\[[^\]]+\] succeeded")


class Deployment:
    def __init__(self, root: Path, env: dict, config: Path, database_url: str):
        self.root, self.env, self.config, self.database_url = root, env, config, database_url
        self.processes: list[subprocess.Popen] = []

    @property
    def feeds_dir(self) -> Path:
        return Path(self.env["FEEDS_DIR"])

    def syndicate(self, *args: str, input: str | None = None, check: bool = False, timeout: float = 120):
        result = subprocess.run([str(BIN / "syndicate"), *args], env=self.env, cwd=self.root, input=input,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"syndicate {' '.join(args)} exited {result.returncode}\n"
                                 f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def start(self, *args: str, name: str = "run") -> subprocess.Popen:
        """Start a long-running `syndicate` command; its output goes to a log file."""
        log = open(self.root / f"{name}-{len(self.processes)}.log", "wb")
        proc = subprocess.Popen([str(BIN / "syndicate"), *args], env=self.env, cwd=self.root, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.processes.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop a process we started, by its own pid; SIGKILL its session if it will not go."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        # Pool children of a killed worker are in the session we created for it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.processes:
            self.stop(proc)

    def sweeps(self) -> int:
        """How many sweeps the deployment's processes have finished (they log at debug level)."""
        return sum(len(SWEEP_DONE.findall(self.log(p))) for p in self.processes)

    def wait_for_sweeps(self, count: int = 2, timeout: float = 60) -> None:
        """Evidence that whatever the sweep would send again has had its chance: `count` more
        sweeps finish from now (a sweep that was already running may be one of them, hence 2)."""
        start = self.sweeps()
        wait_until(lambda: self.sweeps() >= start + count, timeout, f"{count} more sweeps to run")


@pytest.fixture
def running(deployment):
    """`deployment` with `syndicate run` started; stopped when the test ends."""
    deployment.syndicate("migrate", check=True)
    start_running(deployment)
    return deployment


def wait_until(predicate, timeout: float = 30, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
