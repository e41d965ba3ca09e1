"""Mastodon: a status per story on the channel's account, edited when the story changes,
deleted when it is withdrawn.

- Post: `POST /api/v1/statuses` (bearer token) with `status`, `visibility` and
  `language`, and an `Idempotency-Key` that is the delivery row's message id: a retry
  after an answer was lost gets the status the first request made (Mastodon keeps a key
  an hour), never a second status.
- Length: the instance's `max_characters` and `characters_reserved_per_url`, read once
  from `GET /api/v2/instance` and kept per channel per process (and in Redis, shared by
  workers); 500 and 23, Mastodon's defaults, when the instance does not say. Text is
  fitted as Mastodon counts it (`text.mastodon_length`).
- Edit: `PUT /api/v1/statuses/:id` with the new text; skipped when the text is what was
  posted (a hash of it is kept in the row's remote state).
- Withdraw: `DELETE /api/v1/statuses/:id`; a 404 means it is gone already.
- Answers: 401 disables the channel (the token was revoked or is wrong); 403 and 422
  are final; 429 waits until `X-RateLimit-Reset`; 5xx and no answer are retried.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from worker.transports.base import UNPUBLISHED, Outcome, Post, Transport, TransportError
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose, mastodon_length

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_WEIGHT = 23
# How long an instance's limits are trusted before they are read again (they rarely change).
LIMITS_TTL = 6 * 3600.0
# After a failed read, the defaults are used this long before the instance is asked again.
LIMITS_RETRY = 300.0
REDIS_KEY = "syndicate:mastodon:instance:"
INSTANCE_MAX_BYTES = 256 * 1024
# A late retry looks back through at most this many pages of 40 of the account's statuses.
LOOKUP_PAGES = 5
CLOCK_SLACK = timedelta(seconds=60)
_BREAK_RE = re.compile(r"<br\s*/?>|</p>", re.I)
_TAG_RE = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class InstanceLimits:
    max_characters: int = DEFAULT_MAX_CHARACTERS
    url_weight: int = DEFAULT_URL_WEIGHT
    # Whether the instance said so (False: Mastodon's defaults, the instance did not answer).
    read: bool = False


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mastodon_tag(tag: str) -> str:
    """A tag with what Mastodon would not link in a hashtag removed.

    Mastodon's hashtags are word characters (letters, combining marks, decimal digits,
    underscore, as Ruby's [[:word:]]): other numerals (², Ⅻ) would end the tag early,
    so they go. `text.hashtags` then makes CamelCase of multi-word tags."""
    return "".join(ch for ch in tag if unicodedata.category(ch) not in ("No", "Nl"))


class MastodonTransport(Transport):
    type = "mastodon"
    #: seconds an Idempotency-Key is trusted (Mastodon keeps one an hour); a retry later
    #: than this first looks for the status among the account's recent ones
    idempotency_window = 3000.0

    def __init__(self, redis_client=None, http=None):
        super().__init__(redis_client=redis_client, http=http)
        # (channel name, api base) → (limits, monotonic expiry)
        self._limits: dict[tuple[str, str], tuple[InstanceLimits, float]] = {}
        self._limits_lock = threading.Lock()

    # -- instance limits ---------------------------------------------------------------

    def limits(self, dest) -> InstanceLimits:
        """The instance's status limits: from this process's cache, Redis, or the instance."""
        key = (dest.name, dest.api_base)
        cached = self._limits.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        with self._limits_lock:
            cached = self._limits.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
            limits = self._shared_limits(dest) or self._read_limits(dest)
            ttl = LIMITS_TTL if limits.read else LIMITS_RETRY
            self._limits[key] = (limits, time.monotonic() + ttl)
            return limits

    def _redis_key(self, dest) -> str:
        return REDIS_KEY + hashlib.sha256(dest.api_base.encode()).hexdigest()[:32]

    def _shared_limits(self, dest) -> InstanceLimits | None:
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(self._redis_key(dest))
        except Exception as exc:  # Redis down: the instance is asked directly
            log.debug("mastodon: instance limits not read from Redis: %s", exc)
            return None
        if not raw:
            return None
        try:
            values = json.loads(raw)
            return InstanceLimits(int(values["max_characters"]), int(values["url_weight"]), read=True)
        except (ValueError, KeyError, TypeError):
            return None

    def _read_limits(self, dest) -> InstanceLimits:
        try:
            resp = self.http.request("GET", f"{dest.api_base}/api/v2/instance", timeout=dest.timeout,
                                     allow_private=dest.allow_private, max_body=INSTANCE_MAX_BYTES)
        except RequestFailed as exc:
            log.warning("mastodon channel %s: instance limits not read (%s); using %d characters, URLs %d",
                        dest.name, exc.error_class, DEFAULT_MAX_CHARACTERS, DEFAULT_URL_WEIGHT)
            return InstanceLimits()
        limits = _parse_limits(resp)
        if not limits.read:
            log.warning("mastodon channel %s: GET /api/v2/instance answered HTTP %d without status limits; "
                        "using %d characters, URLs %d", dest.name, resp.status, DEFAULT_MAX_CHARACTERS,
                        DEFAULT_URL_WEIGHT)
        elif self.redis is not None:
            try:
                self.redis.set(self._redis_key(dest), json.dumps({"max_characters": limits.max_characters,
                                                                  "url_weight": limits.url_weight}),
                               ex=int(LIMITS_TTL))
            except Exception as exc:
                log.debug("mastodon: instance limits not kept in Redis: %s", exc)
        return limits

    # -- the message -------------------------------------------------------------------

    def prepare(self, dest, event_type: str, data: dict) -> dict:
        if event_type == UNPUBLISHED:
            return {}
        limits = self.limits(dest)
        article = dict(data, tags=[mastodon_tag(t) for t in data.get("tags") or [] if isinstance(t, str)])
        fitted = compose(dest.template, article, limit=limits.max_characters,
                         length=lambda text: mastodon_length(text, limits.url_weight),
                         with_hashtags=dest.hashtags)
        if not fitted.text.strip():
            raise TransportError(f"nothing to post: the template {dest.template!r} gives an empty text "
                                 f"for {data.get('id')}", permanent=True)
        return {"status": fitted.text, "language": dest.language or data.get("language") or None,
                "max_characters": limits.max_characters, "truncated": fitted.truncated}

    # -- requests ----------------------------------------------------------------------

    def _headers(self, dest, **extra) -> dict[str, str]:
        return {"authorization": f"Bearer {dest.token}", **extra}

    def _call(self, dest, method: str, path: str, *, headers: dict | None = None, body: dict | None = None):
        """Response, or the Outcome of a request that got no answer."""
        try:
            return self.http.request(method, f"{dest.api_base}{path}", timeout=dest.timeout,
                                     allow_private=dest.allow_private, headers=self._headers(dest, **(headers or {})),
                                     json_body=body)
        except RequestFailed as exc:
            return _scrubbed(exc.outcome(), dest)

    def send(self, dest, post: Post) -> Outcome:
        prepared = post.prepared or {}
        since = post.remote.get("posting_since")
        if since is None:
            # Saved before the first request: a later attempt knows one may have been made.
            post.save(posting_since=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        elif _age(since) > self.idempotency_window:
            # The instance may have forgotten the key by now: look for the status first.
            found = self._find_posted(dest, since, prepared["status"])
            if isinstance(found, Outcome):
                return found
            if found is not None:
                return Outcome(status_code=200, body=_short(found), remote_id=str(found["id"]),
                               remote=_remote(found, prepared["status"]))
        body = {"status": prepared["status"], "visibility": dest.visibility}
        if prepared.get("language"):
            body["language"] = prepared["language"]
        # The key is the delivery row's: every attempt of this row asks for the same status.
        resp = self._call(dest, "POST", "/api/v1/statuses", body=body,
                          headers={"idempotency-key": post.message_id})
        if isinstance(resp, Outcome):
            return resp
        status = resp.json() if resp.ok else None
        if resp.ok and not (isinstance(status, dict) and status.get("id")):
            # Not Mastodon answering (a proxy's page?): ask again; the key makes that safe.
            return _scrubbed(resp.outcome(error="the answer has no status id", retryable=True), dest)
        if not resp.ok:
            return answer(resp, dest)
        return resp.outcome(body=_short(status), remote_id=str(status["id"]),
                            remote=_remote(status, prepared["status"]))

    def _find_posted(self, dest, since: str, text: str) -> dict | Outcome | None:
        """The account's status with this text made since `since`, None if there is none,
        or the Outcome of a lookup that failed (retried like any request)."""
        me = self._call(dest, "GET", "/api/v1/accounts/verify_credentials")
        if isinstance(me, Outcome):
            return me
        if me.status == 403:
            return self._cannot_look(dest, me)
        account = me.json() if me.ok else None
        if not me.ok or not isinstance(account, dict) or not account.get("id"):
            return answer(me, dest) if not me.ok else None
        wanted, start = _folded(text), _parse_time(since)
        max_id = None
        for _ in range(LOOKUP_PAGES):
            query = "?limit=40&exclude_reblogs=true&exclude_replies=true" + (f"&max_id={max_id}" if max_id else "")
            page = self._call(dest, "GET", f"/api/v1/accounts/{quote(str(account['id']), safe='')}/statuses{query}")
            if isinstance(page, Outcome):
                return page
            if page.status == 403:
                return self._cannot_look(dest, page)
            if not page.ok:
                return answer(page, dest)
            statuses = [s for s in page.json() or [] if isinstance(s, dict) and s.get("id")]
            for status in statuses:
                if _folded(_html_text(status.get("content") or "")) == wanted:
                    return status
            made = [_parse_time(s.get("created_at")) for s in statuses]
            # Newest first: once a page reaches back past `since` (less a minute of clock
            # difference) there is nothing older to look at.
            if len(statuses) < 40 or any(t is not None and start is not None and t < start - CLOCK_SLACK
                                         for t in made):
                return None
            max_id = statuses[-1]["id"]
        return None

    @staticmethod
    def _cannot_look(dest, resp: Response) -> None:
        # A token with only `write:statuses` may not read: post, as without the lookup.
        log.warning("mastodon channel %s: cannot look for an earlier status (%s); the token needs "
                    "read:accounts and read:statuses for that", dest.name, _error_text(resp))
        return None

    def update(self, dest, post: Post) -> Outcome:
        prepared, previous = post.prepared or {}, post.previous or {}
        if previous.get("text_sha256") == text_hash(prepared["status"]):
            return Outcome.skip("the post's text is unchanged", remote=dict(previous))
        body = {"status": prepared["status"]}
        if prepared.get("language"):
            body["language"] = prepared["language"]
        resp = self._call(dest, "PUT", f"/api/v1/statuses/{quote(str(previous['id']), safe='')}", body=body)
        if isinstance(resp, Outcome):
            return resp
        if resp.status == 404:
            # Deleted on the instance (by hand, or by a moderator): an edit does not bring it back.
            return Outcome.skip("the post is no longer on the instance; the edit is not posted anew",
                                status_code=404, duration_ms=resp.duration_ms)
        if not resp.ok:
            return answer(resp, dest)
        status = resp.json()
        if not isinstance(status, dict):
            status = {}
        status = {"id": previous["id"], "url": previous.get("url"), **{k: v for k, v in status.items() if v}}
        return resp.outcome(body=_short(status), remote_id=str(status["id"]),
                            remote=_remote(status, prepared["status"]))

    def delete(self, dest, post: Post) -> Outcome:
        previous = post.previous or {}
        resp = self._call(dest, "DELETE", f"/api/v1/statuses/{quote(str(previous['id']), safe='')}")
        if isinstance(resp, Outcome):
            return resp
        if resp.status == 404:
            return Outcome.skip("already deleted", status_code=404, duration_ms=resp.duration_ms)
        if not resp.ok:
            return answer(resp, dest)
        return resp.outcome(body="", remote={"id": str(previous["id"]), "url": previous.get("url"),
                                             "deleted": True})


# -- answers -----------------------------------------------------------------------------

def answer(resp: Response, dest) -> Outcome:
    """A refusal as the delivery policy should read it."""
    error = _error_text(resp)
    if resp.status == 401:
        return _scrubbed(resp.outcome(error=error, disable=(
            f"Mastodon refused the access token ({error}): it was revoked or is wrong; "
            f"put a new token in the channel's config and enable the channel")), dest)
    if resp.status in (403, 422):
        return _scrubbed(resp.outcome(error=error, retryable=False), dest)
    if resp.status == 429:
        return _scrubbed(resp.outcome(error=error, retry_after=rate_limit_wait(resp)), dest)
    return _scrubbed(resp.outcome(error=error), dest)


def rate_limit_wait(resp: Response) -> str | None:
    """Seconds until `X-RateLimit-Reset` (an ISO 8601 time), measured from the answer's
    own Date so a skewed local clock does not matter; else the Retry-After header."""
    reset = resp.header("x-ratelimit-reset")
    if reset:
        try:
            when = datetime.fromisoformat(reset.strip().replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            now = _answer_date(resp) or datetime.now(timezone.utc)
            return str(max(1, math.ceil((when - now).total_seconds())))
        except ValueError:
            pass
    return resp.header("retry-after")


def _answer_date(resp: Response) -> datetime | None:
    value = resp.header("date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _error_text(resp: Response) -> str:
    body = resp.json()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"][:500]
    return f"HTTP {resp.status}" + (f": {resp.text[:200]}" if resp.text.strip() else "")


def _remote(status: dict, text: str) -> dict:
    return {"id": str(status["id"]), "url": status.get("url") or status.get("uri"), "text_sha256": text_hash(text)}


def _short(status: dict) -> str:
    return json.dumps({k: status.get(k) for k in ("id", "url", "visibility", "language", "edited_at")
                       if k in status})


def _scrubbed(outcome: Outcome, dest) -> Outcome:
    """The outcome without the channel's token in its body or error (an echoing proxy, a
    library message quoting a header)."""
    token = getattr(dest, "token", None)
    if not token or not any(token in (v or "") for v in (outcome.body, outcome.error)):
        return outcome
    return replace(outcome, body=(outcome.body or "").replace(token, "[token]"),
                   error=outcome.error.replace(token, "[token]") if outcome.error else outcome.error)


def _parse_time(value) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _age(since: str) -> float:
    when = _parse_time(since)
    return (datetime.now(timezone.utc) - when).total_seconds() if when else float("inf")


def _html_text(content: str) -> str:
    """A status's `content` HTML as its text: links keep their full URL (Mastodon hides
    parts of it in spans), hashtags their `#`, entities decoded."""
    return html.unescape(_TAG_RE.sub("", _BREAK_RE.sub(" ", content)))


def _folded(text: str) -> str:
    return " ".join(text.split())


def _parse_limits(resp: Response) -> InstanceLimits:
    body = resp.json() if resp.ok else None
    try:
        statuses = body["configuration"]["statuses"]
        max_chars = int(statuses["max_characters"])
        weight = int(statuses.get("characters_reserved_per_url", DEFAULT_URL_WEIGHT))
    except (TypeError, KeyError, ValueError):
        return InstanceLimits()
    # A limit no instance would have is a broken answer, not a setting.
    if not (1 <= max_chars <= 1_000_000) or not (0 <= weight <= 10_000):
        return InstanceLimits()
    return InstanceLimits(max_chars, weight, read=True)
