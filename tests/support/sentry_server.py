"""A stand-in for Sentry's ingest endpoint (Relay), for the real sentry-sdk to send to.

DSN `http://<key>@127.0.0.1:<port>/<project>`. It accepts `POST /api/<project>/envelope/`
and checks what Relay checks:

- the project exists (403 otherwise) and the request carries the project's public key in
  `X-Sentry-Auth` or `?sentry_key=` (401 without one, 403 for another key);
- the body, decoded by its `Content-Encoding` (gzip, br, deflate), is an envelope: a JSON
  header line, then items, each a JSON header line (with `type`, and `length` when given)
  and its payload (400 for anything malformed);
- events and transactions are JSON objects with a 32-hex `event_id`; their tags follow
  Sentry's rules (key up to 32 characters of letters, digits and `_.:-`, value up to 200
  characters without a newline): Relay drops a tag that breaks them and notes it, so do
  we, in the event's `_dropped_tags`;
- check-ins have a `check_in_id`, a slug, a status of in_progress / ok / error and a
  `monitor_config` whose schedule Crons accepts (a crontab, or an interval of a whole
  number of minutes, hours, days, weeks, months or years; seconds are refused). Relay
  drops an invalid check-in (still answering 200): it lands in `dropped`, not `check_ins`.

Everything received is kept decoded in `envelopes` (with the HTTP request), so tests can
look for a secret in any byte that was sent.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zlib
from dataclasses import dataclass

from tests.support.http import Refuse, Reply, Request, StandIn

try:
    import brotli
except ImportError:  # pragma: no cover - the dev dependencies include it
    brotli = None

CHECKIN_STATUSES = ("in_progress", "ok", "error")
INTERVAL_UNITS = ("year", "month", "week", "day", "hour", "minute")
_TAG_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass
class Item:
    type: str
    headers: dict
    payload: bytes

    def json(self):
        return json.loads(self.payload)


@dataclass
class Envelope:
    headers: dict
    items: list[Item]
    request: Request
    raw: bytes  # decoded (uncompressed) body

    def text(self) -> str:
        """Every byte that reached the server for this envelope, as text (path, query, headers, body)."""
        return "\n".join([self.request.path, json.dumps(self.request.query), json.dumps(self.request.headers),
                          self.raw.decode("utf-8", "replace")])


@dataclass
class Dropped:
    item: Item
    why: str


class SentryServer(StandIn):
    def __init__(self, key: str = "publickey", project: str = "1"):
        super().__init__()
        self.key, self.project = key, project
        self.envelopes: list[Envelope] = []
        self.dropped: list[Dropped] = []
        self.route("POST", "/api/{project}/envelope/", self._envelope, name="envelope")

    @property
    def dsn(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{self.key}@{host}:{port}/{self.project}"

    # -- checks ------------------------------------------------------------------------

    def check(self, req: Request) -> None:
        if req.params.get("project") != self.project:
            raise Refuse(403, {"detail": "project does not exist"})
        key = _auth_key(req)
        if key is None:
            raise Refuse(401, {"detail": "missing authorization information"})
        if key != self.key:
            raise Refuse(403, {"detail": "invalid api key"})

    def _envelope(self, req: Request) -> Reply:
        raw = _decode(req.body, req.headers.get("content-encoding", ""))
        headers, items = _parse(raw)
        envelope = Envelope(headers, [], req, raw)
        event_id = headers.get("event_id")
        for item in items:
            why = _invalid(item)
            if why:
                with self._cond:
                    self.dropped.append(Dropped(item, why))
                continue
            envelope.items.append(item)
        with self._cond:
            self.envelopes.append(envelope)
            self._cond.notify_all()
        return Reply(200, {"id": event_id} if event_id else {})

    # -- what was received ---------------------------------------------------------------

    def items(self, kind: str) -> list[dict]:
        with self._lock:
            return [i.json() for e in self.envelopes for i in e.items if i.type == kind]

    def events(self) -> list[dict]:
        return self.items("event")

    def transactions(self) -> list[dict]:
        return self.items("transaction")

    def check_ins(self) -> list[dict]:
        return self.items("check_in")

    def everything(self) -> str:
        """Every envelope as text, to search for what must never be sent."""
        with self._lock:
            return "\n".join(e.text() for e in self.envelopes)

    def clear(self) -> None:
        with self._lock:
            self.envelopes.clear()
            self.dropped.clear()
            self.requests.clear()


def _auth_key(req: Request) -> str | None:
    header = req.headers.get("x-sentry-auth", "")
    if header:
        if not header.startswith("Sentry "):
            return None
        fields = dict(part.strip().split("=", 1) for part in header[len("Sentry "):].split(",") if "=" in part)
        if fields.get("sentry_version") != "7":
            return None
        return fields.get("sentry_key")
    return (req.query.get("sentry_key") or [None])[-1]


def _decode(body: bytes, encoding: str) -> bytes:
    try:
        for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
            if coding == "gzip":
                body = gzip.decompress(body)
            elif coding == "br":
                if brotli is None:
                    raise Refuse(415, {"detail": "brotli is not available"})
                body = brotli.decompress(body)
            elif coding == "deflate":
                body = zlib.decompress(body)
            elif coding != "identity":
                raise Refuse(415, {"detail": f"unsupported content encoding {coding!r}"})
    except Refuse:
        raise
    except Exception as exc:  # noqa: BLE001 - gzip, zlib and brotli each raise their own
        raise Refuse(400, {"detail": f"invalid compression: {exc}"}) from None
    return body


def _parse(raw: bytes) -> tuple[dict, list[Item]]:
    """An envelope: header line, then (item header line, payload) pairs."""
    try:
        head, _, rest = raw.partition(b"\n")
        headers = json.loads(head)
        items = []
        while rest.strip():
            line, _, rest = rest.partition(b"\n")
            if not line.strip():
                continue
            item_headers = json.loads(line)
            if "length" in item_headers:
                length = int(item_headers["length"])
                payload, rest = rest[:length], rest[length:]
                if len(payload) != length:
                    raise ValueError("item shorter than its length")
                rest = rest[1:] if rest.startswith(b"\n") else rest
            else:
                payload, _, rest = rest.partition(b"\n")
            items.append(Item(item_headers["type"], item_headers, payload))
    except (ValueError, KeyError, TypeError) as exc:
        raise Refuse(400, {"detail": f"invalid envelope: {exc}"}) from None
    if not isinstance(headers, dict):
        raise Refuse(400, {"detail": "invalid envelope header"})
    return headers, items


def _invalid(item: Item) -> str | None:
    """Why Relay would drop this item (None: kept). May fix the payload up as Relay would."""
    if item.type not in ("event", "transaction", "check_in"):
        return None
    try:
        data = item.json()
    except ValueError:
        return "payload is not JSON"
    if not isinstance(data, dict):
        return "payload is not an object"
    if item.type == "check_in":
        return _invalid_check_in(data)
    if not _HEX32.fullmatch(str(data.get("event_id", ""))):
        return "event_id is not 32 hex digits"
    fingerprint = data.get("fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, list) and all(isinstance(f, str) for f in fingerprint)):
        return "fingerprint is not a list of strings"
    tags = data.get("tags") or {}
    pairs = list(tags.items()) if isinstance(tags, dict) else [tuple(t) for t in tags]
    kept, dropped = {}, []
    for key, value in pairs:
        if not _TAG_KEY.fullmatch(str(key)) or value is None or len(str(value)) > 200 or "\n" in str(value):
            dropped.append(key)
        else:
            kept[key] = value
    data["tags"], data["_dropped_tags"] = kept, dropped
    item.payload = json.dumps(data).encode()
    return None


def _invalid_check_in(data: dict) -> str | None:
    try:
        uuid.UUID(str(data.get("check_in_id")))
    except ValueError:
        return "check_in_id is not a UUID"
    slug = data.get("monitor_slug")
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9_-]{1,50}", slug):
        return f"invalid monitor slug {slug!r}"
    if data.get("status") not in CHECKIN_STATUSES:
        return f"invalid status {data.get('status')!r}"
    config = data.get("monitor_config")
    if config is not None:
        schedule = (config or {}).get("schedule") or {}
        if schedule.get("type") == "crontab":
            if not isinstance(schedule.get("value"), str) or len(schedule["value"].split()) != 5:
                return "invalid crontab"
        elif schedule.get("type") == "interval":
            value = schedule.get("value")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"interval value must be a positive whole number, got {value!r}"
            if schedule.get("unit") not in INTERVAL_UNITS:
                return f"interval unit {schedule.get('unit')!r} is not one of {', '.join(INTERVAL_UNITS)}"
        else:
            return f"unknown schedule type {schedule.get('type')!r}"
        for key in ("checkin_margin", "max_runtime"):
            if key in config and config[key] is not None and (not isinstance(config[key], int) or config[key] < 1):
                return f"{key} must be a whole number of minutes"
    return None

