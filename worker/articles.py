"""Articles: the one shape every input path (`ingest`, the directory, WordPress and feed
sources, ninjs) is turned into, and its content version.

An article id is `<source name>:<upstream id>`. The content version is a hash of
the fields a destination can see, with whitespace folded, so a change only in
whitespace or in bookkeeping fields (updated_at) is not an update.

`parse_article` is the way in: it cleans what can be cleaned and says so in the
article's `cleaning_notes`, and refuses, naming the field, only what cannot become an
article (see `worker/article_input.py` for the rules and limits). The model's own
validators only repeat the idempotent part (unsafe characters, whitespace, bounds), so
re-reading a stored article (`from_row`) never changes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from worker.article_input import (  # noqa: F401 - the limits are part of this module's interface
    EARLIEST,
    FUTURE_TOLERANCE,
    MAX_ALT_CHARS,
    MAX_AUTHORS,
    MAX_CONTENT_CHARS,
    MAX_DIMENSION,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_SUMMARY_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    clean_input,
    id_problem,
    load_json,
)
from worker.formatting import iso  # noqa: F401 - re-exported (defined apart for the CLI)
from worker.sanitize import text_field, xml_text

_WS_RE = re.compile(r"\s+")
# Whitespace between tags is layout, not content (re-indenting the HTML is no update).
_TAG_GAP_RE = re.compile(r">\s+<")


def strip_controls(text: str) -> str:
    return xml_text(text)


def fold_whitespace(text: str) -> str:
    # Same result as _WS_RE.sub(" ", text).strip() (str.split and \s both split on
    # str.isspace), four times faster on a story's body, which the version hashes.
    return " ".join(text.split())


def _bounded(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"{field} is {len(value):,} characters; the limit is {limit:,}")
    return value


class ArticleImage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    alt: str = ""
    width: int | None = Field(default=None, ge=1, le=MAX_DIMENSION)
    height: int | None = Field(default=None, ge=1, le=MAX_DIMENSION)

    @field_validator("url")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v) or len(v) > MAX_URL_CHARS:
            raise ValueError("image url must be an absolute http(s) URL of at most 2,048 characters")
        return v

    @field_validator("alt")
    @classmethod
    def _alt(cls, v: str) -> str:
        return _bounded("alt", text_field(v), MAX_ALT_CHARS)


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{field} needs a UTC offset (for example 2026-11-26T09:00:00Z)")
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{field} is out of range: it cannot be converted to UTC") from None
    if utc < EARLIEST:
        raise ValueError(f"{field} is before 1970-01-01")
    return utc


class Article(BaseModel):
    """A story as the pipeline knows it (the `syndicate ingest` JSON schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str | None = None
    url: str
    title: str
    summary: str = ""
    content_html: str = ""
    authors: list[str] = Field(default_factory=list)
    section: str | None = None
    tags: list[str] = Field(default_factory=list)
    image: ArticleImage | None = None
    language: str | None = None
    published_at: datetime
    updated_at: datetime | None = None
    status: Literal["published", "unpublished"] = "published"

    # What cleaning removed or cut on the way in ("title: removed markup"); not content.
    _cleaning: list[str] = PrivateAttr(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        problem = id_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v) or len(v) > MAX_URL_CHARS:
            raise ValueError("url must be an absolute http(s) URL of at most 2,048 characters")
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = text_field(v)
        if not v:
            raise ValueError("title is empty")
        return _bounded("title", v, MAX_TITLE_CHARS)

    @field_validator("summary")
    @classmethod
    def _summary(cls, v: str) -> str:
        return _bounded("summary", text_field(v), MAX_SUMMARY_CHARS)

    @field_validator("content_html")
    @classmethod
    def _content(cls, v: str) -> str:
        if len(v) > MAX_CONTENT_CHARS:
            raise ValueError(f"content_html is {len(v):,} characters; the limit is {MAX_CONTENT_CHARS:,}")
        return xml_text(v)

    @field_validator("section")
    @classmethod
    def _section(cls, v: str | None) -> str | None:
        return (_bounded("section", text_field(v), MAX_NAME_CHARS) or None) if v is not None else None

    @field_validator("authors", mode="before")
    @classmethod
    def _authors(cls, v: Any) -> Any:
        # Accept [{"name": ...}] as well as ["..."]: both appear in the wild.
        if isinstance(v, list):
            return [a.get("name") if isinstance(a, dict) else a for a in v]
        return v

    @field_validator("authors", "tags")
    @classmethod
    def _clean_list(cls, v: list[str], info) -> list[str]:
        out: list[str] = []
        for item in v:
            item = _bounded(info.field_name, text_field(item), MAX_NAME_CHARS)
            if item and item not in out:
                out.append(item)
        limit = MAX_AUTHORS if info.field_name == "authors" else MAX_TAGS
        if len(out) > limit:
            raise ValueError(f"{len(out)} {info.field_name}; the limit is {limit}")
        return out

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is not None and len(v) > 20:
            raise ValueError("language is longer than 20 characters")
        return v

    @field_validator("published_at")
    @classmethod
    def _published(cls, v: datetime) -> datetime:
        return _aware(v, "published_at")

    @field_validator("updated_at")
    @classmethod
    def _updated(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v, "updated_at")

    @model_validator(mode="after")
    def _defaults(self) -> "Article":
        source = self.id.partition(":")[0]
        if self.source is not None and self.source != source:
            raise ValueError(f"source {self.source!r} does not match the id's prefix {source!r}")
        object.__setattr__(self, "source", source)
        if self.updated_at is None or self.updated_at < self.published_at:
            object.__setattr__(self, "updated_at", self.published_at)
        return self

    # -- derived ------------------------------------------------------------------

    @property
    def cleaning_notes(self) -> list[str]:
        """What was removed or cut when this article came in, one note per field and kind
        (e.g. "content_html: removed <img onerror>"); empty when nothing was."""
        return list(self._cleaning)

    @property
    def version(self) -> str:
        """Hash of what destinations see; whitespace-only and bookkeeping changes do not count."""
        visible = {
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "content_html": _TAG_GAP_RE.sub("><", fold_whitespace(self.content_html)),
            "authors": self.authors,
            "section": self.section,
            "tags": self.tags,
            "image": self.image.model_dump() if self.image else None,
            "language": self.language,
            "published_at": self.published_at.isoformat(),
        }
        blob = json.dumps(visible, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def data(self) -> dict:
        """The article as partners receive it (`data` of a webhook message)."""
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "content_html": self.content_html,
            "authors": list(self.authors),
            "section": self.section,
            "tags": list(self.tags),
            "image": self.image.model_dump() if self.image else None,
            "language": self.language,
            "published_at": iso(self.published_at),
            "updated_at": iso(self.updated_at),
            "version": self.version,
        }

    def row_values(self) -> dict:
        return {
            "id": self.id,
            "source": self.source,
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "content_html": self.content_html,
            "authors": list(self.authors),
            "section": self.section,
            "tags": list(self.tags),
            "image": self.image.model_dump() if self.image else None,
            "language": self.language,
            "published_at": self.published_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "version": self.version,
        }

    @classmethod
    def from_row(cls, row) -> "Article":
        return cls(
            id=row.id,
            url=row.url,
            title=row.title,
            summary=row.summary,
            content_html=row.content_html,
            authors=row.authors or [],
            section=row.section,
            tags=row.tags or [],
            image=row.image,
            language=row.language,
            published_at=row.published_at,
            updated_at=row.updated_at,
            status=row.status,
        )


class ArticleInputError(ValueError):
    """An article that cannot be accepted; `problems` name the field and what is wrong.
    `article_id` is the item's id when it had a usable one (for the rejection record)."""

    def __init__(self, where: str, problems: list[str], article_id: str | None = None):
        self.where = where
        self.problems = problems
        self.article_id = article_id
        super().__init__(f"{where}: " + "; ".join(problems))


def _item_id(data: Any) -> str | None:
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and id_problem(value) is None else None


def parse_article(data: Any, where: str, *, now: datetime | None = None) -> Article:
    """Clean and validate one article JSON object; raise ArticleInputError naming each bad field.

    Markup and unsafe characters in text fields, credentials in URLs, over-long text and
    unusable optional values are cleaned, each with a note in `cleaning_notes`."""
    if not isinstance(data, dict):
        raise ArticleInputError(where, [f"expected a JSON object, got {type(data).__name__}"])
    notes: list[str] = []
    problems: list[str] = []
    cleaned = clean_input(data, notes, problems)
    article = None
    try:
        article = Article.model_validate(cleaned)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(article)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            elif err["type"] == "missing":
                msg = "required field is missing"
            problem = f"{field}: {msg}"
            if not any(p.startswith(field + ":") for p in problems):
                problems.append(problem)
    if article is not None:
        latest = (now or datetime.now(timezone.utc)) + FUTURE_TOLERANCE
        for field in ("published_at", "updated_at"):
            value = getattr(article, field)
            if value > latest:
                problems.append(f"{field}: {iso(value)} is in the future; at most "
                                f"{FUTURE_TOLERANCE.days} day ahead is accepted")
    if problems:
        raise ArticleInputError(where, problems, _item_id(data))
    assert article is not None
    article._cleaning = list(dict.fromkeys(notes))
    return article


def read_article_file(text: str, where: str) -> list[Article | ArticleInputError]:
    """An article JSON file (one object, or a list of objects): each item parsed on its own,
    so one bad item does not stop the others, whatever goes wrong with it."""
    try:
        data = load_json(text)
    except ValueError as exc:
        return [ArticleInputError(where, [str(exc)])]
    if not isinstance(data, list):
        data, label = [data], (lambda i: where)
    else:
        label = lambda i: f"{where}[{i}]"  # noqa: E731
    if not data:
        return [ArticleInputError(where, ["the file holds an empty list"])]
    results: list[Article | ArticleInputError] = []
    for i, item in enumerate(data):
        try:
            results.append(parse_article(item, label(i)))
        except ArticleInputError as exc:
            results.append(exc)
        except Exception as exc:  # noqa: BLE001 - one item's surprise must not stop the others
            results.append(ArticleInputError(label(i), [f"could not be read ({type(exc).__name__}: "
                                                        f"{str(exc)[:200]})"], _item_id(item)))
    return results


def last_per_id(articles: list[Article]) -> tuple[list[Article], list[str]]:
    """The last version of each id given in one batch, and the ids given more than once.

    Two versions of one story in one batch are one change: storing both would make an
    `article.updated` that supersedes the `article.published` still waiting to go out."""
    last: dict[str, Article] = {}
    repeated: list[str] = []
    for article in articles:
        if article.id in last:
            repeated.append(article.id)
            del last[article.id]  # keep the order of the last occurrences
        last[article.id] = article
    return list(last.values()), list(dict.fromkeys(repeated))
