"""A stand-in for LinkedIn's versioned REST API: the Posts API (create, find by author,
partial update, delete) and the Images API (initializeUpload, then the upload PUT).

It checks what LinkedIn checks: the bearer token and its scopes (w_organization_social to
write, r_organization_social to list), the `LinkedIn-Version` header (missing → 400
VERSION_MISSING, not active → 426 NONEXISTENT_VERSION), `X-Restli-Protocol-Version: 2.0.0`,
the author being the organization, commentary at most 3,000 characters (UTF-16 units, as
Java counts), URNs URL-encoded in paths, and the request shapes.

Commentary is read as LinkedIn's "little" text format: `\\x` is a literal reserved
character, `#word` a hashtag, `@[name](urn)` a mention, `{hashtag|#|word}` a template. Any
other reserved character is not refused: LinkedIn keeps the post and silently cuts its
text there, and so does this stand-in (`rendered` is what readers would see).

It also serves pictures for articles at `/_images/{name}` (the publisher's site).
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from tests.support.http import Refuse, Reply, Request, StandIn

RESERVED = set("\\|{}@[]()<>#*_~")
ACTIVE_VERSIONS = {"202405", "202406", "202407", "202408", "202409", "202410", "202411", "202412",
                   "202501", "202502", "202503", "202504", "202505", "202506"}
COMMENTARY_LIMIT = 3000
_MENTION = re.compile(r"@\[[^\]\\]*\]\(urn:li:(?:person|organization):\d+\)")
_TEMPLATE = re.compile(r"\{hashtag\|[#＃]\|[^{}|\\]+\}")
_HASHTAG = re.compile(r"#[^\W_]+")


def render_little(commentary: str) -> str:
    """What LinkedIn shows for `commentary`: escapes resolved, elements kept, and the text
    cut at the first reserved character that is neither escaped nor part of an element."""
    out, i = [], 0
    while i < len(commentary):
        ch = commentary[i]
        if ch == "\\" and i + 1 < len(commentary) and commentary[i + 1] in RESERVED:
            out.append(commentary[i + 1])
            i += 2
            continue
        if ch not in RESERVED:
            out.append(ch)
            i += 1
            continue
        for pattern in (_MENTION, _TEMPLATE, _HASHTAG):
            m = pattern.match(commentary, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                break
        else:
            break  # an unescaped reserved character: LinkedIn drops the rest
    return "".join(out)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class LinkedInPost:
    urn: str
    body: dict
    commentary: str
    rendered: str
    created_at: int
    updates: list[str] = field(default_factory=list)


class LinkedInServer(StandIn):
    def __init__(self, organization: str = "urn:li:organization:2414183", token: str = "li-token-Secret123",
                 scopes: tuple[str, ...] = ("w_organization_social", "r_organization_social")):
        super().__init__()
        self.organization, self.token, self.scopes = organization, token, set(scopes)
        self.posts: dict[str, LinkedInPost] = {}
        self.deleted: list[str] = []
        self.images: dict[str, bytes | None] = {}  # image URN → uploaded bytes (None: not yet)
        self.upload_keys: dict[str, str] = {}  # upload key → image URN
        self.pictures: dict[str, tuple[bytes, str]] = {}  # served at /_images/{name}
        self._ids = itertools.count(7_100_000_000_000_000_001)
        self.route("POST", "/rest/posts", self.create_post, "create")
        self.route("GET", "/rest/posts", self.find_posts, "find")
        self.route("POST", "/rest/posts/{urn}", self.update_post, "update")
        self.route("DELETE", "/rest/posts/{urn}", self.delete_post, "delete")
        self.route("POST", "/rest/images", self.initialize_upload, "images")
        self.route("PUT", "/dms-uploads/{key}", self.upload, "upload")
        self.route("GET", "/_images/{name}", self.picture, "picture")

    # -- checks every API request passes -----------------------------------------------

    def check(self, req: Request) -> None:
        if req.route == "picture":
            return
        if req.headers.get("authorization") != f"Bearer {self.token}":
            raise Refuse(401, {"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN",
                               "message": "Invalid access token"})
        if req.route == "upload":
            return  # the upload URL is not a versioned REST endpoint
        version = req.headers.get("linkedin-version")
        if not version:
            raise Refuse(400, {"status": 400, "code": "VERSION_MISSING", "message": "A version must be present. "
                               "Please specify a version by adding the LinkedIn-Version header."})
        if version not in ACTIVE_VERSIONS:
            raise Refuse(426, {"status": 426, "code": "NONEXISTENT_VERSION",
                               "message": f"Requested version {version} is not active"})
        if req.headers.get("x-restli-protocol-version") != "2.0.0":
            raise Refuse(400, {"status": 400, "message": "X-Restli-Protocol-Version 2.0.0 is required"})
        urn = req.params.get("urn")
        if urn is not None and ":" in urn:
            raise Refuse(400, {"status": 400, "message": f"Syntax exception in path variables: {urn} must be "
                               "URL-encoded"})

    def _needs(self, scope: str, what: str) -> None:
        if scope not in self.scopes:
            raise Refuse(403, {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED",
                               "message": f"Not enough permissions to access: {what}"})

    @staticmethod
    def _bad(message: str, path: str = "") -> Refuse:
        return Refuse(422, {"status": 422, "message": message,
                            "errorDetailType": "com.linkedin.common.error.BadRequest",
                            "errorDetails": {"inputErrors": [{"description": message,
                                                              "input": {"inputPath": {"fieldPath": path}}}]}})

    # -- posts ----------------------------------------------------------------------------

    def create_post(self, req: Request) -> Reply:
        self._needs("w_organization_social", "partnerApiPostsExternal.CREATE")
        body = req.json()
        if not isinstance(body, dict):
            raise self._bad("the body is not a JSON object")
        if body.get("author") != self.organization:
            raise Refuse(403, {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED",
                               "message": f"Member is not an administrator of {body.get('author')!r}"})
        for key, want in (("visibility", "PUBLIC"), ("lifecycleState", "PUBLISHED")):
            if body.get(key) != want:
                raise self._bad(f"{key} must be {want}", f"/{key}")
        distribution = body.get("distribution")
        if not isinstance(distribution, dict) or distribution.get("feedDistribution") != "MAIN_FEED":
            raise self._bad("distribution.feedDistribution is required", "/distribution")
        if not isinstance(body.get("isReshareDisabledByAuthor"), bool):
            raise self._bad("isReshareDisabledByAuthor is required", "/isReshareDisabledByAuthor")
        commentary = body.get("commentary", "")
        self._check_commentary(commentary)
        article = (body.get("content") or {}).get("article")
        if article is not None:
            if not isinstance(article, dict) or not str(article.get("source", "")).startswith(("http://", "https://")):
                raise self._bad("content.article.source must be a URL", "/content/article/source")
            if not article.get("title"):
                raise self._bad("content.article.title is required", "/content/article/title")
            thumb = article.get("thumbnail")
            if thumb is not None and self.images.get(thumb) is None:
                raise self._bad(f"thumbnail {thumb} is not an uploaded image", "/content/article/thumbnail")
        urn = f"urn:li:share:{next(self._ids)}"
        with self._lock:
            self.posts[urn] = LinkedInPost(urn, body, commentary, render_little(commentary),
                                           int(time.time() * 1000))
        return Reply(201, b"", {"x-restli-id": urn})

    def _check_commentary(self, commentary) -> None:
        if not isinstance(commentary, str):
            raise self._bad("commentary must be a string", "/commentary")
        if utf16_length(commentary) > COMMENTARY_LIMIT:
            raise self._bad(f"commentary is {utf16_length(commentary)} characters; the maximum is "
                            f"{COMMENTARY_LIMIT}", "/commentary")

    def find_posts(self, req: Request) -> Reply:
        self._needs("r_organization_social", "partnerApiPostsExternal.FINDER-author")
        if req.arg("q") != "author" or not req.arg("author"):
            raise Refuse(400, {"status": 400, "message": "finder q=author with an author is required"})
        author = unquote(req.arg("author"))
        count = int(req.arg("count") or 10)
        with self._lock:
            mine = [p for p in self.posts.values() if p.body["author"] == author]
        mine.sort(key=lambda p: p.created_at, reverse=True)
        elements = [dict(p.body, id=p.urn, commentary=p.commentary, createdAt=p.created_at,
                         publishedAt=p.created_at, lastModifiedAt=p.created_at) for p in mine[:count]]
        return Reply(200, {"elements": elements, "paging": {"start": 0, "count": count, "links": []}})

    def update_post(self, req: Request) -> Reply:
        self._needs("w_organization_social", "partnerApiPostsExternal.PARTIAL_UPDATE")
        if req.headers.get("x-restli-method", "").upper() != "PARTIAL_UPDATE":
            raise Refuse(400, {"status": 400, "message": "POST on an entity needs X-RestLi-Method: PARTIAL_UPDATE"})
        patch = (req.json() or {}).get("patch", {}).get("$set") if isinstance(req.json(), dict) else None
        if not isinstance(patch, dict) or set(patch) - {"commentary", "contentCallToActionLabel",
                                                          "contentLandingPage", "lifecycleState", "adContext"}:
            raise self._bad("patch.$set may change commentary, call to action, landing page, lifecycle state")
        urn = unquote(req.params["urn"])
        with self._lock:
            post = self.posts.get(urn)
            if post is None:
                raise Refuse(404, {"status": 404, "message": f"Post {urn} not found"})
            if "commentary" in patch:
                self._check_commentary(patch["commentary"])
                post.updates.append(post.commentary)
                post.commentary = patch["commentary"]
                post.rendered = render_little(post.commentary)
        return Reply(204, b"")

    def delete_post(self, req: Request) -> Reply:
        self._needs("w_organization_social", "partnerApiPostsExternal.DELETE")
        urn = unquote(req.params["urn"])
        with self._lock:
            if self.posts.pop(urn, None) is None:
                raise Refuse(404, {"status": 404, "message": f"Post {urn} not found"})
            self.deleted.append(urn)
        return Reply(204, b"")

    # -- images ---------------------------------------------------------------------------

    def initialize_upload(self, req: Request) -> Reply:
        self._needs("w_organization_social", "images.ACTION-initializeUpload")
        if req.arg("action") != "initializeUpload":
            raise Refuse(400, {"status": 400, "message": "unknown action"})
        owner = ((req.json() or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.organization:
            raise Refuse(403, {"status": 403, "code": "ACCESS_DENIED", "message": f"cannot upload as {owner!r}"})
        n = next(self._ids)
        urn, key = f"urn:li:image:D4E10AQ{n}", f"key{n}"
        with self._lock:
            self.images[urn], self.upload_keys[key] = None, urn
        return Reply(200, {"value": {"uploadUrlExpiresAt": int(time.time() * 1000) + 86_400_000,
                                     "uploadUrl": f"{self.url}/dms-uploads/{key}", "image": urn}})

    def upload(self, req: Request) -> Reply:
        with self._lock:
            urn = self.upload_keys.pop(req.params["key"], None)
            if urn is None:
                raise Refuse(400, {"status": 400, "message": "unknown or used upload URL"})
            if not req.body:
                raise Refuse(400, {"status": 400, "message": "empty upload"})
            self.images[urn] = req.body
        return Reply(201, b"")

    def picture(self, req: Request) -> Reply:
        found = self.pictures.get(req.params["name"])
        if found is None:
            return Reply(404, "no such picture")
        return Reply(200, found[0], {"content-type": found[1]})

    # -- for tests --------------------------------------------------------------------

    def only_post(self) -> LinkedInPost:
        with self._lock:
            assert len(self.posts) == 1, f"expected exactly one post, found {len(self.posts)}"
            return next(iter(self.posts.values()))
