"""FEEDS_DIR/news-sitemap.xml: the Google News sitemap.

Google's rules (https://developers.google.com/search/docs/crawling-indexing/sitemaps/news-sitemap):
only articles published in the last two days, at most 1,000 `<url>` entries, each
with `news:publication` (`news:name`, `news:language`), `news:publication_date`
and `news:title`. `news:language` is an ISO 639 code, two or three letters, except
`zh-cn` and `zh-tw`. A URL appears once (two stories sharing a URL give the newer).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lxml import etree

from worker.feeds.items import FeedItem, language_tag, rfc3339, web_uri
from worker.sanitize import text_field, xml_text

SITEMAP_FILE = "news-sitemap.xml"
WINDOW = timedelta(hours=48)
MAX_URLS = 1000

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
_S = {n: f"{{{SITEMAP_NS}}}{n}" for n in ("urlset", "url", "loc")}
_N = {n: f"{{{NEWS_NS}}}{n}" for n in ("news", "publication", "name", "language", "publication_date", "title")}


def news_language(language: str | None, fallback: str) -> str:
    tag = (language_tag(language) or fallback).lower()
    if tag in ("zh-cn", "zh-tw"):
        return tag
    return tag.split("-", 1)[0]


def render_news_sitemap(items: list[FeedItem], publication: str, site_language: str, now: datetime) -> bytes:
    """The sitemap for `items` (newest first), keeping those published in the 48 hours before `now`."""
    since = now - WINDOW
    root = etree.Element(_S["urlset"], nsmap={None: SITEMAP_NS, "news": NEWS_NS})
    seen: set[str] = set()
    name = xml_text(publication).strip()
    for item in items:
        if item.published_at < since:
            continue
        loc = web_uri(item.url)
        if loc in seen:
            continue
        seen.add(loc)
        url = etree.SubElement(root, _S["url"])
        etree.SubElement(url, _S["loc"]).text = loc
        news = etree.SubElement(url, _N["news"])
        pub = etree.SubElement(news, _N["publication"])
        etree.SubElement(pub, _N["name"]).text = name
        etree.SubElement(pub, _N["language"]).text = news_language(item.language, site_language)
        etree.SubElement(news, _N["publication_date"]).text = rfc3339(item.published_at)
        etree.SubElement(news, _N["title"]).text = text_field(item.title) or loc
        if len(seen) >= MAX_URLS:
            break
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
