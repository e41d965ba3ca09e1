"""A stand-in for the Threads API (graph.threads.net/v1.0): media containers, publishing,
container status, the account's posts, media fields and deletion.

It checks what Threads checks: the access token (Authorization header, or `access_token`
in the form body or query, as Graph accepts) and that it belongs to the user in the path;
TEXT containers need `text`; text at most 500 characters as Threads counts them (an emoji
is its UTF-8 bytes); at most 5 links; `link_attachment` a URL; publishing needs a
FINISHED container. A published container cannot be published again: Threads answers
that it cannot find the media (code 24, subcode 4279009), as it does for one not ready
yet, while `GET /{container-id}` says PUBLISHED. Errors are Graph errors
(`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`); 250 posts per
24 hours; 100 deletions per day.

`processing = True` keeps new containers IN_PROGRESS until `finish()`.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass

import regex

from tests.support.http import Refuse, Reply, Request, StandIn

PUBLISH_LIMIT, DELETE_LIMIT = 250, 100
_URL = re.compile(r"https?://[^\s]+")
# Code points that make up emoji: pictographs, flags' letters, skin tones, ZWJ, VS16, keycap.
_EMOJI_PART = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\p{Emoji_Modifier}\u200d\ufe0f\u20e3]")


def threads_count(text: str) -> int:
    """Threads' count, made independently of the transport's: every code point is one
    character, except those of emoji, which count their UTF-8 bytes."""
    return sum(len(ch.encode()) if _EMOJI_PART.match(ch) else 1 for ch in text)


def graph_error(status: int, code: int, message: str, subcode: int | None = None, kind: str = "OAuthException",
                **more) -> Refuse:
    error = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(more)
    return Refuse(status, {"error": error})


def media_not_found(media_id: str) -> Refuse:
    return graph_error(400, 24, "The requested resource does not exist", 4279009, is_transient=False,
                       error_user_title="Media Not Found",
                       error_user_msg=f"The media with id {media_id} cannot be found.")


@dataclass
class Container:
    id: str
    user_id: str
    text: str
    link: str | None
    status: str = "FINISHED"
    media_id: str | None = None


@dataclass
class Media:
    id: str
    container_id: str
    text: str
    link: str | None
    timestamp: int
    permalink: str


class ThreadsServer(StandIn):
    def __init__(self, user_id: str = "17841400000000001", token: str = "THAAtoken-Secret789"):
        super().__init__()
        self.user_id, self.token = user_id, token
        self.containers: dict[str, Container] = {}
        self.media: dict[str, Media] = {}
        self.deleted: list[str] = []
        self.processing = False
        self._ids = itertools.count(18_050_000_000_000_001)
        self.route("POST", "/v1.0/{user}/threads", self.create_container, "create")
        self.route("POST", "/v1.0/{user}/threads_publish", self.publish, "publish")
        self.route("GET", "/v1.0/{user}/threads", self.list_posts, "list")
        self.route("GET", "/v1.0/{object}", self.read, "read")
        self.route("DELETE", "/v1.0/{object}", self.delete, "delete")

    @property
    def base_url(self) -> str:
        return self.url + "/v1.0"

    # -- checks ---------------------------------------------------------------------------

    def check(self, req: Request) -> None:
        given = None
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith(("bearer ", "oauth ")):
            given = auth.split(" ", 1)[1]
        given = given or req.arg("access_token")
        if not given:
            raise graph_error(400, 2500, "An active access token must be used to query information about the "
                              "current user.", kind="IGApiException")
        if given != self.token:
            raise graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        user = req.params.get("user")
        if user is not None and user not in (self.user_id, "me"):
            raise graph_error(400, 100, f"Unsupported post request. Object with ID '{user}' does not exist, "
                              "cannot be loaded due to missing permissions, or does not support this operation",
                              33, kind="GraphMethodException")

    # -- the two steps ------------------------------------------------------------------------

    def create_container(self, req: Request) -> Reply:
        media_type = req.arg("media_type")
        if media_type not in ("TEXT", "IMAGE", "VIDEO", "CAROUSEL"):
            raise graph_error(400, 100, "Param media_type must be one of {TEXT, IMAGE, VIDEO, CAROUSEL}",
                              kind="THApiException")
        if media_type != "TEXT":
            raise graph_error(400, 100, "only TEXT containers are modelled by this stand-in", kind="THApiException")
        text = req.arg("text")
        if not text:
            raise graph_error(400, 100, "Param text is required for TEXT posts", kind="THApiException")
        if threads_count(text) > 500:
            raise graph_error(400, 100, f"Param text must be at most 500 characters long (got "
                              f"{threads_count(text)})", 2207057, kind="THApiException")
        link = req.arg("link_attachment")
        if link is not None and not _URL.fullmatch(link):
            raise graph_error(400, 100, "Param link_attachment must be a valid URL", kind="THApiException")
        links = set(_URL.findall(text)) | ({link} if link else set())
        if len(links) > 5:
            raise graph_error(400, 100, "THREADS_API__LINK_LIMIT_EXCEEDED: at most 5 links", kind="THApiException")
        container = Container(str(next(self._ids)), self.user_id, text, link,
                              "IN_PROGRESS" if self.processing else "FINISHED")
        with self._lock:
            self.containers[container.id] = container
        return Reply(200, {"id": container.id})

    def publish(self, req: Request) -> Reply:
        cid = req.arg("creation_id")
        if not cid:
            raise graph_error(400, 100, "The parameter creation_id is required", kind="THApiException")
        with self._lock:
            container = self.containers.get(cid)
            if container is None or container.status in ("IN_PROGRESS", "PUBLISHED"):
                raise media_not_found(cid)
            if container.status in ("EXPIRED", "ERROR"):
                raise graph_error(400, 24, "The media container has expired or failed", 4279009)
            day_ago = time.time() - 86400
            if sum(1 for m in self.media.values() if m.timestamp > day_ago) >= PUBLISH_LIMIT:
                raise graph_error(400, 4, "Application request limit reached", is_transient=True)
            media = Media(str(next(self._ids)), cid, container.text, container.link, int(time.time()),
                          f"https://www.threads.net/@lnn/post/C{len(self.media) + 1:09d}")
            self.media[media.id] = media
            container.status, container.media_id = "PUBLISHED", media.id
        return Reply(200, {"id": media.id})

    # -- reading -----------------------------------------------------------------------------

    def read(self, req: Request) -> Reply:
        fields = [f for f in (req.arg("fields") or "id").split(",") if f]
        oid = req.params["object"]
        with self._lock:
            container, media = self.containers.get(oid), self.media.get(oid)
            if container is not None:
                known = {"id": container.id, "status": container.status}
                if container.status == "ERROR":
                    known["error_message"] = "UNKNOWN"
            elif media is not None:
                known = self._media_fields(media)
            else:
                raise graph_error(400, 100, f"Object with ID '{oid}' does not exist", 33, kind="GraphMethodException")
        missing = [f for f in fields if f not in known and f != "error_message"]
        if missing:
            raise graph_error(400, 100, f"Tried accessing nonexisting field ({missing[0]})", kind="THApiException")
        return Reply(200, {f: known[f] for f in fields if f in known})

    @staticmethod
    def _media_fields(media: Media) -> dict:
        return {"id": media.id, "text": media.text, "permalink": media.permalink, "media_type": "TEXT_POST",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(media.timestamp)),
                "link_attachment_url": media.link, "is_quote_post": False}

    def list_posts(self, req: Request) -> Reply:
        fields = [f for f in (req.arg("fields") or "id").split(",") if f]
        since = int(req.arg("since") or 0)
        limit = min(int(req.arg("limit") or 25), 100)
        with self._lock:
            posts = sorted((m for m in self.media.values() if m.timestamp >= since),
                           key=lambda m: (m.timestamp, m.id), reverse=True)[:limit]
            data = [{f: v for f, v in self._media_fields(m).items() if f in fields} for m in posts]
        return Reply(200, {"data": data, "paging": {}})

    def delete(self, req: Request) -> Reply:
        oid = req.params["object"]
        with self._lock:
            if len(self.deleted) >= DELETE_LIMIT:
                raise graph_error(400, 4, "Application request limit reached", is_transient=True)
            if self.media.pop(oid, None) is None:
                raise graph_error(400, 100, f"Unsupported delete request. Object with ID '{oid}' does not "
                                  "exist", 33, kind="GraphMethodException")
            self.deleted.append(oid)
        return Reply(200, {"success": True, "deleted_id": oid})

    # -- for tests ---------------------------------------------------------------------------

    def finish(self) -> None:
        with self._lock:
            for c in self.containers.values():
                if c.status == "IN_PROGRESS":
                    c.status = "FINISHED"

    def expire(self) -> None:
        with self._lock:
            for c in self.containers.values():
                if c.status in ("IN_PROGRESS", "FINISHED"):
                    c.status = "EXPIRED"

    def only_post(self) -> Media:
        with self._lock:
            assert len(self.media) == 1, f"expected exactly one post, found {len(self.media)}"
            return next(iter(self.media.values()))
