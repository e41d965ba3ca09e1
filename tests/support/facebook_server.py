"""Stand-in Facebook Graph API for one Page: `POST /{page}/feed`, `GET /{page}/feed`,
`POST /{post}` (edit), `DELETE /{post}`, under `/v21.0`.

- The page token may come as `Authorization: Bearer|OAuth`, an `access_token` form field
  or query parameter, as Graph allows; missing → code 104, wrong → code 190 (HTTP 400,
  OAuthException, as Graph answers). `token_in_query()` lists requests that put it in a URL.
- Posting to another page → code 100/33; no message and no link → code 100; a message
  over 63,206 UTF-16 units → code 100; the same message and link as the page's latest
  post → code 506 (duplicate).
- `graph_fault(route, code, ...)` plans a Graph-shaped error (e.g. code 4 "Application
  request limit reached" with the usage header); the base's faults apply too
  (`lose_answer("POST /{page}/feed")` posts, then drops the answer).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time

from tests.support.http import Refuse, Reply, Request, StandIn

VERSION = "/v21.0"
PAGE_ID = "104877391229411"
PAGE_TOKEN = "EAAGm0PX4ZCpsBAKqTkZBZCx2ZBkkOIZAQh1ZAKZCdJbZBzsZC0vpZBZA4ZBfuUzZC2J3aZCvNNm0ZD"
LIMIT = 63_206

FEED = f"POST {VERSION}/{{node}}/feed"
LIST = f"GET {VERSION}/{{node}}/feed"
EDIT = f"POST {VERSION}/{{node}}"
DELETE = f"DELETE {VERSION}/{{node}}"


def error_body(code: int, message: str, *, type_: str = "OAuthException", subcode: int | None = None,
               transient: bool | None = None) -> dict:
    err = {"message": message, "type": type_, "code": code, "fbtrace_id": "A" + secrets.token_hex(5)}
    if subcode is not None:
        err["error_subcode"] = subcode
    if transient is not None:
        err["is_transient"] = transient
    return {"error": err}


def missing(node: str, verb: str = "post") -> dict:
    return error_body(100, f"Unsupported {verb} request. Object with ID '{node}' does not exist, cannot be loaded "
                           "due to missing permissions, or does not support this operation. Please read the "
                           "Graph API documentation at https://developers.facebook.com/docs/graph-api",
                      type_="GraphMethodException", subcode=33)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class FacebookStandIn(StandIn):
    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.page_id, self.page_token = PAGE_ID, PAGE_TOKEN
        self.posts: dict[str, dict] = {}  # id → {"id", "message", "link", "created"}
        self.deleted: dict[str, dict] = {}
        self._ids = itertools.count(8_812_345_678_901)
        self.route("POST", f"{VERSION}/{{node}}/feed", self.create, FEED)
        self.route("GET", f"{VERSION}/{{node}}/feed", self.feed, LIST)
        self.route("POST", f"{VERSION}/{{node}}", self.edit, EDIT)
        self.route("DELETE", f"{VERSION}/{{node}}", self.delete, DELETE)

    @property
    def base_url(self) -> str:
        return self.url + VERSION

    def clear(self) -> None:
        with self._lock:
            self.posts.clear()
            self.deleted.clear()
            self.requests.clear()
            self.faults.clear()
            self.incomplete = 0
            self.page_token = PAGE_TOKEN

    # -- planned faults -------------------------------------------------------------

    def graph_fault(self, route: str, code: int, message: str, *, status: int = 400, subcode: int | None = None,
                    regain_minutes: int | None = None, times: int = 1) -> None:
        headers = {}
        if regain_minutes is not None:
            headers["x-business-use-case-usage"] = json.dumps({self.page_id: [{
                "type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 30,
                "estimated_time_to_regain_access": regain_minutes}]})
        self.fail(route, status, error_body(code, message, subcode=subcode), headers, times=times)

    def token_in_query(self) -> list[Request]:
        return [r for r in self.requests if "access_token" in r.query]

    # -- checks ---------------------------------------------------------------------

    def check(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        token = value.strip() if scheme.lower() in ("bearer", "oauth") else None
        token = token or req.arg("access_token")
        if not token:
            raise Refuse(400, error_body(104, "An access token is required to request this resource."))
        if token != self.page_token:
            raise Refuse(400, error_body(190, "Invalid OAuth access token - Cannot parse access token"))

    def _page(self, req: Request) -> None:
        if req.params["node"] != self.page_id:
            raise Refuse(400, missing(req.params["node"], "post" if req.method == "POST" else "get"))

    # -- routes ---------------------------------------------------------------------

    def create(self, req: Request) -> Reply:
        self._page(req)
        ctype = req.headers.get("content-type", "")
        if req.body and not ctype.startswith(("application/x-www-form-urlencoded", "application/json")):
            raise Refuse(400, error_body(100, "(#100) Unsupported content type", type_="GraphMethodException"))
        message, link = req.arg("message") or "", req.arg("link") or ""
        if not message and not link:
            raise Refuse(400, error_body(100, "(#100) Missing message or attachment"))
        if utf16_units(message) > LIMIT:
            raise Refuse(400, error_body(100, "(#100) The message is too long"))
        if link and not link.startswith(("http://", "https://")):
            raise Refuse(400, error_body(100, "(#100) The link is not a valid URL"))
        with self._lock:
            latest = max(self.posts.values(), key=lambda p: p["created"], default=None)
            if latest and latest["message"] == message and latest["link"] == link:
                raise Refuse(400, error_body(506, "Duplicate status message"))
            post_id = f"{self.page_id}_{next(self._ids)}"
            self.posts[post_id] = {"id": post_id, "message": message, "link": link, "created": time.time()}
        return Reply(200, {"id": post_id})

    def feed(self, req: Request) -> Reply:
        self._page(req)
        fields = [f for f in (req.arg("fields") or "id,message,created_time").split(",") if f]
        try:
            limit = min(int(req.arg("limit", "25")), 100)
            since = float(req.arg("since", "0"))
        except ValueError:
            raise Refuse(400, error_body(100, "(#100) Invalid parameter")) from None
        with self._lock:
            posts = sorted((p for p in self.posts.values() if p["created"] >= since),
                           key=lambda p: p["created"], reverse=True)[:limit]
        data = []
        for p in posts:
            shown = {"id": p["id"]}
            for f in fields:
                if f == "message" and p["message"]:
                    shown["message"] = p["message"]
                elif f == "link" and p["link"]:
                    shown["link"] = p["link"]
                elif f == "created_time":
                    shown["created_time"] = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(p["created"]))
            data.append(shown)
        return Reply(200, {"data": data, "paging": {}})

    def _own_post(self, req: Request, verb: str) -> dict:
        node = req.params["node"]
        post = self.posts.get(node)
        if post is None or not node.startswith(self.page_id + "_"):
            raise Refuse(400, missing(node, verb))
        return post

    def edit(self, req: Request) -> Reply:
        with self._lock:
            post = self._own_post(req, "post")
            message = req.arg("message")
            if not message:
                raise Refuse(400, error_body(100, "(#100) Missing message"))
            if utf16_units(message) > LIMIT:
                raise Refuse(400, error_body(100, "(#100) The message is too long"))
            post["message"] = message
        return Reply(200, {"success": True})

    def delete(self, req: Request) -> Reply:
        with self._lock:
            post = self._own_post(req, "delete")
            self.deleted[post["id"]] = self.posts.pop(post["id"])
        return Reply(200, {"success": True})
