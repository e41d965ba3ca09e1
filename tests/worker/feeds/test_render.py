"""Feed documents: valid in every format, safe, stable, and free of feedgen's traps."""

from datetime import datetime, timedelta, timezone

import feedparser
import pytest
from lxml import etree

from tests.worker.feeds.conftest import FEEDS_URL, HUB, build_files, make_config, store_articles
from tests.worker.feeds.fixtures import hostile_articles, wordpress_articles
from tests.worker.feeds.validators import (
    A,
    assert_valid_atom,
    assert_valid_feed_files,
    assert_valid_json_feed,
    assert_valid_rss,
)
from worker.articles import parse_article
from worker.feeds.items import FeedItem, entry_cache, entry_id, prepare
from worker.feeds.render import Channel, render_all
from worker.store import Store

DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
MEDIA_CONTENT = "{http://search.yahoo.com/mrss/}content"


def channel(**overrides) -> Channel:
    values = dict(name="all", title="All stories", description="All stories", site_url="https://london-news-net.example",
                  site_title="London News Net", language="en", feeds_url=FEEDS_URL, hubs=(HUB,))
    values.update(overrides)
    return Channel(**values)


def render(articles, **overrides) -> dict[str, bytes]:
    entries = [prepare(FeedItem.from_article(a), "london-news-net.example", ("www.youtube.com",)) for a in articles]
    return {f"all.{ext}": data for ext, data in render_all(channel(**overrides), entries).items()}


def article(**fields):
    data = {"id": "web:1", "url": "https://london-news-net.example/a/", "title": "A story",
            "published_at": "2026-11-26T09:00:00Z", "content_html": "<p>Body</p>"}
    data.update(fields)
    return parse_article(data, "test")


# --- built from stored articles -------------------------------------------------

def test_fixture_posts_build_feeds_that_pass_every_validator(store, config, tmp_path):
    # given the twelve WordPress fixture posts, stored
    store_articles(store, config, wordpress_articles())

    # when every configured feed is built, then each of its files passes every validator
    parsed = {}
    for feed in config.feeds:
        parsed[feed.name] = assert_valid_feed_files(build_files(store, config, tmp_path, feed.name), FEEDS_URL,
                                                    feed.name)

    # and the feeds hold what their filters say, newest first
    rss = parsed["all"]["rss"]
    assert [e.id for e in rss.entries][:2] == ["tag:london-news-net.example,2026:wp:112",
                                                "tag:london-news-net.example,2026:wp:111"]
    assert len(rss.entries) == 12
    assert {e.id.rsplit(":", 1)[1] for e in parsed["world"]["rss"].entries} == {"101", "102", "103", "104", "110", "112"}
    assert {e.id.rsplit(":", 1)[1] for e in parsed["russia"]["rss"].entries} == {"101", "102", "104", "112"}
    assert {e.id.rsplit(":", 1)[1] for e in parsed["mixed"]["rss"].entries} == {"106", "107", "109"}
    assert len(parsed["latest3"]["json"]["items"]) == 3

    # and two posts sharing one URL (102 and 112) stay two entries with their own ids
    shared = [e for e in rss.entries if e.link.endswith("drought-and-frost-force-agricultural-emergency-in-southern/")]
    assert len({e.id for e in shared}) == 2


def test_fixture_entries_carry_every_field(store, config, tmp_path):
    store_articles(store, config, wordpress_articles())
    files = build_files(store, config, tmp_path, "all")
    rss = etree.fromstring(files["all.rss"])
    item = next(i for i in rss.iter("item") if i.findtext("guid").endswith(":wp:102"))

    # title as text, entities decoded
    assert item.findtext("title") == "Drought and Frost Force Agricultural Emergency in Southern Russia’s Grain Heartland"
    assert item.findtext("link") == ("https://london-news-net.example/2026/11/26/"
                                     "drought-and-frost-force-agricultural-emergency-in-southern/")
    assert item.find("guid").get("isPermaLink") == "false"
    assert item.findtext("description").startswith("Drought and Frost Force Agricultural Emergency in Southern "
                                                    "Russia’s Grain Heartland: reporters summarise")
    assert "<p>" in item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")
    assert [c.text for c in item.findall(DC_CREATOR)] == ["Technology Desk"]
    assert [c.text for c in item.findall("category")] == ["World", "Russia", "Climate"]
    assert item.findtext("pubDate") == "Thu, 26 Nov 2026 09:07:00 +0000"
    assert item.findtext("{http://purl.org/dc/terms/}modified") == "2026-11-26T09:07:00Z"
    image = "https://london-news-net.example/wp-content/uploads/2026/11/drought-and-frost-force-agricu-1200x800.jpg"
    enclosure = item.find("enclosure")
    assert (enclosure.get("url"), enclosure.get("length"), enclosure.get("type")) == (image, "0", "image/jpeg")
    media = item.find(MEDIA_CONTENT)
    assert (media.get("url"), media.get("medium"), media.get("width"), media.get("height")) == \
        (image, "image", "1200", "800")

    # a post without a featured image has neither enclosure nor media:content
    no_image = next(i for i in rss.iter("item") if i.findtext("guid").endswith(":wp:107"))
    assert no_image.find("enclosure") is None and no_image.find(MEDIA_CONTENT) is None

    # the same entry in Atom and JSON Feed
    atom = feedparser.parse(files["all.atom"])
    entry = next(e for e in atom.entries if e.id.endswith(":wp:102"))
    assert entry.title == "Drought and Frost Force Agricultural Emergency in Southern Russia’s Grain Heartland"
    assert entry.author == "Technology Desk" and [t.term for t in entry.tags] == ["World", "Russia", "Climate"]
    assert entry.published == "2026-11-26T09:07:00Z" and entry.content[0].type == "text/html"
    feed = assert_valid_json_feed(files["all.json"], f"{FEEDS_URL}/all.json")
    json_item = next(i for i in feed["items"] if i["id"].endswith(":wp:102"))
    assert json_item["image"] == image and json_item["authors"] == [{"name": "Technology Desk"}]
    assert json_item["tags"] == ["World", "Russia", "Climate"] and json_item["language"] == "en"
    assert feed["hubs"] == [{"type": "WebSub", "url": HUB}]


def test_hostile_content_gives_valid_and_safe_feeds(store, config, tmp_path):
    # given articles built to break feeds (scripts, handlers, javascript: URLs, controls, ]]>, odd URLs)
    store_articles(store, config, hostile_articles())
    # when the feeds are built, then they pass every validator
    for name in ("all", "world"):
        files = build_files(store, config, tmp_path, name)
        assert_valid_feed_files(files, FEEDS_URL, name)
    files = build_files(store, config, tmp_path, "all")
    feed = assert_valid_json_feed(files["all.json"], f"{FEEDS_URL}/all.json")
    first = next(i for i in feed["items"] if i["id"].endswith(":web:hostile-1"))
    # and the title is text: markup gone, entities decoded, the CDATA terminator just characters
    assert first["title"] == "Markup & entities: AT&T’s 5 < 6 ]]> story"
    body = first["content_html"]
    for gone in ("<script", "onerror", "onclick", "javascript:", "data:", "style", "evil.example", "<svg", "<form",
                 "\x01", "\x7f", "\x85", "fallback", "swf", "<!--"):
        assert gone not in body, gone
    assert '<iframe src="https://www.youtube.com/embed/abc123" allowfullscreen="">' in body
    assert 'href="https://london-news-net.example/world/other-story/"' in body
    assert "]]&gt; in text" in body
    # and the odd URL, id and image URL are percent-encoded URIs
    second = next(i for i in feed["items"] if "hostile-2" in i["id"])
    assert second["url"] == "https://london-news-net.example/w%C3%B6rld/story%20with%20spaces/?q=a%20b&c=%5B1%5D"
    assert "language" not in second  # "not a language" is not passed on
    assert second["summary"].startswith("Body only, no summary.")  # no summary: an excerpt of the body
    rss = etree.fromstring(files["all.rss"])
    unknown_type = next(i for i in rss.iter("item") if "hostile-2" in i.findtext("guid")).find("enclosure")
    assert unknown_type.get("type") == "application/octet-stream"


def test_identical_articles_give_byte_identical_files(store, config, tmp_path):
    articles = wordpress_articles() + hostile_articles(now=datetime(2026, 11, 26, 12, tzinfo=timezone.utc))
    store_articles(store, config, articles)
    first = build_files(store, config, tmp_path / "one", "all")

    # when built again, nothing changes on disk
    from worker.feeds import rebuild

    again = rebuild(store, config, tmp_path / "one", "all", force=True)
    assert again.files == {"all.rss": False, "all.atom": False, "all.json": False}

    # and another store holding the same articles, rendered from scratch, gives the same bytes
    entry_cache.clear()
    other = Store(f"sqlite:///{tmp_path}/other.db")
    other.migrate()
    try:
        store_articles(other, config, list(reversed(articles)))
        assert build_files(other, config, tmp_path / "two", "all") == first
    finally:
        other.dispose()


# --- feedgen's traps, each avoided ----------------------------------------------

def test_trap_atom_content_is_escaped_html_not_cdata():
    files = render([article(content_html="<p>a ]]> b</p>")])
    assert b"CDATA" not in files["all.atom"] and b"CDATA" not in files["all.rss"]
    content = etree.fromstring(files["all.atom"]).find(f"{A}entry/{A}content")
    assert content.get("type") == "html" and content.text == "<p>a ]]&gt; b</p>"
    assert_valid_atom(files["all.atom"], f"{FEEDS_URL}/all.atom")


def test_trap_entry_links_keep_their_attributes():
    files = render([article(image={"url": "https://london-news-net.example/p.png", "width": 10, "height": 5})])
    links = etree.fromstring(files["all.atom"]).findall(f"{A}entry/{A}link")
    assert [(l.get("rel"), l.get("type"), l.get("href")) for l in links] == [
        ("alternate", "text/html", "https://london-news-net.example/a/"),
        ("enclosure", "image/png", "https://london-news-net.example/p.png")]


def test_trap_rss_carries_the_hub_links():
    files = render([article()], hubs=(HUB, "https://second-hub.example/"))
    for name in ("all.rss", "all.atom"):
        root = etree.fromstring(files[name])
        hubs = [l.get("href") for l in root.iter(f"{A}link") if l.get("rel") == "hub"]
        assert hubs == [HUB, "https://second-hub.example/"], name
    assert b'rel="hub"' not in render([article()], hubs=())["all.rss"]


def test_trap_channel_link_is_the_site_not_the_last_link():
    rss = etree.fromstring(render([article()])["all.rss"]).find("channel")
    assert rss.findtext("link") == "https://london-news-net.example"
    assert [l.get("href") for l in rss.findall(f"{A}link") if l.get("rel") == "self"] == [f"{FEEDS_URL}/all.rss"]


def test_trap_authors_without_email_are_kept_as_names():
    files = render([article(authors=["Ann Writer", "Bob Reporter"])])
    item = etree.fromstring(files["all.rss"]).find("channel/item")
    assert [c.text for c in item.findall(DC_CREATOR)] == ["Ann Writer", "Bob Reporter"]
    assert item.find("author") is None
    entry = feedparser.parse(files["all.atom"]).entries[0]
    assert [a.name for a in entry.authors] == ["Ann Writer", "Bob Reporter"]


def test_trap_dates_come_from_the_newest_entry_never_now():
    older = article(id="web:1", published_at="2020-01-01T08:00:00Z", updated_at="2020-01-02T08:00:00+01:00")
    newer = article(id="web:2", url="https://london-news-net.example/b/", published_at="2020-01-01T09:00:00Z")
    files = render([newer, older])
    assert etree.fromstring(files["all.rss"]).findtext("channel/lastBuildDate") == "Thu, 02 Jan 2020 07:00:00 +0000"
    assert etree.fromstring(files["all.atom"]).findtext(f"{A}updated") == "2020-01-02T07:00:00Z"
    assert render([newer, older]) == files  # a second render, a moment later, is the same bytes

    # an empty feed has no lastBuildDate, and the fixed epoch as Atom's required updated
    empty = render([])
    assert etree.fromstring(empty["all.rss"]).find("channel/lastBuildDate") is None
    assert etree.fromstring(empty["all.atom"]).findtext(f"{A}updated") == "1970-01-01T00:00:00Z"
    assert_valid_rss(empty["all.rss"], f"{FEEDS_URL}/all.rss")
    assert_valid_atom(empty["all.atom"], f"{FEEDS_URL}/all.atom")
    assert_valid_json_feed(empty["all.json"], f"{FEEDS_URL}/all.json")


# --- ids ------------------------------------------------------------------------

def test_entry_id_stays_when_the_url_and_headline_change():
    before = prepare(FeedItem.from_article(article()), "london-news-net.example", ())
    after = prepare(FeedItem.from_article(article(url="https://london-news-net.example/renamed-slug/",
                                                  title="A corrected headline")), "london-news-net.example", ())
    assert before.id == after.id == "tag:london-news-net.example,2026:web:1"
    assert entry_id("london-news-net.example", "wp:a b/ü", datetime(2026, 1, 1, tzinfo=timezone.utc)) == \
        "tag:london-news-net.example,2026:wp:a%20b/%C3%BC"


# --- the validators themselves catch what they must ---------------------------------

def test_validators_reject_what_feedgen_gets_wrong():
    from feedgen.feed import FeedGenerator

    fg = FeedGenerator()
    fg.id(f"{FEEDS_URL}/all.atom")
    fg.title("All")
    fg.link(href=f"{FEEDS_URL}/all.atom", rel="self")
    fg.link(href="https://london-news-net.example", rel="alternate")
    fg.description("All")
    entry = fg.add_entry()
    entry.id("tag:london-news-net.example,2026:web:1")
    entry.title("A story")
    entry.link(href="https://london-news-net.example/a/")
    entry.content("<p>x</p>", type="CDATA")
    entry.author(name="Ann Writer")
    with pytest.raises(AssertionError, match="RELAX NG"):
        assert_valid_atom(fg.atom_str(), f"{FEEDS_URL}/all.atom")


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.replace(b'href="https://london-news-net.example/world/x/"', b'href="/world/x/"'), "relative"),
    (lambda d: d.replace(b"web:2</guid>", b"web:1</guid>"), "duplicate guids"),
    (lambda d: d.replace(b"Thu, 26 Nov 2026 09:00:00 +0000", b"Fri, 26 Nov 2026 09:00:00 +0000"), "day of the week"),
    (lambda d: d.replace(b"<language>en</language>", b"<language>English</language>"), "language"),
    (lambda d: d.replace(b'rel="self" type="application/rss+xml"', b'rel="alternate" type="application/rss+xml"'),
     "rel=self"),
])
def test_validators_reject_broken_rss(break_it, message):
    files = render([article(content_html='<p><a href="/world/x/">x</a></p>'),
                    article(id="web:2", url="https://london-news-net.example/b/")])
    good = files["all.rss"]
    assert_valid_rss(good, f"{FEEDS_URL}/all.rss")
    broken = break_it(good)
    assert broken != good
    with pytest.raises(AssertionError, match=message):
        assert_valid_rss(broken, f"{FEEDS_URL}/all.rss")


def test_validators_reject_a_json_feed_the_schema_refuses():
    files = render([article()])
    broken = files["all.json"].replace(b'"type":"WebSub"', b'"kind":"WebSub"')
    with pytest.raises(AssertionError, match="JSON Feed schema"):
        assert_valid_json_feed(broken, f"{FEEDS_URL}/all.json")
    with pytest.raises(AssertionError, match="not well-formed HTML"):
        from tests.worker.feeds.validators import assert_html_safe

        assert_html_safe("<p>a < b</p>", "test")


def test_site_language_must_be_a_language_tag():
    from config import ConfigError, parse_config

    assert make_config().site.language == "en"
    with pytest.raises(ConfigError, match="language tag"):
        parse_config('[site]\ntitle="t"\nurl="https://a.example"\nfeeds_url="https://a.example/f"\n'
                     'language="English"\n', "t.toml", {})


def test_entries_prepared_once_per_version():
    item = FeedItem.from_article(article())
    prepare(item, "a.example", ())
    prepare(item, "a.example", ())
    changed = FeedItem.from_article(article(content_html="<p>Corrected</p>"))
    assert prepare(changed, "a.example", ()).content_html == "<p>Corrected</p>"
    assert (entry_cache.hits, entry_cache.misses) == (1, 2)
    later = FeedItem.from_article(article(updated_at=(datetime(2026, 11, 26, 9, tzinfo=timezone.utc)
                                                      + timedelta(hours=1)).isoformat()))
    assert prepare(later, "a.example", ()).updated.hour == 10  # updated_at is not in the version, but shown


def test_documents_assembled_from_prepared_entries_are_what_lxml_prints():
    # Entries' XML is printed once and spliced into each document: the result must be
    # exactly the whole document as lxml prints it, entry languages and all.
    files = render(wordpress_articles() + hostile_articles(now=datetime(2026, 11, 26, 12, tzinfo=timezone.utc)))
    for name in ("all.rss", "all.atom"):
        reprinted = etree.tostring(etree.fromstring(files[name]), encoding="UTF-8", xml_declaration=True,
                                   pretty_print=True)
        assert reprinted == files[name], name
    assert b'<entry xml:lang="fr">' in files["all.atom"]
    assert files["all.rss"].count(b"xmlns") == 5 and files["all.atom"].count(b"xmlns") == 2


def test_odd_stored_values_render_without_breaking_the_feed():
    # Rows are written from validated articles, but a store edited by hand (or an older
    # writer) may hold odd values: they are left out, never allowed to break the file.
    base = FeedItem.from_article(article())
    odd = [
        FeedItem(**{**{f: getattr(base, f) for f in FeedItem.__slots__}, "id": "web:odd-1",
                    "image": {"url": "ftp://files.example/x.jpg"}, "authors": ("", None, "Ann"),
                    "tags": ("", 5, "Tag"), "language": "english"}),
        FeedItem(**{**{f: getattr(base, f) for f in FeedItem.__slots__}, "id": "web:odd-2",
                    "image": {"url": "https://a.example/x.png", "width": "wide", "height": -3}, "title": " \u0007 "}),
    ]
    entries = [prepare(item, "london-news-net.example", ()) for item in odd]
    assert entries[0].image is None and entries[0].authors == ("Ann",) and entries[0].categories == ("Tag",)
    assert entries[0].language is None
    assert (entries[1].image.width, entries[1].image.height) == (None, None)
    assert entries[1].title == "https://london-news-net.example/a/"  # an empty title falls back to the link
    files = {f"all.{ext}": data for ext, data in render_all(channel(), entries).items()}
    assert_valid_feed_files(files, FEEDS_URL, "all")
