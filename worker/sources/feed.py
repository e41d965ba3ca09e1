"""Upstream RSS or Atom feed source (`type = "feed"`, `url = "https://wire.example/rss"`).

Fetched with a conditional GET (the ETag and Last-Modified of the last answer are the
cursor, stored with the entries they covered), parsed with feedparser. Entries are
keyed by guid / Atom id (the link when there is none); an update is a change of the
content version, so a feed that re-sends an entry unchanged makes nothing.

A feed is a rolling window, so an entry falling off its end is not a withdrawal. An
entry is taken as withdrawn only when it is missing although both its published and
updated times are newer than the oldest entry still there (under either ordering a
feed could use it should still be in it), and only when the document was well-formed.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import feedparser
import requests

from config import SourceConfig
from worker.sanitize import executable_markup
from worker.sources.base import (
    Batch,
    InputProblem,
    Rejection,
    Source,
    SourceContext,
    SourceError,
    as_html_text,
    bounded_body,
    build_article,
    html_to_text,
    http_get,
    unexpected,
)

log = logging.getLogger("syndicate.sources.feed")
USER_AGENT = "syndicate/0.1 (content syndication poller)"
MAX_FEED_BYTES = 30_000_000


class FeedSource(Source):
    def __init__(self, config: SourceConfig, session: requests.Session | None = None):
        super().__init__(config)
        assert config.url
        self.url = config.url
        self.http = session or requests.Session()
        self.http.headers.update({"User-Agent": USER_AGENT,
                                  "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
                                            "text/xml;q=0.8, */*;q=0.1"})
        if config.username and config.app_password:
            self.http.auth = (config.username, config.app_password)

    def close(self) -> None:
        self.http.close()

    def describe_cursor(self, cursor: dict) -> str:
        parts = [f"etag={cursor['etag']}" if cursor.get("etag") else "",
                 f"last_modified={cursor['last_modified']}" if cursor.get("last_modified") else ""]
        return ", ".join(p for p in parts if p) or "-"

    def poll(self, cursor: dict, context: SourceContext) -> Iterator[Batch]:
        headers = {}
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
        context.heartbeat()
        resp = http_get(self.http, self.url, self.config.timeout, headers=headers)
        if resp.status_code == 304:
            log.info("source=%s not modified since the last poll", self.name)
            return
        if resp.status_code != 200:
            permanent = resp.status_code in (401, 403, 404, 410)
            raise SourceError(f"GET {self.url}: HTTP {resp.status_code}", permanent=permanent)
        if len(resp.content) > MAX_FEED_BYTES:
            raise SourceError(f"GET {self.url}: the feed is {len(resp.content):,} bytes; the limit is "
                              f"{MAX_FEED_BYTES:,}")
        # Our own sanitizer decides what is hostile, the same way for every source.
        parsed = feedparser.parse(resp.content, response_headers={k.lower(): v for k, v in resp.headers.items()},
                                  sanitize_html=False)
        well_formed = not parsed.bozo
        if not parsed.entries and (parsed.bozo or not parsed.get("version")):
            reason = parsed.get("bozo_exception") or "no RSS or Atom root element"
            raise SourceError(f"GET {self.url}: not a readable RSS or Atom feed ({str(reason)[:200]})")
        if not well_formed:
            log.warning("source=%s the feed is not well-formed (%s); its entries are read, but no entry is "
                        "taken as withdrawn from it", self.name, str(parsed.get("bozo_exception"))[:200])
        language = parsed.feed.get("language") if isinstance(parsed.feed.get("language"), str) else None
        batch = Batch()
        keyed: dict[str, Any] = {}
        for index, entry in enumerate(parsed.entries):
            try:
                upstream = _entry_key(entry)
            except Exception as exc:  # noqa: BLE001
                upstream = None
                log.info("source=%s entry %d has an unusable key: %s", self.name, index + 1, exc)
            if upstream is None:
                batch.rejections.append(Rejection(f"entry[{index}]", "the entry has neither a guid/id nor a link",
                                                  where=f"{self.url} entry {index + 1}"))
                continue
            keyed[self.article_id(upstream)] = entry
        known = context.known(list(keyed))
        present: list[tuple[datetime, datetime]] = []
        for article_id, entry in keyed.items():
            upstream = article_id.partition(":")[2]
            try:
                article = self.article(entry, article_id, known.get(article_id), language, context.now)
                batch.articles.append(article)
                present.append((article.published_at, article.updated_at))
            except Exception as exc:  # noqa: BLE001 - one entry never stops the others
                reason = str(exc) if isinstance(exc, InputProblem) else unexpected(
                    exc, f"source={self.name} entry {upstream}", log)
                batch.rejections.append(Rejection(upstream, reason, where=f"{self.url} entry {upstream}",
                                                  article_id=article_id))
        if well_formed and present and len(present) == len(keyed) and all(_dated(e) for e in keyed.values()):
            oldest_published = min(p for p, _ in present)
            oldest_updated = min(u for _, u in present)
            held = context.published_since(oldest_published + timedelta(microseconds=1))
            batch.withdrawn = [aid for aid, k in held.items()
                               if aid not in keyed and k.updated_at > oldest_updated]
            if batch.withdrawn:
                log.info("source=%s %d entr(ies) gone from inside the feed's window: %s", self.name,
                         len(batch.withdrawn), ", ".join(batch.withdrawn))
        batch.cursor = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
        yield batch

    def article(self, entry: Any, article_id: str, known, language: str | None, now: datetime):
        # feedparser says whether each text is HTML or plain; the article schema reads HTML
        # text, so plain text is escaped and comes through as text (decoded once there).
        title = _html_text(entry.get("title"), entry.get("title_detail"))
        if not html_to_text(title[:10_000]):
            raise InputProblem("title is empty: a story needs a headline")
        raw_summary = entry.get("summary") or ""
        contents = [c for c in entry.get("content") or [] if c.get("value")]
        html_content = next((c for c in contents if "html" in (c.get("type") or "")), None)
        body = bounded_body("content", (html_content or (contents[0] if contents else None) or {}).get("value")
                            or raw_summary)
        published = _when(entry, "published", required=False) or _when(entry, "updated", required=False)
        if published is None:
            # Undated entry: first seen is its date, kept from then on so its version stays put.
            published = known.published_at if known is not None else now.replace(microsecond=0)
        updated = _when(entry, "updated", required=False) or published
        terms = [t.get("term") for t in entry.get("tags") or [] if isinstance(t.get("term"), str) and t.get("term")]
        authors = [a.get("name") for a in entry.get("authors") or [] if isinstance(a.get("name"), str)
                   and a.get("name")] or ([entry["author"]] if isinstance(entry.get("author"), str) else [])
        # Names and categories are read as HTML text, as before: a `<` in a category is
        # far more often a tag than a name.
        data = {
            "id": article_id,
            "url": entry.get("link") or "",
            "title": title,
            "summary": _html_text(raw_summary, entry.get("summary_detail")) if raw_summary else "",
            "content_html": body,
            "authors": authors,
            "section": terms[0] if terms else None,
            "tags": terms[1:],
            "image": _image(entry),
            "language": language,
            "published_at": published,
            "updated_at": max(updated, published),
        }
        return build_article(data, f"{self.url} entry {article_id.partition(':')[2]}")


def _html_text(value: Any, detail: Any) -> str:
    """A feed's text in the form the article schema reads (HTML text). feedparser calls a
    title plain text unless it holds tags it knows; one holding markup that could run code
    (`<script>`) is read as HTML all the same, as readers would render it."""
    value = value if isinstance(value, str) else ""
    kind = detail.get("type") if isinstance(detail, dict) else None
    if "html" in (kind or "text/html") or executable_markup(value):
        return value
    return as_html_text(value)


def _entry_key(entry: Any) -> str | None:
    key = " ".join(str(entry.get("id") or entry.get("link") or "").split())
    if not key:
        return None
    return key if len(key) <= 200 else key[:150] + "~" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _dated(entry: Any) -> bool:
    return bool(dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed"))


def _when(entry: Any, key: str, required: bool) -> datetime | None:
    # dict.get: feedparser's own get() quietly answers `updated` with `published`.
    raw = dict.get(entry, key)
    parsed = dict.get(entry, f"{key}_parsed")
    if parsed:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)
    if raw:
        raise InputProblem(f"{key} is not a valid date: {str(raw)[:40]!r}")
    if required:
        raise InputProblem(f"{key} is missing")
    return None


def _image(entry: Any) -> dict | None:
    candidates = []
    for media in entry.get("media_content") or []:
        if media.get("url") and (media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")):
            candidates.append(media)
    candidates += [m for m in entry.get("media_thumbnail") or [] if m.get("url")]
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/") and link.get("href"):
            candidates.append({"url": link["href"]})
    for media in candidates:
        url = media["url"]
        if not str(url).startswith(("http://", "https://")):
            continue

        def dimension(value: Any) -> int | None:
            try:
                number = int(str(value).strip())
            except (TypeError, ValueError):
                return None
            return number if 1 <= number <= 100_000 else None

        return {"url": url, "alt": "", "width": dimension(media.get("width")), "height": dimension(media.get("height"))}
    return None
