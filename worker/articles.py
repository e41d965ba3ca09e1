"""Articles: the one shape every source is turned into, and its content version.

An article id is `<source name>:<upstream id>`. The content version is a hash of
the fields a destination can see, with whitespace folded, so a change only in
whitespace or in bookkeeping fields (updated_at) is not an update.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_CONTENT_CHARS = 2_000_000
MAX_TITLE_CHARS = 1_000
# C0 controls other than tab/newline/CR, and DEL: no destination can carry them.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WS_RE = re.compile(r"\s+")
# Whitespace between tags is layout, not content (re-indenting the HTML is no update).
_TAG_GAP_RE = re.compile(r">\s+<")


def strip_controls(text: str) -> str:
    return _CONTROL_RE.sub("", text)


def fold_whitespace(text: str) -> str:
    return _WS_RE.sub(" ", text).strip()


class ArticleImage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    alt: str = ""
    width: int | None = Field(default=None, ge=1)
    height: int | None = Field(default=None, ge=1)

    @field_validator("url")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("image url must be an absolute http(s) URL")
        return v


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{field} needs a UTC offset (for example 2026-11-26T09:00:00Z)")
    return value.astimezone(timezone.utc)


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

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        source, sep, upstream = v.partition(":")
        if not sep or not source or not upstream or len(v) > 300:
            raise ValueError('expected "<source name>:<upstream id>", for example "wp:101"')
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("url must be an absolute http(s) URL")
        return v

    @field_validator("title")
    @classmethod
    def _title(cls, v: str) -> str:
        v = fold_whitespace(strip_controls(v))
        if not v:
            raise ValueError("title is empty")
        if len(v) > MAX_TITLE_CHARS:
            raise ValueError(f"title is longer than {MAX_TITLE_CHARS} characters")
        return v

    @field_validator("summary")
    @classmethod
    def _summary(cls, v: str) -> str:
        return fold_whitespace(strip_controls(v))

    @field_validator("content_html")
    @classmethod
    def _content(cls, v: str) -> str:
        if len(v) > MAX_CONTENT_CHARS:
            raise ValueError(f"content_html is {len(v):,} characters; the limit is {MAX_CONTENT_CHARS:,}")
        return strip_controls(v)

    @field_validator("authors", mode="before")
    @classmethod
    def _authors(cls, v: Any) -> Any:
        # Accept [{"name": ...}] as well as ["..."]: both appear in the wild.
        if isinstance(v, list):
            return [a.get("name") if isinstance(a, dict) else a for a in v]
        return v

    @field_validator("authors", "tags")
    @classmethod
    def _clean_list(cls, v: list[str]) -> list[str]:
        out: list[str] = []
        for item in v:
            item = fold_whitespace(strip_controls(item))
            if item and item not in out:
                out.append(item)
        return out

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
        if self.updated_at is None:
            object.__setattr__(self, "updated_at", self.published_at)
        return self

    # -- derived ------------------------------------------------------------------

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


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class ArticleInputError(ValueError):
    """An article that cannot be accepted; `problems` name the field and what is wrong."""

    def __init__(self, where: str, problems: list[str]):
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(problems))


def parse_article(data: Any, where: str) -> Article:
    """Validate one article JSON object; raise ArticleInputError naming each bad field."""
    if not isinstance(data, dict):
        raise ArticleInputError(where, [f"expected a JSON object, got {type(data).__name__}"])
    try:
        return Article.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(article)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            elif err["type"] == "missing":
                msg = "required field is missing"
            problems.append(f"{field}: {msg}")
        raise ArticleInputError(where, problems) from None


def read_article_file(text: str, where: str) -> list[Article | ArticleInputError]:
    """An article JSON file (one object, or a list of objects): each item parsed on its own,
    so one bad item does not stop the others."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [ArticleInputError(where, [f"not valid JSON: {exc}"])]
    if not isinstance(data, list):
        data, label = [data], (lambda i: where)
    else:
        label = lambda i: f"{where}[{i}]"  # noqa: E731
    results: list[Article | ArticleInputError] = []
    for i, item in enumerate(data):
        try:
            results.append(parse_article(item, label(i)))
        except ArticleInputError as exc:
            results.append(exc)
    return results
