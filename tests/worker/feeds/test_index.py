"""Feed queries read only what a feed holds, through the section/tag index kept with each article."""

from datetime import datetime, timedelta, timezone

from alembic import command
from sqlalchemy import event, insert, select

from tests.worker.feeds.conftest import make_config, store_articles
from worker.articles import parse_article
from worker.feeds.index import feed_items, recent_items
from worker.store import ArticleRow, ArticleTermRow, Store
from worker.store.db import alembic_config

T0 = datetime(2026, 11, 26, 9, tzinfo=timezone.utc)


def story(n: int, section: str | None = "World", tags=(), status="published", minutes: int | None = None):
    return parse_article({
        "id": f"web:{n}", "url": f"https://london-news-net.example/{n}/", "title": f"Story {n}",
        "section": section, "tags": list(tags), "status": status,
        "published_at": (T0 + timedelta(minutes=n if minutes is None else minutes)).isoformat(),
    }, f"story {n}")


def ids(items):
    return [i.id for i in items]


def terms(store, article_id):
    with store.session() as s:
        return sorted((r.kind, r.term) for r in s.scalars(
            select(ArticleTermRow).where(ArticleTermRow.article_id == article_id)))


def test_feeds_hold_their_sections_and_tags_newest_first_up_to_the_limit(store):
    config = make_config()
    store_articles(store, config, [
        story(1, "World", ["Russia"]), story(2, "Sport", ["Football"]), story(3, "Business", ["AI"]),
        story(4, "World"), story(5, "Sport", ["AI"]), story(6, None, ["Russia", "AI"]),
    ])
    with store.session() as s:
        assert ids(feed_items(s, config.feed("world"))) == ["web:4", "web:1"]
        assert ids(feed_items(s, config.feed("russia"))) == ["web:6", "web:1"]
        # a section or a tag: each article once
        assert ids(feed_items(s, config.feed("mixed"))) == ["web:6", "web:5", "web:3", "web:2"]
        assert ids(feed_items(s, config.feed("latest3"))) == ["web:6", "web:5", "web:4"]
        assert len(feed_items(s, config.feed("all"))) == 6


def test_a_filtered_feed_with_a_limit_takes_the_newest_across_its_terms(store):
    config = make_config('\n[[feeds]]\nname = "two"\ntitle = "Two"\nsections = ["Sport"]\ntags = ["AI"]\nlimit = 2\n')
    store_articles(store, config, [story(n, "Sport" if n % 2 else "Business", [] if n % 2 else ["AI"])
                                   for n in range(1, 11)])
    with store.session() as s:
        assert ids(feed_items(s, config.feed("two"))) == ["web:10", "web:9"]


def test_ties_in_publication_time_are_ordered_by_id(store):
    config = make_config()
    store_articles(store, config, [story(n, "World", minutes=0) for n in (3, 1, 2)])
    with store.session() as s:
        assert ids(feed_items(s, config.feed("world"))) == ["web:1", "web:2", "web:3"]
        assert ids(feed_items(s, config.feed("all"))) == ["web:1", "web:2", "web:3"]


def test_the_index_follows_updates_and_withdrawals(store):
    config = make_config()
    store_articles(store, config, [story(1, "World", ["Russia"])])
    assert terms(store, "web:1") == [("section", "World"), ("tag", "Russia")]

    # when the story moves section and loses its tag
    store_articles(store, config, [story(1, "Sport", [])])
    assert terms(store, "web:1") == [("section", "Sport")]
    with store.session() as s:
        assert feed_items(s, config.feed("world")) == [] and feed_items(s, config.feed("russia")) == []
        assert ids(feed_items(s, config.feed("mixed"))) == ["web:1"]

    # when it is withdrawn it leaves every feed, and comes back when republished
    store_articles(store, config, [story(1, "Sport", [], status="unpublished")])
    assert terms(store, "web:1") == []
    with store.session() as s:
        assert feed_items(s, config.feed("all")) == [] and feed_items(s, config.feed("mixed")) == []
    store_articles(store, config, [story(1, "Sport", [])])
    assert terms(store, "web:1") == [("section", "Sport")]


def test_a_stale_index_row_never_shows_a_withdrawn_story(store):
    config = make_config()
    store_articles(store, config, [story(1, "World")])
    with store.session() as s:  # as if someone edited the store by hand
        s.get(ArticleRow, "web:1").status = "unpublished"
    with store.session() as s:
        assert feed_items(s, config.feed("world")) == []


def test_a_feed_reads_only_its_share_of_the_index(store):
    # given many stored articles, almost none of them in the "russia" feed
    config = make_config()
    store_articles(store, config, [story(n, "World", ["Russia"] if n % 50 == 0 else ["Other"]) for n in range(1, 201)])
    # when the feed is read, then the statements ask for at most `limit` index rows per term
    # and load only the articles it shows (no scan of the articles table)
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.session() as s:
            items = feed_items(s, config.feed("russia"))
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert ids(items) == ["web:200", "web:150", "web:100", "web:50"]
    term_queries = [q for q in statements if "FROM article_terms" in q]
    article_queries = [q for q in statements if "FROM articles" in q]
    assert len(term_queries) == 1 and "LIMIT" in term_queries[0].upper()
    assert len(article_queries) == 1 and " IN " in article_queries[0].upper()


def test_recent_items_for_the_sitemap_skip_bodies_and_old_stories(store):
    config = make_config()
    store_articles(store, config, [story(1, minutes=-60 * 50), story(2, minutes=-60), story(3, minutes=0)])
    with store.session() as s:
        items = recent_items(s, T0 - timedelta(hours=48), 10)
    assert ids(items) == ["web:3", "web:2"]
    assert all(i.content_html == "" for i in items)


def test_the_migration_indexes_articles_stored_before_it(tmp_path):
    # given a store at the first revision holding articles written before the index existed
    url = f"sqlite:///{tmp_path}/old.db"
    command.upgrade(alembic_config(url), "0001")
    store = Store(url)
    try:
        now = T0
        with store.session() as s:
            for n, (section, tags, status) in enumerate([("World", ["Russia", "Russia"], "published"),
                                                         (None, ["AI"], "published"),
                                                         ("World", ["x" * 300], "unpublished")]):
                s.execute(insert(ArticleRow.__table__).values(
                    id=f"web:{n}", source="web", url=f"https://a.example/{n}", title="t", summary="",
                    content_html="", authors=[], section=section, tags=tags, image=None, language="en",
                    published_at=now, updated_at=now, status=status, version="v", stored_at=now, changed_at=now))
        # when the store is migrated
        store.migrate()
        # then the published ones are in the index, each term once
        assert terms(store, "web:0") == [("section", "World"), ("tag", "Russia")]
        assert terms(store, "web:1") == [("tag", "AI")]
        assert terms(store, "web:2") == []
    finally:
        store.dispose()
