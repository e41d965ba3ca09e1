"""End to end, as a user runs it: `syndicate ingest` of article files to signed receipts at a
partner receiver, through `syndicate worker` processes on Redis and a store.

    .venv/bin/python bench/endtoend.py [--store sqlite|postgresql] [--quick]

- throughput: 300 article files x 10 partners, clock from starting `syndicate ingest` to the
  receiver holding every webhook-id (median of the rounds); baseline, same run: a bare
  single-threaded `requests` loop to the same receiver (the naive one-POST-at-a-time design);
- steady: articles stored (10 per transaction, as a poll does) and dispatched at 200 per
  second for one partner; p50 / p99 from commit to receipt; worker resident memory
  (main process and each pool process) sampled all along: the largest, and the drift from
  the first sample after warm-up to the last;
- scale-out (`scale`): N `syndicate worker --name wN@%h` processes on one PostgreSQL and one
  Redis; deliveries/s per worker count, and duplicate sends (POSTs minus distinct webhook-ids).
"""

from __future__ import annotations

import argparse
import json
import base64
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (  # noqa: E402
    BIN, Processes, ReceiverClient, article_data, bench_env, children, database, free_port, median, pct, rss_mb,
    start_redis, wait_for, write_articles,
)

DELIVERIES_PY = str(Path(__file__).resolve().parent / "deliveries.py")


class Deployment(ReceiverClient):
    """Redis, a store, a receiver, the configuration, and worker processes: all started here."""

    def __init__(self, root: Path, procs: Processes, database_url: str, partners: int = 10):
        import requests

        self.root, self.procs, self.database_url, self.partners = root, procs, database_url, partners
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.http = requests.Session()
        self.redis_url = start_redis(procs, root)
        self.receiver_port = free_port()
        procs.start([sys.executable, DELIVERIES_PY, "--serve-receiver", str(self.receiver_port), self.secret, "50"],
                    dict(os.environ), root / "receiver.log")
        # p0 takes everything; the others only the World section: "World" stories go to all
        # partners, "Steady" ones (the latency run) to one.
        lines = ['[site]\ntitle = "Bench"\nurl = "https://bench.example"\nfeeds_url = "https://bench.example/f"']
        for i in range(partners):
            lines.append(f'[[partners]]\nname = "p{i}"\nurl = "http://127.0.0.1:{self.receiver_port}/p{i}"\n'
                         f'secret = "{self.secret}"\nallow_private = true\ntimeout = "5s"'
                         + ('\nsections = ["World"]' if i else ""))
        self.config_path = root / "syndication.toml"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.env = bench_env(root, self.redis_url, database_url, self.config_path)
        os.environ.update({k: self.env[k] for k in ("REDIS_URL", "DATABASE_URL", "SYNDICATE_CONFIG", "FEEDS_DIR")})
        wait_for(self._receiver_up, 20, "the receiver")
        from worker import runtime
        from worker.store import Store

        runtime.reset()
        self.store = Store(database_url)
        self.store.migrate()
        self.config = runtime.config()
        self.workers: list = []
        self.ingest_seconds: list[float] = []
        self.cpu_rounds: list[dict] = []

    def start_workers(self, count: int, concurrency: int) -> None:
        for i in range(count):
            log = self.root / f"worker-{len(self.workers)}.log"
            self.workers.append(self.procs.start(
                [str(BIN / "syndicate"), "worker", "-Q", "deliver", "-c", str(concurrency), "--loglevel", "WARNING",
                 "--name", f"bench{len(self.workers)}@%h"], self.env, log))
        wait_for(self._workers_ready, 90, "the workers", interval=0.2)

    def _workers_ready(self) -> bool:
        from worker.celery import app

        replies = app.control.ping(timeout=0.5) or []
        return len(replies) >= len(self.workers)

    def stop_workers(self) -> None:
        for proc in self.workers:
            self.procs.stop(proc)
        self.workers = []

    def worker_rss(self) -> list[float]:
        """Resident MB of every worker process: each main process and its pool children."""
        pids = []
        for proc in self.workers:
            pids.append(proc.pid)
            pids += children(proc.pid)
        return [rss_mb(p) for p in pids]

    def close(self) -> None:
        self.store.dispose()

    # -- figures ---------------------------------------------------------------------------------
    def ingest_round(self, files: int, tag: str) -> float:
        """Deliveries/s from starting `syndicate ingest` to the receiver holding every one."""
        import subprocess

        import resource

        names = write_articles(self.root / f"in-{tag}", files, tag)
        want = self.stats()["unique"] + files * self.partners
        cpu_before = self.cpu()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([str(BIN / "syndicate"), "ingest", *names], env=self.env, capture_output=True)
        if done.returncode != 0:
            raise SystemExit(f"syndicate ingest failed:\n{done.stderr.decode()[-2000:]}")
        self.ingest_seconds.append(time.perf_counter() - started)
        wait_for(lambda: self.stats()["unique"] >= want, max(60, files / 10), "every receipt", interval=0.01)
        elapsed = time.perf_counter() - started
        after, children_after = self.cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
        used = {k: after[k] - cpu_before[k] for k in after}
        used["ingest"] = (children_after.ru_utime + children_after.ru_stime
                          - children_before.ru_utime - children_before.ru_stime)
        # CPU milliseconds per 1,000 deliveries, by component
        self.cpu_rounds.append({k: round(v * 1e6 / (files * self.partners)) for k, v in used.items()})
        return files * self.partners / elapsed

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the workers (with their pools), the receiver, redis-server
        and PostgreSQL backends (all of them: this benchmark's are most of the load)."""
        from bench.support import cpu_seconds

        worker_pids = [p for proc in self.workers for p in (proc.pid, *children(proc.pid))]
        out = {"workers": sum(cpu_seconds(p) for p in worker_pids)}
        out["receiver"] = cpu_seconds(self.procs.procs[1].pid)
        out["redis"] = cpu_seconds(self.procs.procs[0].pid)
        if self.database_url.startswith("sqlite"):
            return out
        out["postgres"] = sum(cpu_seconds(int(e.name)) for e in Path("/proc").iterdir()
                              if e.name.isdigit() and _is_postgres(e))
        return out

    def dispatch_round(self, articles: int, tag: str) -> float:
        """Deliveries/s of articles already stored, from the first enqueue to the last receipt."""
        import tasks  # noqa: F401 - installs the scheduler dispatch uses
        from worker.articles import parse_article
        from worker.pipeline import dispatch, record_articles

        arts = [parse_article(article_data(n, tag), "bench") for n in range(articles)]
        with self.store.session() as s:
            recs = record_articles(s, arts, self.config, origin="bench")
        want = self.stats()["unique"] + articles * self.partners
        started = time.perf_counter()
        dispatch(recs, self.config)
        wait_for(lambda: self.stats()["unique"] >= want, max(60, articles / 5), "every receipt", interval=0.01)
        return articles * self.partners / (time.perf_counter() - started)

    def steady(self, rate: float, seconds: float, tag: str, per_commit: int = 10) -> dict:
        """`rate` articles/s to one partner; latency from commit to receipt, and worker memory."""
        import tasks  # noqa: F401
        from sqlalchemy import select

        from worker.articles import parse_article
        from worker.pipeline import dispatch, record_articles
        from worker.store import DeliveryRow

        count = int(rate * seconds)
        arts = [parse_article(dict(article_data(n, tag), section="Steady", tags=[]), "bench") for n in range(count)]
        committed: dict[str, float] = {}
        memory: list[tuple[float, float]] = []  # (seconds in, largest RSS)
        totals: list[float] = []
        want = self.stats()["unique"] + count
        start = next_at = time.perf_counter()
        last_sample = 0.0
        for i in range(0, count, per_commit):
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += per_commit / rate
            with self.store.session() as s:
                recs = record_articles(s, arts[i:i + per_commit], self.config, origin="bench")
            at = time.time()
            committed.update((r.article_id, at) for r in recs)
            dispatch(recs, self.config)
            if now - last_sample >= 2:
                last_sample = now
                rss = self.worker_rss()
                memory.append((now - start, max(rss)))
                totals.append(sum(rss))
        behind = time.perf_counter() - next_at
        wait_for(lambda: self.stats()["unique"] >= want, 120, "the steady run's receipts", interval=0.05)
        arrivals = self.http.get(self._url("/dump"), timeout=30).json()
        with self.store.session() as s:
            ids = dict(s.execute(select(DeliveryRow.message_id, DeliveryRow.article_id)
                                 .where(DeliveryRow.article_id.in_(list(committed)),
                                        DeliveryRow.kind == "partner")).all())
        latencies = [(arrivals[m] - committed[a]) * 1000 for m, a in ids.items() if m in arrivals]
        warm = [m for t, m in memory if t >= min(10.0, seconds / 3)] or [m for _, m in memory]
        return {"p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "samples": len(latencies),
                "rss_max_mb": max(m for _, m in memory), "rss_first_mb": warm[0], "rss_last_mb": warm[-1],
                "rss_drift": (warm[-1] - warm[0]) / warm[0], "rss_total_mb": max(totals),
                "driver_behind_s": max(0.0, behind), "seconds": seconds, "rate": rate}

    def baseline(self, n: int) -> float:
        """A bare single-threaded `requests` loop to the same receiver (one POST at a time)."""
        body = b'{"type":"article.published","data":{}}'
        started = time.perf_counter()
        for i in range(n):
            self.http.post(self._url("/p0"), data=body,
                           headers={"content-type": "application/json", "webhook-id": f"base_{i}_{time.time()}"})
        return n / (time.perf_counter() - started)


def _is_postgres(entry: Path) -> bool:
    try:
        return (entry / "cmdline").read_bytes().startswith(b"postgres")
    except OSError:
        return False


def end_to_end(kind: str, rounds: int, files: int, steady_seconds: float | None, concurrency: int = 4) -> dict:
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="syndicate-bench-e2e-") as tmp, database(kind, Path(tmp)) as url:
        dep = None
        try:
            dep = Deployment(Path(tmp), procs, url)
            dep.start_workers(1, concurrency)
            dep.dispatch_round(20, "warm")
            rates = [dep.ingest_round(files, f"r{r}") for r in range(rounds)]
            result = {"rate": median(rates), "rounds": rates, "ingest_s": dep.ingest_seconds,
                      "cpu_ms_per_1000": {k: median([c[k] for c in dep.cpu_rounds]) for k in dep.cpu_rounds[0]}}
            if steady_seconds:
                result["steady"] = dep.steady(200.0, steady_seconds, "steady")
            stats = dep.stats()  # before the baseline's unsigned requests
            result["bad_signatures"] = stats["bad"]
            result["verified"] = stats["verified"]
            result["duplicates"] = stats["count"] - stats["unique"]
            result["baseline"] = dep.baseline(1000)
            return result
        except BaseException:
            for log in sorted(Path(tmp).glob("*.log")):
                print(f"--- last lines of {log.name}:\n" + "\n".join(log.read_text(errors="replace")
                                                                   .splitlines()[-15:]), file=sys.stderr)
            raise
        finally:
            if dep is not None:
                dep.close()
            procs.stop_all()


def scale_out(counts: list[int], articles: int, concurrency: int = 2) -> dict:
    """Deliveries/s with 1, 2, 4... workers on one PostgreSQL and one Redis; duplicate sends."""
    procs = Processes()
    out = {}
    with tempfile.TemporaryDirectory(prefix="syndicate-bench-scale-") as tmp, database("postgresql", Path(tmp)) as url:
        dep = Deployment(Path(tmp), procs, url)
        try:
            for n in counts:
                dep.start_workers(n - len(dep.workers), concurrency)  # add workers to those running
                dep.dispatch_round(20, f"warm{n}")
                before = dep.stats()
                rate = dep.dispatch_round(articles, f"w{n}")
                after = dep.stats()
                dup = (after["count"] - before["count"]) - (after["unique"] - before["unique"])
                out[n] = {"rate": rate, "duplicates": dup}
            stats = dep.stats()
            out["duplicates_total"] = stats["count"] - stats["unique"]
        finally:
            dep.close()
            procs.stop_all()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds of the steady 200/s run (0: none)")
    parser.add_argument("--scale", action="store_true", help="the scale-out run instead (PostgreSQL)")
    args = parser.parse_args()
    if args.scale:
        print(json.dumps(scale_out([1, 2, 4], args.files)))
        return
    print(json.dumps(end_to_end(args.store, args.rounds, args.files, args.steady or None)))


if __name__ == "__main__":
    main()
