"""Benchmark: end-to-end signed partner deliveries through Celery and the store.

    python bench/deliveries.py            # PostgreSQL store, 3 rounds, then the latency run
    python bench/deliveries.py --quick    # one short round, short latency run
    python bench/deliveries.py --store sqlite
    python bench/deliveries.py --store both

It starts and stops everything it needs: its own redis-server on a free port, its own
PostgreSQL database (dropped afterwards) or SQLite file, a receiver in another process
(an asyncio HTTP/1.1 server that answers 200 at once, keeps connections alive, records
each webhook-id with its arrival time and verifies a sample of signatures with
`standardwebhooks`), and `syndicate worker` processes on the `deliver` queue.

Figures (each the median of the rounds):
- throughput: articles stored first, then dispatched exactly as `ingest` does (one task
  per article fanning out to every partner); deliveries/s from the first enqueue until the
  store shows every delivery row `delivered`;
- ingest+deliver: the same, with storing the articles inside the timed part;
- latency: articles stored and dispatched at a steady rate (default 200 deliveries/s);
  time from each article's commit to the partner's receipt, p50 / p99;
- baseline: a bare single-threaded `requests` loop to the same receiver, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
from bench.support import Processes, ReceiverClient, free_port, wait_for  # noqa: E402

GOAL_THROUGHPUT = 1500.0
GOAL_P99_MS = 500.0


# --- the receiver (runs in its own process) -------------------------------------------------

def serve_receiver(port: int, secret: str, sample_every: int) -> None:
    from standardwebhooks import Webhook

    hook = Webhook(secret)
    received: dict[str, float] = {}
    state = {"count": 0, "verified": 0, "bad": 0}

    def control(path: str) -> bytes:
        if path == "/stats":
            return json.dumps(dict(state, unique=len(received))).encode()
        if path == "/dump":
            return json.dumps(received).encode()
        if path == "/reset":
            received.clear()
            state.update(count=0, verified=0, bad=0)
            return b"{}"
        return b"{}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "POST":
                    wid = headers.get("webhook-id", "")
                    if wid not in received:
                        received[wid] = now
                    state["count"] += 1
                    if sample_every and state["count"] % sample_every == 1:
                        try:
                            hook.verify(body, headers)
                            state["verified"] += 1
                        except Exception:  # noqa: BLE001
                            state["bad"] += 1
                    payload = b"{}"
                else:
                    payload = control(path)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- helpers -----------------------------------------------------------------------------------

# free_port, wait_for and Processes are shared with the other benchmarks (bench/support.py).


class Bench(ReceiverClient):
    def __init__(self, args, root: Path, procs: Processes, store_kind: str):
        self.args, self.root, self.procs, self.store_kind = args, root, procs, store_kind
        self.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.pg_name = None

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        import requests

        self.http = requests.Session()
        self.redis_port = free_port()
        self.procs.start(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(self.root)], dict(os.environ), self.root / "redis.log")
        self.receiver_port = free_port()
        self.procs.start([sys.executable, __file__, "--serve-receiver", str(self.receiver_port), self.secret,
                          str(self.args.verify_every)], dict(os.environ), self.root / "receiver.log")
        self.database_url = self._database()
        config = self.root / "syndication.toml"
        lines = ['[site]\ntitle = "Bench"\nurl = "https://bench.example"\nfeeds_url = "https://bench.example/f"']
        for i in range(self.args.partners):
            lines.append(f'[[partners]]\nname = "p{i}"\nurl = "http://127.0.0.1:{self.receiver_port}/p{i}"\n'
                         f'secret = "{self.secret}"\nallow_private = true\ntimeout = "5s"')
        config.write_text("\n".join(lines) + "\n")
        self.env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
                        DATABASE_URL=self.database_url, SYNDICATE_CONFIG=str(config),
                        FEEDS_DIR=str(self.root / "feeds"), PYTHONUNBUFFERED="1")
        self.env.pop("SENTRY_DSN", None)
        os.environ.update({k: self.env[k] for k in ("REDIS_URL", "DATABASE_URL", "SYNDICATE_CONFIG", "FEEDS_DIR")})
        wait_for(self._receiver_up, 20, "the receiver")
        from worker import runtime
        from worker.store import Store

        runtime.reset()
        self.store = Store(self.database_url)
        self.store.migrate()
        self.config = runtime.config()
        for i in range(self.args.workers):
            self.procs.start([str(BIN / "syndicate"), "worker", "-Q", "deliver", "-c", str(self.args.concurrency),
                              "--loglevel", "INFO"], self.env, self.root / f"worker-{i}.log")
        wait_for(lambda: all(b"ready." in (self.root / f"worker-{i}.log").read_bytes()
                             for i in range(self.args.workers)), 60, "the workers")

    def _database(self) -> str:
        if self.store_kind == "sqlite":
            return f"sqlite:///{self.root}/bench.db"
        from sqlalchemy import create_engine, text

        self.pg_name = f"syndicate_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.pg_name}"'))
        admin.dispose()
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.pg_name

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.dispose()
        self.procs.stop_all()
        if self.pg_name:
            from sqlalchemy import create_engine, text

            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
            admin.dispose()

    # -- work --------------------------------------------------------------------------------------
    def articles(self, count: int, tag: str) -> list:
        from worker.articles import parse_article

        body = "<p>" + "A paragraph of the story, long enough to look like news. " * 40 + "</p>"
        return [parse_article({
            "id": f"bench:{tag}-{n}", "url": f"https://bench.example/{tag}/{n}", "title": f"Story {tag} {n}",
            "summary": "What happened, in one sentence.", "content_html": body * 3, "authors": ["A. Reporter"],
            "section": "World", "tags": ["bench"], "language": "en", "published_at": "2026-11-26T09:00:00Z",
        }, "bench") for n in range(count)]

    def record(self, articles) -> list:
        from worker.pipeline import record_article

        recs = []
        for art in articles:
            with self.store.session() as s:
                recs.append(record_article(s, art, self.config, origin="bench"))
        return recs

    def delivered(self) -> int:
        from sqlalchemy import func, select

        from worker.store import DeliveryRow

        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "delivered"))

    def wait_all(self, expected_total: int, timeout: float, received_total: int | None = None) -> float:
        """When the store shows `expected_total` rows delivered. The receiver's counter (cheap)
        is watched first, so polling the store does not load the database being measured."""
        if received_total is not None:
            wait_for(lambda: self.stats()["count"] >= received_total, timeout, "the receiver", interval=0.01)
        wait_for(lambda: self.delivered() >= expected_total, timeout, f"{expected_total} deliveries", interval=0.01)
        return time.perf_counter()

    def throughput(self, n: int, tag: str, with_ingest: bool) -> float:
        import tasks  # noqa: F401 - installs the scheduler dispatch uses
        from worker.pipeline import dispatch

        articles = self.articles(n, tag)
        before = self.delivered()
        expected = before + n * self.args.partners
        received = self.stats()["count"] + n * self.args.partners
        self.cpu_before = cpu_by_component(self)
        if with_ingest:
            started = time.perf_counter()
            for art in articles:  # exactly what ingest does: store, then enqueue after commit
                dispatch(self.record([art]), self.config)
        else:
            recs = self.record(articles)
            self.cpu_before = cpu_by_component(self)
            started = time.perf_counter()
            dispatch(recs, self.config)
        ended = self.wait_all(expected, timeout=max(120, n * self.args.partners / 50), received_total=received)
        after = cpu_by_component(self)
        self.cpu_used = {k: after[k] - self.cpu_before.get(k, 0.0) for k in after}
        return n * self.args.partners / (ended - started)

    def latency(self, rate: float, seconds: float, tag: str) -> list[float]:
        from sqlalchemy import select

        import tasks  # noqa: F401 - installs the scheduler dispatch uses
        from worker.pipeline import dispatch
        from worker.store import DeliveryRow

        per_article = self.args.partners
        interval = per_article / rate
        count = max(1, int(seconds * rate / per_article))
        articles = self.articles(count, tag)
        stored_at: dict[str, float] = {}
        before = self.delivered()
        next_at = time.perf_counter()
        for art in articles:
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            [rec] = self.record([art])
            stored_at[rec.article_id] = time.time()  # committed
            dispatch([rec], self.config)
        self.wait_all(before + count * per_article, timeout=120)
        arrivals = self.http.get(self._url("/dump"), timeout=30).json()
        with self.store.session() as s:
            ids = dict(s.execute(select(DeliveryRow.message_id, DeliveryRow.article_id)
                                 .where(DeliveryRow.article_id.in_(list(stored_at)))).all())
        return [(arrivals[m] - stored_at[a]) * 1000 for m, a in ids.items() if m in arrivals]

    def baseline(self, n: int) -> float:
        """A bare single-threaded requests loop (signed bodies made beforehand) to the same receiver."""
        import requests

        http = requests.Session()
        body = b'{"type":"article.published","data":{}}'
        started = time.perf_counter()
        for i in range(n):
            http.post(self._url("/p0"), data=body, headers={"content-type": "application/json",
                                                             "webhook-id": f"base_{i}"})
        return n / (time.perf_counter() - started)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_by_component(bench: "Bench") -> dict[str, float]:
    """CPU seconds used so far by each part of the benchmark (Linux /proc)."""
    usage = {"worker": 0.0, "receiver": 0.0, "redis": 0.0, "postgres": 0.0, "bench driver": _cpu_seconds(os.getpid())}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(entry.name)
        if "syndicate worker -Q deliver" in cmd and str(bench.root) not in cmd:
            # only this benchmark's workers: they are children of processes we started
            if any(pid == p.pid or _ppid(pid) == p.pid for p in bench.procs.procs):
                usage["worker"] += _cpu_seconds(pid)
        elif "--serve-receiver" in cmd and str(bench.receiver_port) in cmd:
            usage["receiver"] += _cpu_seconds(pid)
        elif cmd.startswith("redis-server") and f":{bench.redis_port}" in cmd:
            usage["redis"] += _cpu_seconds(pid)
        elif cmd.startswith("postgres:") and bench.pg_name and bench.pg_name in cmd:
            usage["postgres"] += _cpu_seconds(pid)
    return usage


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run_store(args, store_kind: str) -> dict:
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="syndicate-bench-") as tmp:
        bench = Bench(args, Path(tmp), procs, store_kind)
        try:
            bench.setup()
            bench.throughput(max(5, args.articles // 10), "warmup", with_ingest=False)
            rates, ingest_rates = [], []
            cpu: dict[str, float] = {}
            for r in range(args.rounds):
                rates.append(bench.throughput(args.articles, f"t{r}", with_ingest=False))
                for k, v in bench.cpu_used.items():
                    cpu[k] = cpu.get(k, 0.0) + v
                ingest_rates.append(bench.throughput(args.articles, f"i{r}", with_ingest=True))
                print(f"  [{store_kind}] round {r + 1}: {rates[-1]:,.0f} deliveries/s; "
                      f"with ingest {ingest_rates[-1]:,.0f}/s", flush=True)
            latencies = bench.latency(args.rate, args.seconds, "lat")
            stats = bench.stats()
            base = bench.baseline(args.baseline)
        except BaseException:
            # Say which process gave up, before its temporary directory goes.
            for log in sorted(Path(tmp).glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- last lines of {log.name}:\n" + "\n".join(tail), file=sys.stderr)
            dead = [p.args[0] for p in procs.procs if p.poll() is not None]
            if dead:
                print(f"--- exited early: {', '.join(map(str, dead))}", file=sys.stderr)
            raise
        else:
            return {"store": store_kind, "throughput": statistics.median(rates), "rounds": rates,
                    "ingest_throughput": statistics.median(ingest_rates), "ingest_rounds": ingest_rates,
                    "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "max_ms": max(latencies),
                    "latency_samples": len(latencies), "baseline": base,
                    "verified_sample": stats["verified"], "bad_signatures": stats["bad"],
                    "cpu_ms_per_1000": {k: round(v * 1000 / (args.rounds * args.articles * args.partners) * 1000)
                                        for k, v in cpu.items()}}
        finally:
            bench.teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--articles", type=int, default=500, help="articles per round (x partners = deliveries)")
    parser.add_argument("--partners", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (each with its own pool)")
    parser.add_argument("--concurrency", type=int, default=4, help="pool processes per worker")
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries/s for the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument("--baseline", type=int, default=3000, help="requests in the bare requests loop")
    parser.add_argument("--verify-every", type=int, default=50, help="the receiver verifies 1 in N signatures")
    parser.add_argument("--quick", action="store_true", help="one short round and a short latency run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--serve-receiver", nargs=3, metavar=("PORT", "SECRET", "EVERY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        port, secret, every = args.serve_receiver
        serve_receiver(int(port), secret, int(every))
        return
    if args.quick:
        args.articles, args.rounds, args.seconds, args.baseline = 100, 1, 5.0, 1000
    print(f"syndicate delivery benchmark: {args.partners} partners per article, {args.articles} articles per round, "
          f"{args.rounds} round(s), {args.workers} worker(s) x {args.concurrency} processes, "
          f"{os.cpu_count()} CPUs", flush=True)
    if args.store == "both":
        # One process per store: the Celery app reads its broker URL once per process.
        results = []
        for kind in ("postgresql", "sqlite"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                argv = [a for a in sys.argv[1:] if a not in ("--store", "both", "--json")]
                subprocess.run([sys.executable, __file__, *argv, "--store", kind, "--result-file", out.name],
                               check=True)
                results += json.loads(Path(out.name).read_text())
    else:
        results = [run_store(args, args.store)]
        if args.result_file:
            Path(args.result_file).write_text(json.dumps(results))
            return
    print()
    print(f"{'store':<11} {'deliveries/s':>13} {'vs goal':>8} {'vs requests loop':>17} {'with ingest/s':>14} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'vs goal':>8}")
    for r in results:
        print(f"{r['store']:<11} {r['throughput']:>13,.0f} {r['throughput'] / GOAL_THROUGHPUT:>7.2f}x "
              f"{r['throughput'] / r['baseline']:>16.2f}x {r['ingest_throughput']:>14,.0f} "
              f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {GOAL_P99_MS / r['p99_ms']:>7.2f}x")
    for r in results:
        print(f"  {r['store']}: rounds {', '.join(f'{x:,.0f}' for x in r['rounds'])}; bare requests loop "
              f"{r['baseline']:,.0f}/s; latency at {args.rate:.0f}/s over {r['latency_samples']} deliveries, "
              f"max {r['max_ms']:.0f} ms; receiver verified {r['verified_sample']} sampled signatures, "
              f"{r['bad_signatures']} bad")
    for r in results:
        print(f"  {r['store']}: CPU ms per 1,000 deliveries (timed part of the throughput rounds): "
              + ", ".join(f"{k} {v:,}" for k, v in r["cpu_ms_per_1000"].items()))
    print(f"goals: >= {GOAL_THROUGHPUT:,.0f} deliveries/s; p99 < {GOAL_P99_MS:.0f} ms at {args.rate:.0f}/s "
          "('vs goal' > 1 means met)")
    if args.json:
        print(json.dumps(results, indent=2))
    if any(r["bad_signatures"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
