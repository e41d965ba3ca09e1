"""What every source has in common: the interface the poller drives, the batches a poll
yields, and the checks applied to upstream input at this boundary.

A source turns upstream items into `Article`s. It never touches the store: it yields
`Batch`es, and the poller stores each batch (articles, withdrawals, rejections and the
cursor that covers them) in one transaction before asking for the next. So a cursor
moves only after the articles it covers are stored, and a crash loses no more than the
batch in hand, which the next poll reads again (the content version makes that harmless).
"""

from __future__ import annotations

import html
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, Protocol

import nh3

from config import SourceConfig
from worker.articles import Article, ArticleInputError, parse_article

# C0 controls other than tab/newline/CR, and DEL: they mean corrupted upstream text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Attribute values that run code when the HTML is shown.
_ACTIVE_URL_RE = re.compile(r"^\s*(javascript|vbscript|data\s*:\s*text/html)\s*:?", re.IGNORECASE)
# The fragment parser folds <html>/<body> into its own, losing their attributes: look at those directly.
_DOCUMENT_HANDLER_RE = re.compile(r"<(html|head|body)\b[^>]*\s(on[a-z]+)\s*=", re.IGNORECASE)
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "srcset"}



class SourceError(Exception):
    """A poll that could not be done (timeout, 5xx, invalid JSON, 401, missing folder...).

    `permanent` means retrying soon will not help (bad credentials, wrong URL): the
    poller backs off to its longest delay at once instead of stepping up to it."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Rejection:
    """Upstream input that could not become an article; recorded, never silently dropped."""

    upstream_id: str | None
    reason: str
    where: str = ""
    article_id: str | None = None


@dataclass
class Batch:
    """What one step of a poll found, stored by the poller in one transaction.

    `withdrawn` are article ids that are no longer public upstream; `cursor`, when set,
    replaces the source's cursor in the same transaction; `after_commit` runs once the
    transaction committed (the directory source moves its file to done/ there)."""

    articles: list[Article] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    cursor: dict | None = None
    after_commit: Callable[[], None] | None = None
    unchanged_skipped: int = 0


@dataclass(frozen=True)
class KnownArticle:
    id: str
    status: str
    version: str
    published_at: datetime
    updated_at: datetime


class SourceContext(Protocol):
    """What a source may ask of the store (read-only)."""

    now: datetime

    def heartbeat(self) -> None:
        """Called before each upstream request: keeps the poll's lock, or raises if it was lost."""

    def known(self, ids: list[str]) -> dict[str, KnownArticle]:
        """The store's articles among these ids."""

    def published_since(self, since: datetime) -> dict[str, KnownArticle]:
        """This source's articles held as published, published at or after `since`."""

    def rejected(self, ids: list[str]) -> set[str]:
        """Which of these article ids have a rejection recorded."""


class Source(ABC):
    """One configured `[[sources]]` entry."""

    def __init__(self, config: SourceConfig):
        self.config = config
        self.name = config.name

    @abstractmethod
    def poll(self, cursor: dict, context: SourceContext) -> Iterator[Batch]:
        """Yield batches in order; raise SourceError when upstream cannot be read."""

    def describe_cursor(self, cursor: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(cursor.items()) if not isinstance(v, (dict, list))) or "-"

    def close(self) -> None:
        """Release connections."""

    def article_id(self, upstream_id: str) -> str:
        return f"{self.name}:{upstream_id}"


# --- checks at the boundary --------------------------------------------------------

class InputProblem(ValueError):
    """One upstream item is bad; the message says which field and what is wrong."""


def html_to_text(fragment: str | None) -> str:
    """Rendered HTML (WordPress titles, excerpts, feed summaries) as plain text: tags
    dropped, then entities such as &#8217; decoded, once."""
    if not fragment:
        return ""
    return html.unescape(nh3.clean(fragment, tags=set(), clean_content_tags={"script", "style"}))


def check_controls(field_name: str, value: str | None) -> None:
    if value and (m := _CONTROL_RE.search(value)):
        raise InputProblem(f"{field_name} contains control character U+{ord(m.group()):04X} "
                           f"at position {m.start()}")


def hostile_markup(fragment: str) -> list[str]:
    """Markup whose only purpose is to run code in a reader's browser: event-handler
    attributes (onerror=, onload=...) and javascript:/vbscript:/data:text/html URLs.
    No editor's story needs them (WordPress strips them for all but administrators),
    so a post carrying them has been tampered with, and is rejected rather than cleaned."""
    if not fragment or ("on" not in fragment.lower() and "script" not in fragment.lower()
                        and "data" not in fragment.lower()):
        return []
    from lxml import etree
    from lxml.html import fragments_fromstring

    found: list[str] = [f"<{m.group(1).lower()} {m.group(2).lower()}=...>"
                        for m in _DOCUMENT_HANDLER_RE.finditer(fragment)]
    try:
        nodes = fragments_fromstring(fragment)
    except (etree.ParserError, ValueError):
        return found
    for node in nodes:
        if isinstance(node, str) or not hasattr(node, "iter"):
            continue
        for el in node.iter():
            if not isinstance(el.tag, str):
                continue
            for name, value in el.attrib.items():
                lname = name.lower()
                if lname.startswith("on"):
                    found.append(f"<{el.tag} {lname}=...>")
                elif lname in _URL_ATTRIBUTES and _ACTIVE_URL_RE.match(value or ""):
                    found.append(f"<{el.tag} {lname}=\"{value.strip()[:24]}...\">")
    return found


def checked_body(field_name: str, fragment: str | None) -> str:
    """Reject hostile markup and control characters; sanitize the rest."""
    fragment = fragment or ""
    check_controls(field_name, fragment)
    hostile = hostile_markup(fragment)
    if hostile:
        shown = ", ".join(dict.fromkeys(hostile))
        raise InputProblem(f"{field_name} carries hostile HTML ({shown[:200]}); "
                           "the post is held back until the markup is removed upstream")
    # Cleaning for republication happens once for every input path, where articles are
    # stored (worker.pipeline.republishable), with the site's iframe allow-list.
    return fragment


def build_article(data: dict, where: str) -> Article:
    """`parse_article`, with its field problems turned into one InputProblem."""
    try:
        return parse_article(data, where)
    except ArticleInputError as exc:
        raise InputProblem("; ".join(exc.problems)) from None


def parse_utc(value: object, field_name: str, *, naive_is_utc: bool) -> datetime:
    """A timestamp from upstream. WordPress `*_gmt` fields are UTC written without an offset;
    elsewhere a missing offset is an error (it would be read in some unknown zone)."""
    if not isinstance(value, str) or not value.strip():
        raise InputProblem(f"{field_name} is missing")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InputProblem(f"{field_name} is not a valid date: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise InputProblem(f"{field_name} has no UTC offset: {value[:40]!r}")
        parsed = parsed.replace(tzinfo=timezone.utc)
    if parsed.year < 1971:
        # WordPress writes 0000-00-00 00:00:00 for "no date".
        raise InputProblem(f"{field_name} is not a valid date: {value[:40]!r}")
    return parsed.astimezone(timezone.utc)


def checked_article_data(data: dict) -> dict:
    """Boundary checks for input already in the article schema (a drop folder's JSON):
    control characters are refused rather than silently stripped, hostile markup refused,
    the body sanitized."""
    for key in ("title", "summary"):
        if isinstance(data.get(key), str):
            check_controls(key, data[key])
    if isinstance(data.get("content_html"), str):
        from worker.articles import MAX_CONTENT_CHARS

        if len(data["content_html"]) > MAX_CONTENT_CHARS:
            raise InputProblem(f"content_html is {len(data['content_html']):,} characters; "
                               f"the limit is {MAX_CONTENT_CHARS:,}")
        data = dict(data, content_html=checked_body("content_html", data["content_html"]))
    return data


def http_get(session, url: str, timeout: float, **kwargs):
    """GET, with transport failures turned into SourceError (no credentials in the message)."""
    import requests

    try:
        return session.get(url, timeout=timeout, **kwargs)
    except requests.Timeout:
        raise SourceError(f"GET {url} timed out after {timeout:g}s") from None
    except requests.ConnectionError as exc:
        raise SourceError(f"GET {url}: cannot connect ({str(exc)[:200]})") from None
    except requests.RequestException as exc:
        raise SourceError(f"GET {url}: {str(exc)[:200]}") from None
