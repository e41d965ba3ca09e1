"""Feed rendering and rebuild cost.

    .venv/bin/python bench/feeds.py [--rounds N] [--database-url URL]

1. Rendering one 100-item feed in all three formats (RSS, Atom, JSON Feed) from
   stored articles (rows already read), median over N rounds:
   - warm: the entries were prepared by an earlier build in this process (the
     usual rebuild in a running worker);
   - one new: one article of the hundred is new (a rebuild after one publish);
   - cold: nothing prepared yet, so all 100 bodies are sanitized (first build
     after a worker starts).
   feedgen 1.0 rendering RSS + Atom only for the same prepared entries is shown
   for comparison. Goal: <= 10 ms median (warm).
2. A whole rebuild (query + render + compare/write) with 1,000 and then 50,000
   stored articles, for an unfiltered feed, a section feed and a tag feed, and the
   ratio: it must not grow with the number of stored articles.

Medians on a shared 2-core machine are noisy; run it twice before believing a ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from config import parse_config  # noqa: E402
from worker.feeds.build import rebuild, render_feed_files  # noqa: E402
from worker.feeds.index import article_terms, feed_items  # noqa: E402
from worker.feeds.items import FeedItem, entry_cache, prepare, site_authority  # noqa: E402
from worker.feeds.render import make_channel, render_all  # noqa: E402
from worker.store import ArticleRow, ArticleTermRow, Store  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
CONFIG = parse_config("""
[site]
title = "London News Net"
url = "https://london-news-net.example"
language = "en"
feeds_url = "https://london-news-net.example/feeds"
[websub]
hubs = ["https://hub.example/"]
[[feeds]]
name = "all"
title = "All stories"
limit = 100
[[feeds]]
name = "world"
title = "World"
sections = ["World"]
limit = 100
[[feeds]]
name = "russia"
title = "Russia"
tags = ["Russia"]
limit = 100
""", "bench.toml", {})
T0 = datetime(2026, 11, 26, 9, tzinfo=timezone.utc)


def fixture_bodies() -> list[str]:
    posts = json.loads((SHARED / "fixtures" / "wordpress" / "posts.json").read_text())
    return [p["content"]["rendered"] for p in posts]


def row(n: int, body: str, section: str, tags: list[str], minutes: int) -> dict:
    published = T0 - timedelta(minutes=minutes)
    return {
        "id": f"bench:{n}", "source": "bench", "url": f"https://london-news-net.example/{section.lower()}/story-{n}/",
        "title": f"Story {n}: a headline of a usual length for a news site&#8217;s front page",
        "summary": "A summary sentence or two, as editors write them for feeds and social posts.",
        "content_html": body + f'<p>Read <a href="/related/{n}/">more</a>.</p>',
        "authors": ["World Desk"], "section": section, "tags": tags,
        "image": {"url": f"https://london-news-net.example/media/{n}.jpg", "alt": "A photo", "width": 1200,
                  "height": 800},
        "language": "en", "published_at": published, "updated_at": published, "status": "published",
        "version": f"v{n}", "stored_at": published, "changed_at": published,
    }


def seed(store: Store, total: int, bodies: list[str]) -> None:
    """`total` articles: the newest 100 of each feed realistic, the rest short filler, bulk-inserted."""
    rows, terms = [], []
    for n in range(total):
        recent = n < 300
        section = ("World", "UK", "Business")[n % 3]
        tags = ["Russia"] if n % 3 == 0 else ["Markets"]
        body = bodies[n % len(bodies)] if recent else "<p>An older story.</p>"
        r = row(n, body, section, tags, minutes=n)
        rows.append(r)
        terms += [{"article_id": r["id"], "kind": k, "term": t, "published_at": r["published_at"]}
                  for k, t in article_terms(section, tags)]
        if len(rows) >= 5000:
            _flush(store, rows, terms)
            rows, terms = [], []
    _flush(store, rows, terms)


def _flush(store, rows, terms):
    if not rows:
        return
    with store.session() as s:
        s.execute(insert(ArticleRow.__table__), rows)
        s.execute(insert(ArticleTermRow.__table__), terms)


def timings_ms(fn, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def median_ms(fn, rounds: int) -> float:
    return statistics.median(timings_ms(fn, rounds))


def shown(times: list[float]) -> str:
    """Median, and the 10th percentile: on a busy shared machine the low end is the code's own cost."""
    return f"median {statistics.median(times):7.2f} ms  (p10 {times[len(times) // 10]:6.2f})"


def render_benchmarks(store: Store, rounds: int) -> None:
    feed = CONFIG.feed("all")
    with store.session() as s:
        items = feed_items(s, feed)
    assert len(items) == 100, len(items)
    authority = site_authority(CONFIG.site.url)
    hosts = tuple(CONFIG.feed_settings.iframe_hosts)
    channel = make_channel(feed, CONFIG.site, CONFIG.websub.hubs)
    body_kb = statistics.mean(len(i.content_html) for i in items) / 1024

    def render_three():
        return render_all(channel, [prepare(i, authority, hosts) for i in items])

    def cold():
        entry_cache.clear()
        render_three()

    render_three()
    warm_times = timings_ms(render_three, rounds)
    warm = statistics.median(warm_times)
    sizes = {ext: len(data) for ext, data in render_three().items()}

    counter = iter(range(10**9))

    def one_new():
        # a new article at the top: 99 prepared, 1 to prepare
        n = next(counter)
        fresh = FeedItem(**{**{f: getattr(items[0], f) for f in FeedItem.__slots__},
                            "id": f"new:{n}", "version": f"new{n}"})
        render_all(channel, [prepare(i, authority, hosts) for i in [fresh, *items[:99]]])

    new = timings_ms(one_new, rounds)
    cold_times = timings_ms(cold, max(10, rounds // 4))
    render_three()
    baseline = feedgen_baseline([prepare(i, authority, hosts) for i in items], rounds)

    print(f"Rendering one 100-item feed, all three formats (bodies average {body_kb:.1f} KB; "
          f"output RSS {sizes['rss'] // 1024} KB, Atom {sizes['atom'] // 1024} KB, JSON {sizes['json'] // 1024} KB)")
    print(f"  warm (entries prepared by an earlier build)   {shown(warm_times)}   goal <= 10 ms median: "
          f"{'met' if warm <= 10 else 'MISSED'}")
    print(f"  one new article among the 100                 {shown(new)}")
    print(f"  cold (sanitizing all 100 bodies)              {shown(cold_times)}")
    if baseline is not None:
        print(f"  feedgen 1.0, RSS + Atom only, same entries   {shown(baseline)}   "
              f"(feedgen median / ours: {statistics.median(baseline) / warm:.1f}x)")


def feedgen_baseline(entries, rounds: int) -> list[float] | None:
    try:
        from feedgen.feed import FeedGenerator
    except ImportError:
        return None

    def run():
        fg = FeedGenerator()
        fg.id("https://london-news-net.example/feeds/all.atom")
        fg.title("All stories")
        fg.description("All stories")
        fg.link(href="https://london-news-net.example", rel="alternate")
        fg.link(href="https://london-news-net.example/feeds/all.atom", rel="self")
        fg.language("en")
        fg.updated(entries[0].updated)
        fg.lastBuildDate(entries[0].updated)
        for e in entries:
            fe = fg.add_entry(order="append")
            fe.id(e.id)
            fe.title(e.title)
            fe.link(href=e.link)
            fe.description(e.description)
            fe.content(e.content_html, type="html")
            fe.published(e.published)
            fe.updated(e.updated)
            for name in e.authors:
                fe.author(name=name, email="desk@london-news-net.example")
            for c in e.categories:
                fe.category(term=c)
            fe.enclosure(e.image.url, "0", e.image.mime_type)
        fg.rss_str(pretty=True)
        fg.atom_str(pretty=True)

    return timings_ms(run, rounds)


def rebuild_benchmarks(make_store, rounds: int) -> None:
    bodies = fixture_bodies()
    results = {}
    for total in (1_000, 50_000):
        store, cleanup = make_store(total)
        try:
            started = time.perf_counter()
            seed(store, total, bodies)
            seeded = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as feeds_dir:
                for name in ("all", "world", "russia"):
                    feed = CONFIG.feed(name)
                    rebuild(store, CONFIG, Path(feeds_dir), name, force=True)  # files exist, entries prepared

                    def whole():
                        rebuild(store, CONFIG, Path(feeds_dir), name, force=True)

                    def query():
                        with store.session() as s:
                            feed_items(s, feed)

                    def query_render():
                        with store.session() as s:
                            render_feed_files(s, feed, CONFIG)

                    results[(total, name)] = (median_ms(query, rounds), median_ms(query_render, rounds),
                                              median_ms(whole, rounds))
            print(f"  ({total:,} articles stored in {seeded:.1f}s)")
            if total == 1_000:
                render_benchmarks(store, rounds * 5)
        finally:
            cleanup()
    print("Rebuild of one 100-item feed (warm entries), by number of stored articles")
    print("  feed     stored    query ms   query+render ms   whole rebuild ms (incl. claim, compare, write)")
    for name in ("all", "world", "russia"):
        for total in (1_000, 50_000):
            q, qr, w = results[(total, name)]
            print(f"  {name:8} {total:7,}   {q:8.2f}   {qr:15.2f}   {w:16.2f}")
        ratio = results[(50_000, name)][2] / results[(1_000, name)][2]
        print(f"  {name:8} ratio 50k/1k, whole rebuild: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database to use (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()

    def make_store(total: int):
        if args.database_url:
            from sqlalchemy import create_engine, text

            schema = f"bench_{total}"
            admin = create_engine(args.database_url.replace("postgresql://", "postgresql+psycopg://"),
                                  isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            store = Store(f"{args.database_url}?options=-csearch_path%3D{schema}")
            store.migrate()

            def cleanup():
                store.dispose()
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()
            return store, cleanup
        tmp = tempfile.TemporaryDirectory()
        store = Store(f"sqlite:///{tmp.name}/bench.db")
        store.migrate()

        def cleanup():
            store.dispose()
            tmp.cleanup()
        return store, cleanup

    print(f"bench/feeds.py: {args.rounds} rounds, store {'PostgreSQL' if args.database_url else 'SQLite'}")
    rebuild_benchmarks(make_store, args.rounds)


if __name__ == "__main__":
    main()
