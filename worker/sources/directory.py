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
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from config import SourceConfig
from worker.articles import MAX_CONTENT_CHARS
from worker.sources.base import (
    Batch,
    InputProblem,
    Rejection,
    Source,
    SourceContext,
    SourceError,
    build_article,
    check_controls,
    checked_article_data,
    checked_body,
    html_to_text,
    parse_utc,
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
            batch = self.read_file(path, context)
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
                data = json.loads(raw.decode("utf-8-sig"))
                items = data if isinstance(data, list) else [data]
                if not items:
                    problems.append("the file holds an empty list")
            except UnicodeDecodeError as exc:
                problems.append(f"not UTF-8 text ({exc.reason} at byte {exc.start})")
            except json.JSONDecodeError as exc:
                problems.append(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        if problems:
            batch.rejections.append(Rejection(path.name, problems[0], where=where))
        held = False
        for index, item in enumerate(items):
            label = where if len(items) == 1 else f"{where}[{index}]"
            upstream = _item_id(item)
            article_id = self.article_id(upstream) if upstream and _is_ninjs(item) else (
                item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else None)
            try:
                if _is_ninjs(item):
                    embargo = _embargo(item)
                    if embargo is not None and embargo > context.now:
                        log.info("source=%s %s is embargoed until %s; left in the folder until then",
                                 self.name, label, embargo.isoformat())
                        held = True
                        continue
                    article = self.from_ninjs(item, label)
                elif isinstance(item, dict):
                    article = build_article(checked_article_data(item), label)
                else:
                    raise InputProblem(f"expected a JSON object, got {type(item).__name__}")
                batch.articles.append(article)
            except InputProblem as exc:
                problems.append(f"{label}: {exc}")
                batch.rejections.append(Rejection(upstream or f"{path.name}[{index}]", str(exc), where=label,
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
            log.error("source=%s cannot move %s to %s: %s", self.name, path, target_dir, exc)
            return
        if problems:
            log.warning("source=%s %s moved to failed/ (%d problem(s), see %s.error)", self.name, path.name,
                        len(problems), target.name)
        else:
            log.info("source=%s %s moved to done/", self.name, path.name)

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
        check_controls("headlines", headline.get("value"))
        title = _as_text(headline)
        description = _pick(doc.get("descriptions"), ("summary", "abstract", "teaser", "lead", None))
        if description is not None:
            check_controls("descriptions", description.get("value"))
        body = _pick(doc.get("bodies"), ("main", None), prefer_type="text/html")
        body_html = ""
        if body is not None:
            value = body.get("value") or ""
            if len(value) > MAX_CONTENT_CHARS:
                raise InputProblem(f"bodies value is {len(value):,} characters; the limit is {MAX_CONTENT_CHARS:,}")
            if "html" in (body.get("contenttype") or "text/html"):
                body_html = checked_body("bodies", value)
            else:
                check_controls("bodies", value)
                body_html = "".join(f"<p>{html.escape(p.strip())}</p>" for p in value.split("\n\n") if p.strip())
        first = doc.get("firstcreated") or doc.get("versioncreated")
        published = parse_utc(first, "firstcreated", naive_is_utc=False)
        updated = parse_utc(doc["versioncreated"], "versioncreated", naive_is_utc=False) \
            if doc.get("versioncreated") else published
        subjects = [s for s in doc.get("subjects") or [] if isinstance(s, dict) and isinstance(s.get("name"), str)]
        section = next((s["name"] for s in subjects if (s.get("rel") or "").lower() in ("section", "department")),
                       None)
        data = {
            "id": self.article_id(_short_id(uri)),
            "url": _web_url(doc),
            "title": title,
            "summary": _as_text(description) if description else "",
            "content_html": body_html,
            "authors": _authors(doc),
            "section": section,
            "tags": [s["name"] for s in subjects if s["name"] != section],
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

    uri = uri.strip()
    # Article ids are at most 300 characters with the source name; keep long URIs recognisable.
    return uri if len(uri) <= 200 else uri[:150] + "~" + hashlib.sha256(uri.encode()).hexdigest()[:16]


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
        typed = [e for e in entries if prefer_type in (e.get("contenttype") or prefer_type)]
        entries = typed or entries
    for role in roles:
        for entry in entries:
            if role is None or (entry.get("role") or "").lower() == role:
                return entry
    return None


def _as_text(entry: dict) -> str:
    value = entry.get("value") or ""
    return html_to_text(value) if "html" in (entry.get("contenttype") or "") else value


def _web_url(doc: dict) -> str:
    uri = doc.get("uri") or ""
    if uri.startswith(("http://", "https://")):
        return uri
    for alt in doc.get("altids") or []:
        if isinstance(alt, dict) and (alt.get("role") or "").lower() in ("url", "web", "canonical", "link") \
                and str(alt.get("value", "")).startswith(("http://", "https://")):
            return alt["value"]
    for rendition in doc.get("renditions") or []:
        if isinstance(rendition, dict) and "html" in (rendition.get("contenttype") or "") \
                and str(rendition.get("href", "")).startswith(("http://", "https://")):
            return rendition["href"]
    raise InputProblem("no web address: uri is not an http(s) URL and no altids entry with role \"url\" "
                       "or text/html rendition gives one")


def _authors(doc: dict) -> list[str]:
    people = [p["name"] for p in doc.get("people") or []
              if isinstance(p, dict) and isinstance(p.get("name"), str)
              and (p.get("rel") or "").lower() in ("author", "creator", "writer", "byline")]
    if people:
        return people
    by = doc.get("by")
    return [by] if isinstance(by, str) and by.strip() else []


def _image(doc: dict) -> dict | None:
    for assoc in doc.get("associations") or []:
        if not isinstance(assoc, dict):
            continue
        if assoc.get("type", "picture") != "picture" and "image" not in (assoc.get("name") or ""):
            continue
        renditions = [r for r in assoc.get("renditions") or []
                      if isinstance(r, dict) and str(r.get("href", "")).startswith(("http://", "https://"))]
        if not renditions:
            continue
        best = max(renditions, key=lambda r: r.get("width") or 0 if isinstance(r.get("width"), (int, float)) else 0)
        alt = _pick(assoc.get("descriptions"), ("alt", "caption", None)) or _pick(assoc.get("headlines"), (None,))

        def dimension(value: Any) -> int | None:
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1 else None

        return {"url": best["href"], "alt": (alt or {}).get("value", ""), "width": dimension(best.get("width")),
                "height": dimension(best.get("height"))}
    return None
