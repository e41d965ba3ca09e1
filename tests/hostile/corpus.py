"""The hostile corpus: malformed and adversarial articles, each with what must happen to it.

One list serves `syndicate ingest` and the directory source (article JSON); the WordPress
and feed corpora are in their own tests, in their own shapes. A case is *cleaned* (the
story is stored, and `check` holds for it) or *refused* (no article; the reason names the
field, contains `fragment`). Every case's id is `<prefix>:<case name>`, so the tests know
which stored article came from which case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.conftest import REPO

EXAMPLE = json.loads((REPO / "examples" / "article.json").read_text())
DIGITS = "9" * 5000


@dataclass(frozen=True)
class Case:
    name: str
    changes: dict = field(default_factory=dict)
    refused: str | None = None  # a fragment of the refusal; None: cleaned and stored
    check: Callable[[Any], bool] | None = None  # on the stored ArticleRow
    raw: str | bytes | None = None  # the whole file instead of an article
    replace: tuple[str, str] | None = None  # text replaced in the JSON (numbers JSON cannot write)
    only: str | None = None  # "ingest" or "directory" when the outcome differs

    def article(self, prefix: str) -> dict:
        data = dict(EXAMPLE, id=f"{prefix}:{self.name}", url=f"https://london-news-net.example/{self.name}")
        data.update(self.changes)
        return {k: v for k, v in data.items() if v is not DROP}

    def file_content(self, prefix: str) -> str | bytes:
        if self.raw is not None:
            return self.raw
        text = json.dumps(self.article(prefix))  # ensure_ascii: a lone surrogate is written as \ud800
        if self.replace:
            text = text.replace(*self.replace)
        return text


DROP = object()  # a field left out


def _no(*needles: str) -> Callable[[Any], bool]:
    def check(row) -> bool:
        text = json.dumps([row.title, row.summary, row.authors, row.section, row.tags, row.image, row.content_html],
                          ensure_ascii=False).lower()
        return not any(n.lower() in text for n in needles)
    return check


ARTICLE_CASES: list[Case] = [
    # --- cleaned: markup and characters no destination can carry go, the story stays ---
    Case("title-bel", {"title": "Breaking\u0007 news"}, check=lambda r: r.title == "Breaking news"),
    Case("title-c1-csi", {"title": "Breaking\u009b news"}, check=lambda r: r.title == "Breaking news"),
    Case("title-noncharacter", {"title": "Breaking\ufffe news\U0001fffe"}, check=lambda r: r.title == "Breaking news"),
    Case("title-lone-surrogate", {"title": "Breaking\ud800 news"}, check=lambda r: r.title == "Breaking news"),
    Case("title-vertical-tab", {"title": "Breaking\x0bnews"}, check=lambda r: r.title == "Breaking news"),
    Case("title-nul", {"title": "Breaking\x00 news"}, check=lambda r: r.title == "Breaking news"),
    Case("title-script", {"title": "Story<script>alert(1)</script>"}, check=lambda r: r.title == "Story"),
    Case("title-img-onerror", {"title": "<img src=x onerror=alert(1)>Story"}, check=lambda r: r.title == "Story"),
    Case("title-escaped-tag", {"title": "Why &lt;b&gt; tags matter"}, check=lambda r: r.title == "Why <b> tags matter"),
    Case("title-entities-once", {"title": "AT&amp;amp;T"}, check=lambda r: r.title == "AT&amp;T"),
    Case("title-console-markup", {"title": "[/x] closing [bold]tag[/bold]"},
         check=lambda r: r.title == "[/x] closing [bold]tag[/bold]"),
    Case("title-long", {"title": "word " * 400}, check=lambda r: len(r.title) <= 1000 and r.title.endswith("…")),
    Case("summary-huge", {"summary": "lorem ipsum " * 500_000}, check=lambda r: len(r.summary) <= 10_000),
    Case("summary-handler", {"summary": '<p onclick="steal()">Sum</p>\u0085'}, check=lambda r: r.summary == "Sum"),
    Case("content-onerror", {"content_html": '<p>Body</p><img src="a.jpg" onerror="alert(1)">'},
         check=_no("onerror", "alert")),
    Case("content-javascript-link", {"content_html": '<p>See <a href=" JaVaScRiPt:alert(1)">this</a></p>'},
         check=_no("javascript")),
    Case("content-svg", {"content_html": '<p>x</p><svg onload=alert(1)><a xlink:href="javascript:1">y</a></svg>'},
         check=_no("<svg", "javascript", "onload")),
    Case("content-iframe-elsewhere", {"content_html": '<p>x</p><iframe src="https://evil.example/">f</iframe>'},
         check=_no("evil.example")),
    # lxml's HTML fragment parser fails an assertion on a frameset document (found by fuzzing).
    Case("content-frameset-iframe", {"content_html": "<html><frameset><iframe src='https://evil.example/'>x"},
         check=_no("evil.example")),
    Case("content-controls", {"content_html": "<p>a\x00b\x1bc\ud800d\ufffee</p>"},
         check=lambda r: "<p>abcde</p>" in r.content_html),
    Case("content-cdata-end", {"content_html": "<p>a ]]> b</p>"}, check=lambda r: "]]&gt;" in r.content_html),
    Case("authors-markup", {"authors": ["<script>x()</script>Jo", "\u0007Sam <b>Writer</b>"]},
         check=lambda r: r.authors == ["Jo", "Sam Writer"]),
    Case("authors-not-text", {"authors": [1, None, {"name": "Jo"}, ["x"], {"name": 5}]},
         check=lambda r: r.authors == ["Jo"]),
    Case("authors-too-many", {"authors": [f"Writer {i}" for i in range(80)]}, check=lambda r: len(r.authors) == 50),
    Case("authors-a-string", {"authors": "Jo Reporter"}, check=lambda r: r.authors == ["Jo Reporter"]),
    Case("tags-too-many", {"tags": [f"tag {i}" for i in range(150)]}, check=lambda r: len(r.tags) == 100),
    Case("tags-long", {"tags": ["t" * 500]}, check=lambda r: len(r.tags[0]) <= 200),
    Case("tags-markup", {"tags": ["<script>x</script>", "World\x0b", "<i>AI</i>"]},
         check=lambda r: r.tags == ["World", "AI"]),
    Case("section-markup", {"section": "<b>World</b>\u0007"}, check=lambda r: r.section == "World"),
    Case("section-not-text", {"section": {"name": "World"}}, check=lambda r: r.section is None),
    Case("section-long", {"section": "S" * 5000}, check=lambda r: len(r.section) <= 200),
    Case("image-alt-not-text", {"image": {"url": "https://img.example/a.jpg", "alt": {"x": 1}}},
         check=lambda r: r.image["alt"] == ""),
    Case("image-alt-markup", {"image": {"url": "https://img.example/a.jpg", "alt": "<script>x</script>Alt\x01"}},
         check=lambda r: r.image["alt"] == "Alt"),
    Case("image-width-infinity", {"image": {"url": "https://img.example/a.jpg", "width": float("inf"),
                                            "height": float("nan")}},
         check=lambda r: r.image["width"] is None and r.image["height"] is None),
    Case("image-width-5000-digits", {"image": {"url": "https://img.example/a.jpg", "width": 12345}},
         replace=("12345", DIGITS), check=lambda r: r.image["width"] is None),
    Case("image-width-negative", {"image": {"url": "https://img.example/a.jpg", "width": -5, "height": True}},
         check=lambda r: r.image["width"] is None and r.image["height"] is None),
    Case("image-url-credentials", {"image": {"url": "https://user:secret@img.example/a.jpg"}},
         check=lambda r: r.image["url"] == "https://img.example/a.jpg"),
    Case("image-url-bad-host", {"image": {"url": "https://img example/a.jpg"}}, check=lambda r: r.image is None),
    Case("image-url-javascript", {"image": {"url": "javascript:alert(1)"}}, check=lambda r: r.image is None),
    Case("image-not-an-object", {"image": "https://img.example/a.jpg"}, check=lambda r: r.image is None),
    Case("url-credentials", {"url": "https://editor:hunter2@london-news-net.example/a"},
         check=lambda r: r.url == "https://london-news-net.example/a"),
    Case("url-space-in-path", {"url": "https://london-news-net.example/a story"},
         check=lambda r: r.url == "https://london-news-net.example/a%20story"),
    Case("language-not-a-tag", {"language": "english <script>"}, check=lambda r: r.language is None),
    Case("updated-before-published", {"updated_at": "2001-01-01T00:00:00Z"},
         check=lambda r: r.updated_at == r.published_at),
    Case("null-optionals", {"summary": None, "authors": None, "tags": None, "content_html": None},
         check=lambda r: r.summary == "" and r.authors == [] and r.tags == []),
    # --- refused: what cannot become an article ---
    Case("id-newline", {"id": "X:a\nsource=forged upstream_id=1 rejected"}, refused="id: contains control character"),
    Case("id-too-long", {"id": "X:" + "x" * 400}, refused="characters; the limit is 300"),
    Case("id-missing", {"id": DROP}, refused="id: required field is missing"),
    Case("id-not-text", {"id": 102}, refused="id: Input should be a valid string"),
    Case("title-empty-after-cleaning", {"title": "<script>alert(1)</script>\u0007"},
         refused="title: empty after cleaning"),
    Case("title-missing", {"title": DROP}, refused="title: required field is missing"),
    Case("title-not-text", {"title": ["a"]}, refused="title: Input should be a valid string"),
    Case("title-5000-digits", {"title": 12345}, replace=("12345", DIGITS), refused="title: Input should be"),
    Case("url-host-space", {"url": "https://london news.example/a"}, refused="url: host 'london news.example'"),
    Case("url-port-99999", {"url": "https://london-news-net.example:99999/a"}, refused="url: is not a valid URL"),
    Case("url-javascript", {"url": "javascript:alert(1)"}, refused="url: must be an absolute http(s) URL"),
    Case("url-too-long", {"url": "https://london-news-net.example/" + "a" * 3000},
         refused="url: is 3,032 characters; the limit is 2,048"),
    Case("url-control", {"url": "https://london-news-net.example/a\x00b"}, refused="url: contains control character"),
    Case("published-overflows-utc", {"published_at": "9999-12-31T23:59:59-05:00"},
         refused="published_at: published_at is out of range"),
    Case("published-year-9999", {"published_at": "9999-12-31T00:00:00Z"}, refused="is in the future"),
    Case("published-naive", {"published_at": "2026-11-26T09:00:00"}, refused="published_at: published_at needs a UTC"),
    Case("published-garbage", {"published_at": "yesterday"}, refused="published_at: Input should be"),
    Case("published-1969", {"published_at": "1969-07-20T20:17:00Z"}, refused="before 1970-01-01"),
    Case("updated-year-9999", {"updated_at": "9999-01-01T00:00:00Z"}, refused="updated_at: 9999-01-01T00:00:00Z"),
    Case("content-too-big", {"content_html": "x" * 2_000_001}, refused="the limit is 2,000,000"),
    Case("unknown-field", {"colour": "red"}, refused="colour: unknown field"),
    Case("status-unknown", {"status": "deleted"}, refused="status: Input should be"),
    Case("source-mismatch", {"source": "other"}, refused="does not match the id's prefix"),
    # --- files that are not articles ---
    Case("raw-nested-10000-deep", raw="[" * 10_000 + "]" * 10_000, refused="nested too deeply"),
    Case("raw-not-json", raw='{"id": "x:1", "title": ', refused="not valid JSON"),
    Case("raw-not-utf8", raw=b'{"title": "caf\xe9"}', refused="UTF-8"),
    Case("raw-empty-list", raw="[]", refused="empty list"),
    Case("raw-a-string", raw='"just a string"', refused="expected a JSON object, got str"),
    Case("raw-null", raw="null", refused="expected a JSON object, got NoneType"),
    Case("raw-list-of-a-number", raw="[1]", refused="expected a JSON object, got int"),
    Case("raw-empty-file", raw="", refused="not valid JSON"),
]

# The directory source: ids are its own, whatever the file says.
DIRECTORY_ONLY: list[Case] = [
    Case("other-sources-id", {"id": "wp:102", "status": "unpublished"}, refused="belongs to source 'wp'"),
    Case("bare-id", {"id": "bare-id"}, check=lambda r: r.id.endswith(":bare-id")),
]
# `ingest` is the operator's tool: any source's id is theirs to write, but it needs one.
INGEST_ONLY: list[Case] = [
    Case("bare-id", {"id": "no-source-part"}, refused='id: expected "<source name>:<upstream id>"'),
    Case("id-bad-source-part", {"id": "my source:1"}, refused="id: the source part 'my source'"),
]


def with_prefix(case: Case, prefix: str) -> Case:
    """The case with its id's `X:` placeholder made the path's prefix."""
    if isinstance(case.changes.get("id"), str) and case.changes["id"].startswith("X:"):
        return Case(case.name, dict(case.changes, id=prefix + case.changes["id"][1:]), case.refused, case.check,
                    case.raw, case.replace, case.only)
    return case


def text_is_safe(row) -> list[str]:
    """What no stored article may carry, whatever came in: unsafe characters in any text
    field, markup that runs code, credentials in a URL, unbounded fields."""
    from worker.sanitize import has_unsafe_characters

    problems = []
    texts = [row.title, row.summary, row.section or "", *row.authors, *row.tags,
             (row.image or {}).get("alt") or ""]
    for text in texts:
        if has_unsafe_characters(text):
            problems.append(f"unsafe character in {text[:40]!r}")
        if any(n in text.lower() for n in ("<script", "onerror=", "onclick=", "javascript:")):
            problems.append(f"markup in {text[:40]!r}")
    for url in (row.url, (row.image or {}).get("url") or ""):
        if "@" in url.split("/")[2] if url.count("/") >= 2 else False:
            problems.append(f"credentials in {url!r}")
        if len(url) > 2048:
            problems.append("url over 2,048")
    if len(row.title) > 1000 or len(row.summary) > 10_000 or len(row.tags) > 100 or len(row.authors) > 50:
        problems.append("a field over its bound")
    return problems
