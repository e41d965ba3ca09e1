"""X (Twitter): a post per story through API v2, signed with OAuth 1.0a user context.

- `POST /2/tweets` with `{"text": ...}`, signed by `oauthlib` (HMAC-SHA1, Authorization
  header). The JSON body is not part of the signature base string (only form bodies are),
  and no `oauth_body_hash` is sent: signed as requests-oauthlib (tweepy) signs for X.
- 280 characters as X counts them (`text.x_length`: most CJK and emoji count 2, every URL
  23), fitted by `text.compose`.
- X has no idempotency key. X refuses a post whose text it has already seen from this
  account (403 "duplicate content"); the text always carries the story's URL, so after an
  attempt whose answer was lost, the retry is refused as a duplicate: that refusal is the
  proof the post exists, and the delivery is recorded as done (skipped, "already posted").
  The tweet's id is then looked up in the account's recent posts (`GET /2/users/:id/tweets`,
  a paid access level); if the lookup is not allowed or finds nothing, the remote is
  `{"id": null, "duplicate": true}` and that tweet cannot be deleted on unpublish.
- Edits cannot be made through the API (`follows_edits = False`); unpublish deletes.
- 429 honours `x-rate-limit-reset` (and the 24-hour app/user caps when exhausted); 401
  disables the channel (credentials); 403 for app permissions or enrolment disables it;
  any other 403 or 4xx fails at once with X's detail; 5xx and no answer are retried.
"""

from __future__ import annotations

import hashlib
import html
import threading
import time
from urllib.parse import urlencode

from oauthlib.oauth1 import Client

from config.channels import XChannel
from worker.transports.base import PUBLISHED, UPDATED, Outcome, Post, Transport
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose, x_length

LIMIT = 280
DUPLICATE_DETAIL = "duplicate content"
# How many of the account's latest posts are searched for the duplicate's id.
LOOKUP_POSTS = 20
# Rate-limit header families X sends; the latest reset among exhausted ones wins.
_LIMIT_FAMILIES = ("x-rate-limit", "x-app-limit-24hour", "x-user-limit-24hour")


def tweet_url(tweet_id: str) -> str:
    return f"https://x.com/i/web/status/{tweet_id}"


def problem_detail(resp: Response) -> str:
    """X's explanation from a v2 problem body (`detail`, `title`, `errors[].message`)."""
    data = resp.json()
    if not isinstance(data, dict):
        return resp.text[:300]
    parts = []
    for key in ("detail", "title"):
        if isinstance(data.get(key), str) and data[key] not in parts:
            parts.append(data[key])
            break
    for err in data.get("errors") or []:
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            parts.append(err["message"])
    return "; ".join(parts)[:500] or resp.text[:300]


def retry_after_seconds(resp: Response, now: float | None = None) -> str | None:
    """Delta seconds until the exhausted limit resets (X sends epoch seconds)."""
    now = time.time() if now is None else now
    resets = []
    for family in _LIMIT_FAMILIES:
        reset = resp.header(f"{family}-reset")
        remaining = resp.header(f"{family}-remaining")
        if reset and reset.strip().isdigit() and (remaining is None or remaining.strip() == "0"):
            resets.append(int(reset))
    if not resets:
        reset = resp.header("x-rate-limit-reset")
        if reset and reset.strip().isdigit():
            resets.append(int(reset))
    if not resets:
        return resp.header("retry-after")
    return str(max(1, int(max(resets) - now + 0.999)))


def _same_link(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class XTransport(Transport):
    type = "x"
    follows_edits = False

    def __init__(self, redis_client=None, http=None):
        super().__init__(redis_client=redis_client, http=http)
        # The account's user id per (base, token), found once per process for the lookup.
        self._user_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- preparing ----------------------------------------------------------------------

    def prepare(self, dest: XChannel, event_type: str, data: dict) -> dict:
        if event_type not in (PUBLISHED, UPDATED):
            return {}
        text = compose(dest.template, data, limit=LIMIT, length=x_length, with_hashtags=dest.hashtags)
        return {"text": text.text, "url": text.url}

    # -- requests -----------------------------------------------------------------------

    def _request(self, dest: XChannel, method: str, path: str, *, query: dict | None = None,
                 json_body=None) -> Response:
        url = dest.api_base + path + (f"?{urlencode(query)}" if query else "")
        headers = {"content-type": "application/json"} if json_body is not None else {}
        client = Client(dest.consumer_key, client_secret=dest.consumer_secret,
                        resource_owner_key=dest.access_token, resource_owner_secret=dest.access_token_secret)
        # body=None: a JSON body is not signed (oauthlib would otherwise add oauth_body_hash).
        _, signed, _ = client.sign(url, http_method=method, body=None, headers=headers)
        return self.http.request(method, url, timeout=dest.timeout, allow_private=dest.allow_private,
                                 headers=signed, json_body=json_body)

    def _refusal(self, resp: Response, what: str) -> Outcome:
        """An answer that is not a success, read as X means it."""
        detail = problem_detail(resp)
        if resp.status == 401:
            return resp.outcome(error=f"X refused the credentials: {detail}",
                                disable=f"X refused the credentials (HTTP 401) while {what}: check the "
                                        "consumer key and secret and the access token and secret")
        if resp.status == 403 and _app_not_allowed(resp, detail):
            return resp.outcome(error=f"X refused the app: {detail}",
                                disable=f"X refused the app (HTTP 403) while {what}: {detail[:200]}")
        if resp.status == 429:
            return resp.outcome(error=f"X rate limit reached: {detail}", retry_after=retry_after_seconds(resp))
        if 400 <= resp.status < 500:
            return resp.outcome(error=f"X refused {what}: {detail}", retryable=False)
        return resp.outcome(error=f"X answered HTTP {resp.status} while {what}: {detail}")

    # -- posting ------------------------------------------------------------------------

    def send(self, dest: XChannel, post: Post) -> Outcome:
        if post.event_type == UPDATED and post.previous and post.previous.get("duplicate"):
            # The story is on X already, under an id we could not learn: no second post.
            return Outcome.skip("x posts cannot be edited; the original stays up", remote=dict(post.previous))
        text = (post.prepared or {}).get("text") or ""
        if not text:
            return Outcome(error_class="empty_post", error="nothing to post: the template gave no text",
                           retryable=False)
        length = x_length(text)
        if length > LIMIT:
            return Outcome(error_class="too_long", retryable=False,
                           error=f"the post is {length} characters as X counts them (limit {LIMIT}); "
                                 "only the URL was left, shorten the template")
        # A marker before the risky step: a later duplicate refusal then reads as "our own
        # earlier attempt went through" (the answer was lost), not as someone else's post.
        earlier = bool(post.remote.get("attempted"))
        post.save(attempted=True)
        try:
            resp = self._request(dest, "POST", "/2/tweets", json_body={"text": text})
        except RequestFailed as exc:
            return exc.outcome()
        if resp.ok:
            answer = resp.json()
            data = answer.get("data") if isinstance(answer, dict) else None
            tweet_id = str(data["id"]) if isinstance(data, dict) and data.get("id") else None
            if not tweet_id:
                # The post may exist; a retry meets the duplicate refusal and records it.
                return resp.outcome(error="X answered without the post's id", retryable=True)
            return resp.outcome(remote={"id": tweet_id, "url": tweet_url(tweet_id)})
        if resp.status == 403 and DUPLICATE_DETAIL in problem_detail(resp).lower():
            return self._duplicate(dest, post, resp, earlier)
        return self._refusal(resp, "the post")

    def _duplicate(self, dest: XChannel, post: Post, resp: Response, earlier: bool) -> Outcome:
        prepared = post.prepared or {}
        found = self._find_post(dest, prepared.get("text") or "", prepared.get("url"))
        why = ("an earlier attempt's answer was lost and X refused the retry as a duplicate"
               if earlier else "X refused it as a duplicate of a post the account already made")
        if found:
            return Outcome.skip(f"already posted: {why}; its id was found in the account's posts",
                                status_code=resp.status, body=resp.text[:2048], duration_ms=resp.duration_ms,
                                remote={"id": found, "url": tweet_url(found), "duplicate": True})
        return Outcome.skip(f"already posted: {why}; its id is unknown (looking it up needs a paid X API "
                            "access level), so it cannot be deleted on unpublish",
                            status_code=resp.status, body=resp.text[:2048], duration_ms=resp.duration_ms,
                            remote={"id": None, "url": None, "duplicate": True})

    def _find_post(self, dest: XChannel, text: str, link: str | None) -> str | None:
        """The id of the account's recent post with this link or text, or None (the lookup
        is best effort: any failure leaves the id unknown)."""
        try:
            user_id = self._user_id(dest)
            if not user_id:
                return None
            resp = self._request(dest, "GET", f"/2/users/{user_id}/tweets",
                                 query={"max_results": LOOKUP_POSTS, "tweet.fields": "entities",
                                        "exclude": "retweets,replies"})
        except RequestFailed:
            return None
        answer = resp.json() if resp.ok else None
        tweets = answer.get("data") if isinstance(answer, dict) else None
        for tweet in tweets if isinstance(tweets, list) else []:
            if isinstance(tweet, dict) and tweet.get("id") and _matches(tweet, text, link):
                return str(tweet["id"])
        return None

    def _user_id(self, dest: XChannel) -> str | None:
        key = hashlib.sha256(f"{dest.api_base}\0{dest.access_token}".encode()).hexdigest()
        with self._lock:
            if key in self._user_ids:
                return self._user_ids[key]
        resp = self._request(dest, "GET", "/2/users/me")
        data = resp.json() if resp.ok else None
        user = data.get("data") if isinstance(data, dict) else None
        if not isinstance(user, dict) or not user.get("id"):
            return None
        with self._lock:
            self._user_ids[key] = str(user["id"])
        return self._user_ids[key]

    # -- unpublishing -------------------------------------------------------------------

    def delete(self, dest: XChannel, post: Post) -> Outcome:
        tweet_id = str(post.previous["id"])
        try:
            resp = self._request(dest, "DELETE", f"/2/tweets/{tweet_id}")
        except RequestFailed as exc:
            return exc.outcome()
        if resp.ok:
            data = resp.json()
            deleted = isinstance(data, dict) and isinstance(data.get("data"), dict) and data["data"].get("deleted")
            if deleted:
                return resp.outcome(remote={**post.previous, "deleted": True})
            return resp.outcome(error="X did not confirm the deletion", retryable=True)
        if resp.status == 404:
            # Gone already: deleted by hand, or an earlier attempt's answer was lost.
            return Outcome.skip(f"the post {tweet_id} is already gone from X", status_code=404,
                                body=resp.text[:2048], duration_ms=resp.duration_ms,
                                remote={**post.previous, "deleted": True})
        return self._refusal(resp, "the deletion")


def _app_not_allowed(resp: Response, detail: str) -> bool:
    """A 403 about the app itself (not this post): read-only app permissions, or an app
    outside a Project; every post would be refused the same way."""
    data = resp.json()
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason in ("client-not-enrolled", "official-client-forbidden") or "app permissions" in detail.lower()


def _matches(tweet: dict, text: str, link: str | None) -> bool:
    """Whether X's copy of a post is ours: the same link (X shows it as t.co, with the
    original in `entities.urls[].expanded_url`), or the same text once X's t.co links and
    HTML escaping are undone."""
    urls = ((tweet.get("entities") or {}).get("urls") or []) if isinstance(tweet.get("entities"), dict) else []
    shown = str(tweet.get("text") or "")
    for u in urls:
        if not isinstance(u, dict):
            continue
        expanded, short = str(u.get("expanded_url") or ""), str(u.get("url") or "")
        if link and expanded and _same_link(expanded, link):
            return True
        if short and expanded:
            shown = shown.replace(short, expanded)
    return bool(text) and html.unescape(shown).strip() == text.strip()
