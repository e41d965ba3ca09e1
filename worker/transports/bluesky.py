"""Bluesky (AT Protocol): one `app.bsky.feed.post` record per story, with a link card.

- Text: the channel's template, fitted to 300 graphemes and 3000 UTF-8 bytes (both are
  the lexicon's limits), with facets (UTF-8 byte offsets) making the link and each
  hashtag clickable; `langs` from the channel's or the article's language.
- Link card: `app.bsky.embed.external` (uri, title, description) with the article image
  as `thumb`, uploaded with `com.atproto.repo.uploadBlob` when it is a JPEG, PNG, WebP or
  GIF of at most 1,000,000 bytes; otherwise the post goes out without a thumbnail.
- No duplicate posts: the record key (a TID) and `createdAt` are chosen and saved on the
  delivery row before the first attempt. A retry first asks `getRecord` whether an
  earlier attempt's post exists (its answer may have been lost), and `createRecord` on a
  taken key — which the reference PDS answers with a bare 500 — is checked the same way.
- Posts cannot be edited (`follows_edits = False`); an unpublished story's post is
  removed with `deleteRecord`.
- Sessions: see `bluesky_session` (one per account, shared through Redis).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

from config.common import LANGUAGE_TAG_RE
from worker.transports.base import UNPUBLISHED, Outcome, Post, Transport
from worker.transports.bluesky_session import (
    Session,
    SessionFailed,
    Sessions,
    answer_outcome,
    error_name,
    needs_new_token,
)
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose, cut, graphemes, hashtag, plain

log = logging.getLogger(__name__)

COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_TAG_GRAPHEMES = 64
MAX_THUMB_BYTES = 1_000_000
THUMB_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
CARD_DESCRIPTION_GRAPHEMES = 300
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def new_tid(now_us: int | None = None, clock_id: int | None = None) -> str:
    """A TID (atproto record key): 13 base32-sortable characters encoding 53 bits of
    microseconds since the epoch and a 10-bit random clock id, top bit 0."""
    us = now_us if now_us is not None else time.time_ns() // 1000
    value = (us & ((1 << 53) - 1)) << 10 | (clock_id if clock_id is not None else secrets.randbits(10))
    return "".join(TID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def bluesky_length(text: str) -> int:
    """One number for both limits: at most 300 graphemes *and* 3000 bytes (a family emoji
    is one grapheme of 25 bytes, so 300 of them would pass one limit and fail the other)."""
    return max(graphemes(text), math.ceil(len(text.encode()) / (MAX_TEXT_BYTES / MAX_GRAPHEMES)))


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _split_at_uri(uri: str) -> tuple[str, str, str] | None:
    """(repo, collection, rkey) from at://repo/collection/rkey."""
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[len("at://"):].split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


class _Stop(Exception):
    """Stop this attempt with an Outcome (no answer, no session)."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.describe())
        self.outcome = outcome


class BlueskyTransport(Transport):
    type = "bluesky"
    follows_edits = False  # Bluesky has no post editing: the original stays up

    def __init__(self, redis_client=None, http=None):
        super().__init__(redis_client=redis_client, http=http)
        self.sessions = Sessions(self.http, self.redis)

    # -- the message --------------------------------------------------------------------

    def prepare(self, dest, event_type: str, data: dict) -> dict:
        if event_type == UNPUBLISHED:
            return {}
        # A tag longer than a tag facet may be (64 graphemes) would be posted unlinked.
        tags = [t for t in data.get("tags") or [] if (h := hashtag(t)) and graphemes(h) - 1 <= MAX_TAG_GRAPHEMES]
        fitted = compose(dest.template, dict(data, tags=tags), limit=MAX_GRAPHEMES, length=bluesky_length,
                         with_hashtags=dest.hashtags)
        links, tag_spans = fitted.utf8_facets()
        facets = [{"index": {"byteStart": s, "byteEnd": e},
                   "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]} for s, e, uri in links]
        facets += [{"index": {"byteStart": s, "byteEnd": e},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}]} for s, e, tag in tag_spans]
        language = dest.language or data.get("language")
        card = None
        if data.get("url"):
            card = {"uri": data["url"], "title": cut(plain(data.get("title")), MAX_GRAPHEMES),
                    "description": cut(plain(data.get("summary")), CARD_DESCRIPTION_GRAPHEMES)}
        image = data.get("image") or {}
        return {
            "text": fitted.text,
            "facets": facets,
            "langs": [language] if isinstance(language, str) and LANGUAGE_TAG_RE.fullmatch(language) else [],
            "card": card,
            "image_url": image.get("url") if card and isinstance(image, dict) else None,
        }

    # -- publishing ---------------------------------------------------------------------
    def deliver(self, dest, post: Post) -> Outcome:
        # An earlier row whose outcome is unknown (its last answer was lost) leaves a post
        # without an id. Its record key was chosen up front, so Bluesky can say whether it
        # exists: resolved, it is edited (skipped) or deleted like any other; absent, the
        # story was never posted here.
        previous = post.previous
        if previous and not previous.get("id") and previous.get("rkey") and not previous.get("deleted"):
            try:
                session = self.sessions.current(dest)
                found = self._existing(dest, session, previous["rkey"])
            except (_Stop, SessionFailed) as stop:
                return stop.outcome
            post.previous = None
            if found is not None:
                post.previous = {k: v for k, v in previous.items() if k != "unresolved"} | found.remote
        return super().deliver(dest, post)


    def send(self, dest, post: Post) -> Outcome:
        prepared = post.prepared or {}
        text = prepared.get("text", "")
        if bluesky_length(text) > MAX_GRAPHEMES or not (text.strip() or prepared.get("card")):
            return Outcome(error_class="invalid_post", retryable=False,
                           error=f"the post text cannot be made to fit Bluesky's {MAX_GRAPHEMES} graphemes "
                                 f"and {MAX_TEXT_BYTES} bytes (is the URL that long?)" if text.strip()
                           else "the post has neither text nor a link")
        retrying = bool(post.remote.get("rkey"))
        if not retrying:
            # Chosen before anything is sent: every attempt writes this same record.
            post.save(rkey=new_tid(), created_at=_iso_now())
        rkey = post.remote["rkey"]
        try:
            session = self.sessions.current(dest)
            if retrying:
                # An earlier attempt may have made the post and lost the answer.
                found = self._existing(dest, session, rkey)
                if found is not None:
                    return found
            record = self._record(dest, session, prepared, post.remote.get("created_at") or _iso_now())
            resp, session = self._call(dest, session, "POST", "com.atproto.repo.createRecord", json_body={
                "repo": session.did, "collection": COLLECTION, "rkey": rkey, "record": record})
            if resp.status == 500:
                # What the reference PDS answers when the key is taken: ours, from an attempt
                # whose answer was lost (or a second worker on the same row)?
                found = self._existing(dest, session, rkey)
                if found is not None:
                    return found
            if not resp.ok:
                return self._failure(resp)
            answer = resp.json() or {}
            return answer_outcome(resp, remote=self._remote(dest, session, rkey, answer.get("uri"),
                                                            answer.get("cid")))
        except (_Stop, SessionFailed) as stop:
            return stop.outcome

    def _record(self, dest, session: Session, prepared: dict, created_at: str) -> dict:
        record = {"$type": COLLECTION, "text": prepared.get("text", ""), "createdAt": created_at}
        if prepared.get("facets"):
            record["facets"] = prepared["facets"]
        if prepared.get("langs"):
            record["langs"] = prepared["langs"]
        if prepared.get("card"):
            external = dict(prepared["card"])
            thumb = self._thumb(dest, session, prepared.get("image_url"))
            if thumb is not None:
                external["thumb"] = thumb
            record["embed"] = {"$type": "app.bsky.embed.external", "external": external}
        return record

    def delete(self, dest, post: Post) -> Outcome:
        previous = post.previous or {}
        parts = _split_at_uri(previous.get("uri") or previous.get("id"))
        if parts is None:
            return Outcome.skip(f"the post to delete has no AT URI ({str(previous.get('id'))[:100]!r})")
        repo, collection, rkey = parts
        try:
            session = self.sessions.current(dest)
            resp, session = self._call(dest, session, "POST", "com.atproto.repo.deleteRecord",
                                       json_body={"repo": repo, "collection": collection, "rkey": rkey})
        except (_Stop, SessionFailed) as stop:
            return stop.outcome
        if not resp.ok:
            return self._failure(resp)
        return answer_outcome(resp, remote={**previous, "deleted": True})

    # -- steps --------------------------------------------------------------------------

    def _call(self, dest, session: Session, method: str, nsid: str, *, params: dict | None = None,
              json_body=None, data: bytes | None = None, content_type: str | None = None,
              ) -> tuple[Response, Session]:
        """One authenticated XRPC call; a refused token is renewed once and the call repeated."""
        for attempt in (1, 2):
            headers = {"authorization": f"Bearer {session.access}"}
            if content_type:
                headers["content-type"] = content_type
            url = f"{dest.api_base}/xrpc/{nsid}"
            if params:
                url += "?" + urlencode(params)
            try:
                resp = self.http.request(method, url, timeout=float(dest.timeout), allow_private=dest.allow_private,
                                         headers=headers, json_body=json_body, body=data)
            except RequestFailed as exc:
                raise _Stop(exc.outcome()) from None
            if attempt == 1 and needs_new_token(resp):
                session = self.sessions.renew(dest, session)
                continue
            return resp, session
        raise AssertionError("unreachable")

    def _existing(self, dest, session: Session, rkey: str) -> Outcome | None:
        """The success Outcome if the post with this key exists; None if it does not."""
        resp, session = self._call(dest, session, "GET", "com.atproto.repo.getRecord",
                                   params={"repo": session.did, "collection": COLLECTION, "rkey": rkey})
        if resp.ok:
            answer = resp.json() or {}
            log.info("bluesky %s: post %s already exists (an earlier attempt's answer was lost)", dest.name, rkey)
            return answer_outcome(resp, body="", remote=self._remote(dest, session, rkey, answer.get("uri"),
                                                                     answer.get("cid")))
        if error_name(resp) == "RecordNotFound" or resp.status == 404:
            return None
        raise _Stop(self._failure(resp))

    def _thumb(self, dest, session: Session, url: str | None) -> dict | None:
        """The article image uploaded as a blob, or None (no image, or one that does not
        fit: the post goes out without a thumbnail). Upload failures a retry could fix
        stop the attempt."""
        if not url:
            return None
        try:
            image = self.http.fetch(url, timeout=float(dest.timeout), allow_private=dest.allow_private,
                                    max_bytes=MAX_THUMB_BYTES, accept=", ".join(THUMB_TYPES))
        except RequestFailed as exc:
            log.info("bluesky %s: no thumbnail, the image could not be fetched (%s)", dest.name, exc.error_class)
            return None
        ctype = (image.header("content-type") or "").split(";")[0].strip().lower()
        if image.status != 200 or ctype not in THUMB_TYPES or not image.body:
            log.info("bluesky %s: no thumbnail (image answered HTTP %s, %r, %d bytes)", dest.name, image.status,
                     ctype, len(image.body))
            return None
        resp, session = self._call(dest, session, "POST", "com.atproto.repo.uploadBlob", data=image.body,
                                   content_type=ctype)
        blob = (resp.json() or {}).get("blob") if resp.ok else None
        if isinstance(blob, dict):
            return blob
        if resp.status == 429 or resp.status >= 500:
            raise _Stop(self._failure(resp))
        log.info("bluesky %s: no thumbnail, the upload was refused (%s)", dest.name, answer_outcome(resp).describe())
        return None

    def _failure(self, resp: Response) -> Outcome:
        if resp.status == 401:
            # A fresh session was refused too: the account cannot post (suspended,
            # deactivated, app password revoked between two calls).
            return answer_outcome(resp, disable=f"Bluesky refused a fresh session ({answer_outcome(resp).error})")
        if needs_new_token(resp):
            # A token refused right after it was issued: odd, but nothing permanent.
            return answer_outcome(resp, retryable=True)
        return answer_outcome(resp)

    @staticmethod
    def _remote(dest, session: Session, rkey: str, uri: str | None, cid: str | None) -> dict:
        uri = uri or f"at://{session.did}/{COLLECTION}/{rkey}"
        return {"id": uri, "uri": uri, "cid": cid, "rkey": rkey,
                "url": f"https://bsky.app/profile/{session.handle or dest.handle}/post/{rkey}"}
