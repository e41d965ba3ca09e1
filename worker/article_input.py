"""The rules every input path's articles go through on the way in: what is cleaned (with
a note), what is cut (with a note), what is refused (naming the field and the limit).

Text fields (title, summary, authors, section, tags, image alt) are read as HTML text, as
WordPress's rendered fields and feeds give them: markup is removed and entities are
decoded, once; then characters no destination can carry (controls, lone surrogates,
noncharacters) are removed and whitespace folded. A source whose upstream gives plain
text escapes it first (`html.escape`), so its `<` and `&` come through as text.

| field | limit | over the limit |
| --- | --- | --- |
| id | 300 characters, source part 1-100 of `A-Z a-z 0-9 _ . -`, no control characters | refused |
| url, image.url | 2,048 characters, http(s), a valid host and port | refused (image: dropped) |
| title | 1,000 characters after cleaning; empty after cleaning | cut / refused |
| summary | 10,000 characters after cleaning | cut |
| content_html | 2,000,000 characters | refused |
| authors | 50 names of at most 200 characters | extra dropped / cut |
| tags | 100 tags of at most 200 characters | extra dropped / cut |
| section | 200 characters | cut |
| image.alt | 1,000 characters | cut |
| image.width/height | whole numbers 1-100,000 | dropped |
| language | a language tag of at most 20 characters | dropped |
| published_at, updated_at | 1970 to 1 day ahead of now, convertible to UTC | refused |

Cleaning never decides what is safe HTML in a body: `content_html` is sanitized where
articles are stored (`worker.pipeline.events.republishable`); here it is only bounded, stripped
of unsafe characters, and noted for what the sanitizer will remove that could run code.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from config.common import LANGUAGE_TAG_RE
from worker.sanitize import (
    MAX_URL_CHARS,
    clean_url,
    cut_text,
    executable_markup,
    has_unsafe_characters,
    plain_text,
)

MAX_ID_CHARS = 300
MAX_SOURCE_CHARS = 100
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 10_000
MAX_CONTENT_CHARS = 2_000_000
MAX_NAME_CHARS = 200  # an author, a tag, the section (feeds index terms up to 200 characters)
MAX_AUTHORS = 50
MAX_TAGS = 100
MAX_ALT_CHARS = 1_000
MAX_DIMENSION = 100_000
FUTURE_TOLERANCE = timedelta(days=1)
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Text longer than this is cut before it is cleaned: cleaning a 60 MB summary to keep its
# first 10,000 characters costs memory and time for nothing.
_RAW_TEXT_LIMIT = 200_000
# JSON numbers longer than this are not numbers any field could use (Python refuses
# integers over 4,300 digits with a ValueError; we say so per field instead).
_MAX_NUMBER_DIGITS = 100

SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# In an id: controls, line and paragraph separators, lone surrogates, noncharacters.
_ID_FORBIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def id_problem(value: str) -> str | None:
    """Why `value` cannot be an article id, or None."""
    source, sep, upstream = value.partition(":")
    if not sep or not source or not upstream:
        return 'expected "<source name>:<upstream id>", for example "wp:101"'
    if len(value) > MAX_ID_CHARS:
        return f"is {len(value):,} characters; the limit is {MAX_ID_CHARS}"
    if not SOURCE_NAME_RE.fullmatch(source):
        return (f"the source part {source[:40]!r} must be 1-100 letters, digits, '_', '.' or '-'")
    if m := _ID_FORBIDDEN_RE.search(value):
        return f"contains control character U+{ord(m.group()):04X} at position {m.start()}"
    if value != value.strip():
        return "starts or ends with whitespace"
    return None


def _bounded_int(text: str) -> int | float:
    # A number nobody can use becomes a value every field refuses as "not a whole number".
    return int(text) if len(text.lstrip("-")) <= _MAX_NUMBER_DIGITS else float("nan")


def load_json(text: str | bytes) -> Any:
    """JSON, or a ValueError that says what is wrong in one line: not JSON, nested too
    deeply, or a number too long to be one."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError("not readable JSON: nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not readable JSON: {str(exc)[:200]}") from None


# --- text --------------------------------------------------------------------------------

def clean_text(field: str, value: str, limit: int, notes: list[str]) -> str:
    """An HTML-text field as plain text, at most `limit` characters; notes say what went."""
    raw = value[:_RAW_TEXT_LIMIT] if len(value) > _RAW_TEXT_LIMIT else value
    text = plain_text(raw)
    if has_unsafe_characters(raw):
        notes.append(f"{field}: removed control characters")
    # Formatting (<p>, <em>) is how HTML text comes and goes without a word; markup that
    # could run code is worth telling the publisher about.
    notes += [f"{field}: removed {what}" for what in executable_markup(raw)]
    if len(text) > limit or len(value) > _RAW_TEXT_LIMIT:
        full = len(text) if len(value) <= _RAW_TEXT_LIMIT else len(value)
        text = cut_text(text, limit)
        notes.append(f"{field}: cut to {limit:,} characters (was {full:,})")
    return text


def _names(field: str, values: list, limit: int, notes: list[str], *, objects: bool) -> list[str]:
    out: list[str] = []
    dropped = 0
    for value in values:
        if objects and isinstance(value, dict):
            value = value.get("name")
        if not isinstance(value, str):
            dropped += 1
            continue
        name = clean_text(field, value, MAX_NAME_CHARS, notes)
        if name and name not in out:
            out.append(name)
    if dropped:
        notes.append(f"{field}: dropped {dropped} value(s) that were not text")
    if len(out) > limit:
        notes.append(f"{field}: kept the first {limit} of {len(out)}")
        out = out[:limit]
    return out


def _dimension(field: str, value: Any, notes: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DIMENSION:
        return value
    notes.append(f"{field}: dropped (not a whole number from 1 to {MAX_DIMENSION:,})")
    return None


def _image(value: Any, notes: list[str]) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        notes.append(f"image: dropped (expected an object, got {type(value).__name__})")
        return None
    image = dict(value)
    url = image.get("url")
    if not isinstance(url, str):
        notes.append("image: dropped (its url is missing or not text)")
        return None
    try:
        image["url"], url_notes = clean_url(url, limit=MAX_URL_CHARS)
    except ValueError as exc:
        notes.append(f"image: dropped (its url {exc})")
        return None
    notes += [f"image.url: {n}" for n in url_notes]
    alt = image.get("alt")
    if alt is not None and not isinstance(alt, str):
        notes.append("image.alt: dropped (not text)")
        alt = ""
    image["alt"] = clean_text("image.alt", alt or "", MAX_ALT_CHARS, notes)
    for key in ("width", "height"):
        if key in image:
            image[key] = _dimension(f"image.{key}", image[key], notes)
    return image


# --- the whole item -------------------------------------------------------------------------

def clean_input(data: dict, notes: list[str], problems: list[str]) -> dict:
    """`data` with every field cleaned or bounded; what cannot be is added to `problems`
    (each "field: what is wrong"), what was changed to `notes`. Values of the wrong type
    for a required field are left for the model to name."""
    out = dict(data)
    url = data.get("url")
    if isinstance(url, str):
        try:
            out["url"], url_notes = clean_url(url)
            notes += [f"url: {n}" for n in url_notes]
        except ValueError as exc:
            problems.append(f"url: {exc}")
    title = data.get("title")
    if isinstance(title, str):
        out["title"] = clean_text("title", title, MAX_TITLE_CHARS, notes)
        if not out["title"]:
            problems.append("title: empty after cleaning; a story needs a headline")
    if isinstance(data.get("summary"), str):
        out["summary"] = clean_text("summary", data["summary"], MAX_SUMMARY_CHARS, notes)
    elif data.get("summary") is None and "summary" in data:
        out["summary"] = ""
    body = data.get("content_html")
    if isinstance(body, str):
        if len(body) > MAX_CONTENT_CHARS:
            problems.append(f"content_html: {len(body):,} characters; the limit is {MAX_CONTENT_CHARS:,}")
        else:
            if has_unsafe_characters(body):
                notes.append("content_html: removed control characters")
            notes += [f"content_html: removed {what}" for what in executable_markup(body)]
    elif body is None and "content_html" in data:
        out["content_html"] = ""
    for field, limit, objects in (("authors", MAX_AUTHORS, True), ("tags", MAX_TAGS, False)):
        value = data.get(field)
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            out[field] = _names(field, value, limit, notes, objects=objects)
        elif value is not None:
            notes.append(f"{field}: dropped (expected a list, got {type(value).__name__})")
            out[field] = []
        elif field in data:
            out[field] = []
    section = data.get("section")
    if isinstance(section, str):
        out["section"] = clean_text("section", section, MAX_NAME_CHARS, notes) or None
    elif section is not None:
        notes.append(f"section: dropped (expected text, got {type(section).__name__})")
        out["section"] = None
    if "image" in data:
        out["image"] = _image(data["image"], notes)
    language = data.get("language")
    if language is not None and not (isinstance(language, str) and len(language) <= 20
                                     and LANGUAGE_TAG_RE.fullmatch(language)):
        notes.append("language: dropped (not a language tag such as \"en\" or \"pt-BR\")")
        out["language"] = None
    return out
