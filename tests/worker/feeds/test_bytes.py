"""Feed bytes are exactly what they were: golden files, written by the lxml renderer of
2026-11-30 before entries were written as strings and stored clean bodies stopped
being sanitized twice.

The articles are the WordPress fixture posts, the hostile articles and a few more
built on the escaping rules (quotes, ampersands, `]]>`, carriage returns and tabs in a
body, astral characters, empty fields). Regenerate the files only when the output is
meant to change: `.venv/bin/python -m tests.worker.feeds.test_bytes` (then read the diff).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from tests.worker.feeds.conftest import FEEDS_URL, HUB, build_files, store_articles
from tests.worker.feeds.fixtures import hostile_articles, wordpress_articles
from worker.articles import parse_article
from worker.feeds.items import FeedItem, entry_cache, prepare
from worker.feeds.render import Channel, render_all

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
CHANNELS = {
    "en": Channel(name="all", title="All stories", description="All stories", site_url="https://london-news-net.example",
                  site_title="London News Net", language="en", feeds_url=FEEDS_URL, hubs=(HUB, "https://hub2.example/")),
    "fr": Channel(name="odd", title='Titre "cité" & <balises> ]]> \'x\'', description="Une\tdescription\nsur deux lignes",
                  site_url="https://london-news-net.example/fr?a=1&b=2", site_title="L'Écho & <Co>", language="fr",
                  feeds_url=FEEDS_URL),
}


def escaping_articles():
    """Articles whose every field tries a character the writers must escape (or leave alone)."""
    common = {"published_at": "2026-11-25T08:00:00Z", "section": 'Say "hi" & <go>'}
    return [
        parse_article(dict(common, **{
            "id": "web:esc-1", "url": "https://london-news-net.example/esc/1/?a=1&b='2'",
            "title": 'A "quoted" \'title\' & <tag> ]]> with 𝄞 and \u2028 end',
            "summary": "Summary & <b>markup</b> \"quotes\" 'single' > done",
            "content_html": '<p title="a &quot;q&quot; &amp; \'s\'">Line one\r\nline two\ttabbed &gt; ]]&gt; &lt;x&gt;</p>'
                            '<pre>  keep\r  spaces\n</pre><p>𝄞 astral &#x1F4F0; and &nbsp;nbsp</p>',
            "authors": ['Ann "The Pen" O\'Neil & Co', "Zoë <Z>"],
            "tags": ["a&b", 'quote"d', "<lt>", "tab\there"],
            "image": {"url": "https://london-news-net.example/m/a%20b.webp?x=1&y=2", "alt": 'An "alt" & <more>',
                      "width": 640},
            "language": "de-CH",
            "updated_at": "2026-11-25T09:30:00.123456Z",
        }), "esc-1"),
        parse_article(dict(common, **{
            "id": "web:esc-2", "url": "https://london-news-net.example/esc/2/", "title": "Nothing else",
            "summary": "", "content_html": "", "authors": [], "section": None, "tags": [], "language": "en",
            "image": {"url": "https://london-news-net.example/m/noext", "alt": "", "height": 10},
        }), "esc-2"),
        parse_article(dict(common, **{
            "id": "web:esc-3", "url": "https://london-news-net.example/esc/3/", "title": "Same language as the feed",
            "summary": "  ", "content_html": "<p>x</p>", "language": "fr", "published_at": "2026-11-25T07:00:00+02:00",
        }), "esc-3"),
    ]


def fixture_articles():
    return wordpress_articles() + hostile_articles(now=NOW) + escaping_articles()


def raw_item() -> FeedItem:
    """Fields as a hand-edited store might hold them: markup characters that validation would have removed."""
    return FeedItem(
        id="web:raw <1> & \"q\"", url="https://london-news-net.example/raw/?q=<a>&b=\"c\"",
        title='Raw <b>title</b> & "quotes" \'s\' ]]>', summary="Raw <i>summary</i> &amp; entity > gt",
        content_html='<p>Body <script>x()</script> &amp; "q" \r\n\t</p>', authors=("<Ann> & \"B\"",),
        section="<sec>", tags=('"quoted" & <tag>',),
        image={"url": "https://london-news-net.example/m/<x>\"y\".png", "alt": '<alt> & "q" \'s\'', "width": 5},
        language="en-GB", published_at=datetime(2026, 11, 24, 10, tzinfo=timezone.utc),
        updated_at=datetime(2026, 11, 24, 9, tzinfo=timezone.utc), version="raw1")


def render_in_memory(channel: Channel) -> dict[str, bytes]:
    items = [FeedItem.from_article(a) for a in fixture_articles()] + [raw_item()]
    entries = [prepare(item, "london-news-net.example", ("www.youtube.com",)) for item in items]
    return render_all(channel, entries)


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def test_documents_are_byte_for_byte_what_they_were():
    for key, channel in CHANNELS.items():
        for ext, data in render_in_memory(channel).items():
            assert data == golden(f"memory-{key}.{ext}"), f"memory-{key}.{ext}"
        entry_cache.clear()


def test_warm_documents_are_the_same_bytes():
    render_in_memory(CHANNELS["en"])
    for ext, data in render_in_memory(CHANNELS["en"]).items():
        assert data == golden(f"memory-en.{ext}"), ext


def test_built_from_stored_articles_the_files_are_what_they_were(store, config, tmp_path):
    # Stored through the pipeline, as every input path stores them.
    store_articles(store, config, fixture_articles())
    for file, data in build_files(store, config, tmp_path, "all").items():
        assert data == golden(f"stored-{file}"), file


def test_entry_text_is_escaped_as_lxml_escapes_it():
    # Every code point of the BMP and the edges of the other planes, among markup
    # characters, in text and in an attribute: what lxml writes, or (for what it refuses:
    # the characters XML 1.0 cannot carry) the same without the character.
    from lxml import etree

    from worker.feeds.entries import xml_escape_attribute, xml_escape_text

    def lxml_text(value):
        element = etree.Element("r")
        element.text = value
        return etree.tostring(element, encoding="unicode")[3:-4]

    def lxml_attribute(value):
        element = etree.Element("r", a=value)
        return etree.tostring(element, encoding="unicode")[6:-3]

    astral = [plane * 0x10000 + low for plane in range(1, 17) for low in (*range(256), 0xFFFE, 0xFFFF)]
    for code in [*range(0x10000), *astral]:
        char = chr(code)
        sample = f'<a href="x&amp;y">\'{char}\'\r\n\t]]></a>'
        try:
            text, attribute = lxml_text(sample), lxml_attribute(sample)
        except ValueError:  # refused by lxml: the writer removes the character
            text, attribute = lxml_text(sample.replace(char, "")), lxml_attribute(sample.replace(char, ""))
        assert xml_escape_text(sample) == text, hex(code)
        assert xml_escape_attribute(sample) == attribute, hex(code)


def test_dates_are_written_as_the_standard_library_writes_them():
    import random
    from datetime import timedelta
    from email.utils import format_datetime

    from worker.feeds.items import rfc822, rfc3339, utc_seconds

    rng = random.Random(7)
    plus_two = timezone(timedelta(hours=2))
    moments = [datetime(1, 1, 1, tzinfo=timezone.utc), datetime(999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
               datetime(9999, 12, 31, 21, 59, 59, 999999, tzinfo=plus_two)]
    moments += [datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(0, 4_000_000_000),
                                                                       microseconds=rng.randrange(10**6))
                for _ in range(5000)]
    for moment in moments + [m.astimezone(plus_two) for m in moments[3:]]:
        assert rfc822(moment) == format_datetime(utc_seconds(moment)), moment
        assert rfc3339(moment) == utc_seconds(moment).strftime("%Y-%m-%dT%H:%M:%SZ"), moment


def _regenerate() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for key, channel in CHANNELS.items():
        entry_cache.clear()
        for ext, data in render_in_memory(channel).items():
            (GOLDEN / f"memory-{key}.{ext}").write_bytes(data)
    import tempfile

    from tests.worker.feeds.conftest import make_config
    from worker.store import Store

    config = make_config(f'\n[websub]\nhubs = ["{HUB}"]\n')
    with tempfile.TemporaryDirectory() as tmp:
        entry_cache.clear()
        store = Store(f"sqlite:///{tmp}/golden.db")
        store.migrate()
        try:
            store_articles(store, config, fixture_articles())
            for file, data in build_files(store, config, Path(tmp) / "feeds", "all").items():
                (GOLDEN / f"stored-{file}").write_bytes(data)
        finally:
            store.dispose()
    print(f"written: {', '.join(sorted(p.name for p in GOLDEN.iterdir()))}", file=sys.stderr)


if __name__ == "__main__":
    _regenerate()
