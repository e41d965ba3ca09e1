"""Every speed figure of issue 12 in one table: each figure, its goal, the ratio.

    .venv/bin/python bench/run.py            # about 3 minutes on a quiet 2-core machine
    .venv/bin/python bench/run.py --full     # more rounds, and the 5-minute memory run
    .venv/bin/python bench/run.py --only ingest,feeds   # some sections

Sections (each starts and stops what it needs: its own redis-server, a throw-away
PostgreSQL database or SQLite file, receivers and `syndicate worker` processes):

- cli: `syndicate --help` and `syndicate status ID`, wall clock of the process, median of 5;
- feeds: a cold build (the first in a fresh process) of one 100-item feed in all three
  formats, and a warm one in the same process (bench/feeds.py has the full study);
- ingest: `syndicate ingest` of 1,000 files, process start included (bench/ingest.py);
- wordpress: a first poll of 2,000 posts from the stand-in WordPress (bench/poll_wordpress.py);
- e2e: 300 article files x 10 partners from the `ingest` call to the last receipt
  (bench/endtoend.py), SQLite and PostgreSQL, with a bare `requests` loop as baseline;
- steady: 200 articles x 1 partner a second (SQLite): p50 / p99 from commit to receipt,
  worker resident memory (largest process, drift after warm-up); 30 s, 300 s with --full;
- scale: 1, 2 and 4 `syndicate worker --name` processes on one PostgreSQL and one Redis,
  deliveries/s and duplicate sends.

"ratio" is goal / figure where smaller is better and figure / goal where larger is better:
above 1 means met. "vs baseline" is the figure against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import BIN, REPO, load_average, median  # noqa: E402

BENCH = Path(__file__).resolve().parent


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, figure: str, value: float, unit: str, goal: float | None, larger_is_better: bool,
            baseline: str = "", note: str = "") -> None:
        if goal is None:
            ratio = None
        else:
            ratio = value / goal if larger_is_better else (goal / value if value else float("inf"))
        self.rows.append({"figure": figure, "value": value, "unit": unit, "goal": goal,
                          "goal_text": "" if goal is None else (">= " if larger_is_better else "< ") + _num(goal) + " " + unit,
                          "ratio": ratio, "baseline": baseline, "note": note})

    def markdown(self) -> str:
        lines = ["| figure | value | goal | ratio | vs baseline (same run) | note |", "| --- | --: | --- | --: | --- | --- |"]
        for r in self.rows:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x" + ("" if r["ratio"] >= 1 else " **missed**")
            lines.append(f"| {r['figure']} | {_num(r['value'])} {r['unit']} | {r['goal_text']} | {ratio} | "
                         f"{r['baseline']} | {r['note']} |")
        return "\n".join(lines)


def _num(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("SENTRY_DSN", None)
    return env | (extra or {})


def _wall(argv: list[str], env: dict, times: int = 5) -> float:
    runs = []
    for _ in range(times):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True)
        runs.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])} failed:\n{done.stderr.decode()[-1500:]}")
    return median(runs)


def cli(table: Table, args) -> None:
    from bench.support import article_data, write_config

    with tempfile.TemporaryDirectory(prefix="syndicate-bench-cli-") as tmp:
        root = Path(tmp)
        config = write_config(root / "syndication.toml", 3, None, "whsec_QUJDREVGR0hJSktMTU5PUA==")
        url = f"sqlite:///{root}/store.db"
        from config import load_config
        from worker.articles import parse_article
        from worker.pipeline import record_articles
        from worker.store import Store

        store = Store(url)
        store.migrate()
        with store.session() as s:
            record_articles(s, [parse_article(article_data(1, "cli"), "bench")], load_config(str(config)))
        store.dispose()
        env = _env({"DATABASE_URL": url, "SYNDICATE_CONFIG": str(config), "REDIS_URL": "redis://127.0.0.1:1/0"})
        syndicate = str(BIN / "syndicate")
        table.add("`syndicate --help`", _wall([syndicate, "--help"], env) * 1000, "ms", 300, False)
        table.add("`syndicate status ID`", _wall([syndicate, "status", "bench:cli-1"], env) * 1000, "ms", 500, False)


FEED_PROBE = r"""
import sys, time, statistics
sys.path.insert(0, sys.argv[2])
from bench.feeds import CONFIG
from worker.store import Store
from worker.feeds.index import feed_items
from worker.feeds.items import prepare, site_authority
from worker.feeds.render import make_channel, render_all
store = Store(sys.argv[1])
feed = CONFIG.feed("all")
with store.session() as s:
    items = feed_items(s, feed)
assert len(items) == 100, len(items)
authority, hosts = site_authority(CONFIG.site.url), tuple(CONFIG.feed_settings.iframe_hosts)
channel = make_channel(feed, CONFIG.site, CONFIG.websub.hubs)
start = time.perf_counter()
render_all(channel, [prepare(i, authority, hosts) for i in items])
cold = time.perf_counter() - start
warm = []
for _ in range(30):
    start = time.perf_counter()
    render_all(channel, [prepare(i, authority, hosts) for i in items])
    warm.append(time.perf_counter() - start)
print(cold * 1000, statistics.median(warm) * 1000)
"""


def feeds(table: Table, args) -> None:
    from bench.feeds import fixture_bodies, seed
    from worker.store import Store

    with tempfile.TemporaryDirectory(prefix="syndicate-bench-feeds-") as tmp:
        url = f"sqlite:///{tmp}/feeds.db"
        store = Store(url)
        store.migrate()
        seed(store, 300, fixture_bodies())
        store.dispose()
        colds, warms = [], []
        for _ in range(args.feed_processes):
            out = subprocess.run([sys.executable, "-c", FEED_PROBE, url, str(REPO)], capture_output=True, text=True,
                                 env=_env(), check=True).stdout.split()
            colds.append(float(out[0]))
            warms.append(float(out[1]))
    table.add("feed cold build (first in a process), 100 items, 3 formats", median(colds), "ms", 10, False,
              note=f"median of {len(colds)} processes")
    table.add("feed warm build, same", median(warms), "ms", 0.5, False,
              note="goal: where it was (0.24 ms quiet, docs/feeds.md)")


def ingest(table: Table, args) -> None:
    from bench import ingest as bench_ingest

    results = bench_ingest.run(["sqlite", "postgresql"], 1000, args.rounds, baseline_files=300)
    for kind, r in results.items():
        table.add(f"ingest 1,000 files, `syndicate ingest`, {kind}", r["rate"], "articles/s", 1000, True,
                  baseline=f"{r['rate'] / r['baseline']:.1f}x one article per transaction, in-process "
                           f"({r['baseline']:,.0f}/s)",
                  note="rounds " + ", ".join(f"{x:,.0f}" for x in r["rounds"])
                       + f"; in-process, 100 per transaction, no process start: {r['batched']:,.0f}/s")


def wordpress(table: Table, args) -> None:
    from bench.poll_wordpress import run

    r = run(2000, args.rounds, first_only=not args.full)
    table.add("WordPress first poll, 2,000 posts", r["posts"] / r["first"], "posts/s", 1000, True,
              note="rounds " + ", ".join(f"{r['posts'] / x:,.0f}" for x in r["rounds"])
                   + (f"; idle poll {r['idle'] * 1000:.0f} ms, after 50 edits {r['edits'] * 1000:.0f} ms"
                      if args.full else ""))


def _endtoend(*argv: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / "endtoend.py"), *argv], capture_output=True, text=True,
                          env=_env())
    if done.returncode != 0:
        raise SystemExit(f"bench/endtoend.py {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def e2e(table: Table, args) -> None:
    steady_seconds = 300 if args.full else args.steady
    for kind in ("sqlite", "postgresql"):
        # One process per store: the Celery app reads its broker URL once per process.
        r = _endtoend("--store", kind, "--rounds", str(args.rounds),
                      "--steady", str(steady_seconds if kind == "sqlite" else 0))
        cpu = ", ".join(f"{k} {v:,.0f}" for k, v in r["cpu_ms_per_1000"].items())
        table.add(f"end to end, 300 files x 10 partners, ingest call to last receipt, {kind}", r["rate"],
                  "deliveries/s", 1500, True,
                  baseline=f"{r['rate'] / r['baseline']:.2f}x a bare `requests` loop ({r['baseline']:,.0f}/s)",
                  note=f"rounds {', '.join(f'{x:,.0f}' for x in r['rounds'])}; CPU ms per 1,000: {cpu}; "
                       f"{r['bad_signatures']} bad of {r['verified'] + r['bad_signatures']} signatures checked, "
                       f"{r['duplicates']} duplicates")
        if "steady" in r:
            s = r["steady"]
            table.add(f"latency p50, commit to receipt, 200 articles x 1 partner /s ({s['seconds']:.0f} s)",
                      s["p50_ms"], "ms", None, False, note=f"{s['samples']:,} deliveries")
            table.add("latency p99, same", s["p99_ms"], "ms", 500, False,
                      note=f"driver behind schedule by {s['driver_behind_s']:.1f} s at the end")
            table.add("worker RSS, largest process, same run", s["rss_max_mb"], "MB", 200, False,
                      note=f"all worker processes together {s['rss_total_mb']:.0f} MB")
            table.add("worker RSS drift after warm-up, same run", abs(s["rss_drift"]) * 100, "%", 10, False,
                      note=f"{s['rss_first_mb']:.0f} MB -> {s['rss_last_mb']:.0f} MB"
                           + ("" if args.full else "; the 5-minute run is --full"))


def scale(table: Table, args) -> None:
    r = _endtoend("--scale", "--files", "300")
    one = r["1"]["rate"]
    for n in ("1", "2", "4"):
        table.add(f"scale-out: {n} worker(s) x 2 processes, PostgreSQL, 300 x 10 stored then dispatched",
                  r[n]["rate"], "deliveries/s", None, True,
                  baseline=f"{r[n]['rate'] / one:.2f}x one worker", note=f"{r[n]['duplicates']} duplicate sends")
    table.add("scale-out: duplicate sends, all runs", r["duplicates_total"], "", None, False)


SECTIONS = {"cli": cli, "feeds": feeds, "ingest": ingest, "wordpress": wordpress, "e2e": e2e, "scale": scale}


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="5 rounds and the 5-minute memory run")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--json", help="also write the table as JSON to this file")
    args = parser.parse_args()
    args.rounds = 5 if args.full else 3
    args.steady = 20.0
    args.feed_processes = 9 if args.full else 5
    table = Table()
    before = load_average()
    started = time.perf_counter()
    for name in args.only.split(","):
        t0 = time.perf_counter()
        print(f"[{name}] ...", flush=True)
        SECTIONS[name](table, args)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", flush=True)
    after = load_average()
    print()
    print(table.markdown())
    print()
    print(f"machine: {machine()}; load average before {before}, after {after}; "
          f"{time.perf_counter() - started:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "load_before": before, "load_after": after,
                                               "rows": table.rows}, indent=2))


if __name__ == "__main__":
    main()
