"""The fault suite's harness: one site (a PostgreSQL store of its own, a Redis database
or a redis-server of the test's own, a configuration) with ten stand-in partners that
verify every signature and log every receipt, and real `syndicate` processes started,
SIGKILLed and restarted by the test.

Every case ends with the same checks (`Site.check`): each (article version, partner)
received with a verified signature, no message under two webhook-ids, no partner
delivery row left `dead` or `failed`, and duplicates counted and under 0.5%. A
duplicate is a receipt beyond the first send plus the attempts the worker recorded as
failed (error status, timeout, connection error): the partner had accepted the message
and got it again (a worker died before recording the answer, a lease ran out). A
resend after a recorded failure — a timeout whose answer never came — is what
webhook-ids are for; those count as `repeats`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import BIN, REPO, Deployment, _pg_schema_url, new_secret, wait_until, write_config
from tests.support.partner_server import PartnerServer

PARTNERS = 10
EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())
# A killed worker's rows come back within seconds: a short lease margin, re-enqueue delay and sweep.
FAST_RECOVERY = {"SYNDICATE_LEASE_MARGIN": "2", "SYNDICATE_REQUEUE_AFTER": "2", "SYNDICATE_SWEEP_INTERVAL": "1",
                 "SYNDICATE_DELIVERY_TASK_WAIT": "2", "SYNDICATE_SOFT_SHUTDOWN": "1"}
# How long a SIGTERMed `syndicate run` may take to exit: the soft-shutdown window, then the
# pool processes hand back their rows and stop (about 2 s), with room for a loaded machine.
STOP_WITHIN = float(FAST_RECOVERY["SYNDICATE_SOFT_SHUTDOWN"]) + 8
# Enough quick retries that a partner failing 30% of the time is never given up on.
RETRIES = ["1s"] * 4 + ["2s"] * 16


def article(n: int) -> dict:
    return dict(EXAMPLE, id=f"web:fault-{n}", url=f"https://lnn.example/fault-{n}", title=f"Story number {n}")


def partner_server() -> PartnerServer:
    server = PartnerServer(new_secret())
    # Answer without Nagle's delay (headers and body are separate writes), as a real server does.
    server.httpd.RequestHandlerClass.disable_nagle_algorithm = True
    return server.start()


@pytest.fixture
def fleet():
    servers = [partner_server() for _ in range(PARTNERS)]
    yield servers
    for server in servers:
        server.stop()


@dataclass
class Tally:
    """What the partners saw, against what they should have."""

    expected: int = 0  # (article version, partner) pairs
    received: int = 0  # verified receipts, repeats included
    repeats: int = 0  # a webhook-id received again (any reason)
    duplicates: int = 0  # ... beyond the retries of recorded failures: the partner had accepted it
    missing: list = field(default_factory=list)
    under_two_ids: list = field(default_factory=list)
    unverified: int = 0
    rows: dict = field(default_factory=dict)

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / max(self.expected, 1)


class Site:
    def __init__(self, root: Path, redis_url: str, database_url: str, fleet: list[PartnerServer]):
        self.root, self.fleet = root, fleet
        self.config_path = root / "syndication.toml"
        env = dict(os.environ)
        env.update({"REDIS_URL": redis_url, "DATABASE_URL": database_url, "FEEDS_DIR": str(root / "feeds"),
                    "SYNDICATE_CONFIG": str(self.config_path), "SYNDICATE_BEAT_SCHEDULE": str(root / "beat"),
                    "PYTHONUNBUFFERED": "1", **FAST_RECOVERY})
        env.pop("SENTRY_DSN", None)
        self.deployment = Deployment(root, env, self.config_path, database_url)
        self.configure()
        self._store = None

    @property
    def env(self) -> dict:
        return self.deployment.env

    def configure(self, **extra) -> None:
        partners = []
        for i, server in enumerate(self.fleet):
            entry = {"name": f"p{i}", "url": server.url, "secret": server.secret, "allow_private": True,
                     "timeout": "1s", "retry_schedule": RETRIES}
            entry.update(extra)
            partners.append(entry)
        write_config(self.config_path, partners=partners, feeds=[{"name": "all", "title": "All stories"}])

    # -- processes ------------------------------------------------------------------

    def start(self, command: str = "run", concurrency: int = 2, node: str | None = None,
              name: str | None = None) -> subprocess.Popen:
        """`syndicate run` (worker + beat) or `syndicate worker`; with `node`, in a UTS namespace
        of its own whose hostname is `node`, as a process on another machine would be."""
        if not (self.root / ".migrated").exists():
            self.deployment.syndicate("migrate", check=True)
            (self.root / ".migrated").touch()
        args = [command, "--concurrency", str(concurrency)]
        d = self.deployment
        log = open(self.root / f"{name or command}-{len(d.processes)}.log", "wb")
        argv = [str(BIN / "syndicate"), *args]
        if node:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', node, *argv]
        proc = subprocess.Popen(argv, env=d.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        d.processes.append(proc)
        wait_until(lambda: b"ready." in Path(proc.log_path).read_bytes() or proc.poll() is not None, 60,
                   f"syndicate {command} to start")
        assert proc.poll() is None, d.log(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the process and its pool children (the session it leads), by pid."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        """SIGTERM each process still running and check it exits within STOP_WITHIN (sends in
        flight get the soft-shutdown window, the pool hands back what it holds, the process
        exits); one that does not is SIGKILLed and fails the case."""
        late = []
        try:
            for proc in self.deployment.processes:
                if proc.poll() is not None:
                    self.deployment.stop(proc)  # exited or killed by the case: its session only
                    continue
                started = time.monotonic()
                self.deployment.stop(proc, timeout=STOP_WITHIN)
                print(f"\n{' '.join(proc.args[-3:])}: exited {time.monotonic() - started:.1f}s after SIGTERM")
                if proc.returncode == -signal.SIGKILL:
                    late.append(f"{' '.join(proc.args[-3:])} (pid {proc.pid}): SIGKILLed after "
                                f"{time.monotonic() - started:.0f}s\n{self.log(proc)[-3000:]}")
        finally:
            self.close()
        assert not late, f"did not exit within {STOP_WITHIN:.0f}s of SIGTERM: {late}"

    def log(self, proc) -> str:
        return self.deployment.log(proc)

    # -- articles -------------------------------------------------------------------

    def ingest(self, numbers) -> None:
        """`syndicate ingest` of these articles, in one file (one process, as an operator would)."""
        path = self.root / f"articles-{min(numbers)}-{max(numbers)}.json"
        path.write_text(json.dumps([article(n) for n in numbers]))
        self.deployment.syndicate("ingest", str(path), check=True, timeout=300)

    @property
    def store(self):
        from worker.store import Store

        if self._store is None:
            self._store = Store(self.deployment.database_url)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.dispose()

    def statuses(self) -> Counter:
        from worker.store import DeliveryRow

        with self.store.session() as s:
            return Counter(s.scalars(select(DeliveryRow.status).where(DeliveryRow.kind == "partner")))

    def received(self) -> int:
        return sum(len(p.received) for p in self.fleet)

    def wait_delivered(self, rows: int, timeout: float = 120) -> None:
        def done():
            return self.statuses() == Counter(delivered=rows)

        try:
            wait_until(done, timeout, f"all {rows} partner deliveries to be delivered", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {dict(self.statuses())}") from None

    # -- the checks -----------------------------------------------------------------

    def failed_attempts(self) -> Counter:
        """Per (partner, webhook-id): attempts the worker recorded as failed (an error status,
        a timeout, a connection error): each may have reached the partner, and a resend after
        it is what retries are. An attempt cut short by a dead worker is not among them."""
        from worker.store import AttemptRow, DeliveryRow

        with self.store.session() as s:
            rows = s.execute(
                select(DeliveryRow.destination, DeliveryRow.message_id)
                .join(AttemptRow, AttemptRow.delivery_id == DeliveryRow.id)
                .where(DeliveryRow.kind == "partner", AttemptRow.finished_at.is_not(None),
                       AttemptRow.outcome.not_in(("delivered", "skipped", "interrupted")))).all()
        return Counter((d, m) for d, m in rows)

    def tally(self) -> Tally:
        from worker.store import ArticleRow

        with self.store.session() as s:
            versions = {(a, v) for a, v in s.execute(select(ArticleRow.id, ArticleRow.version))}
        failed = self.failed_attempts()
        t = Tally(expected=len(versions) * len(self.fleet), rows=dict(self.statuses()))
        for i, server in enumerate(self.fleet):
            got: set[tuple[str, str]] = set()
            receipts: Counter = Counter()
            for rec in list(server.received):
                if not rec.verified:
                    t.unverified += 1
                    continue
                t.received += 1
                receipts[rec.webhook_id] += 1
                got.add(rec.key[:2])
            for wid, count in receipts.items():
                t.repeats += count - 1
                # Received more often than the first send plus the recorded failures: the
                # partner had accepted it, and it came again.
                t.duplicates += max(0, count - 1 - failed[(f"p{i}", wid)])
            t.missing += [(f"p{i}", *key) for key in sorted(versions - got)]
            t.under_two_ids += [(f"p{i}", *k) for k, ids in server.ids_per_message().items() if len(ids) > 1]
        return t

    def check(self, name: str, duplicate_bound: int | None = None, extra: dict | None = None) -> Tally:
        """Assert the outcome every case must end with. Duplicates must stay under 0.5% of the
        messages, or, where the fault itself forces them (`duplicate_bound`, e.g. a SIGKILL loses
        the answers of every request in flight), under that bound."""
        t = self.tally()
        report = {k: v for k, v in asdict(t).items() if k not in ("missing", "under_two_ids")}
        report.update(missing=len(t.missing), under_two_ids=len(t.under_two_ids),
                      duplicate_rate=round(t.duplicate_rate, 5), **(extra or {}))
        print(f"\nfault case {name}: {json.dumps(report)}")
        with open(os.environ.get("FAULTS_REPORT", "/dev/null"), "a") as out:
            out.write(json.dumps({"case": name, **report}) + "\n")
        assert not t.missing, f"never received: {t.missing[:10]} ({len(t.missing)})"
        assert not t.under_two_ids, f"messages sent under two webhook-ids: {t.under_two_ids[:10]}"
        assert t.unverified == 0, "a receipt did not verify"
        assert set(t.rows) == {"delivered"}, f"partner rows not all delivered (dead letters?): {t.rows}"
        if duplicate_bound is None:
            assert t.duplicate_rate < 0.005, f"{t.duplicates} duplicates for {t.expected} messages"
        else:
            assert t.duplicates <= duplicate_bound, f"{t.duplicates} duplicates, more than {duplicate_bound}"
        return t


@pytest.fixture
def pg_url(pg_server_url) -> str:
    return _pg_schema_url(pg_server_url)


@pytest.fixture
def site(tmp_path, redis_url, pg_url, fleet):
    s = Site(tmp_path, redis_url, pg_url, fleet)
    yield s
    s.stop_all()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def unshare_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--uts", "true"], capture_output=True).returncode == 0


def by_partner(fleet) -> dict[str, list]:
    out = defaultdict(list)
    for i, server in enumerate(fleet):
        out[f"p{i}"] = list(server.received)
    return out


__all__ = ["Site", "Tally", "article", "percentile", "unshare_works", "time"]
