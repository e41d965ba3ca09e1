"""A stand-in WordPress: `/wp-json/wp/v2/posts` with the REST API's real semantics, serving
`tests/fixtures/wordpress/posts.json` (which is exactly what a real WordPress answers),
editable while a test runs and able to fail on demand.

What it checks and does as WordPress does:
- `per_page` (1-100, default 10) and `page` (>= 1); `X-WP-Total` and `X-WP-TotalPages`;
  a page past the last one is `400 rest_post_invalid_page_number`.
- `after`/`before` (post date) and `modified_after`/`modified_before`: RFC 3339; strictly
  after/before; compared with the *local* `post_date`/`post_modified` columns, a value
  without an offset being read in the site's timezone (Europe/Athens here, UTC+2 in
  winter) and one with an offset converted to it.
- `orderby` (date by default, modified, id, include, title) and `order` (desc by default).
  Rows with equal dates come back in no particular order, as MySQL returns them: each
  request shuffles ties (with `unstable_ties`), so a client paging by number through a
  tie group sees repeats and misses, as against a real database.
- `include`/`exclude` (comma lists or `include[]=`), `status` (default `publish`; any other
  status, `any` included, only with valid Basic auth with an application password, else
  `400 rest_invalid_param` wrapping `rest_forbidden_status`); a wrong password is `401` on
  every request, public or not, as WordPress does.
- `_embed` adds `_embedded` (authors, terms, featured media); without it only `_links`.
  `_fields` limits the fields returned.
- `*_gmt` fields are UTC without an offset; `date`/`modified` are the site's local time.

Editing (from the test, while a poller runs): `publish`, `edit`, `unpublish`, `trash`,
`delete`, `schedule` + `publish_due` (WordPress's cron publishes a scheduled post without
touching its modified time), `set_modified`. Failing: `fail_with(mode, times=None)` where
mode is "500", "timeout", "invalid_json" or "401". `on_request` hooks run after a request
is answered (to change posts between two pages of one poll). `requests` records each one.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from tests.support.standin_server import StandInHTTPServer

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "wordpress" / "posts.json"
API = "/wp-json/wp/v2"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$")
STATUSES = {"publish", "future", "draft", "pending", "private", "trash", "auto-draft", "inherit"}
ORDERBY = {"author", "date", "id", "include", "modified", "parent", "relevance", "slug", "include_slugs", "title"}


def _gmt(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass
class Request:
    path: str
    params: dict[str, list[str]]
    authorization: str | None
    status: int = 0
    at: float = field(default_factory=time.time)

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


class WordPressServer:
    def __init__(self, fixture: Path = FIXTURE, *, site_timezone: str = "Europe/Athens",
                 username: str = "syndication-bot", app_password: str = "abcd EFGH 1234 ijkl MNOP 5678",
                 rebase: bool = True, unstable_ties: bool = True, host: str = "127.0.0.1"):
        self.tz = ZoneInfo(site_timezone)
        self.username, self.app_password = username, app_password
        self.unstable_ties = unstable_ties
        self.lock = threading.RLock()
        self.posts: dict[int, dict] = {}
        self.requests: list[Request] = []
        self.on_request: list[Callable[[Request], None]] = []
        self.delay = 0.0
        self._failure: tuple[str, int | None] | None = None
        self._ids = itertools.count(1000)
        self._template: dict = {}
        for post in json.loads(Path(fixture).read_text()):
            self._store(post)
        self._template = copy.deepcopy(next(iter(self.posts.values())))
        if rebase and self.posts:
            # Keep the fixture's spacing but end it an hour ago, so "recent" stays recent.
            newest = max(p["_modified"] for p in self.posts.values())
            shift = (now_utc() - timedelta(hours=1)) - newest
            for post in self.posts.values():
                post["_date"] += shift
                post["_modified"] += shift
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
            # algorithm holds a small body until the client's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = StandInHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: stopping the stand-in takes 50 ms, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The source `url`: the REST API root of wp/v2."""
        return self.base + API

    def start(self) -> "WordPressServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the posts -----------------------------------------------------------------------

    def _store(self, post: dict) -> dict:
        post = copy.deepcopy(post)
        post["_date"] = datetime.fromisoformat(post.pop("date_gmt")).replace(tzinfo=timezone.utc)
        post["_modified"] = datetime.fromisoformat(post.pop("modified_gmt")).replace(tzinfo=timezone.utc)
        post.pop("date", None)
        post.pop("modified", None)
        self.posts[post["id"]] = post
        return post

    def _render(self, post: dict, embed: bool) -> dict:
        out = {k: copy.deepcopy(v) for k, v in post.items() if not k.startswith("_") or k == "_embedded"}
        if not embed:
            out.pop("_embedded", None)
        out["date"] = _gmt(post["_date"].astimezone(self.tz).replace(tzinfo=timezone.utc))
        out["date_gmt"] = _gmt(post["_date"])
        out["modified"] = _gmt(post["_modified"].astimezone(self.tz).replace(tzinfo=timezone.utc))
        out["modified_gmt"] = _gmt(post["_modified"])
        out["_links"] = {"self": [{"href": f"{self.url}/posts/{post['id']}"}]}
        # Keep the key order a real answer has: id first.
        return dict(sorted(out.items(), key=lambda kv: (kv[0] != "id", 0)))

    def post(self, post_id: int) -> dict:
        with self.lock:
            return self._render(self.posts[post_id], embed=True)

    def publish(self, title: str = "A new story", *, when: datetime | None = None, post_id: int | None = None,
                **fields: Any) -> int:
        """A new public post, from the fixture's first post as a template."""
        when = (when or now_utc()).replace(microsecond=0)
        with self.lock:
            post = copy.deepcopy(self._template)
            post["id"] = post_id if post_id is not None else next(self._ids)
            while post_id is None and post["id"] in self.posts:
                post["id"] = next(self._ids)
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "post"
            post.update({"slug": slug, "status": "publish", "title": {"rendered": title},
                         "link": f"https://london-news-net.example/{slug}-{post['id']}/",
                         "guid": {"rendered": f"https://london-news-net.example/?p={post['id']}"},
                         "_date": when, "_modified": when})
            for key, value in fields.items():
                self._set(post, key, value)
            self.posts[post["id"]] = post
            return post["id"]

    def _set(self, post: dict, key: str, value: Any) -> None:
        if key in ("title", "content", "excerpt") and isinstance(value, str):
            post[key] = dict(post.get(key) or {}, rendered=value)
        elif key == "date_gmt":
            post["_date"] = value
        else:
            post[key] = value

    def edit(self, post_id: int, *, when: datetime | None = None, **fields: Any) -> None:
        """Change fields (title="..." sets title.rendered) and bump the modified time, as saving does."""
        with self.lock:
            post = self.posts[post_id]
            for key, value in fields.items():
                self._set(post, key, value)
            post["_modified"] = (when or now_utc()).replace(microsecond=0)

    def set_raw(self, post_id: int, key: str, value: Any) -> None:
        """Put any value in a field as served (a broken date, a missing title), bumping modified."""
        with self.lock:
            post = self.posts[post_id]
            post.setdefault("_raw", {})[key] = value
            post["_modified"] = now_utc()

    def unpublish(self, post_id: int, status: str = "draft", *, when: datetime | None = None) -> None:
        """Back to draft (or private/pending): WordPress bumps the modified time."""
        self.edit(post_id, when=when, status=status)

    def trash(self, post_id: int) -> None:
        self.edit(post_id, status="trash")

    def delete(self, post_id: int) -> None:
        with self.lock:
            del self.posts[post_id]

    def schedule(self, title: str, at: datetime) -> int:
        """A post scheduled for `at` (status future), saved now."""
        post_id = self.publish(title, when=now_utc())
        with self.lock:
            self.posts[post_id]["status"] = "future"
            self.posts[post_id]["_date"] = at.replace(microsecond=0)
        return post_id

    def publish_due(self, post_id: int) -> None:
        """WordPress's cron publishing a scheduled post: status only, modified untouched."""
        with self.lock:
            self.posts[post_id]["status"] = "publish"

    def set_modified(self, post_ids, when: datetime) -> None:
        with self.lock:
            for post_id in post_ids:
                self.posts[post_id]["_modified"] = when.replace(microsecond=0)

    def public_ids(self) -> set[int]:
        with self.lock:
            return {i for i, p in self.posts.items() if p.get("status") == "publish"}

    # -- failures ----------------------------------------------------------------------

    def fail_with(self, mode: str | None, times: int | None = None) -> None:
        """Answer every request (or the next `times`) with a failure: "500", "timeout",
        "invalid_json" or "401"; None heals."""
        assert mode in (None, "500", "timeout", "invalid_json", "401")
        with self.lock:
            self._failure = None if mode is None else (mode, times)

    def _take_failure(self) -> str | None:
        with self.lock:
            if self._failure is None:
                return None
            mode, times = self._failure
            if times is not None:
                times -= 1
                self._failure = (mode, times) if times > 0 else None
            return mode

    # -- the API -----------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        request = Request(parts.path, params, handler.headers.get("Authorization"))
        with self.lock:
            self.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        failure = self._take_failure()
        if failure == "timeout":
            time.sleep(60)
            return
        if failure == "500":
            status, headers, body = 500, {}, b"<html><body><h1>Internal Server Error</h1></body></html>"
            headers["Content-Type"] = "text/html"
        elif failure == "invalid_json":
            status, headers, body = 200, {"Content-Type": "application/json; charset=UTF-8"}, b'[{"id": 1, "title": {'
        elif failure == "401":
            status, headers, body = self._error(401, "incorrect_password",
                                                "The provided password is an invalid application password.")
        else:
            status, headers, body = self._answer(request)
        request.status = status
        handler.send_response(status)
        headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        for hook in list(self.on_request):
            hook(request)

    def _error(self, status: int, code: str, message: str, data: dict | None = None):
        payload = {"code": code, "message": message, "data": dict({"status": status}, **(data or {}))}
        return status, {}, json.dumps(payload).encode()

    def _authenticated(self, authorization: str | None):
        """None when no credentials were sent; True when valid; an error reply when wrong."""
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return self._error(401, "invalid_username", "Unknown username. Check again or try your email address.")
        if user != self.username:
            return self._error(401, "invalid_username", "Unknown username. Check again or try your email address.")
        # Application passwords are compared without their spaces.
        if password.replace(" ", "") != self.app_password.replace(" ", ""):
            return self._error(401, "incorrect_password", "The provided password is an invalid application password.")
        return True

    def _local(self, value: str) -> datetime:
        """A date parameter as WordPress's date query reads it: naive in the site's zone."""
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00").replace(" ", "T"))
        if parsed.tzinfo is None:
            return parsed.replace(microsecond=0)
        return parsed.astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def _answer(self, request: Request):
        auth = self._authenticated(request.authorization)
        if isinstance(auth, tuple):
            return auth
        path = request.path.rstrip("/")
        if path == "/wp-json":
            return 200, {}, json.dumps({"name": "London News Net", "timezone_string": str(self.tz),
                                        "namespaces": ["wp/v2"]}).encode()
        if path.startswith(API + "/posts/"):
            tail = path[len(API + "/posts/"):]
            with self.lock:
                post = self.posts.get(int(tail)) if tail.isdigit() else None
                if post is None or (post.get("status") != "publish" and auth is not True):
                    return self._error(404, "rest_post_invalid_id", "Invalid post ID.")
                return 200, {}, json.dumps(self._with_raw(post, self._render(post, "_embed" in request.params))).encode()
        if path != API + "/posts":
            return self._error(404, "rest_no_route", "No route was found matching the URL and request method.")
        return self._list(request, auth is True)

    def _with_raw(self, post: dict, rendered: dict) -> dict:
        for key, value in (post.get("_raw") or {}).items():
            if value is _MISSING:
                rendered.pop(key, None)
            else:
                rendered[key] = value
        return rendered

    def _list(self, request: Request, authed: bool):
        p = request.params
        invalid: dict[str, str] = {}
        details: dict[str, dict] = {}

        def integer(name: str, default: int, low: int, high: int | None) -> int:
            raw = request.param(name)
            if raw is None or raw == "":
                return default
            if not re.fullmatch(r"-?\d+", raw):
                invalid[name] = f"{name} is not of type integer."
                return default
            value = int(raw)
            if value < low or (high is not None and value > high):
                invalid[name] = (f"{name} must be between {low} (inclusive) and {high} (inclusive)" if high
                                 else f"{name} must be greater than or equal to {low}")
            return value

        page = integer("page", 1, 1, None)
        per_page = integer("per_page", 10, 1, 100)
        orderby = request.param("orderby") or "date"
        if orderby not in ORDERBY:
            invalid["orderby"] = f"orderby is not one of {', '.join(sorted(ORDERBY))}."
        order = request.param("order") or "desc"
        if order not in ("asc", "desc"):
            invalid["order"] = "order is not one of asc and desc."
        bounds = {}
        for name in ("after", "before", "modified_after", "modified_before"):
            raw = request.param(name)
            if raw is None:
                continue
            if not _DATE_RE.match(raw):
                invalid[name] = "Invalid date."
            else:
                bounds[name] = self._local(raw)

        def id_list(name: str) -> list[int]:
            raw = p.get(name, []) + p.get(f"{name}[]", [])
            ids = []
            for chunk in raw:
                for item in chunk.split(","):
                    item = item.strip()
                    if not item:
                        continue
                    if not item.isdigit():
                        invalid[name] = f"{name}[0] is not of type integer."
                    else:
                        ids.append(int(item))
            return ids

        include, exclude = id_list("include"), id_list("exclude")
        statuses = []
        for chunk in p.get("status", []) + p.get("status[]", []):
            statuses += [s.strip() for s in chunk.split(",") if s.strip()]
        statuses = statuses or ["publish"]
        for status in statuses:
            if status == "publish":
                continue
            if not authed:
                invalid["status"] = "Status is forbidden."
                details["status"] = {"code": "rest_forbidden_status", "message": "Status is forbidden.",
                                     "data": {"status": 401}}
                break
            if status != "any" and status not in STATUSES:
                invalid["status"] = f"status[0] is not one of {', '.join(sorted(STATUSES | {'any'}))}."
        if invalid:
            return self._error(400, "rest_invalid_param", "Invalid parameter(s): " + ", ".join(invalid),
                               {"params": invalid, "details": details})

        with self.lock:
            posts = list(self.posts.values())

            def visible(post: dict) -> bool:
                status = post.get("status")
                if "any" in statuses:
                    return status not in ("trash", "auto-draft")
                return status in statuses

            local_date = lambda post: post["_date"].astimezone(self.tz).replace(tzinfo=None)  # noqa: E731
            local_modified = lambda post: post["_modified"].astimezone(self.tz).replace(tzinfo=None)  # noqa: E731
            chosen = [post for post in posts if visible(post)
                      and (not include or post["id"] in include) and post["id"] not in exclude
                      and ("after" not in bounds or local_date(post) > bounds["after"])
                      and ("before" not in bounds or local_date(post) < bounds["before"])
                      and ("modified_after" not in bounds or local_modified(post) > bounds["modified_after"])
                      and ("modified_before" not in bounds or local_modified(post) < bounds["modified_before"])]
            tie = (lambda post: random.random()) if self.unstable_ties else (lambda post: post["id"])
            if orderby == "id":
                key = lambda post: (post["id"],)  # noqa: E731
            elif orderby == "include" and include:
                key = lambda post: (include.index(post["id"]),)  # noqa: E731
            elif orderby == "modified":
                key = lambda post: (post["_modified"], tie(post))  # noqa: E731
            elif orderby == "title":
                key = lambda post: (str((post.get("title") or {}).get("rendered")), tie(post))  # noqa: E731
            else:
                key = lambda post: (post["_date"], tie(post))  # noqa: E731
            decorated = [(key(post), post) for post in chosen]
            decorated.sort(key=lambda kv: kv[0], reverse=(order == "desc" and orderby != "include"))
            total = len(decorated)
            total_pages = math.ceil(total / per_page) if total else 0
            if page > total_pages and total > 0:
                return self._error(400, "rest_post_invalid_page_number",
                                   "The page number requested is larger than the number of pages available.")
            page_posts = [post for _, post in decorated[(page - 1) * per_page: page * per_page]]
            embed = "_embed" in p
            items = [self._with_raw(post, self._render(post, embed)) for post in page_posts]
        fields = [f.strip() for chunk in p.get("_fields", []) for f in chunk.split(",") if f.strip()]
        if fields:
            items = [{k: v for k, v in item.items() if k in fields or k.split(".")[0] in fields} for item in items]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
        return 200, headers, json.dumps(items).encode()


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


# `set_raw(post_id, "title", MISSING)` serves the post without that field.
_MISSING = MISSING = _Missing()


try:
    import pytest
except ImportError:  # pragma: no cover - the module also runs as a plain helper
    pytest = None

if pytest is not None:
    @pytest.fixture
    def wordpress():
        """A started stand-in WordPress, stopped after the test."""
        server = WordPressServer().start()
        yield server
        server.stop()
