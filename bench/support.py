"""What the benchmarks share: their own redis-server, a throw-away PostgreSQL database or
SQLite file, a configuration with N partners, article files, processes stopped by id.

Every benchmark starts and stops what it needs and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BODY = "<p>" + "A paragraph of the story, long enough to look like news. " * 40 + "</p>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def median(values) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Processes:
    """Processes this benchmark started, each in its own session, stopped by id."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict, log: Path) -> subprocess.Popen:
        out = open(log, "wb")
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pool children, in the session the process leads
        except (ProcessLookupError, PermissionError):
            pass

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


class ReceiverClient:
    """Asking the receiver (`bench/deliveries.py --serve-receiver`) how it is doing; the class
    using it sets `http` (a requests session) and `receiver_port`."""

    http: Any
    receiver_port: int

    def _receiver_up(self) -> bool:
        try:
            return self.http.get(self._url("/stats"), timeout=1).ok
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.receiver_port}{path}"

    def stats(self) -> dict:
        return self.http.get(self._url("/stats"), timeout=10).json()


def start_redis(procs: Processes, root: Path) -> str:
    port = free_port()
    procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(root)], dict(os.environ), root / f"redis-{port}.log")
    import redis

    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), 20, "redis-server")
    client.close()
    return f"redis://127.0.0.1:{port}/0"


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False


@contextmanager
def database(kind: str, root: Path) -> Iterator[str]:
    """A fresh, empty store URL: a SQLite file under `root`, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{root}/bench-{uuid.uuid4().hex[:6]}.db"
        return
    from sqlalchemy import create_engine, text

    name = f"syndicate_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(path: Path, partners: int, receiver_port: int | None, secret: str | None,
                 feeds: bool = True) -> Path:
    lines = ['[site]\ntitle = "Bench"\nurl = "https://bench.example"\nfeeds_url = "https://bench.example/f"']
    if feeds:
        lines.append('[[feeds]]\nname = "all"\ntitle = "All"\nlimit = 100')
        lines.append('[[feeds]]\nname = "world"\ntitle = "World"\nsections = ["World"]\nlimit = 100')
    for i in range(partners):
        url = f"http://127.0.0.1:{receiver_port or 9}/p{i}"
        lines.append(f'[[partners]]\nname = "p{i}"\nurl = "{url}"\nsecret = "{secret}"\nallow_private = true\n'
                     'timeout = "5s"')
    path.write_text("\n".join(lines) + "\n")
    return path


def article_data(n: int, tag: str) -> dict:
    return {"id": f"bench:{tag}-{n}", "url": f"https://bench.example/{tag}/{n}", "title": f"Story {tag} {n}",
            "summary": "What happened, in one sentence.", "content_html": BODY * 3, "authors": ["A. Reporter"],
            "section": "World", "tags": ["bench", f"t{n % 7}"], "language": "en",
            "published_at": "2026-11-26T09:00:00Z"}


def write_articles(folder: Path, count: int, tag: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n in range(count):
        path = folder / f"{tag}-{n}.json"
        path.write_text(json.dumps(article_data(n, tag)))
        names.append(str(path))
    return names


def bench_env(root: Path, redis_url: str, database_url: str, config: Path) -> dict:
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=database_url, SYNDICATE_CONFIG=str(config),
               FEEDS_DIR=str(root / "feeds"), PYTHONUNBUFFERED="1", SYNDICATE_LOG_LEVEL="WARNING")
    env.pop("SENTRY_DSN", None)
    return env


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
