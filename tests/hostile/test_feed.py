"""The hostile corpus through the upstream feed source (the stand-in feed server): RSS
items broken or adversarial in each way a feed can carry them. Each is cleaned or
rejected, the poll succeeds, every other entry is stored and feeds stay valid."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import assert_feeds_valid, assert_nothing_unsafe_stored_or_sent, rejection_rows, stored
from tests.support.feed_server import FeedServer
from tests.worker.sources.helpers import poll


def item(key: str, *, title=None, link=None, date="Fri, 27 Nov 2026 09:00:00 +0000", description="Summary",
         body="<p>Body</p>", extra="") -> str:
    return f"""
    <item>
      <title>{title if title is not None else f"Story {key}"}</title>
      <link>{link or f"https://wire.example/story/{key}"}</link>
      <guid isPermaLink="false">{key}</guid>
      <pubDate>{date}</pubDate>
      <description>{description}</description>
      <content:encoded><![CDATA[{body}]]></content:encoded>
      {extra}
    </item>"""


CLEANED = {
    "escaped-tag": (dict(title="Why &amp;lt;b&amp;gt; tags matter"), lambda r: r.title == "Why <b> tags matter"),
    "title-script": (dict(title="Story &lt;script&gt;alert(1)&lt;/script&gt;"), lambda r: r.title == "Story"),
    "body-onerror": (dict(body='<p>Hi</p><img src="x.jpg" onerror="alert(1)">'), lambda r: "onerror" not in r.content_html),
    "body-javascript": (dict(body='<a href="javascript:alert(1)">x</a>'), lambda r: "javascript" not in r.content_html),
    "credentials-link": (dict(link="https://user:pass@wire.example/story/c"),
                         lambda r: r.url == "https://wire.example/story/c"),
    "media-huge-width": (dict(extra='<media:content url="https://wire.example/i.jpg" medium="image" '
                                    'width="' + "9" * 5000 + '" height="inf"/>'),
                         lambda r: r.image and r.image["width"] is None and r.image["height"] is None),
    "author-markup": (dict(extra="<dc:creator>&lt;script&gt;x&lt;/script&gt;Jo</dc:creator>"),
                      lambda r: r.authors == ["Jo"]),
    "category-markup": (dict(extra="<category>&lt;b&gt;World&lt;/b&gt;</category>"), lambda r: r.section == "World"),
    "summary-handler": (dict(description="&lt;p onclick='x()'&gt;Sum&lt;/p&gt;"), lambda r: r.summary == "Sum"),
}
REFUSED = {
    "year-9999": (dict(date="Fri, 31 Dec 9999 23:59:59 -0500"), "published"),
    "host-space": (dict(link="https://wire example/story/h"), "url: host 'wire example'"),
    "empty-title": (dict(title="&lt;script&gt;x&lt;/script&gt;"), "title is empty"),
    "long-url": (dict(link="https://wire.example/" + "a" * 3000), "the limit is 2,048"),
}


@pytest.fixture
def upstream():
    server = FeedServer().start()
    yield server
    server.stop()


def test_every_hostile_entry_is_cleaned_or_rejected_and_the_feed_goes_on(upstream, store, redis_client, tmp_path):
    from config import load_config
    from tests.conftest import write_config

    items = [item(k, **kw) for k, (kw, _) in {**CLEANED, **REFUSED}.items()] + [item("sibling")]
    upstream.serve(f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:media="http://search.yahoo.com/mrss/">
  <channel><title>Wire</title><link>https://wire.example/</link><description>Wire</description>
  <language>en-gb</language>{''.join(items)}</channel></rss>""")
    config_path = write_config(tmp_path / "syndication.toml", feeds=[{"name": "all", "title": "All"}],
                               extra=f'[[sources]]\nname = "wire"\ntype = "feed"\nurl = "{upstream.url}"\n'
                                     'interval = "1s"\ntimeout = "5s"\n')
    config = load_config(config_path, env={})

    result = poll(config, store, redis_client)

    assert result.status == "ok", result.error
    rows = stored(store)
    assert set(rows) == {f"wire:{k}" for k in CLEANED} | {"wire:sibling"}
    for key, (_, check) in CLEANED.items():
        assert check(rows[f"wire:{key}"]), (key, rows[f"wire:{key}"].title, rows[f"wire:{key}"].image)
    reasons = {r.upstream_id: r.reason for r in rejection_rows(store, "wire")}
    for key, (_, fragment) in REFUSED.items():
        assert fragment in reasons[key], (key, reasons[key])
    assert_nothing_unsafe_stored_or_sent(store)
    assert_feeds_valid(store, config_path, tmp_path / "feeds")
