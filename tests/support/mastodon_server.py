"""A stand-in Mastodon instance: the statuses API a channel posts through, checked the
way a real instance checks it.

What it checks (as Mastodon does, with Mastodon's answers):
- the bearer token on every authenticated route: 401 `{"error": "The access token is
  invalid"}` (or "This method requires an authenticated user" with no token);
- the status length as Mastodon counts it (StatusLengthValidator): grapheme clusters of
  the text with every URL twitter-text's extractor finds (scheme required) replaced by
  `characters_reserved_per_url` characters and a remote mention `@user@domain` by
  `@user`; over the limit is 422 "Validation failed: Text character limit of N exceeded";
- blank text and unknown visibility values: 422;
- editing or deleting a status that is not the account's own, or unknown: 404.

What it does: `Idempotency-Key` replay (the same key from the same account within the
window answers the status it made, and makes no second one — Mastodon keeps keys an
hour), posts kept in `statuses` with their edit history, `GET /api/v2/instance` with a
configurable `max_characters`, and a rate-limit mode answering 429 with Mastodon's
`X-RateLimit-*` headers (the reset an ISO 8601 time).
"""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import regex
from twitter_text import extract_urls_with_indices

from tests.support.http import Refuse, Reply, Request, StandIn

ACCOUNT_ID = "109000000000000001"
VISIBILITIES = ("public", "unlisted", "private", "direct")
INSTANCE = "GET /api/v2/instance"
POST = "POST /api/v1/statuses"
EDIT = "PUT /api/v1/statuses/{id}"
DELETE = "DELETE /api/v1/statuses/{id}"
_MENTION = re.compile(r"(?<![=/\w])@(\w+)(?:@[\w.-]+\w)", re.UNICODE)
# The scope each route needs (Doorkeeper's `doorkeeper_authorize!` in Mastodon's controllers).
SCOPES = {POST: "write:statuses", EDIT: "write:statuses", DELETE: "write:statuses",
          "GET /api/v1/accounts/verify_credentials": "read:accounts",
          "GET /api/v1/accounts/{id}/statuses": "read:statuses",
          "GET /api/v1/statuses/{id}": "read:statuses", "GET /api/v1/statuses/{id}/history": "read:statuses"}
_HASHTAG = re.compile(r"(?<![=/)\w])#(\w*[^\W\d]\w*)")
_LANGUAGE = re.compile(r"^([a-z]{2,3})(?:[-_][A-Za-z0-9]{2,8})*$")


def mastodon_count(text: str, url_weight: int = 23) -> int:
    """How Mastodon counts a status (independent of the transport's own counter)."""
    found = extract_urls_with_indices(text, extract_urls_without_protocol=False)
    # Replace from the end so earlier indices stay valid.
    for url in reversed(found):
        start, end = url["indices"]
        text = text[:start] + "x" * url_weight + text[end:]
    text = _MENTION.sub(lambda m: "@" + m.group(1), text)
    return len(regex.findall(r"\X", text))


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MastodonServer(StandIn):
    def __init__(self, token: str = "mastodon-test-token", *, max_characters: int = 500,
                 characters_reserved_per_url: int = 23, domain: str = "social.example",
                 username: str = "lnn", idempotency_window: float = 3600.0,
                 scopes: tuple[str, ...] = ("write:statuses", "read:accounts", "read:statuses")):
        super().__init__()
        # Stop within 50 ms instead of the default half-second poll (many short tests).
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.token, self.max_characters = token, max_characters
        self.url_weight, self.domain, self.username = characters_reserved_per_url, domain, username
        self.idempotency_window = idempotency_window
        # What the token was granted; "read"/"write" cover every read:*/write:* scope.
        self.scopes = set(scopes)
        # id → status as this account's statuses are stored: text, language, visibility, edits.
        self.statuses: dict[str, dict] = {}
        self.deleted: dict[str, dict] = {}
        # (token, key) → (status id, when): Mastodon's Redis `idempotency:status:<account>:<key>`.
        self.idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self._ids = itertools.count(113_000_000_000_000_001)
        # A status of another account on the same instance (edits and deletes of it are 404).
        self.foreign_id = str(next(self._ids))
        self.route("GET", "/api/v2/instance", self.instance)
        self.route("POST", "/api/v1/statuses", self.create)
        self.route("GET", "/api/v1/statuses/{id}", self.show)
        self.route("PUT", "/api/v1/statuses/{id}", self.edit)
        self.route("DELETE", "/api/v1/statuses/{id}", self.destroy)
        self.route("GET", "/api/v1/statuses/{id}/history", self.history)
        self.route("GET", "/api/v1/accounts/verify_credentials", self.verify_credentials)
        self.route("GET", "/api/v1/accounts/{id}/statuses", self.account_statuses)

    # -- planned conditions ----------------------------------------------------------

    def rate_limit(self, route: str = POST, *, reset_in: float = 120.0, times: int = 1) -> datetime:
        """Answer the next `times` requests to `route` with Mastodon's 429; returns the reset time."""
        reset = datetime.now(timezone.utc) + timedelta(seconds=reset_in)
        self.fail(route, 429, {"error": "Too many requests"}, times=times, headers={
            "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
            # Mastodon sends the reset with microseconds (Time#iso8601(6)).
            "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace("+00:00", "Z")})
        return reset

    # -- checks ------------------------------------------------------------------------

    def check(self, req: Request) -> None:
        if req.route == INSTANCE:
            return  # public
        auth = req.headers.get("authorization")
        if not auth:
            raise Refuse(401, {"error": "This method requires an authenticated user"})
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token != self.token:
            raise Refuse(401, {"error": "The access token is invalid"})
        needed = SCOPES.get(req.route)
        if needed and not self.scopes & {needed, needed.split(":")[0]}:
            raise Refuse(403, {"error": "This action is outside the authorized scopes"})
        if req.method in ("POST", "PUT") and req.body:
            ctype = req.headers.get("content-type", "")
            if ctype.startswith("application/json") and not isinstance(req.json(), dict):
                raise Refuse(400, {"error": "Error occurred while parsing request parameters"})

    def _check_text(self, text) -> str:
        if not isinstance(text, str) or not text.strip():
            raise Refuse(422, {"error": "Validation failed: Text can't be blank"})
        if mastodon_count(text, self.url_weight) > self.max_characters:
            raise Refuse(422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"})
        return text

    @staticmethod
    def _language(value) -> str | None:
        # Mastodon keeps a known language (or its primary subtag) and ignores anything else.
        m = _LANGUAGE.match(value) if isinstance(value, str) else None
        return m.group(1) if m else None

    def _own(self, req: Request) -> dict:
        status = self.statuses.get(req.params["id"])
        if status is None:
            raise Refuse(404, {"error": "Record not found"})
        return status

    # -- routes ------------------------------------------------------------------------

    def instance(self, req: Request) -> Reply:
        return Reply(200, {
            "domain": self.domain, "title": "Stand-in", "version": "4.3.0",
            "configuration": {
                "urls": {"streaming": f"wss://{self.domain}"},
                "statuses": {"max_characters": self.max_characters, "max_media_attachments": 4,
                             "characters_reserved_per_url": self.url_weight},
            },
        })

    def create(self, req: Request) -> Reply:
        key = req.headers.get("idempotency-key")
        with self._lock:
            if key:
                # Mastodon looks the key up before anything else: a repeat answers the first status.
                seen = self.idempotency.get((self.token, key))
                if seen and time.time() - seen[1] < self.idempotency_window and seen[0] in self.statuses:
                    return Reply(200, self._render(self.statuses[seen[0]]))
            text = self._check_text(req.arg("status"))
            visibility = req.arg("visibility") or "public"
            if visibility not in VISIBILITIES:
                raise Refuse(422, {"error": "Validation failed: Visibility is not included in the list"})
            status_id = str(next(self._ids))
            now = datetime.now(timezone.utc)
            status = {"id": status_id, "text": text, "language": self._language(req.arg("language")),
                      "visibility": visibility, "created_at": now, "edited_at": None,
                      "idempotency_key": key, "edits": []}
            self.statuses[status_id] = status
            if key:
                self.idempotency[(self.token, key)] = (status_id, time.time())
        return Reply(200, self._render(status))

    def show(self, req: Request) -> Reply:
        with self._lock:
            return Reply(200, self._render(self._own(req)))

    def edit(self, req: Request) -> Reply:
        with self._lock:
            status = self._own(req)
            text = self._check_text(req.arg("status"))
            language = self._language(req.arg("language")) or status["language"]
            if text != status["text"] or language != status["language"]:
                if not status["edits"]:
                    status["edits"].append({"text": status["text"], "language": status["language"],
                                            "created_at": status["created_at"]})
                now = datetime.now(timezone.utc)
                status.update(text=text, language=language, edited_at=now)
                status["edits"].append({"text": text, "language": language, "created_at": now})
            return Reply(200, self._render(status))

    def destroy(self, req: Request) -> Reply:
        with self._lock:
            status = self._own(req)
            del self.statuses[status["id"]]
            self.deleted[status["id"]] = status
            # The answer carries the source text (for "delete and redraft").
            return Reply(200, dict(self._render(status), text=status["text"]))

    def history(self, req: Request) -> Reply:
        with self._lock:
            status = self._own(req)
            edits = status["edits"] or [{"text": status["text"], "language": status["language"],
                                         "created_at": status["created_at"]}]
            return Reply(200, [{"content": self._content(e["text"]), "created_at": iso(e["created_at"])}
                               for e in edits])

    def verify_credentials(self, req: Request) -> Reply:
        return Reply(200, self._account())

    def account_statuses(self, req: Request) -> Reply:
        if req.params["id"] != ACCOUNT_ID:
            return Reply(200, [])
        limit = min(int(req.arg("limit") or 20), 40)
        max_id = req.arg("max_id")
        with self._lock:
            # Newest first, older than max_id when given (ids grow with time, as snowflakes do).
            ids = sorted((i for i in self.statuses if not max_id or int(i) < int(max_id)), key=int, reverse=True)
            return Reply(200, [self._render(self.statuses[i]) for i in ids[:limit]])

    # -- rendering ---------------------------------------------------------------------

    def _content(self, text: str) -> str:
        """The status HTML as Mastodon renders it: paragraphs, line breaks, links with the
        scheme and the tail of the URL in invisible spans, hashtags as links."""
        return "".join(f"<p>{self._paragraph(p)}</p>" for p in re.split(r"\n{2,}", text))

    def _paragraph(self, text: str) -> str:
        out, last = [], 0
        for found in extract_urls_with_indices(text, extract_urls_without_protocol=False):
            start, end = found["indices"]
            out.append(self._words(text[last:start]))
            url = text[start:end]
            scheme, _, rest = url.partition("://")
            out.append(f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener noreferrer" '
                       f'translate="no"><span class="invisible">{scheme}://</span>'
                       f'<span class="ellipsis">{html.escape(rest[:30])}</span>'
                       f'<span class="invisible">{html.escape(rest[30:])}</span></a>')
            last = end
        out.append(self._words(text[last:]))
        return "".join(out)

    def _words(self, text: str) -> str:
        escaped = html.escape(text, quote=False).replace("\n", "<br />")
        return _HASHTAG.sub(lambda m: f'<a href="https://{self.domain}/tags/{m.group(1).lower()}" '
                                      f'class="mention hashtag" rel="tag">#<span>{m.group(1)}</span></a>', escaped)

    def _account(self) -> dict:
        return {"id": ACCOUNT_ID, "username": self.username, "acct": self.username,
                "url": f"https://{self.domain}/@{self.username}"}

    def _render(self, status: dict) -> dict:
        return {
            "id": status["id"],
            "created_at": iso(status["created_at"]),
            "edited_at": iso(status["edited_at"]) if status["edited_at"] else None,
            "visibility": status["visibility"],
            "language": status["language"],
            "uri": f"https://{self.domain}/users/{self.username}/statuses/{status['id']}",
            "url": f"https://{self.domain}/@{self.username}/{status['id']}",
            "content": self._content(status["text"]),
            "account": self._account(),
            "media_attachments": [], "mentions": [], "tags": [],
        }

    # -- for assertions ----------------------------------------------------------------

    def add_status(self, text: str, visibility: str = "public") -> str:
        """A status the account made some other way (by hand, another app)."""
        with self._lock:
            status_id = str(next(self._ids))
            self.statuses[status_id] = {"id": status_id, "text": text, "language": None, "visibility": visibility,
                                        "created_at": datetime.now(timezone.utc), "edited_at": None,
                                        "idempotency_key": None, "edits": []}
            return status_id

    def texts(self) -> list[str]:
        with self._lock:
            return [s["text"] for s in self.statuses.values()]
