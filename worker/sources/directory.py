"""Drop-folder source (`type = "directory"`, `path = "var/incoming"`).

Every `*.json` file in the folder (not in its subfolders) is one batch: an article in the
`syndicate ingest` schema, a list of them, or an IPTC ninjs 2.x document. Once its
articles are stored, the file moves to `done/`; a file with anything that could not be
read moves to `failed/` with `<name>.error` beside it saying what and where (its readable
articles are still stored). So nothing is read twice and nothing is lost: if the process
dies between storing and moving, the file is read again and its unchanged versions make
no new event.

Files are taken oldest first (a correction dropped after its story lands after it), and
only once they have not changed for `SETTLE` seconds, so a file still being copied in is
not read half-written. A ninjs document `embargoed` until a later time stays in the
folder until then.

A file makes only ids of this source (`<name>:...`): an `id` without a source part gets
this source's, one with another source's (`wp:102`) is refused, so a file dropped here
can never overwrite or withdraw another source's story. Whatever goes wrong with one file
or one item (unreadable, not JSON, nested too deeply, a field no check foresaw) is
recorded and filed away, and the next file is read.
"""

from __future__ import annotations

import html
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from config import SourceConfig
from worker.article_input import load_json
from worker.sanitize import printable
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
    parse_utc,
    unexpected,
)

log = logging.getLogger("syndicate.sources.directory")

SETTLE = 2.0  # seconds a file must be unchanged before it is read
MAX_FILE_BYTES = 20_000_000


class DirectorySource(Source):
    def __init__(self, config: SourceConfig):
        super().__init__(config)
        assert config.path
        self.root = Path(config.path)
        self.done = self.root / "done"
        self.failed = self.root / "failed"

    def describe_cursor(self, cursor: dict) -> str:
        return f"folder {self.root}"

    def poll(self, cursor: dict, context: SourceContext) -> Iterator[Batch]:
        try:
            # A drop folder that is not there yet is made, so a fresh deployment is ready for files.
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SourceError(f"directory {self.root} cannot be created: {exc.strerror}", permanent=True) from None
        if not self.root.is_dir():
            raise SourceError(f"directory {self.root} does not exist or is not a directory", permanent=True)
        try:
            self.done.mkdir(exist_ok=True)
            self.failed.mkdir(exist_ok=True)
            candidates = [p for p in self.root.iterdir()
                          if p.suffix.lower() == ".json" and not p.name.startswith(".") and p.is_file()]
        except OSError as exc:
            raise SourceError(f"directory {self.root}: {exc}") from None
        stamped = []
        for path in candidates:
            try:
                stamped.append((path.stat().st_mtime, path.name, path))
            except FileNotFoundError:
                continue  # taken by someone else meanwhile
        now = time.time()
        for mtime, _, path in sorted(stamped):
            if now - mtime < SETTLE:
                continue  # still being written; next poll
            context.heartbeat()
            try:
                batch = self.read_file(path, context)
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - one file's surprise must not stop the folder
                reason = unexpected(exc, f"source={self.name} {path}", log)
                batch = Batch(rejections=[Rejection(path.name, reason, where=str(path))])
                batch.after_commit = lambda path=path, reason=reason: self._file_away(path, [reason])
            if batch is not None:
                yield batch

    # -- one file ---------------------------------------------------------------------

    def read_file(self, path: Path, context: SourceContext) -> Batch | None:
        where = str(path)
        batch = Batch()
        problems: list[str] = []
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc}") from None
        items: list[Any] = []
        if len(raw) > MAX_FILE_BYTES:
            problems.append(f"the file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}")
        else:
            try:
                data = load_json(raw.decode("utf-8-sig"))
                items = data if isinstance(data, list) else [data]
                if not items:
                    problems.append("the file holds an empty list")
            except UnicodeDecodeError as exc:
                problems.append(f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            batch.rejections.append(Rejection(path.name, problems[0], where=where))
        held = False
        for index, item in enumerate(items):
            label = where if len(items) == 1 else f"{where}[{index}]"
            upstream: str | None = None
            article_id: str | None = None
            try:
                upstream = _item_id(item)
                article_id = self.article_id(upstream) if upstream else None
                if _is_ninjs(item):
                    embargo = _embargo(item)
                    if embargo is not None and embargo > context.now:
                        log.info("source=%s %s is embargoed until %s; left in the folder until then",
                                 self.name, printable(label), embargo.isoformat())
                        held = True
                        continue
                    article = self.from_ninjs(item, label)
                elif isinstance(item, dict):
                    article = build_article(self.own_id(item), label)
                else:
                    raise InputProblem(f"expected a JSON object, got {type(item).__name__}")
                batch.articles.append(article)
            except Exception as exc:  # noqa: BLE001 - one item never stops the others
                reason = str(exc) if isinstance(exc, InputProblem) else unexpected(exc, label, log)
                problems.append(f"{label}: {reason}")
                batch.rejections.append(Rejection(upstream or f"{path.name}[{index}]", reason, where=label,
                                                  article_id=article_id))
        if held and not batch.articles and not batch.rejections:
            return None
        if held:
            # A file mixing embargoed and ready items: store the ready ones, keep the file.
            return batch
        batch.after_commit = lambda: self._file_away(path, problems)
        return batch

    def _file_away(self, path: Path, problems: list[str]) -> None:
        target_dir = self.failed if problems else self.done
        target = target_dir / path.name
        if target.exists():
            target = target_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{path.suffix}"
        try:
            if problems:
                note = Path(str(target) + ".error")
                note.write_text(f"{path.name} was not (fully) accepted by source {self.name!r} "
                                f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}:\n"
                                + "\n".join(f"- {p}" for p in problems)
                                + "\nItems not listed here were stored. Fix the file and drop it in again.\n",
                                encoding="utf-8")
            os.replace(path, target)
        except FileNotFoundError:
            return  # moved by another process already
        except OSError as exc:
            # Stored but not moved: it will be read again, which changes nothing.
            log.error("source=%s cannot move %s to %s: %s", self.name, printable(path), target_dir, exc)
            return
        if problems:
            log.warning("source=%s %s moved to failed/ (%d problem(s), see %s.error)", self.name,
                        printable(path.name), len(problems), printable(target.name))
        else:
            log.info("source=%s %s moved to done/", self.name, printable(path.name))

    def own_id(self, item: dict) -> dict:
        """The item with an id of this source: a bare id gets this source's name; another
        source's id is refused (a drop folder must not overwrite or withdraw `wp:102`)."""
        value = item.get("id")
        if not isinstance(value, str):
            return item
        prefix, sep, _ = value.partition(":")
        if not sep:
            return dict(item, id=self.article_id(value))
        if prefix != self.name:
            raise InputProblem(f"id: {printable(value, 80)!r} belongs to source {printable(prefix, 40)!r}; "
                               f"a file in this folder makes ids \"{self.name}:...\" (or give the id "
                               "without a source part)")
        return item

    # -- ninjs 2.x ---------------------------------------------------------------------

    def from_ninjs(self, doc: dict, where: str):
        if "headline" in doc or "body_html" in doc or "body_text" in doc:
            raise InputProblem("a ninjs 1.x document (headline/body_html); only ninjs 2.x "
                               "(headlines/bodies) is read")
        uri = doc.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise InputProblem("uri is missing")
        headline = _pick(doc.get("headlines"), ("main", "headline", None))
        if headline is None:
            raise InputProblem("headlines is missing or empty: a story needs a headline")
        title = _as_html_text(headline)
        description = _pick(doc.get("descriptions"), ("summary", "abstract", "teaser", "lead", None))
        body = _pick(doc.get("bodies"), ("main", None), prefer_type="text/html")
        body_html = ""
        if body is not None:
            value = bounded_body("bodies", body.get("value"))
            if "html" in str(body.get("contenttype") or "text/html"):
                body_html = value
            else:
                body_html = "".join(f"<p>{html.escape(p.strip())}</p>" for p in value.split("\n\n") if p.strip())
        first = doc.get("firstcreated") or doc.get("versioncreated")
        published = parse_utc(first, "firstcreated", naive_is_utc=False)
        updated = parse_utc(doc["versioncreated"], "versioncreated", naive_is_utc=False) \
            if doc.get("versioncreated") else published
        subjects = [s for s in _list(doc.get("subjects")) if isinstance(s, dict) and isinstance(s.get("name"), str)]
        section = next((s["name"] for s in subjects if str(s.get("rel") or "").lower() in ("section", "department")),
                       None)
        data = {
            "id": self.article_id(_short_id(uri)),
            "url": _web_url(doc),
            "title": title,
            "summary": _as_html_text(description) if description else "",
            "content_html": body_html,
            "authors": [as_html_text(a) for a in _authors(doc)],
            "section": as_html_text(section) if section is not None else None,
            "tags": [as_html_text(s["name"]) for s in subjects if s["name"] != section],
            "image": _image(doc),
            "language": doc.get("language") if isinstance(doc.get("language"), str) else None,
            "published_at": published,
            "updated_at": max(updated, published),
            "status": "published" if doc.get("pubstatus", "usable") == "usable" else "unpublished",
        }
        return build_article(data, where)


def _is_ninjs(item: Any) -> bool:
    if not isinstance(item, dict) or "uri" not in item:
        return False
    standard = item.get("standard") if isinstance(item.get("standard"), dict) else {}
    return ("ninjs" in str(item.get("$schema", "")) or standard.get("name") == "ninjs"
            or any(k in item for k in ("headlines", "bodies", "descriptions", "headline", "body_html")))


def _item_id(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if _is_ninjs(item):
        return _short_id(item["uri"]) if isinstance(item.get("uri"), str) else None
    value = item.get("id")
    return value.partition(":")[2] or value if isinstance(value, str) else None


def _short_id(uri: str) -> str:
    import hashlib

    uri = " ".join(uri.split())
    # Article ids are at most 300 characters with the source name; keep long URIs recognisable.
    return uri if len(uri) <= 200 else uri[:150] + "~" + hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _embargo(doc: dict) -> datetime | None:
    if not doc.get("embargoed"):
        return None
    try:
        return parse_utc(doc["embargoed"], "embargoed", naive_is_utc=False)
    except InputProblem:
        return None  # an unreadable embargo is reported by the date checks below


def _pick(entries: Any, roles: tuple, prefer_type: str | None = None) -> dict | None:
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("value"), str) and e["value"].strip()]
    if prefer_type:
        typed = [e for e in entries if prefer_type in str(e.get("contenttype") or prefer_type)]
        entries = typed or entries
    for role in roles:
        for entry in entries:
            if role is None or str(entry.get("role") or "").lower() == role:
                return entry
    return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _as_html_text(entry: dict) -> str:
    """A ninjs text value in the form the article schema reads (HTML text)."""
    value = entry.get("value") or ""
    return value if "html" in str(entry.get("contenttype") or "") else as_html_text(value)


def _web_url(doc: dict) -> str:
    uri = doc.get("uri") or ""
    if uri.startswith(("http://", "https://")):
        return uri
    for alt in _list(doc.get("altids")):
        if isinstance(alt, dict) and str(alt.get("role") or "").lower() in ("url", "web", "canonical", "link") \
                and isinstance(alt.get("value"), str) and alt["value"].startswith(("http://", "https://")):
            return alt["value"]
    for rendition in _list(doc.get("renditions")):
        if isinstance(rendition, dict) and "html" in str(rendition.get("contenttype") or "") \
                and isinstance(rendition.get("href"), str) and rendition["href"].startswith(("http://", "https://")):
            return rendition["href"]
    raise InputProblem("no web address: uri is not an http(s) URL and no altids entry with role \"url\" "
                       "or text/html rendition gives one")


def _authors(doc: dict) -> list[str]:
    people = [p["name"] for p in _list(doc.get("people"))
              if isinstance(p, dict) and isinstance(p.get("name"), str)
              and str(p.get("rel") or "").lower() in ("author", "creator", "writer", "byline")]
    if people:
        return people
    by = doc.get("by")
    return [by] if isinstance(by, str) and by.strip() else []


def _dimension(value: Any) -> int | None:
    """A rendition's width or height when it is a sane whole number; anything else is no size."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 1 <= value <= 100_000 else None


def _image(doc: dict) -> dict | None:
    for assoc in _list(doc.get("associations")):
        if not isinstance(assoc, dict):
            continue
        if assoc.get("type", "picture") != "picture" and "image" not in str(assoc.get("name") or ""):
            continue
        renditions = [r for r in _list(assoc.get("renditions"))
                      if isinstance(r, dict) and isinstance(r.get("href"), str)
                      and r["href"].startswith(("http://", "https://"))]
        if not renditions:
            continue
        best = max(renditions, key=lambda r: _dimension(r.get("width")) or 0)
        alt = _pick(assoc.get("descriptions"), ("alt", "caption", None)) or _pick(assoc.get("headlines"), (None,))
        return {"url": best["href"], "alt": _as_html_text(alt) if alt else "",
                "width": _dimension(best.get("width")), "height": _dimension(best.get("height"))}
    return None
