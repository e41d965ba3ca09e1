"""How fast `syndicate ingest` stores articles, process start included.

    .venv/bin/python bench/ingest.py [--files 1000] [--rounds 3] [--store sqlite|postgresql|both]

Each round: a fresh store (SQLite file, or a PostgreSQL database dropped after), 1,000
article files, 10 partners and two feeds in the configuration, its own redis-server (the
enqueued tasks are only counted: no worker runs). The clock runs from starting
`syndicate ingest FILE...` to its exit; the round then checks that every article has its
event, its 10 partner delivery rows, its feed rows and its index rows.

Baselines, same run, in-process (no process start): one article per transaction (how
`ingest` stored before batching, on the current code), and 100 articles per transaction
(what `ingest` does, without the process around it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import (  # noqa: E402
    BIN, Processes, bench_env, database, load_average, median, start_redis, write_articles, write_config,
)

GOAL = 1000.0
PARTNERS = 10


def check_rows(database_url: str, files: int) -> None:
    from sqlalchemy import func, select

    from worker.store import ArticleTermRow, DeliveryRow, EventRow, Store

    store = Store(database_url)
    with store.session() as s:
        events = s.scalar(select(func.count()).select_from(EventRow))
        partner = s.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.kind == "partner"))
        feeds = s.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.kind == "feed"))
        terms = s.scalar(select(func.count()).select_from(ArticleTermRow))
    store.dispose()
    # per article: 1 event, 10 partner rows, 2 feed rows, 3 terms (section + 2 tags)
    want = (files, files * PARTNERS, files * 2, files * 3)
    if (events, partner, feeds, terms) != want:
        raise SystemExit(f"ingest stored (events, partner rows, feed rows, terms) = "
                         f"{(events, partner, feeds, terms)}, expected {want}")


def one_round(kind: str, files: int, root: Path, redis_url: str, tag: str) -> float:
    config = write_config(root / "syndication.toml", PARTNERS, None, "whsec_" + "QUJDREVGR0hJSktMTU5PUA==")
    names = write_articles(root / f"in-{tag}", files, tag)
    with database(kind, root) as url:
        env = bench_env(root, redis_url, url, config)
        # The schema exists before the clock starts, as in any deployment (`run` migrates).
        subprocess.run([str(BIN / "alembic"), "--version"], capture_output=True)  # warm the page cache
        from worker.store import Store

        store = Store(url)
        store.migrate()
        store.dispose()
        started = time.perf_counter()
        done = subprocess.run([str(BIN / "syndicate"), "ingest", *names], env=env, capture_output=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"syndicate ingest failed:\n{done.stderr.decode()[-2000:]}")
        check_rows(url, files)
    return files / elapsed


def baseline_round(kind: str, files: int, root: Path, tag: str, per_transaction: int = 1) -> float:
    """In-process, no process start: `per_transaction` articles to a transaction (1: how
    `ingest` stored articles before batching)."""
    from config import load_config
    from worker.articles import parse_article
    from worker.pipeline import record_articles
    from worker.store import Store
    from bench.support import article_data

    config = load_config(str(write_config(root / "baseline.toml", PARTNERS, None,
                                          "whsec_" + "QUJDREVGR0hJSktMTU5PUA==")))
    articles = [parse_article(article_data(n, tag), "bench") for n in range(files)]
    with database(kind, root) as url:
        store = Store(url)
        store.migrate()
        started = time.perf_counter()
        for i in range(0, len(articles), per_transaction):
            with store.session() as s:
                record_articles(s, articles[i:i + per_transaction], config, origin="bench")
        elapsed = time.perf_counter() - started
        store.dispose()
    return files / elapsed


def run(kinds: list[str], files: int, rounds: int, baseline_files: int = 300) -> dict:
    procs = Processes()
    results = {}
    with tempfile.TemporaryDirectory(prefix="syndicate-bench-ingest-") as tmp:
        root = Path(tmp)
        try:
            redis_url = start_redis(procs, root)
            for kind in kinds:
                rates = [one_round(kind, files, root, redis_url, f"{kind[:2]}{r}") for r in range(rounds)]
                base = baseline_round(kind, baseline_files, root, f"b{kind[:2]}")
                batched = baseline_round(kind, 1000, root, f"c{kind[:2]}", per_transaction=100)
                results[kind] = {"rate": median(rates), "rounds": rates, "baseline": base, "batched": batched}
        finally:
            procs.stop_all()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    before = load_average()
    results = run(kinds, args.files, args.rounds)
    print(f"load average before {before}, after {load_average()}")
    for kind, r in results.items():
        print(f"{kind:<11} ingest {args.files} files: {r['rate']:,.0f} articles/s (median of "
              f"{', '.join(f'{x:,.0f}' for x in r['rounds'])}); goal {GOAL:,.0f} -> {r['rate'] / GOAL:.2f}x; "
              f"in-process, one transaction per article: {r['baseline']:,.0f}/s, 100 per transaction: "
              f"{r['batched']:,.0f}/s")


if __name__ == "__main__":
    main()
