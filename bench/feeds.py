"""Feed rendering and rebuild cost.

    .venv/bin/python bench/feeds.py [--rounds N] [--database-url URL]

1. Rendering one 100-item feed in all three formats (RSS, Atom, JSON Feed) from
   stored articles (rows already read), median over N rounds:
   - warm: the entries were prepared by an earlier build in this process (the
     usual rebuild in a running worker);
   - one new: one article of the hundred is new (a rebuild after one publish);
   - cold: nothing prepared yet (first build after a worker starts): all 100
     entries prepared, their bodies used as stored (they carry the sanitizer's
     fingerprint, as storing writes them); and the same for rows stored before
     that marker existed, whose bodies are sanitized again.
   feedgen 1.0 rendering RSS + Atom only for the same prepared entries is shown
   for comparison. Goal: <= 10 ms median (warm).
2. The feed query and a whole rebuild (claim + query + render + compare/write) with
   1,000 and with 50,000 stored articles, for an unfiltered feed, a section feed and
   a tag feed, rounds alternating between the two stores, and the ratio: it must not
   grow with the number of stored articles. For comparison, the query this replaced
   (tag filter in Python over every published article) on a feed of rare, old stories.

Medians on a shared 2-core machine are noisy; the p10 is closer to the code's own cost.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from worker.feeds.build import rebuild  # noqa: E402
from worker.feeds.index import article_terms, feed_items  # noqa: E402
from worker.feeds.items import FeedItem, entry_cache, prepare, site_authority  # noqa: E402
from worker.feeds.render import make_channel, render_all  # noqa: E402
from worker.sanitize import sanitize_to_store  # noqa: E402
from worker.store import ArticleRow, ArticleTermRow, Store  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"  # in the repository
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


BODY_REPEAT = 1


def fixture_bodies() -> list[str]:
    posts = json.loads((FIXTURES / "wordpress" / "posts.json").read_text())
    return [p["content"]["rendered"] * BODY_REPEAT for p in posts]


def row(n: int, body: str, section: str, tags: list[str], minutes: int) -> dict:
    """An article row as storing writes it: the body sanitized, with its `sanitized_as` marker."""
    published = T0 - timedelta(minutes=minutes)
    url = f"https://london-news-net.example/{section.lower()}/story-{n}/"
    content_html, sanitized_as = sanitize_to_store(body + f'<p>Read <a href="/related/{n}/">more</a>.</p>', url,
                                                   CONFIG.feed_settings.iframe_hosts)
    return {
        "id": f"bench:{n}", "source": "bench", "url": url,
        "title": f"Story {n}: a headline of a usual length for a news site&#8217;s front page",
        "summary": "A summary sentence or two, as editors write them for feeds and social posts.",
        "content_html": content_html, "sanitized_as": sanitized_as,
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

    # Rows stored before `sanitized_as` existed (the first build after the upgrade): bodies sanitized again.
    unmarked = [dataclasses.replace(i, sanitized_as=None) for i in items]

    def cold_unmarked():
        entry_cache.clear()
        render_all(channel, [prepare(i, authority, hosts) for i in unmarked])

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
    unmarked_times = timings_ms(cold_unmarked, max(10, rounds // 4))
    render_three()
    baseline = feedgen_baseline([prepare(i, authority, hosts) for i in items], rounds)

    print(f"Rendering one 100-item feed, all three formats (bodies average {body_kb:.1f} KB; "
          f"output RSS {sizes['rss'] // 1024} KB, Atom {sizes['atom'] // 1024} KB, JSON {sizes['json'] // 1024} KB)")
    print(f"  warm (entries prepared by an earlier build)   {shown(warm_times)}   goal <= 10 ms median: "
          f"{'met' if warm <= 10 else 'MISSED'}")
    print(f"  one new article among the 100                 {shown(new)}")
    print(f"  cold (preparing all 100 stored bodies)        {shown(cold_times)}")
    print(f"  cold, rows stored before `sanitized_as`       {shown(unmarked_times)}   (every body sanitized again)")
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


def scan_query(session, feed) -> list:
    """The query this replaced, for comparison: every published article read, newest first,
    and the tag filter (a JSON column) applied in Python until the feed is full."""
    from sqlalchemy import select

    out = []
    query = select(ArticleRow).where(ArticleRow.status == "published").order_by(ArticleRow.published_at.desc())
    for r in session.scalars(query.execution_options(yield_per=500)):
        if feed.holds(r.section, r.tags or []):
            out.append(r)
            if len(out) >= feed.limit:
                break
    return out


def rebuild_benchmarks(make_store, rounds: int) -> None:
    bodies = fixture_bodies()
    sizes = (1_000, 50_000)
    stores, cleanups = {}, []
    try:
        for total in sizes:
            store, cleanup = make_store(total)
            cleanups.append(cleanup)
            started = time.perf_counter()
            seed(store, total, bodies)
            print(f"  ({total:,} articles stored in {time.perf_counter() - started:.1f}s)")
            stores[total] = store
        render_benchmarks(stores[1_000], rounds * 5)
        # Rounds alternate between the two stores, so both see the same machine load.
        rare = parse_config('[site]\ntitle="t"\nurl="https://a.example"\nfeeds_url="https://a.example/f"\n'
                            '[[feeds]]\nname="rare"\ntitle="Rare"\ntags=["Rare"]\nlimit=100\n', "b.toml", {})
        print("Rebuild of one 100-item feed (warm entries), by number of stored articles; rounds alternate "
              "between the stores")
        print("  feed     stored   query ms (p10)     whole rebuild ms (p10)   [claim, query, render, compare, write]")
        with tempfile.TemporaryDirectory() as feeds_dir:
            for name in ("all", "world", "russia"):
                feed = CONFIG.feed(name)
                times = {total: ([], []) for total in sizes}
                for total in sizes:
                    rebuild(stores[total], CONFIG, Path(feeds_dir) / str(total), name, force=True)
                for _ in range(rounds):
                    for total in sizes:
                        store = stores[total]
                        start = time.perf_counter()
                        with store.session() as s:
                            feed_items(s, feed)
                        times[total][0].append((time.perf_counter() - start) * 1000)
                        start = time.perf_counter()
                        rebuild(store, CONFIG, Path(feeds_dir) / str(total), name, force=True)
                        times[total][1].append((time.perf_counter() - start) * 1000)
                for total in sizes:
                    q, w = sorted(times[total][0]), sorted(times[total][1])
                    print(f"  {name:8} {total:7,}   {statistics.median(q):6.2f} ({q[len(q) // 10]:5.2f})"
                          f"      {statistics.median(w):6.2f} ({w[len(w) // 10]:5.2f})")
                small, large = (sorted(times[t][1]) for t in sizes)
                print(f"  {name:8} ratio 50k/1k, whole rebuild: median {statistics.median(large) / statistics.median(small):.2f}"
                      f", p10 {large[len(large) // 10] / small[len(small) // 10]:.2f}")
            print("For comparison, the replaced query (tag filter applied in Python over every published article),")
            print("on a tag feed whose articles are few and old (the worst case it had):")
            for total in sizes:
                store = stores[total]
                with store.session() as s:
                    s.query(ArticleRow).filter(ArticleRow.id == f"bench:{total - 1}").update(
                        {"tags": ["Rare"]}, synchronize_session=False)
                    s.add(ArticleTermRow(article_id=f"bench:{total - 1}", kind="tag", term="Rare",
                                         published_at=T0 - timedelta(minutes=total - 1)))

                def old():
                    with store.session() as s:
                        scan_query(s, rare.feed("rare"))

                def new():
                    with store.session() as s:
                        feed_items(s, rare.feed("rare"))

                print(f"  {total:7,} stored: replaced query median {median_ms(old, max(5, rounds // 4)):8.2f} ms;"
                      f"  index query median {median_ms(new, rounds):6.2f} ms")
    finally:
        for cleanup in cleanups:
            cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--body-repeat", type=int, default=1,
                        help="repeat each fixture body N times (the fixture bodies average 0.7 KB; news stories "
                             "run 3-8 KB)")
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database to use (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()
    global BODY_REPEAT
    BODY_REPEAT = args.body_repeat

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
