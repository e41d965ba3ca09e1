"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents from prepared entries.

Pure functions of their input: the same channel and entries give the same bytes
(no clock, no locale, no dict-order or host-dependent lookups), so unchanged feeds
are never rewritten and HTTP caches and ETags hold.

Why not feedgen
---------------
feedgen 1.0 was the first choice; it is not used because (a) it takes about 7 ms
for RSS + Atom of 100 entries on a 2-core machine, the whole budget for all three
formats (this module: see bench/feeds.py), and (b) its known traps would each need
a patch. A document's head (channel or feed element) is built and printed with lxml;
each entry is written as text by `worker.feeds.entries`, once per article version,
in exactly the bytes lxml printed for it (an lxml tree per entry was half of a cold
build), and spliced in. Every trap, and what is done about it, in one place:

1. Atom content of type "CDATA" is invalid (RFC 4287 allows text, html, xhtml or a
   media type): content is written `type="html"` as escaped text. No CDATA is
   written anywhere, so a `]]>` in an article cannot end a section early.
2. Entry link attributes are dropped (feedgen #135: `rel`, `type`... vanish from
   entry links because the loop variable is rebound): entry links are written with
   `rel="alternate" type="text/html"` and enclosure links with their type.
3. RSS gets no hub link (feedgen #122): the channel carries `atom:link rel="hub"`
   for every `[websub] hubs` entry, as the Atom feed does (and `hubs` in JSON).
4. The channel link is whatever the last `link()` call set, so adding the
   `rel="self"` link after the site link silently points <link> at the feed itself:
   <link> is always `[site] url`; the self link is a separate `atom:link`.
5. RSS `<author>` vanishes without an email (RSS requires an address there): names
   are written as `dc:creator`, one per author; Atom and JSON carry names.
6. Dates default to now (`updated`, `lastBuildDate`), so every build differs: the
   feed's date is the newest entry's `updated`; an empty feed has no
   `lastBuildDate` in RSS and the fixed epoch as Atom's required `updated`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from lxml import etree

from worker.feeds.entries import atom_entry, json_item, json_text, rss_item
from worker.feeds.items import Entry, rfc822, rfc3339
from worker.sanitize import xml_text

ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
MEDIA = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

RSS_NSMAP = {"atom": ATOM, "content": CONTENT, "dc": DC, "dcterms": DCTERMS, "media": MEDIA}
ATOM_NSMAP = {None: ATOM, "media": MEDIA}

GENERATOR = "syndicate"
# Atom requires a feed-level <updated>; an empty feed has no entry to take it from.
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=timezone.utc)

_A_LINK = f"{{{ATOM}}}link"
_A = {name: f"{{{ATOM}}}{name}" for name in (
    "feed", "id", "title", "subtitle", "updated", "link", "author", "name", "uri", "generator")}


@dataclass(frozen=True)
class Channel:
    """Feed-level values, already XML-safe."""

    name: str
    title: str
    description: str
    site_url: str
    site_title: str
    language: str
    feeds_url: str  # without a trailing slash
    hubs: tuple[str, ...] = ()

    def url(self, ext: str) -> str:
        return f"{self.feeds_url}/{self.name}.{ext}"


def newest_update(entries: list[Entry]) -> datetime | None:
    return max((e.updated for e in entries), default=None)


def _text(parent, tag: str, text: str, **attrs) -> etree._Element:
    element = etree.SubElement(parent, tag, **attrs) if attrs else etree.SubElement(parent, tag)
    element.text = text
    return element


def _serialize(root) -> bytes:
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _fragment(entry: Entry, key, write):
    # Entries are prepared once per article version and kept (worker.feeds.items), so
    # each one's text is written once too, and a document is its head, the entries'
    # bytes and its tail: a warm build does not write a single body again.
    fragment = entry.fragments.get(key)
    if fragment is None:
        fragment = entry.fragments.setdefault(key, write())
    return fragment


def _assemble(head_root, closing: bytes, fragments) -> bytes:
    printed = _serialize(head_root)
    cut = printed.rindex(closing)
    # One join, so the document is allocated once (not once per concatenation): a warm
    # build is mostly this copy, and a few hundred KB freed and allocated again can cost
    # more than the copy when the allocator hands the memory back to the system between builds.
    return b"".join([printed[:cut], *fragments, printed[cut:]])


def render_rss(channel: Channel, entries: list[Entry]) -> bytes:
    rss = etree.Element("rss", version="2.0", nsmap=RSS_NSMAP)
    ch = etree.SubElement(rss, "channel")
    _text(ch, "title", channel.title)
    _text(ch, "link", channel.site_url)  # trap 4: the site, never the last link added
    _text(ch, "description", channel.description)
    etree.SubElement(ch, _A_LINK, href=channel.url("rss"), rel="self", type="application/rss+xml")
    for hub in channel.hubs:  # trap 3
        etree.SubElement(ch, _A_LINK, href=hub, rel="hub")
    _text(ch, "language", channel.language)
    newest = newest_update(entries)
    if newest is not None:  # trap 6
        _text(ch, "lastBuildDate", rfc822(newest))
    _text(ch, "generator", GENERATOR)
    _text(ch, "docs", "https://www.rssboard.org/rss-specification")
    return _assemble(rss, b"  </channel>", (_fragment(e, "rss", lambda e=e: rss_item(e)) for e in entries))


def render_atom(channel: Channel, entries: list[Entry]) -> bytes:
    feed = etree.Element(_A["feed"], nsmap=ATOM_NSMAP)
    feed.set(XML_LANG, channel.language)
    _text(feed, _A["id"], channel.url("atom"))
    _text(feed, _A["title"], channel.title, type="text")
    if channel.description and channel.description != channel.title:
        _text(feed, _A["subtitle"], channel.description, type="text")
    _text(feed, _A["updated"], rfc3339(newest_update(entries) or EMPTY_FEED_UPDATED))  # trap 6
    etree.SubElement(feed, _A["link"], rel="self", type="application/atom+xml", href=channel.url("atom"))
    etree.SubElement(feed, _A["link"], rel="alternate", type="text/html", href=channel.site_url)
    for hub in channel.hubs:
        etree.SubElement(feed, _A["link"], rel="hub", href=hub)
    # Entries without a byline inherit the publication as their author (Atom needs one).
    author = etree.SubElement(feed, _A["author"])
    _text(author, _A["name"], channel.site_title)
    _text(author, _A["uri"], channel.site_url)
    _text(feed, _A["generator"], GENERATOR)
    return _assemble(feed, b"</feed>", (_fragment(e, ("atom", channel.language),
                                                  lambda e=e: atom_entry(e, channel.language)) for e in entries))


def render_json(channel: Channel, entries: list[Entry]) -> bytes:
    feed: dict = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": channel.title,
        "home_page_url": channel.site_url,
        "feed_url": channel.url("json"),
    }
    if channel.description and channel.description != channel.title:
        feed["description"] = channel.description
    feed["language"] = channel.language
    feed["authors"] = [{"name": channel.site_title, "url": channel.site_url}]
    if channel.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in channel.hubs]
    feed["items"] = []
    head = json_text(feed).encode("utf-8")
    assert head.endswith(b'"items":[]}')
    # The items are each serialized once (see _fragment) and spliced into the list.
    items = [_fragment(e, "json", lambda e=e: json_item(e)) for e in entries]
    return b"".join([head[:-2], b",".join(items), b"]}\n"])


RENDERERS = {"rss": render_rss, "atom": render_atom, "json": render_json}


def render_all(channel: Channel, entries: list[Entry]) -> dict[str, bytes]:
    """{"rss": ..., "atom": ..., "json": ...} for one feed."""
    return {ext: render(channel, entries) for ext, render in RENDERERS.items()}


def make_channel(feed, site, hubs, language_fallback: str = "en") -> Channel:
    """The channel of a `[[feeds]]` entry, every string XML-safe."""
    from worker.feeds.items import web_uri

    title = xml_text(feed.title).strip() or feed.name
    return Channel(
        name=feed.name,
        title=title,
        description=xml_text(feed.description or site.description or "").strip() or title,
        site_url=web_uri(site.url),
        site_title=xml_text(site.title).strip() or title,
        language=site.language or language_fallback,
        feeds_url=web_uri(site.feeds_url).rstrip("/"),
        hubs=tuple(web_uri(h) for h in hubs),
    )
