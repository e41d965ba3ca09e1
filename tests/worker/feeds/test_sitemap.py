"""FEEDS_DIR/news-sitemap.xml: the last 48 hours, at most 1,000 URLs, with the news: fields Google reads."""

from datetime import datetime, timedelta, timezone

from lxml import etree

from tests.worker.feeds.conftest import build_sitemap, make_config, store_articles
from tests.worker.feeds.fixtures import wordpress_articles
from worker.articles import parse_article
from worker.feeds.items import FeedItem
from worker.feeds.sitemap import news_language, render_news_sitemap

NOW = datetime(2026, 11, 27, 9, tzinfo=timezone.utc)
NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "news": "http://www.google.com/schemas/sitemap-news/0.9"}


def urls(data: bytes) -> list[etree._Element]:
    root = etree.fromstring(data)
    assert root.tag == "{http://www.sitemaps.org/schemas/sitemap/0.9}urlset"
    return root.findall("s:url", NS)


def test_the_fixture_posts_make_a_news_sitemap(store, tmp_path):
    # given the fixture posts (published 2026-11-26 09:00-10:17), stored
    config = make_config()
    store_articles(store, config, wordpress_articles())
    # when the sitemap is built the next morning
    entries = urls(build_sitemap(store, config, tmp_path, now=NOW))
    # then each URL appears once (posts 102 and 112 share one; the newer wins), newest first
    locs = [u.findtext("s:loc", namespaces=NS) for u in entries]
    assert len(locs) == 11 == len(set(locs))
    first = entries[0]
    assert first.findtext("s:loc", namespaces=NS).endswith("drought-and-frost-force-agricultural-emergency-in-southern/")
    assert first.findtext("news:news/news:title", namespaces=NS) == \
        "Drought and Frost Force Agricultural Emergency in Southern Russia’s Grain Heartland (11)"
    assert first.findtext("news:news/news:publication/news:name", namespaces=NS) == "London News Net"
    assert first.findtext("news:news/news:publication/news:language", namespaces=NS) == "en"
    assert first.findtext("news:news/news:publication_date", namespaces=NS) == "2026-11-26T10:17:00Z"

    # and two days later, with no new story, it is empty
    assert urls(build_sitemap(store, config, tmp_path, now=NOW + timedelta(days=2))) == []


def item(n: int, published: datetime, url: str | None = None, language: str | None = "en") -> FeedItem:
    return FeedItem.from_article(parse_article({
        "id": f"web:{n}", "url": url or f"https://a.example/{n}", "title": f"Story {n} &amp; more",
        "published_at": published.isoformat(), "language": language}, "t"))


def test_only_the_last_48_hours_and_at_most_1000_urls():
    items = [item(n, NOW - timedelta(minutes=n)) for n in range(1200)]
    entries = urls(render_news_sitemap(items, "LNN", "en", NOW))
    assert len(entries) == 1000
    assert entries[0].findtext("news:news/news:title", namespaces=NS) == "Story 0 & more"
    old = [item(1, NOW - timedelta(hours=48, seconds=1)), item(2, NOW - timedelta(hours=47))]
    assert [u.findtext("s:loc", namespaces=NS) for u in urls(render_news_sitemap(old, "LNN", "en", NOW))] == \
        ["https://a.example/2"]


def test_news_language_is_an_iso_639_code():
    assert news_language("en-GB", "en") == "en"
    assert news_language("zh-TW", "en") == "zh-tw" and news_language("zh-cn", "en") == "zh-cn"
    assert news_language("not a language", "fr") == "fr"
    assert news_language(None, "de-AT") == "de"


def test_the_sitemap_can_be_switched_off(store, tmp_path):
    from worker.feeds import build_news_sitemap

    config = make_config("\n[feed_settings]\nnews_sitemap = false\n")
    assert build_news_sitemap(store, config, tmp_path) is None
    assert not (tmp_path / "news-sitemap.xml").exists()
