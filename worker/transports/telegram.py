"""Telegram channels and groups through the Bot API (`sendMessage`, `editMessageText`,
`deleteMessage`), as a bot the channel has made an administrator.

- The post is HTML (`parse_mode=HTML`): the fitted plain text with `&`, `<`, `>` escaped
  and the article link as an `<a href>`; the link preview shows the article
  (`link_preview_options.url`). Telegram's limit, 4096 characters after entity parsing,
  counts UTF-16 code units: the plain text is fitted with `text.utf16_length`.
- Requests go to `{base_url}/bot{token}/{method}`: the token is part of the URL, so every
  Outcome leaving here is scrubbed of it.
- Telegram has no idempotency key and a bot cannot read a channel's history, so a
  `sendMessage` whose answer was lost cannot be checked afterwards. A send is therefore
  *at most once*: before the request the row is marked (`sending`); a failure that
  proves nothing was posted (refused connection, a request never fully written, a 4xx,
  a 429) clears the mark and is retried; a failure after the whole request was written
  (timeout, reset, a 5xx from Telegram's gateway, a worker killed mid-request) leaves the
  mark and ends as `answer_lost` — not retried, for an operator to check the channel and
  replay if the post is missing. Edits and deletes are idempotent and retried as usual.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import wraps
from urllib.parse import quote

from worker.transports.base import UNPUBLISHED, Outcome, Post, Transport, TransportError
from worker.transports.http import RequestFailed, Response
from worker.transports.text import PostText, compose, utf16_length

MAX_TEXT = 4096  # UTF-16 code units of the text after entity parsing
DELETE_WINDOW = timedelta(hours=48)
DELETE_WINDOW_REASON = "Telegram allows deleting only within 48 hours"
TOKEN_MARK = "<token>"

# Refusals that say the chat itself is unusable for this bot (wrong chat, no rights):
# every later post would be refused the same way, so the channel is disabled.
_CHAT_UNUSABLE = ("chat not found", "not enough rights", "need administrator rights", "have no rights",
                  "chat_write_forbidden", "group chat was deactivated", "chat_admin_required")


def escape(text: str) -> str:
    """Text for Telegram's HTML: only `&`, `<` and `>` are special there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(text: str) -> str:
    return escape(text).replace('"', "&quot;")


def to_html(post: PostText) -> str:
    """The fitted post as Telegram HTML, its link as an `<a href>`."""
    out, last = [], 0
    for start, end, uri in sorted(post.links):
        out.append(escape(post.text[last:start]))
        out.append(f'<a href="{escape_attribute(uri)}">{escape(post.text[start:end])}</a>')
        last = end
    out.append(escape(post.text[last:]))
    return "".join(out)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(value) -> datetime | None:
    """A datetime from a datetime or an ISO 8601 string (naive taken as UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _scrubbed(method):
    """No Outcome leaves the transport with the bot token in it (it is in every URL)."""

    @wraps(method)
    def wrapper(self, dest, post: Post) -> Outcome:
        return scrub(method(self, dest, post), dest.token)

    return wrapper


def scrub(outcome: Outcome, token: str) -> Outcome:
    values = {}
    for name in ("body", "error", "location"):
        text = getattr(outcome, name)
        if text:
            for form in (token, quote(token, safe="")):
                text = text.replace(form, TOKEN_MARK)
            values[name] = text
    return replace(outcome, **values) if values else outcome


class TelegramTransport(Transport):
    type = "telegram"

    # -- preparing --------------------------------------------------------------------

    def prepare(self, dest, event_type: str, data: dict) -> dict:
        if event_type == UNPUBLISHED:
            return {"url": data.get("url")}
        fitted = compose(dest.template, data, limit=MAX_TEXT, length=utf16_length, with_hashtags=dest.hashtags)
        length = utf16_length(fitted.text)
        if not fitted.text.strip():
            raise TransportError("the post text is empty: the template's fields are all blank for this article",
                                 permanent=True)
        if length > MAX_TEXT:
            raise TransportError(f"the post is {length} UTF-16 units long even cut down (Telegram allows "
                                 f"{MAX_TEXT}): the article URL alone is too long", permanent=True)
        html = to_html(fitted)
        return {"html": html, "length": length, "url": fitted.url or data.get("url"),
                "digest": hashlib.sha256(html.encode()).hexdigest()[:16]}

    # -- calling ----------------------------------------------------------------------

    def _call(self, dest, method: str, params: dict) -> Response:
        return self.http.request("POST", f"{dest.api_base}/bot{dest.token}/{method}", timeout=float(dest.timeout),
                                 allow_private=dest.allow_private, json_body=params)

    @staticmethod
    def _message_params(prepared: dict) -> dict:
        params = {"text": prepared["html"], "parse_mode": "HTML"}
        if prepared.get("url"):
            params["link_preview_options"] = {"is_disabled": False, "url": prepared["url"]}
        return params

    # -- sending ----------------------------------------------------------------------

    @_scrubbed
    def send(self, dest, post: Post) -> Outcome:
        prepared = post.prepared or {}
        if not prepared.get("html"):
            return Outcome(error_class="bad_post", error="nothing to post: the prepared message has no text",
                           retryable=False)
        if post.remote.get("id"):
            # An earlier attempt posted and saved the answer, but its outcome was not recorded.
            return Outcome.skip("already posted by an earlier attempt", remote=self._posted(post.remote))
        if post.remote.get("sending"):
            return self._unconfirmed(post, f"an earlier attempt (started {post.remote['sending']}) sent the "
                                           "message and never heard back")
        if post.previous and post.previous.get("sending") and not post.previous.get("id"):
            # An earlier delivery of this article (say the first publication) is unresolved:
            # it may have posted, so an update must not post a second copy.
            return self._unconfirmed(post, f"an earlier delivery of this article (started "
                                           f"{post.previous['sending']}) may have posted it already")
        # The mark goes on the row before the request: if this process dies while the
        # request is out, the next attempt knows a post may exist.
        post.save(sending=_iso(_now()), digest=prepared.get("digest"))
        try:
            resp = self._call(dest, "sendMessage", {"chat_id": dest.chat_id, **self._message_params(prepared)})
        except RequestFailed as exc:
            if exc.sent:
                return self._unconfirmed(post, f"{exc.error_class} after the request was sent ({exc})",
                                         duration_ms=exc.duration_ms)
            post.save(sending=None)
            return exc.outcome(remote=dict(post.remote))
        answer = resp.json()
        if resp.status >= 500 or (resp.ok and not (isinstance(answer, dict) and answer.get("ok"))):
            # Telegram's gateway answers 5xx when the Bot API server was slow: the
            # message may have been posted all the same.
            return self._unconfirmed(post, f"Telegram answered HTTP {resp.status} to sendMessage",
                                     status_code=resp.status, body=resp.text[:2048], duration_ms=resp.duration_ms)
        if resp.ok:
            remote = self._remote(dest, answer.get("result") or {})
            post.save(sending=None, **remote)
            return resp.outcome(remote=remote)
        # A refusal: nothing was posted, a later attempt may send.
        post.save(sending=None)
        return self._refused(dest, resp, answer, remote=dict(post.remote))

    @staticmethod
    def _posted(remote: dict) -> dict:
        return {k: remote[k] for k in ("id", "chat_id", "url", "sent_at") if remote.get(k) is not None}

    @staticmethod
    def _unconfirmed(post: Post, why: str, **values) -> Outcome:
        return Outcome(error_class="answer_lost", retryable=False, remote=dict(post.remote),
                       error=f"{why}: the message may have been posted, and Telegram offers no way to check, so it "
                             "is not sent again automatically; look at the channel and replay this delivery "
                             "only if the post is missing", **values)

    @staticmethod
    def _remote(dest, message: dict) -> dict:
        chat = message.get("chat") or {}
        remote = {"id": message.get("message_id"), "chat_id": str(chat.get("id") or dest.chat_id)}
        username = chat.get("username") or (dest.chat_id[1:] if str(dest.chat_id).startswith("@") else None)
        if username and remote["id"] is not None:
            remote["url"] = f"https://t.me/{username}/{remote['id']}"
        date = message.get("date")
        sent = datetime.fromtimestamp(date, timezone.utc) if isinstance(date, (int, float)) else _now()
        remote["sent_at"] = _iso(sent)
        return remote

    # -- editing ----------------------------------------------------------------------

    @_scrubbed
    def update(self, dest, post: Post) -> Outcome:
        previous = dict(post.previous or {})
        prepared = post.prepared or {}
        if not prepared.get("html"):
            return Outcome(error_class="bad_post", error="nothing to post: the prepared message has no text",
                           retryable=False)
        params = {"chat_id": previous.get("chat_id") or dest.chat_id, "message_id": int(previous["id"]),
                  **self._message_params(prepared)}
        try:
            resp = self._call(dest, "editMessageText", params)
        except RequestFailed as exc:
            return exc.outcome()  # an edit is idempotent: retried as usual
        answer = resp.json()
        if resp.ok and isinstance(answer, dict) and answer.get("ok"):
            return resp.outcome(remote={**previous, "edited_at": _iso(_now())})
        description = self._description(resp, answer).lower()
        if resp.status == 400 and "message is not modified" in description:
            return Outcome.skip("unchanged: the post already says this", remote=previous,
                                status_code=resp.status, duration_ms=resp.duration_ms)
        if resp.status == 400 and "message to edit not found" in description:
            return Outcome.skip("the post is no longer on Telegram (deleted there); not posted again",
                                remote=previous, status_code=resp.status, duration_ms=resp.duration_ms)
        if resp.status == 400 and "message can't be edited" in description:
            return Outcome.skip("Telegram does not allow editing this post; the original stays up",
                                remote=previous, status_code=resp.status, duration_ms=resp.duration_ms)
        return self._refused(dest, resp, answer)

    # -- deleting ---------------------------------------------------------------------

    @_scrubbed
    def delete(self, dest, post: Post) -> Outcome:
        previous = dict(post.previous or {})
        sent_at = _when(post.previous_at) or _when(previous.get("sent_at"))
        if sent_at is not None and _now() - sent_at > DELETE_WINDOW:
            return Outcome.skip(f"{DELETE_WINDOW_REASON}; this post was made {_iso(sent_at)}", remote=previous)
        params = {"chat_id": previous.get("chat_id") or dest.chat_id, "message_id": int(previous["id"])}
        try:
            resp = self._call(dest, "deleteMessage", params)
        except RequestFailed as exc:
            return exc.outcome()
        answer = resp.json()
        if resp.ok and isinstance(answer, dict) and answer.get("ok"):
            return resp.outcome(remote={**previous, "deleted_at": _iso(_now())})
        description = self._description(resp, answer)
        low = description.lower()
        if resp.status == 400 and "message to delete not found" in low:
            return Outcome.skip("already deleted", remote=previous, status_code=resp.status,
                                duration_ms=resp.duration_ms)
        if resp.status == 400 and "message can't be deleted" in low:
            return Outcome.skip(f"{DELETE_WINDOW_REASON} (and only with the right to delete posts): "
                                f"{description}", remote=previous, status_code=resp.status,
                                duration_ms=resp.duration_ms)
        return self._refused(dest, resp, answer)

    # -- refusals ---------------------------------------------------------------------

    @staticmethod
    def _description(resp: Response, answer) -> str:
        if isinstance(answer, dict) and answer.get("description"):
            return str(answer["description"])
        return resp.text[:200]

    def _refused(self, dest, resp: Response, answer, **extra) -> Outcome:
        """What a Telegram error answer means for the delivery and the channel."""
        description = self._description(resp, answer)
        params = (answer.get("parameters") if isinstance(answer, dict) else None) or {}
        low = description.lower()
        status = resp.status
        if status == 429:
            hinted = params.get("retry_after")
            retry_after = str(int(hinted)) if isinstance(hinted, (int, float)) else resp.header("retry-after")
            return resp.outcome(error=description, retry_after=retry_after, **extra)
        if status == 401:
            return resp.outcome(error=description, disable="Telegram refused the bot token (401 Unauthorized): "
                                "get the current token from @BotFather", **extra)
        if status == 404:
            return resp.outcome(error=description, disable="Telegram does not know this bot (404 Not Found): "
                                "check the token", **extra)
        if status == 403:
            return resp.outcome(error=description, disable=f"Telegram refused the bot in chat {dest.chat_id}: "
                                f"{description}", **extra)
        if params.get("migrate_to_chat_id"):
            return resp.outcome(error=description, disable=f"the group {dest.chat_id} became a supergroup: set "
                                f"chat_id = \"{params['migrate_to_chat_id']}\"", **extra)
        if status == 400 and any(mark in low for mark in _CHAT_UNUSABLE):
            return resp.outcome(error=description, disable=f"Telegram refused chat {dest.chat_id}: {description}",
                                **extra)
        # Any other refusal is about this message (status 400: failed, not retried).
        return resp.outcome(error=description, **extra)
