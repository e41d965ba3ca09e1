"""The upstream feed source against a stand-in feed server: RSS and Atom entries become
articles, conditional GET, updates by content, withdrawals inside the window only, and
malformed feeds and entries."""

from __future__ import annotations

import logging

import pytest

from tests.support.feed_server import FeedServer
from tests.worker.sources.helpers import events, poll, rejections, source_config
from worker.store import ArticleRow, SourceStateRow


@pytest.fixture
def upstream():
    server = FeedServer().start()
    yield server
    server.stop()


def item(n: int, *, title=None, day=20, description=None, extra="") -> str:
    return f"""
    <item>
      <title>{title if title is not None else f"Wire story {n} &#8211; Russia&#8217;s grain"}</title>
      <link>https://wire.example/story/{n}</link>
      <guid isPermaLink="false">wire-{n}</guid>
      <pubDate>Fri, {day} Nov 2026 {n:02d}:00:00 +0000</pubDate>
      <dc:creator>Wire Desk</dc:creator>
      <category>World</category><category>Russia</category>
      <description>{description or f"Summary of story {n} &amp;amp; more"}</description>
      <content:encoded><![CDATA[<p>Body of story {n}.</p>]]></content:encoded>
      <media:content url="https://wire.example/img/{n}.jpg" medium="image" width="1200" height="800"/>
      {extra}
    </item>"""


def rss(*items: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/">
  <channel><title>Wire</title><link>https://wire.example/</link><description>Wire</description>
  <language>en-gb</language>{''.join(items)}
  </channel>
</rss>"""


def feed_config(server, **extra):
    return source_config(name="wire", type="feed", url=server.url, interval="1s", timeout="1s", **extra)


def stored(store) -> dict[str, ArticleRow]:
    from sqlalchemy import select

    with store.session() as s:
        return {a.id: a for a in s.scalars(select(ArticleRow))}


def test_rss_items_become_articles(upstream, store, redis_client):
    upstream.serve(rss(item(1), item(2), item(3)))
    result = poll(feed_config(upstream), store, redis_client)
    assert result.status == "ok" and result.published == 3
    art = stored(store)["wire:wire-1"]
    assert art.title == "Wire story 1 \u2013 Russia\u2019s grain"
    assert art.url == "https://wire.example/story/1" and art.authors == ["Wire Desk"]
    assert art.section == "World" and art.tags == ["Russia"] and art.language == "en-gb"
    assert art.summary == "Summary of story 1 & more" and art.content_html == "<p>Body of story 1.</p>"
    assert art.image == {"url": "https://wire.example/img/1.jpg", "alt": "", "width": 1200, "height": 800}
    assert art.published_at.isoformat() == "2026-11-20T01:00:00+00:00"


def test_an_unchanged_feed_is_asked_for_conditionally_and_changes_nothing(upstream, store, redis_client):
    upstream.serve(rss(item(1), item(2)))
    config = feed_config(upstream)
    poll(config, store, redis_client)
    with store.session() as s:
        assert s.get(SourceStateRow, "wire").cursor["etag"] == upstream.etag

    again = poll(config, store, redis_client)

    assert upstream.requests[-1]["if-none-match"] == upstream.etag
    assert again.status == "ok" and again.published == again.updated == 0
    assert len(events(store)) == 2


def test_a_changed_entry_is_one_update_and_a_resent_identical_entry_is_none(upstream, store, redis_client):
    config = feed_config(upstream)
    upstream.serve(rss(item(1), item(2)))
    poll(config, store, redis_client)
    upstream.serve(rss(item(1, title="Wire story 1: corrected"), item(2), item(3)))

    result = poll(config, store, redis_client)

    assert (result.published, result.updated) == (1, 1)
    assert events(store, "wire:wire-1") == [("wire:wire-1", "article.published"), ("wire:wire-1", "article.updated")]
    assert events(store, "wire:wire-2") == [("wire:wire-2", "article.published")]


def test_an_entry_gone_from_inside_the_window_is_withdrawn_but_one_rolling_off_the_end_is_not(
        upstream, store, redis_client):
    config = feed_config(upstream)
    upstream.serve(rss(item(4), item(3), item(2), item(1)))
    poll(config, store, redis_client)
    # story 3 is pulled; story 1 (the oldest) rolls off as story 5 arrives
    upstream.serve(rss(item(5), item(4), item(2)))

    result = poll(config, store, redis_client)

    assert result.unpublished == 1 and result.published == 1
    assert events(store, "wire:wire-3")[-1] == ("wire:wire-3", "article.unpublished")
    assert events(store, "wire:wire-1") == [("wire:wire-1", "article.published")]


def test_an_atom_feed_is_read_too(upstream, store, redis_client):
    upstream.serve("""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Sister site</title><id>urn:sister</id>
<updated>2026-11-20T10:00:00Z</updated>
<entry><title type="html">Markets &lt;em&gt;rally&lt;/em&gt;</title><id>urn:sister:1</id>
<link href="https://sister.example/1"/><published>2026-11-20T09:00:00+01:00</published>
<updated>2026-11-20T10:00:00Z</updated><author><name>Jo Reporter</name></author>
<content type="html">&lt;p&gt;Stocks rose.&lt;/p&gt;</content></entry></feed>""", "application/atom+xml")
    poll(feed_config(upstream), store, redis_client)
    art = stored(store)["wire:urn:sister:1"]
    assert art.title == "Markets rally" and art.authors == ["Jo Reporter"]
    assert art.published_at.isoformat() == "2026-11-20T08:00:00+00:00"
    assert art.content_html == "<p>Stocks rose.</p>"


def test_bad_entries_are_rejected_by_name_and_the_rest_of_the_feed_goes_on(upstream, store, redis_client, caplog):
    upstream.serve(rss(
        item(1),
        item(2, title=""),
        item(3).replace("Fri, 20 Nov 2026 03:00:00 +0000", "the day after tomorrow"),
        item(4, extra="").replace("<p>Body of story 4.</p>", '<p onclick="steal()">Body</p>'),
        item(5).replace("<guid isPermaLink=\"false\">wire-5</guid>", "").replace(
            "<link>https://wire.example/story/5</link>", ""),
        item(6),
    ))
    with caplog.at_level(logging.INFO):
        result = poll(feed_config(upstream), store, redis_client)

    # an onclick handler is removed and the story goes out (before: rejected as "hostile HTML")
    assert result.status == "ok" and result.published == 3 and result.rejected == 3
    reasons = {r.upstream_id: r.reason for r in rejections(store)}
    assert "title is empty" in reasons["wire-2"]
    assert "published is not a valid date: 'the day after tomorrow'" in reasons["wire-3"]
    assert "neither a guid/id nor a link" in next(v for k, v in reasons.items() if k.startswith("entry["))
    assert "source=wire upstream_id=wire-2 rejected: title is empty" in caplog.text
    assert set(stored(store)) == {"wire:wire-1", "wire:wire-4", "wire:wire-6"}
    assert "onclick" not in stored(store)["wire:wire-4"].content_html
    assert "article=wire:wire-4 cleaned on the way in: content_html: removed <p onclick>" in caplog.text


@pytest.mark.parametrize("document, fragment", [
    ("<html><body><h1>Gateway timeout</h1></body></html>", "not a readable RSS or Atom feed"),
    ("", "not a readable RSS or Atom feed"),
    ('{"items": []}', "not a readable RSS or Atom feed"),
])
def test_a_document_that_is_not_a_feed_fails_the_poll(document, fragment, upstream, store, redis_client):
    upstream.serve(document, "text/html")
    result = poll(feed_config(upstream), store, redis_client)
    assert result.status == "failed" and fragment in result.error


def test_a_truncated_feed_is_read_but_withdraws_nothing(upstream, store, redis_client):
    config = feed_config(upstream)
    upstream.serve(rss(item(3), item(2), item(1)))
    poll(config, store, redis_client)
    whole = rss(item(4), item(3), item(1))
    upstream.serve(whole[: whole.index("<item>", whole.index("wire-4")) + 40])  # cut off mid-item

    result = poll(config, store, redis_client)

    assert result.status == "ok" and result.published == 1 and result.unpublished == 0
    assert events(store, "wire:wire-2") == [("wire:wire-2", "article.published")]


@pytest.mark.parametrize("failure", ["503", "timeout"])
def test_an_unreachable_feed_fails_the_poll_and_keeps_its_cursor(failure, upstream, store, redis_client):
    config = feed_config(upstream)
    upstream.serve(rss(item(1)))
    poll(config, store, redis_client)
    if failure == "503":
        upstream.status = 503
    else:
        upstream.hang = 2.0
    result = poll(config, store, redis_client)
    assert result.status == "failed"
    assert ("HTTP 503" if failure == "503" else "timed out after 1s") in result.error
    with store.session() as s:
        assert s.get(SourceStateRow, "wire").cursor["etag"] == upstream.etag
