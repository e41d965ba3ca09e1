"""Post text for social channels: a template filled from the article, fitted to a
platform's limit *as that platform counts it*, cut where a person would cut.

- Placeholders: `{title}` `{summary}` `{url}` `{section}` `{hashtags}` `{author}`.
- Text fields are the article's plain text, cleaned once when stored (markup removed,
  entities decoded), so no reader sees `&#8217;`; nothing is decoded a second time here.
- Hashtags come from the tags: multi-word tags in CamelCase ("climate change" →
  `#ClimateChange`), characters a platform would not link dropped, all-digit tags
  skipped, duplicates (case-insensitively) once.
- Fitting: the summary shrinks first (and goes when little is left), then hashtags are
  dropped from the end, then the title is cut. A cut falls on a word boundary where
  there is one nearby (else on a grapheme boundary: CJK, long words), never inside the
  URL, a hashtag or a grapheme (emoji with skin tones, flags, ZWJ sequences, combining
  marks), and ends with an ellipsis.
- Counting: `graphemes` (Bluesky), `mastodon_length` (graphemes, every URL Mastodon
  links as a fixed weight), `utf16_length` (Telegram, Facebook, Threads), `x_length`
  (X's weighted count, by the `twitter-text-parser` implementation of X's rules).
Grapheme clusters come from the `regex` module's `\\X` (Unicode's extended grapheme
clusters, kept current with each Unicode release).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import regex

ELLIPSIS = "…"
_GRAPHEME = regex.compile(r"\X")
_URL_RE = re.compile(r"https?://[^\s<>\"]+")
_TAG_RE = re.compile(r"<[^>]*>")
_PLACEHOLDER_RE = re.compile(r"\{(title|summary|url|section|hashtags|author)\}")
# Summaries shorter than this after cutting are dropped rather than posted as a stub.
MIN_SUMMARY = 40

Counter = Callable[[str], int]


# --- counting -------------------------------------------------------------------------

def grapheme_list(text: str) -> list[str]:
    return _GRAPHEME.findall(text)


def graphemes(text: str) -> int:
    """User-perceived characters (Unicode extended grapheme clusters): Bluesky's count."""
    return len(_GRAPHEME.findall(text))


def utf16_length(text: str) -> int:
    """UTF-16 code units: what Telegram (and JavaScript-based limits) count."""
    return len(text.encode("utf-16-le")) // 2


def mastodon_length(text: str, url_weight: int = 23) -> int:
    """Mastodon's count: graphemes, with every URL Mastodon links counting `url_weight`.

    Mastodon finds URLs with twitter-text's extractor (scheme required): a URL whose host
    has no real top-level domain (`.example`, a bare IP) is not linked and counts in full,
    and trailing punctuation ("….") is not part of the URL."""
    if "://" not in text:
        return graphemes(text)
    from twitter_text import extract_urls_with_indices

    total, last = 0, 0
    for found in extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = found["indices"]
        total += graphemes(text[last:start]) + url_weight
        last = end
    return total + graphemes(text[last:])


def x_length(text: str) -> int:
    """X's weighted length (most CJK and emoji count 2, every URL 23)."""
    from twitter_text import parse_tweet

    return parse_tweet(text).weightedLength


def utf8_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The UTF-8 byte offsets of text[start:end] (Bluesky facets index bytes)."""
    return len(text[:start].encode()), len(text[:end].encode())


# --- cleaning -------------------------------------------------------------------------

def plain(value) -> str:
    """Text for a post from a stored text field: controls removed, whitespace folded.

    Stored text fields are already plain text — markup removed and entities decoded once
    when the article was stored (`worker/article_input.py`) — so nothing here decodes or
    strips again: a title about `<b>` tags, or one that says `&amp;` on purpose, keeps
    its words."""
    if value is None:
        return ""
    text = "".join(ch for ch in str(value) if _keep(ch))
    return " ".join(text.split())


def _keep(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat == "Cc":
        return ch in "\n\t"
    if cat == "Cs" or cat == "Cn" and (0xFDD0 <= ord(ch) <= 0xFDEF or ord(ch) & 0xFFFE == 0xFFFE):
        return False
    return True


def hashtag(tag: str) -> str | None:
    """`#CamelCase` from a tag, or None when nothing linkable is left."""
    words = re.split(r"[\s\-_/.,:;'’&+]+", plain(tag))
    parts = []
    for word in words:
        # Keep letters, digits and combining marks: what platforms link in a hashtag.
        kept = "".join(ch for ch in word if unicodedata.category(ch)[0] in "LNM")
        if kept:
            parts.append(kept[0].upper() + kept[1:] if len(words) > 1 else kept)
    name = "".join(parts)
    if not name or name.isdigit() or unicodedata.category(name[0]) == "Mn":
        return None
    return "#" + name


def hashtags(tags: list[str] | None) -> list[str]:
    seen, out = set(), []
    for tag in tags or []:
        h = hashtag(tag)
        if h and h.lower() not in seen:
            seen.add(h.lower())
            out.append(h)
    return out


def authors_text(authors) -> str:
    names = []
    for a in authors or []:
        name = plain(a.get("name") if isinstance(a, dict) else a)
        if name:
            names.append(name)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


# --- cutting --------------------------------------------------------------------------

def cut(text: str, keep: int) -> str:
    """`text` shortened to at most `keep` graphemes *before* the ellipsis, at a word boundary
    when one is in the last third, else at a grapheme boundary; with the ellipsis."""
    g = grapheme_list(text)
    if len(g) <= keep:
        return text
    if keep <= 0:
        return ""
    head = g[:keep]
    # A word boundary: the last whitespace grapheme, if it leaves at least 2/3 of the room.
    for i in range(len(head) - 1, max(0, keep * 2 // 3) - 1, -1):
        if head[i].isspace():
            head = head[:i]
            break
    out = "".join(head).rstrip()
    out = out.rstrip(",;:—–-").rstrip()
    return out + ELLIPSIS


@dataclass
class PostText:
    """A fitted post: its text, and where its link and hashtags are in it (characters)."""

    text: str
    url: str | None = None
    links: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, uri)
    tags: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, tag without #)
    truncated: bool = False

    def utf8_facets(self) -> tuple[list, list]:
        """(links, tags) with UTF-8 byte offsets."""
        return ([(*utf8_span(self.text, s, e), u) for s, e, u in self.links],
                [(*utf8_span(self.text, s, e), t) for s, e, t in self.tags])


def _fill(template: str, values: dict[str, str]) -> str:
    text = _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), ""), template)
    # Empty placeholders leave doubled spaces and blank edges.
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def compose(template: str, data: dict, *, limit: int, length: Counter, with_hashtags: bool = True,
            url: str | None = None) -> PostText:
    """Fill `template` from the article `data` and fit it within `limit` as `length` counts."""
    values = {
        "title": plain(data.get("title")),
        "summary": plain(data.get("summary")),
        "url": url if url is not None else (data.get("url") or ""),
        "section": plain(data.get("section")),
        "author": authors_text(data.get("authors")),
    }
    tags = hashtags(data.get("tags")) if with_hashtags else []
    values["hashtags"] = " ".join(tags)
    truncated = False

    def fits() -> bool:
        return length(_fill(template, values)) <= limit

    if not fits() and "{summary}" in template and values["summary"]:
        truncated = True
        values["summary"] = _shrink(template, values, "summary", limit, length)
        if graphemes(values["summary"]) < MIN_SUMMARY:
            values["summary"] = ""
    while not fits() and tags:
        truncated = True
        tags.pop()
        values["hashtags"] = " ".join(tags)
    if not fits() and values["title"]:
        truncated = True
        values["title"] = _shrink(template, values, "title", limit, length)
    for other in ("author", "section"):
        if not fits() and values[other]:
            values[other] = _shrink(template, values, other, limit, length)
    text = _fill(template, values)
    if length(text) > limit:
        # Only the URL is left too long for the platform: the post cannot be made shorter
        # without breaking the link; the transport's platform will refuse it.
        truncated = True
    return _locate(PostText(text=text, url=values["url"] or None, truncated=truncated), tags)


def _shrink(template: str, values: dict, key: str, limit: int, length: Counter) -> str:
    """The longest cut of values[key] with which the whole text fits (binary search)."""
    original = values[key]
    lo, hi = 0, graphemes(original)
    best = ""
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = cut(original, mid)
        trial = dict(values, **{key: candidate})
        if length(_fill(template, trial)) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def _locate(post: PostText, tags: list[str]) -> PostText:
    text = post.text
    if post.url:
        # The template's link is the last occurrence (a title may quote the URL too).
        start = text.rfind(post.url)
        if start >= 0:
            post.links.append((start, start + len(post.url), post.url))
    for tag in tags:
        for m in re.finditer(re.escape(tag) + r"(?![\w])", text):
            if m.start() == 0 or not (text[m.start() - 1].isalnum() or text[m.start() - 1] == "#"):
                post.tags.append((m.start(), m.end(), tag[1:]))
                break
    return post
