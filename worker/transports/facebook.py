"""Facebook Pages: a page post per story through the Graph API, as the page (page token).

- `POST /{page-id}/feed` with `message` and `link` (form body); the answer's id is
  `<page>_<post>`, shown at `https://www.facebook.com/<id>`.
- An edited story edits the post's message (`POST /{post-id}`); a withdrawn one deletes it
  (`DELETE /{post-id}`); a post already gone counts as deleted.
- The page token goes in an `Authorization: Bearer` header, never in a URL (URLs end up
  in logs, ours and proxies').
- The message may be 63,206 characters, counted in UTF-16 units as Facebook counts them.
- Facebook has no idempotency key for page posts. Before posting, the row is marked with
  the time of the attempt; a retry that finds the mark (the earlier answer never came)
  first reads the page's recent posts and adopts the one with this story's link (or
  message) instead of posting again. A definite refusal clears the mark.
- Graph errors (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`)
  are read by code, whatever the HTTP status: 1, 2, 4, 17, 32, 341, 613 (or
  `is_transient`) are retried, waiting as long as the usage headers say; 190 (token
  invalid or expired), 10 and 200-299 (permissions) disable the channel; others fail.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote, urlencode

from config.channels import FacebookChannel
from worker.transports.base import PUBLISHED, UPDATED, Outcome, Post, Transport
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose, utf16_length

LIMIT = 63_206
RETRYABLE_CODES = {1, 2, 4, 17, 32, 341, 613}
TOKEN_CODES = {190, 102}
# "Duplicate status message": the page already has this very post.
DUPLICATE_CODE = 506
# How many recent page posts are searched for one whose answer was lost, and how far
# before the lost attempt they may date (clock differences).
LOOKUP_POSTS = 25
LOOKUP_MARGIN = 300
USAGE_HEADERS = ("x-business-use-case-usage", "x-page-usage", "x-app-usage")


def post_url(post_id: str) -> str:
    return f"https://www.facebook.com/{post_id}"


def graph_error(resp: Response) -> dict:
    data = resp.json()
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def describe_error(err: dict) -> str:
    code, subcode = _int(err.get("code")), _int(err.get("error_subcode"))
    text = str(err.get("message") or "unknown error")[:300]
    label = f"code {code}" + (f", subcode {subcode}" if subcode else "")
    trace = f"; fbtrace_id {err['fbtrace_id']}" if err.get("fbtrace_id") else ""
    return f"{text} ({label}{trace})"


def regain_access_seconds(resp: Response) -> str | None:
    """Seconds until Facebook lifts the throttle, from the usage headers
    (`estimated_time_to_regain_access`, minutes), or None."""
    minutes = []
    for name in USAGE_HEADERS:
        raw = resp.header(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        entries = [usage] if isinstance(usage, dict) and "call_count" in usage else [
            e for group in (usage.values() if isinstance(usage, dict) else []) for e in
            (group if isinstance(group, list) else [group])]
        for entry in entries:
            if isinstance(entry, dict) and _int(entry.get("estimated_time_to_regain_access")):
                minutes.append(_int(entry["estimated_time_to_regain_access"]))
    return str(max(minutes) * 60) if minutes else None


def _same_link(a, b) -> bool:
    return bool(a) and bool(b) and str(a).rstrip("/") == str(b).rstrip("/")


class FacebookTransport(Transport):
    type = "facebook"

    def prepare(self, dest: FacebookChannel, event_type: str, data: dict) -> dict:
        if event_type not in (PUBLISHED, UPDATED):
            return {}
        text = compose(dest.template, data, limit=LIMIT, length=utf16_length, with_hashtags=dest.hashtags)
        return {"message": text.text, "link": data.get("url") or None}

    # -- requests -----------------------------------------------------------------------

    def _request(self, dest: FacebookChannel, method: str, path: str, *, query: dict | None = None,
                 form: dict | None = None) -> Response:
        url = dest.api_base + path + (f"?{urlencode(query)}" if query else "")
        return self.http.request(method, url, timeout=dest.timeout, allow_private=dest.allow_private,
                                 headers={"authorization": f"Bearer {dest.page_token}"}, form=form)

    def _refusal(self, resp: Response, what: str) -> Outcome:
        """A Graph error read by its code (the HTTP status says little: 400 for most)."""
        err = graph_error(resp)
        code = _int(err.get("code"))
        if code is None:
            if resp.status == 401:
                return resp.outcome(error=f"Facebook refused the page token while {what}",
                                    disable="Facebook refused the page token (HTTP 401): make a new page token")
            if 400 <= resp.status < 500 and resp.status not in (408, 429):
                return resp.outcome(error=f"Facebook refused {what}: HTTP {resp.status}", retryable=False)
            return resp.outcome(error=f"Facebook answered HTTP {resp.status} while {what}")
        detail = describe_error(err)
        if code in RETRYABLE_CODES or err.get("is_transient") is True:
            return resp.outcome(error=f"Facebook asks to try again later: {detail}", retryable=True,
                                retry_after=regain_access_seconds(resp) or resp.header("retry-after"))
        if code in TOKEN_CODES:
            return resp.outcome(error=f"Facebook refused the page token: {detail}",
                                disable=f"Facebook refused the page token while {what}: {detail}; "
                                        "make a new long-lived page token and update page_token")
        if code == 10 or 200 <= code <= 299:
            return resp.outcome(error=f"Facebook refused the permission: {detail}",
                                disable=f"Facebook refused the permission while {what}: {detail}; the token "
                                        "needs pages_manage_posts (and pages_read_engagement) for this page")
        return resp.outcome(error=f"Facebook refused {what}: {detail}", retryable=False)

    # -- posting ------------------------------------------------------------------------

    def send(self, dest: FacebookChannel, post: Post) -> Outcome:
        if post.event_type == UPDATED and post.previous and post.previous.get("duplicate"):
            # The story is on the page already, under an id we could not learn: no second post.
            return Outcome.skip("the page's post for this story has an unknown id; it cannot be edited",
                                remote=dict(post.previous))
        prepared = post.prepared or {}
        message, link = prepared.get("message") or "", prepared.get("link")
        if not message and not link:
            return Outcome(error_class="empty_post", error="nothing to post: no text and no link", retryable=False)
        if utf16_length(message) > LIMIT:
            return Outcome(error_class="too_long", retryable=False,
                           error=f"the message is {utf16_length(message)} UTF-16 units (limit {LIMIT})")
        lost_at = post.remote.get("attempted_at")
        if lost_at and not post.remote.get("id"):
            # An earlier attempt went out and no answer came: it may have posted.
            try:
                found = self._find_post(dest, message, link, since=int(lost_at) - LOOKUP_MARGIN)
            except RequestFailed as exc:
                return exc.outcome(error=f"could not check for the earlier attempt's post: {exc}")
            if isinstance(found, Outcome):
                return found
            if found:
                return Outcome.skip("already posted: an earlier attempt's answer was lost; its post was found "
                                    "on the page and adopted", status_code=200,
                                    remote={"id": found, "url": post_url(found)})
        post.save(attempted_at=int(time.time()))
        form = {"message": message} if message else {}
        if link:
            form["link"] = link
        try:
            resp = self._request(dest, "POST", f"/{quote(dest.page_id, safe='')}/feed", form=form)
        except RequestFailed as exc:
            return exc.outcome()
        if resp.ok:
            data = resp.json()
            post_id = str(data["id"]) if isinstance(data, dict) and data.get("id") else None
            if not post_id:
                return resp.outcome(error="Facebook answered without the post's id", retryable=True)
            return resp.outcome(remote={"id": post_id, "url": post_url(post_id)})
        if _int(graph_error(resp).get("code")) == DUPLICATE_CODE:
            return self._duplicate(dest, resp, message, link)
        outcome = self._refusal(resp, "the post")
        if graph_error(resp) and resp.status < 500 and not outcome.retryable:
            # A definite refusal: nothing was posted, the next attempt need not look.
            post.save(attempted_at=None)
        return outcome

    def _duplicate(self, dest: FacebookChannel, resp: Response, message: str, link: str | None) -> Outcome:
        """Facebook refused the post as the same as one the page just made: it exists."""
        detail = describe_error(graph_error(resp))
        try:
            found = self._find_post(dest, message, link, since=int(time.time()) - 86_400)
        except RequestFailed:
            found = None
        if isinstance(found, str):
            return Outcome.skip(f"already posted: Facebook refused a duplicate ({detail}); the page's post was "
                                "adopted", status_code=resp.status, body=resp.text[:2048],
                                remote={"id": found, "url": post_url(found), "duplicate": True})
        return Outcome.skip(f"already posted: Facebook refused a duplicate ({detail}); the post's id was not "
                            "found, so it cannot be edited or deleted by syndicate", status_code=resp.status,
                            body=resp.text[:2048], remote={"id": None, "url": None, "duplicate": True})

    def _find_post(self, dest: FacebookChannel, message: str, link: str | None, since: int):
        """The id of the page's recent post with this link (or this message), None if there
        is none, or an Outcome when the page could not be read."""
        resp = self._request(dest, "GET", f"/{quote(dest.page_id, safe='')}/feed",
                             query={"fields": "id,message,link", "limit": LOOKUP_POSTS, "since": since})
        if not resp.ok:
            return self._refusal(resp, "reading the page's recent posts")
        data = resp.json()
        posts = data.get("data") if isinstance(data, dict) else None
        for item in posts if isinstance(posts, list) else []:
            if not isinstance(item, dict) or not item.get("id"):
                continue
            if link and _same_link(item.get("link"), link):
                return str(item["id"])
            if message and (item.get("message") or "").strip() == message.strip():
                return str(item["id"])
        return None

    # -- editing and deleting -----------------------------------------------------------

    def update(self, dest: FacebookChannel, post: Post) -> Outcome:
        post_id = str(post.previous["id"])
        message = (post.prepared or {}).get("message") or ""
        if not message:
            return Outcome.skip("the edited story gives no message; the post stays as it is",
                                remote=dict(post.previous))
        try:
            resp = self._request(dest, "POST", f"/{quote(post_id, safe='')}", form={"message": message})
        except RequestFailed as exc:
            return exc.outcome()
        if resp.ok:
            return resp.outcome(remote=dict(post.previous))
        if _gone(resp):
            return resp.outcome(error=f"the post {post_id} is gone from the page (deleted there?); "
                                      "the edit cannot be made", retryable=False)
        return self._refusal(resp, "the edit")

    def delete(self, dest: FacebookChannel, post: Post) -> Outcome:
        post_id = str(post.previous["id"])
        try:
            resp = self._request(dest, "DELETE", f"/{quote(post_id, safe='')}")
        except RequestFailed as exc:
            return exc.outcome()
        if resp.ok:
            return resp.outcome(remote={**post.previous, "deleted": True})
        if _gone(resp):
            # Deleted by hand on the page, or an earlier attempt's answer was lost.
            return Outcome.skip(f"the post {post_id} is already gone from the page", status_code=resp.status,
                                body=resp.text[:2048], duration_ms=resp.duration_ms,
                                remote={**post.previous, "deleted": True})
        return self._refusal(resp, "the deletion")


def _gone(resp: Response) -> bool:
    """Graph's answer for an object that does not exist (code 100, subcode 33)."""
    err = graph_error(resp)
    return _int(err.get("code")) == 100 and _int(err.get("error_subcode")) == 33
