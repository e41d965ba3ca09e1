"""What a feed entry is made of: the stored article, and the entry prepared from it.

`FeedItem` is the part of a stored article a feed shows (read straight from the
row, without re-validating it). `prepare` turns it into an `Entry` whose every
string is ready for XML and JSON: the body sanitized, the title and summary plain
text, URLs in the characters a URI may hold, dates in UTC to the second. A body stored
with the sanitizer's current fingerprint is used as stored (it is that sanitizer's fixed
point); any other is sanitized again, the costliest step. Prepared entries are kept
per (article, version, updated_at, site, iframe hosts) in a bounded LRU: a rebuild
prepares only the articles that changed since the last one in this process.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit, urlunsplit

from config.settings import LANGUAGE_TAG_RE
from worker.sanitize import excerpt, plain_text, sanitize_html, sanitizer_fingerprint, text_field, xml_text


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: str
    url: str
    title: str
    summary: str
    content_html: str
    authors: tuple[str, ...]
    section: str | None
    tags: tuple[str, ...]
    image: dict | None
    language: str | None
    published_at: datetime
    updated_at: datetime
    version: str
    # The stored row's `sanitized_as` marker (see worker.sanitize.sanitize_to_store).
    sanitized_as: str | None = None

    @classmethod
    def from_row(cls, row) -> "FeedItem":
        return cls(row.id, row.url, row.title, row.summary or "", row.content_html or "",
                   tuple(row.authors or ()), row.section, tuple(row.tags or ()), row.image, row.language,
                   row.published_at, row.updated_at, row.version, row.sanitized_as)

    @classmethod
    def from_article(cls, article) -> "FeedItem":
        return cls(article.id, article.url, article.title, article.summary, article.content_html,
                   tuple(article.authors), article.section, tuple(article.tags),
                   article.image.model_dump() if article.image else None, article.language,
                   article.published_at, article.updated_at or article.published_at, article.version)


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    mime_type: str
    alt: str
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    link: str
    title: str
    description: str
    content_html: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    image: Image | None
    language: str | None
    published: datetime
    updated: datetime
    # Each format's rendering of this entry, and its body escaped for XML, made once
    # (see worker.feeds.render and worker.feeds.entries).
    fragments: dict = field(default_factory=dict, compare=False, repr=False)


# --- strings every feed format accepts ------------------------------------------

# The characters RFC 2396 allows in a URI (what the W3C validator checks links against).
_URI_SAFE = ";/?:@&=+$.-_!~*'()%,#"
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[0-9A-Za-z;/?:@&=+$.\-_!~*'()%,#]+")


def web_uri(url: str) -> str:
    """`url` with every character a URI cannot hold percent-encoded (IDN hosts in punycode)."""
    url = xml_text(url).strip()
    if _URI_RE.fullmatch(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if not netloc.isascii():
        userinfo, at, hostport = netloc.rpartition("@")
        host, colon, port = hostport.partition(":")
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = quote(host, safe="")
        netloc = f"{userinfo}{at}{host}{colon}{port}"
    path = quote(parts.path, safe=_URI_SAFE)
    query = quote(parts.query, safe=_URI_SAFE)
    fragment = quote(parts.fragment, safe=_URI_SAFE)
    return urlunsplit((parts.scheme, quote(netloc, safe=_URI_SAFE + "[]"), path, query, fragment))


def site_authority(site_url: str) -> str:
    """The site's host as a tag URI authority (RFC 4151: lower-case DNS name)."""
    host = (urlsplit(site_url).hostname or "localhost").rstrip(".")
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return re.sub(r"[^a-z0-9.-]", "-", host.lower())


def entry_id(authority: str, article_id: str, published_at: datetime) -> str:
    """A stable id for the article in every feed: a tag URI (RFC 4151) from its store id.

    Not the URL: a headline edit changes a story's slug, and two stories can share a
    URL (the WordPress fixture has such a pair), either of which would make readers
    show duplicates or merge stories. The store id (`<source>:<upstream id>`) never
    changes; the date is the publication year, which a correction rarely moves.
    """
    specific = quote(article_id, safe=";/?:@&=+$!*'(),")
    return f"tag:{authority},{published_at.astimezone(timezone.utc).year:04d}:{specific}"


def language_tag(value: str | None) -> str | None:
    return value if value and LANGUAGE_TAG_RE.fullmatch(value) else None


def utc_seconds(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(microsecond=0)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc822(value: datetime) -> str:
    """RFC 822 date for RSS, independent of the process locale (feedgen calls setlocale).

    What `email.utils.format_datetime` writes for a UTC time, formatted here in one step
    (it takes a time tuple and a `strftime` of the zone: 4 µs an entry in a cold build).
    """
    v = utc_seconds(value)
    return (f"{_DAYS[v.weekday()]}, {v.day:02d} {_MONTHS[v.month - 1]} {v.year:04d} "
            f"{v.hour:02d}:{v.minute:02d}:{v.second:02d} +0000")


@functools.lru_cache(maxsize=4096)
def rfc3339(value: datetime) -> str:
    # Cached: an entry's two dates are written five times (Atom, JSON Feed, RSS's dcterms).
    v = utc_seconds(value)
    if v.year < 1000:  # strftime's %Y does not pad these; kept byte for byte
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}Z"


# A fixed table rather than `mimetypes`, whose answers depend on the host's
# /etc/mime.types: the same article must give the same bytes on every machine.
_IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jpe": "image/jpeg", ".png": "image/png",
                ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".svg": "image/svg+xml",
                ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff", ".heic": "image/heic"}
UNKNOWN_IMAGE_TYPE = "application/octet-stream"


def image_type(url: str) -> str:
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return _IMAGE_TYPES.get(path[dot:], UNKNOWN_IMAGE_TYPE) if dot >= 0 else UNKNOWN_IMAGE_TYPE


def _positive(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _image(raw: dict | None) -> Image | None:
    if not raw or not isinstance(raw.get("url"), str) or not raw["url"].startswith(("http://", "https://")):
        return None
    url = web_uri(raw["url"])
    return Image(url, image_type(url), text_field(raw.get("alt") or ""), _positive(raw.get("width")),
                 _positive(raw.get("height")))


def _unique_texts(values) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        text = text_field(value or "") if isinstance(value, str) else ""
        if text and text not in out:
            out.append(text)
    return tuple(out)


# --- preparing entries ---------------------------------------------------------

def clean_body(item: FeedItem, iframe_hosts: tuple[str, ...]) -> str:
    """The body sanitized with today's rules and iframe hosts: as stored when the row says it
    is their fixed point already, else sanitized here (rows stored by older code, before a
    change of `iframe_hosts` or of the rules)."""
    if item.sanitized_as is not None and item.sanitized_as == sanitizer_fingerprint(iframe_hosts):
        return item.content_html
    return sanitize_html(item.content_html, item.url, iframe_hosts)


def prepare_uncached(item: FeedItem, authority: str, iframe_hosts: tuple[str, ...]) -> Entry:
    body = clean_body(item, iframe_hosts)
    # Stored text fields are text (decoded once on the way in): a title whose text is
    # "<b>" keeps it; the feed writer escapes it.
    summary = text_field(item.summary)
    return Entry(
        id=entry_id(authority, item.id, item.published_at),
        link=web_uri(item.url),
        title=text_field(item.title) or item.url,
        description=summary or excerpt(plain_text(body, blocks=True)),
        content_html=body,
        authors=_unique_texts(item.authors),
        categories=_unique_texts([item.section, *item.tags]),
        image=_image(item.image),
        language=language_tag(item.language),
        published=utc_seconds(item.published_at),
        updated=utc_seconds(max(item.updated_at, item.published_at)),
    )


class _EntryCache:
    """A bounded, thread-safe LRU of prepared entries."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, item: FeedItem, authority: str, iframe_hosts: tuple[str, ...]) -> Entry:
        # `version` hashes every visible field but updated_at, which feeds show too.
        key = (item.id, item.version, item.updated_at, authority, iframe_hosts)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        entry = prepare_uncached(item, authority, iframe_hosts)
        with self._lock:
            self.misses += 1
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry

    def reserve(self, size: int) -> None:
        """Hold at least `size` entries: every feed's entries at once, so builds never evict each other's."""
        with self._lock:
            self.size = max(self.size, size)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


entry_cache = _EntryCache(1024)


def prepare(item: FeedItem, authority: str, iframe_hosts: tuple[str, ...]) -> Entry:
    return entry_cache.get(item, authority, iframe_hosts)
