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

from config import SourceConfig
from worker.article_input import load_json
from worker.articles import MAX_CONTENT_CHARS, Article, ArticleInputError, parse_article
from worker.sanitize import plain_text, printable


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
    return plain_text(fragment or "")


def as_html_text(value: str | None) -> str:
    """Plain text from upstream in the form `parse_article` reads text fields (HTML text),
    so its `<` and `&` come through as text when that decodes it, once."""
    return html.escape(value or "", quote=False)


def bounded_body(field_name: str, fragment: str | None) -> str:
    """A body as it comes: refused only when over the limit. Markup is not judged here:
    it is sanitized, for every input path, where articles are stored (with the site's
    iframe allow-list), and what is removed is noted on the article."""
    fragment = fragment or ""
    if len(fragment) > MAX_CONTENT_CHARS:
        raise InputProblem(f"{field_name} is {len(fragment):,} characters; the limit is {MAX_CONTENT_CHARS:,}")
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
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        raise InputProblem(f"{field_name} is out of range: {value[:40]!r} cannot be converted to UTC") from None
    if parsed.year < 1971:
        # WordPress writes 0000-00-00 00:00:00 for "no date".
        raise InputProblem(f"{field_name} is not a valid date: {value[:40]!r}")
    return parsed


def unexpected(exc: Exception, what: str, log) -> str:
    """The rejection reason for an item that failed in a way no check foresaw. Logged with
    its traceback (a bug to fix, so it reaches Sentry); the batch goes on."""
    log.error("%s could not be converted: %s: %s", printable(what), type(exc).__name__, printable(exc),
              exc_info=exc)
    return f"could not be converted ({type(exc).__name__}: {printable(exc, 200)})"


class Unreadable:
    """An item of a JSON list that could not be parsed on its own; its id read from its text
    (`{"id": 123, ...`, as WordPress writes posts), for the rejection."""

    def __init__(self, text: str, reason: str):
        m = re.match(r'\s*\{\s*"id"\s*:\s*(\d{1,20})\s*[,}]', text)
        self.post_id = m.group(1) if m else None
        self.reason = reason


def json_items(content: bytes | str):
    """An upstream JSON answer. One that is JSON but cannot be parsed whole (one item nested
    too deeply for the parser) is read item by item: the unreadable items become
    `Unreadable`, to be rejected, and the others go on. ValueError when it is not JSON."""
    try:
        return load_json(content)
    except ValueError as exc:
        whole = exc
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    pieces = split_json_array(text)
    if pieces is None or str(whole).startswith("not valid JSON"):
        raise whole
    items: list = []
    for piece in pieces:
        try:
            items.append(load_json(piece))
        except ValueError as exc:
            items.append(Unreadable(piece, str(exc)))
    return items


_JSON_TOKEN_RE = re.compile(r'["\\\[\]{},]')


def split_json_array(text: str) -> list[str] | None:
    """The top-level elements of a JSON array as text, found without parsing them, so one
    element nobody can parse (nested 10,000 deep) does not make the others unreadable.
    None when `text` is not an array."""
    body = text.strip()
    if not body.startswith("[") or not body.endswith("]"):
        return None
    items: list[str] = []
    depth, in_string, skip_until, start = 0, False, -1, 1
    for m in _JSON_TOKEN_RE.finditer(body):
        at, char = m.start(), m.group()
        if at <= skip_until:
            continue
        if in_string:
            if char == "\\":
                skip_until = at + 1
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                items.append(body[start:at])
        elif char == "," and depth == 1:
            items.append(body[start:at])
            start = at + 1
    return [item for item in items if item.strip()]


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
