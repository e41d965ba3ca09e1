"""LinkedIn organization posts through the versioned REST API (Posts and Images APIs).

- A post is `POST /rest/posts` as the organization, an article share: `commentary` in
  LinkedIn's "little" text format, `content.article` with the story's URL, title,
  description and (when it could be uploaded) a thumbnail image URN. LinkedIn answers
  201 with the post's URN in `x-restli-id`.
- `commentary` is at most 3,000 characters. LinkedIn is a Java service: we count UTF-16
  code units, and count the commentary *after* escaping (see below), the stricter reading.
- "little" reserves `\\ | { } @ [ ] ( ) < > # * _ ~`. Unescaped, LinkedIn does not refuse
  the post: it cuts the text at the first one (a summary ending in "[…]" would lose its
  end). Every reserved character is backslash-escaped, except the `#` of our own hashtags,
  which stay hashtags.
- Edits are a PARTIAL_UPDATE of the commentary; withdrawals delete the post (404: gone).
- No idempotency key exists. Before the POST the attempt is saved on the row; a retry of
  an attempt whose answer was lost first lists the organization's recent posts and takes
  the one for this story's URL made since, instead of posting it again.
"""

from __future__ import annotations

import time
from urllib.parse import quote, urlsplit

from worker.transports.base import UNPUBLISHED, Outcome, Post, Transport
from worker.transports.http import RequestFailed, Response
from worker.transports.text import compose, cut, plain, utf16_length

COMMENTARY_LIMIT = 3000
TITLE_KEEP = 200  # graphemes of the article card's title
DESCRIPTION_KEEP = 300
IMAGE_MAX_BYTES = 8 * 1024 * 1024
RESERVED = set("\\|{}@[]()<>#*_~")
# A post found by the look-up after a lost answer must be at least this recent (clock skew).
LOOKUP_SKEW_MS = 5 * 60 * 1000
POST_URL = "https://www.linkedin.com/feed/update/{urn}"


def escape_little(text: str, keep: set[int] = frozenset()) -> str:
    """`text` as plain text in LinkedIn's little format: every reserved character escaped,
    except those at the positions in `keep` (the `#` of a hashtag)."""
    return "".join("\\" + ch if ch in RESERVED and i not in keep else ch for i, ch in enumerate(text))


def commentary_length(text: str) -> int:
    """How long the commentary will be once escaped (UTF-16 units): what we fit to 3,000."""
    return utf16_length(text) + sum(1 for ch in text if ch in RESERVED)


def _encoded(urn: str) -> str:
    return quote(urn, safe="")


class LinkedInTransport(Transport):
    type = "linkedin"

    # --- preparing ----------------------------------------------------------------

    def prepare(self, dest, event_type: str, data: dict) -> dict:
        if event_type == UNPUBLISHED:
            return {"url": data.get("url")}
        fitted = compose(dest.template, data, limit=COMMENTARY_LIMIT, length=commentary_length,
                         with_hashtags=dest.hashtags)
        hashes = {start for start, _end, _tag in fitted.tags}
        image = data.get("image") or {}
        return {
            "text": fitted.text,
            "commentary": escape_little(fitted.text, hashes),
            "url": data.get("url"),
            "title": cut(plain(data.get("title")), TITLE_KEEP),
            "description": cut(plain(data.get("summary")), DESCRIPTION_KEEP),
            "image": image.get("url") if isinstance(image, dict) else None,
        }

    # --- requests -----------------------------------------------------------------

    def _headers(self, dest, method: str | None = None) -> dict:
        headers = {"authorization": f"Bearer {dest.token}", "linkedin-version": dest.api_version,
                   "x-restli-protocol-version": "2.0.0"}
        if method:
            headers["x-restli-method"] = method
        return headers

    def _call(self, dest, method: str, path: str, *, restli_method: str | None = None, json_body=None):
        """One API request: a Response, or an Outcome when no answer came."""
        try:
            return self.http.request(method, dest.api_base + path, timeout=dest.timeout,
                                     allow_private=dest.allow_private,
                                     headers=self._headers(dest, restli_method), json_body=json_body)
        except RequestFailed as exc:
            return exc.outcome()

    @staticmethod
    def _refusal(resp: Response, **extra) -> Outcome:
        """A non-2xx answer as an Outcome the engine reads correctly."""
        data = resp.json() if isinstance(resp.json(), dict) else {}
        message = str(data.get("message") or resp.text[:300])
        code = str(data.get("code") or "")
        if resp.status == 401:
            return resp.outcome(error=message, disable=(
                "LinkedIn refused the access token (expired or revoked; LinkedIn tokens last 60 days): "
                + message), **extra)
        if resp.status == 403:
            return resp.outcome(error=message, disable=(
                "LinkedIn denied access (the token needs w_organization_social, and r_organization_social "
                "to check a lost answer, from an administrator of the organization): " + message), **extra)
        if resp.status == 426 or code == "NONEXISTENT_VERSION":
            return resp.outcome(error=message, disable=(
                "LinkedIn no longer serves this api_version; set a current YYYYMM version: " + message), **extra)
        return resp.outcome(error=message, **extra)

    # --- publishing ---------------------------------------------------------------

    def send(self, dest, post: Post) -> Outcome:
        msg = post.prepared
        if post.remote.get("id"):
            return Outcome.skip("already posted", remote=self._remote(post.remote["id"]))
        if post.remote.get("attempted_at"):
            # An earlier attempt sent the POST and heard nothing back: the post may exist.
            found = self._find_earlier(dest, msg["url"], post.remote["attempted_at"])
            if isinstance(found, Outcome):
                return found
            if found:
                post.save(id=found)
                return Outcome(status_code=200, remote=self._remote(found), body="found the post an earlier "
                               "attempt made (its answer was lost)")
        thumbnail = post.remote.get("thumbnail")
        if thumbnail is None and msg.get("image"):
            thumbnail = self._upload_thumbnail(dest, msg["image"]) or ""
            post.save(thumbnail=thumbnail)
        article = {"source": msg["url"], "title": msg["title"]}
        if msg.get("description"):
            article["description"] = msg["description"]
        if thumbnail:
            article["thumbnail"] = thumbnail
        body = {
            "author": dest.organization,
            "commentary": msg["commentary"],
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "content": {"article": article},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if not post.remote.get("attempted_at"):
            # Saved before the POST, kept from the first attempt: the look-up window starts here.
            post.save(attempted_at=int(time.time() * 1000))
        resp = self._call(dest, "POST", "/rest/posts", json_body=body)
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            return self._refusal(resp)
        urn = resp.header("x-restli-id") or (resp.json() or {}).get("id")
        if not urn:
            return resp.outcome(retryable=False, error="LinkedIn answered without the post's id (x-restli-id)")
        post.save(id=urn)
        return resp.outcome(remote=self._remote(urn))

    @staticmethod
    def _remote(urn: str) -> dict:
        return {"id": urn, "url": POST_URL.format(urn=urn)}

    def _find_earlier(self, dest, url: str, attempted_at: int):
        """The URN of this story's post made since `attempted_at`, None if there is none,
        or an Outcome when LinkedIn could not be asked (then nothing is posted)."""
        path = f"/rest/posts?author={_encoded(dest.organization)}&q=author&count=10&sortBy=CREATED"
        resp = self._call(dest, "GET", path, restli_method="FINDER")
        if isinstance(resp, Outcome):
            return resp
        if not resp.ok:
            return self._refusal(resp)
        for element in (resp.json() or {}).get("elements") or []:
            article = ((element.get("content") or {}).get("article") or {})
            created = element.get("createdAt") or element.get("publishedAt") or 0
            if article.get("source") == url and created >= attempted_at - LOOKUP_SKEW_MS:
                return element.get("id")
        return None

    def _upload_thumbnail(self, dest, image_url: str) -> str | None:
        """The image URN of the story's picture uploaded to LinkedIn, or None (the post goes
        out without a thumbnail: a picture is never worth losing the post)."""
        try:
            image = self.http.fetch(image_url, timeout=dest.timeout, allow_private=dest.allow_private,
                                    max_bytes=IMAGE_MAX_BYTES, accept="image/*")
        except RequestFailed:
            return None
        ctype = (image.header("content-type") or "").split(";")[0].strip()
        if not image.ok or not ctype.startswith("image/") or not image.body:
            return None
        resp = self._call(dest, "POST", "/rest/images?action=initializeUpload",
                          json_body={"initializeUploadRequest": {"owner": dest.organization}})
        if isinstance(resp, Outcome) or not resp.ok:
            return None
        value = (resp.json() or {}).get("value") or {}
        upload_url, urn = value.get("uploadUrl"), value.get("image")
        if not upload_url or not urn:
            return None
        headers = {"content-type": ctype}
        # The upload URL is LinkedIn's; the token goes to no other host.
        if _same_service(upload_url, dest.api_base):
            headers["authorization"] = f"Bearer {dest.token}"
        try:
            put = self.http.request("PUT", upload_url, timeout=dest.timeout, allow_private=dest.allow_private,
                                    headers=headers, body=image.body)
        except RequestFailed:
            return None
        return urn if put.ok else None

    # --- editing and withdrawing --------------------------------------------------

    def update(self, dest, post: Post) -> Outcome:
        urn = post.previous["id"]
        resp = self._call(dest, "POST", f"/rest/posts/{_encoded(urn)}", restli_method="PARTIAL_UPDATE",
                          json_body={"patch": {"$set": {"commentary": post.prepared["commentary"]}}})
        if isinstance(resp, Outcome):
            return resp
        if resp.status == 404:
            return Outcome.skip("the LinkedIn post no longer exists; nothing to edit", status_code=404)
        if not resp.ok:
            return self._refusal(resp)
        return resp.outcome(remote=dict(post.previous))

    def delete(self, dest, post: Post) -> Outcome:
        urn = post.previous["id"]
        resp = self._call(dest, "DELETE", f"/rest/posts/{_encoded(urn)}", restli_method="DELETE")
        if isinstance(resp, Outcome):
            return resp
        if resp.status == 404:
            return Outcome.skip("the LinkedIn post was already gone", status_code=404)
        if not resp.ok:
            return self._refusal(resp)
        return resp.outcome(remote={"id": urn, "deleted": True})


def _same_service(url: str, api_base: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == (urlsplit(api_base).hostname or "").lower() or host == "linkedin.com" \
        or host.endswith(".linkedin.com")

