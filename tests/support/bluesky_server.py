"""A stand-in Bluesky PDS (AT Protocol XRPC), checking what the reference PDS checks.

- `com.atproto.server.createSession` with the account's handle (or DID) and app password;
  401 AuthenticationRequired otherwise; rate-limited like bsky.social (per handle, a budget
  per window, 429 RateLimitExceeded with `ratelimit-*` headers past it).
- `com.atproto.server.refreshSession` with the refresh token as bearer; tokens rotate (the
  old refresh token stops working), an access token is refused (InvalidToken).
- Every repo call needs a live access token: missing → 401 AuthenticationRequired,
  unknown → 400 InvalidToken, expired (`expire_access_tokens()`) → 400 ExpiredToken.
- `createRecord` / `putRecord` validate `app.bsky.feed.post` records: text at most 300
  graphemes and 3000 UTF-8 bytes, createdAt a datetime with a timezone, at most 3 langs,
  TID record keys; an external embed's thumb must be a blob uploaded here, image/* and
  at most 1,000,000 bytes. `createRecord` on a taken rkey answers **500
  InternalServerError**, as the reference PDS does (bluesky-social/atproto#3718).
- Facets are checked more strictly than the PDS does (it stores bad facets, and the app
  then silently shows no link): byte ranges must lie inside the text on character
  boundaries, a link facet must cover exactly its URI, a tag facet exactly `#tag`.
- `getRecord` (400 RecordNotFound for a missing record, as the reference PDS answers),
  `deleteRecord` (a no-op for a missing record), `uploadBlob` (needs a content type and a
  body of at most `blob_limit` bytes; answers a blob ref).

Also `ImageServer`: article images for link-card thumbnails (a small PNG, an oversized
one, a non-image, a missing one).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
import threading
import time
import zlib
from datetime import datetime
from urllib.parse import quote

import regex

from tests.support.http import Refuse, Reply, Request, StandIn

POST = "app.bsky.feed.post"
TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_GRAPHEME = regex.compile(r"\X")
X = "/xrpc/"
CREATE_SESSION = "POST /xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "POST /xrpc/com.atproto.server.refreshSession"
CREATE_RECORD = "POST /xrpc/com.atproto.repo.createRecord"
PUT_RECORD = "POST /xrpc/com.atproto.repo.putRecord"
GET_RECORD = "GET /xrpc/com.atproto.repo.getRecord"
DELETE_RECORD = "POST /xrpc/com.atproto.repo.deleteRecord"
UPLOAD_BLOB = "POST /xrpc/com.atproto.repo.uploadBlob"


def _err(status: int, error: str, message: str, headers: dict | None = None) -> Refuse:
    return Refuse(status, {"error": error, "message": message}, headers)


def _cid(data: bytes, prefix: str = "bafyrei") -> str:
    return prefix + hashlib.sha256(data).hexdigest()[:52]


def _jwt() -> str:
    # Shaped like a JWT so a leak is easy to spot in an assertion.
    return "eyJ0eXAiOiJhdCtqd3QifQ." + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(16)


def _quick(server: StandIn) -> None:
    """TCP_NODELAY on the answers: the base writes headers and body separately, and Nagle's
    algorithm holding the body back against the client's delayed ACK costs ~40 ms a request.
    A shorter shutdown poll: `stop()` otherwise waits up to half a second."""
    server.httpd.RequestHandlerClass.disable_nagle_algorithm = True
    server.thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                     daemon=True)


class BlueskyServer(StandIn):
    def __init__(self, handle: str = "news.example.com", password: str = "abcd-efgh-ijkl-mnop", *,
                 session_budget: int = 30, session_window: float = 300.0, blob_limit: int = 1_000_000):
        super().__init__()
        _quick(self)
        self.handle, self.password = handle, password
        self.did = "did:plc:" + secrets.token_hex(12)
        self.session_budget, self.session_window, self.blob_limit = session_budget, session_window, blob_limit
        self.session_calls: list[float] = []
        self.access: dict[str, bool] = {}  # access token → live
        self.refresh: dict[str, bool] = {}  # refresh token → usable
        self.records: dict[str, dict] = {}  # rkey → {"value", "cid"}
        self.blobs: dict[str, dict] = {}  # cid → {"mimeType", "size"}
        self.deleted: list[str] = []
        for nsid, fn in [("com.atproto.server.createSession", self._create_session),
                         ("com.atproto.server.refreshSession", self._refresh_session),
                         ("com.atproto.repo.createRecord", self._create_record),
                         ("com.atproto.repo.putRecord", self._put_record),
                         ("com.atproto.repo.deleteRecord", self._delete_record),
                         ("com.atproto.repo.uploadBlob", self._upload_blob)]:
            self.route("POST", X + nsid, fn)
        self.route("GET", X + "com.atproto.repo.getRecord", self._get_record)

    # -- test controls ----------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Every access token issued so far now answers 400 ExpiredToken."""
        with self._lock:
            for token in self.access:
                self.access[token] = False

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            for token in self.refresh:
                self.refresh[token] = False

    def tokens(self) -> list[str]:
        """Every token this server has issued (to assert none leaked)."""
        with self._lock:
            return list(self.access) + list(self.refresh)

    def post_uri(self, rkey: str) -> str:
        return f"at://{self.did}/{POST}/{rkey}"

    # -- checks on every request --------------------------------------------------------

    def check(self, req: Request) -> None:
        if req.route in (CREATE_SESSION, GET_RECORD) or not req.route:
            return
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise _err(401, "AuthenticationRequired", "Authentication Required")
        token = auth[len("Bearer "):]
        with self._lock:
            if req.route == REFRESH_SESSION:
                if token in self.access:
                    raise _err(400, "InvalidToken", "Invalid token type")
                if token not in self.refresh:
                    raise _err(400, "InvalidToken", "Token could not be verified")
                if not self.refresh[token]:
                    raise _err(400, "ExpiredToken", "Token has been revoked")
                return
            if token in self.refresh:
                raise _err(400, "InvalidToken", "Invalid token type")
            if token not in self.access:
                raise _err(400, "InvalidToken", "Token could not be verified")
            if not self.access[token]:
                raise _err(400, "ExpiredToken", "Token has expired")
        if req.route != UPLOAD_BLOB and not req.headers.get("content-type", "").startswith("application/json"):
            raise _err(400, "InvalidRequest", "Wrong request encoding (Content-Type): expected application/json")

    # -- sessions -----------------------------------------------------------------------

    def _issue(self) -> dict:
        access, refresh = _jwt(), _jwt()
        self.access[access] = True
        self.refresh[refresh] = True
        return {"did": self.did, "handle": self.handle, "accessJwt": access, "refreshJwt": refresh,
                "active": True}

    def _create_session(self, req: Request) -> Reply:
        now = time.time()
        with self._lock:
            self.session_calls = [t for t in self.session_calls if now - t < self.session_window]
            self.session_calls.append(now)
            if len(self.session_calls) > self.session_budget:
                reset = int(self.session_calls[0] + self.session_window) + 1
                raise _err(429, "RateLimitExceeded", "Rate Limit Exceeded", {
                    "ratelimit-limit": str(self.session_budget), "ratelimit-remaining": "0",
                    "ratelimit-reset": str(reset), "ratelimit-policy": f"{self.session_budget};w={int(self.session_window)}"})
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("identifier"), str) \
                or not isinstance(body.get("password"), str):
            raise _err(400, "InvalidRequest", "Input must have the properties \"identifier\", \"password\"")
        if body["identifier"].lower() not in (self.handle.lower(), self.did) or body["password"] != self.password:
            raise _err(401, "AuthenticationRequired", "Invalid identifier or password")
        with self._lock:
            return Reply(200, self._issue())

    def _refresh_session(self, req: Request) -> Reply:
        token = req.headers["authorization"][len("Bearer "):]
        with self._lock:
            self.refresh[token] = False  # rotated: the old refresh token is spent
            return Reply(200, self._issue())

    # -- records ------------------------------------------------------------------------

    def _repo_args(self, req: Request, *, record: bool) -> dict:
        body = req.json()
        if not isinstance(body, dict):
            raise _err(400, "InvalidRequest", "Request body must be a JSON object")
        for key in ("repo", "collection") + (("record",) if record else ("rkey",)):
            if key not in body:
                raise _err(400, "InvalidRequest", f"Input must have the property \"{key}\"")
        if body["repo"] not in (self.did, self.handle):
            raise _err(401, "AuthenticationRequired", "Authentication Required")
        if body["collection"] != POST:
            raise _err(400, "InvalidRequest", f"Lexicon not found: lex:{body['collection']}")
        rkey = body.get("rkey", "")
        if "rkey" in body and (not isinstance(rkey, str) or not TID_RE.match(rkey)):
            raise _err(400, "InvalidRequest", f"Invalid record key for {POST}: {rkey!r} is not a TID")
        return body

    def _create_record(self, req: Request) -> Reply:
        body = self._repo_args(req, record=True)
        self.validate_post(body["record"])
        rkey = body.get("rkey") or self._tid()
        with self._lock:
            if rkey in self.records:
                # The reference PDS fails the repo write on a taken key with a bare 500.
                raise _err(500, "InternalServerError", "Internal Server Error")
            return Reply(200, self._store(rkey, body["record"]))

    def _put_record(self, req: Request) -> Reply:
        body = self._repo_args(req, record=True)
        if "rkey" not in body:
            raise _err(400, "InvalidRequest", "Input must have the property \"rkey\"")
        self.validate_post(body["record"])
        with self._lock:
            return Reply(200, self._store(body["rkey"], body["record"]))

    def _store(self, rkey: str, record: dict) -> dict:
        value = dict(record, **{"$type": POST})
        cid = _cid(json.dumps(value, sort_keys=True).encode())
        self.records[rkey] = {"value": value, "cid": cid}
        return {"uri": self.post_uri(rkey), "cid": cid, "commit": {"cid": _cid(cid.encode()), "rev": self._tid()},
                "validationStatus": "valid"}

    def _get_record(self, req: Request) -> Reply:
        repo, collection, rkey = (req.query.get(k, [""])[-1] for k in ("repo", "collection", "rkey"))
        if not repo or not collection or not rkey:
            raise _err(400, "InvalidRequest", "Error: Params must have the properties \"repo\", \"collection\", \"rkey\"")
        uri = f"at://{repo}/{collection}/{rkey}"
        with self._lock:
            found = self.records.get(rkey) if repo in (self.did, self.handle) and collection == POST else None
        if found is None:
            # Reference PDS: InvalidRequestError(..., 'RecordNotFound') → 400.
            raise _err(400, "RecordNotFound", f"Could not locate record: {uri}")
        return Reply(200, {"uri": self.post_uri(rkey), "cid": found["cid"], "value": found["value"]})

    def _delete_record(self, req: Request) -> Reply:
        body = self._repo_args(req, record=False)
        with self._lock:
            if self.records.pop(body["rkey"], None) is not None:
                self.deleted.append(body["rkey"])
        return Reply(200, {"commit": {"cid": _cid(body["rkey"].encode()), "rev": self._tid()}})

    def _upload_blob(self, req: Request) -> Reply:
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if not ctype or ctype == "*/*":
            raise _err(400, "InvalidRequest", "Missing or invalid Content-Type")
        if not req.body:
            raise _err(400, "InvalidRequest", "Blob is empty")
        if len(req.body) > self.blob_limit:
            raise _err(400, "BlobTooLarge", f"Blob exceeds {self.blob_limit} bytes")
        cid = _cid(req.body, "bafkrei")
        with self._lock:
            self.blobs[cid] = {"mimeType": ctype, "size": len(req.body)}
        return Reply(200, {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": ctype,
                                    "size": len(req.body)}})

    @staticmethod
    def _tid() -> str:
        value = (time.time_ns() // 1000) << 10 | secrets.randbits(10)
        alphabet = "234567abcdefghijklmnopqrstuvwxyz"
        return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(13)))

    # -- the app.bsky.feed.post lexicon --------------------------------------------------

    def validate_post(self, record) -> None:
        def invalid(why: str) -> Refuse:
            return _err(400, "InvalidRequest", f"Invalid {POST} record: {why}")

        if not isinstance(record, dict):
            raise invalid("Record must be an object")
        if record.get("$type", POST) != POST:
            raise invalid(f"Record/$type must be {POST}")
        text = record.get("text")
        if not isinstance(text, str):
            raise invalid("Record must have the property \"text\"")
        if len(text.encode()) > 3000:
            raise invalid("Record/text must not be longer than 3000 characters")
        if len(_GRAPHEME.findall(text)) > 300:
            raise invalid("Record/text must not be longer than 300 graphemes")
        created = record.get("createdAt")
        if not isinstance(created, str):
            raise invalid("Record must have the property \"createdAt\"")
        try:
            parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise invalid("Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)")
        langs = record.get("langs", [])
        if not isinstance(langs, list) or len(langs) > 3 \
                or not all(isinstance(x, str) and LANG_RE.match(x) for x in langs):
            raise invalid("Record/langs must be at most 3 language tags")
        self._validate_facets(text, record.get("facets", []), invalid)
        embed = record.get("embed")
        if embed is not None:
            self._validate_embed(embed, invalid)

    @staticmethod
    def _validate_facets(text: str, facets, invalid) -> None:
        data = text.encode()
        if not isinstance(facets, list):
            raise invalid("Record/facets must be an array")
        for i, facet in enumerate(facets):
            where = f"Record/facets/{i}"
            index = facet.get("index") if isinstance(facet, dict) else None
            if not isinstance(index, dict):
                raise invalid(f"{where} must have the property \"index\"")
            start, end = index.get("byteStart"), index.get("byteEnd")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(data):
                raise invalid(f"{where}/index must lie within the text's {len(data)} UTF-8 bytes")
            try:
                covered = data[start:end].decode()
            except UnicodeDecodeError:
                raise invalid(f"{where}/index cuts a character in two") from None
            features = facet.get("features")
            if not isinstance(features, list) or not features:
                raise invalid(f"{where} must have the property \"features\"")
            for feature in features:
                kind = feature.get("$type") if isinstance(feature, dict) else None
                if kind == "app.bsky.richtext.facet#link":
                    uri = feature.get("uri")
                    if not isinstance(uri, str) or not re.match(r"^[a-z][a-z0-9+.-]*:\S+$", uri):
                        raise invalid(f"{where}/features/uri must be a valid uri")
                    if covered != uri:
                        raise invalid(f"{where} link covers {covered!r}, not its uri {uri!r}")
                elif kind == "app.bsky.richtext.facet#tag":
                    tag = feature.get("tag")
                    if not isinstance(tag, str) or not tag or len(tag.encode()) > 640 \
                            or len(_GRAPHEME.findall(tag)) > 64:
                        raise invalid(f"{where}/features/tag must be 1 to 64 graphemes")
                    if covered != "#" + tag:
                        raise invalid(f"{where} tag covers {covered!r}, not #{tag}")
                elif kind == "app.bsky.richtext.facet#mention":
                    if not str(feature.get("did", "")).startswith("did:"):
                        raise invalid(f"{where}/features/did must be a did")
                else:
                    raise invalid(f"{where}/features has an unknown type {kind!r}")

    def _validate_embed(self, embed, invalid) -> None:
        if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.external":
            raise invalid("Record/embed must be an app.bsky.embed.external here")
        external = embed.get("external")
        if not isinstance(external, dict):
            raise invalid("Record/embed must have the property \"external\"")
        for key in ("uri", "title", "description"):
            if not isinstance(external.get(key), str):
                raise invalid(f"Record/embed/external must have the property \"{key}\"")
        if not re.match(r"^https?://\S+$", external["uri"]):
            raise invalid("Record/embed/external/uri must be a valid uri")
        thumb = external.get("thumb")
        if thumb is None:
            return
        ref = thumb.get("ref", {}).get("$link") if isinstance(thumb, dict) else None
        with self._lock:
            blob = self.blobs.get(ref)
        if thumb.get("$type") != "blob" or blob is None:
            raise invalid("Record/embed/external/thumb: could not find blob")
        if not blob["mimeType"].startswith("image/"):
            raise invalid(f"Record/embed/external/thumb has a wrong mime type: {blob['mimeType']}")
        if blob["size"] > 1_000_000:
            raise invalid("Record/embed/external/thumb is too big: at most 1000000 bytes")

    # -- what a test reads ---------------------------------------------------------------

    def post_texts(self) -> list[str]:
        with self._lock:
            return [r["value"]["text"] for r in self.records.values()]


# --- article images ---------------------------------------------------------------------

def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A valid PNG (RGB, 8-bit). `noise` makes pixels that do not compress (a big file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = bytes(3 * width)
    raw = b"".join(b"\x00" + (secrets.token_bytes(3 * width) if noise else row) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 0 if noise else 9)) + chunk(b"IEND", b""))


class ImageServer(StandIn):
    """Serves /small.png (a few hundred bytes), /big.png (over 1 MB), /page.html (not an
    image) and /gone.png (404)."""

    def __init__(self):
        super().__init__()
        _quick(self)
        self.small = png(120, 80)
        self.big = png(640, 560, noise=True)
        assert len(self.big) > 1_000_000
        self.route("GET", "/small.png", lambda r: Reply(200, self.small, {"content-type": "image/png"}))
        self.route("GET", "/big.png", lambda r: Reply(200, self.big, {"content-type": "image/png"}))
        self.route("GET", "/page.html", lambda r: Reply(200, b"<html></html>", {"content-type": "text/html"}))
        self.route("GET", "/gone.png", lambda r: Reply(404, b"not found", {"content-type": "text/plain"}))

    def image_url(self, name: str) -> str:
        return f"{self.url}/{quote(name)}"
