"""Partner webhooks per the Standard Webhooks specification.

Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; body
`{"type", "timestamp", "data"}`, where data is the project's article JSON or, for
`payload = "ninjs"`, IPTC ninjs 2.0. Signed with the `standardwebhooks` library;
during secret rotation both signatures are sent, space-separated.

Each partner has its own keep-alive connection pool (http.client), which refuses
private, loopback and link-local peers unless the partner sets `allow_private`.
Redirects are never followed.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from config import PartnerConfig
from worker.delivery.ssrf import BlockedAddress, guarded_connection
from worker.transports.base import Outcome
from worker.transports.ninjs import to_ninjs

MAX_BODY_BYTES = 1_000_000
RESPONSE_BODY_KEEP = 2048
TRUNCATION_MARKER = "\n<!-- syndicate: content truncated to fit the 1 MB message limit -->"
USER_AGENT = "syndicate-webhooks/0.1"
# Connections kept open per partner and process (also the most concurrent sends to one partner).
POOL_SIZE = 16


def _rfc3339(timestamp: datetime) -> str:
    return timestamp.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def payload_data(event_type: str, data: dict, payload: str = "article") -> dict:
    return to_ninjs(event_type, data) if payload == "ninjs" else data


def encode_data(event_type: str, data: dict, payload: str = "article") -> str:
    """The `data` part of the body as JSON, cut (never dropped) so the whole body stays
    within 1 MB: the article's HTML is shortened and marked, and `truncated` is set."""
    envelope_room = MAX_BODY_BYTES - 120  # {"type":...,"timestamp":...,"data":} around it
    encoded = json.dumps(payload_data(event_type, data, payload), ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode())
    if size <= envelope_room or not data.get("content_html"):
        return encoded
    content = data["content_html"]
    excess = size - envelope_room + len(TRUNCATION_MARKER.encode()) + 64
    while True:
        # Cut by characters, then check the encoded size (non-ASCII takes more bytes).
        keep = max(0, len(content) - excess)
        cut = dict(data, content_html=content[:keep] + TRUNCATION_MARKER, truncated=True)
        encoded = json.dumps(payload_data(event_type, cut, payload), ensure_ascii=False, separators=(",", ":"))
        if len(encoded.encode()) <= envelope_room or keep == 0:
            return encoded
        excess *= 2


def envelope(event_type: str, encoded_data: str, timestamp: datetime) -> str:
    return f'{{"type":{json.dumps(event_type)},"timestamp":"{_rfc3339(timestamp)}","data":{encoded_data}}}'


def message_body(event_type: str, data: dict, timestamp: datetime, payload: str = "article") -> str:
    """The JSON body, at most 1 MB."""
    return envelope(event_type, encode_data(event_type, data, payload), timestamp)


class _Signers:
    """`Webhook` objects per secret (decoding the key once, not on every message)."""

    def __init__(self):
        self._cache: dict[str, Webhook] = {}

    def __call__(self, secret: str) -> Webhook:
        hook = self._cache.get(secret)
        if hook is None:
            hook = self._cache[secret] = Webhook(secret)
        return hook


_signers = _Signers()


def signed_headers(partner: PartnerConfig, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    signatures = [_signers(partner.secret).sign(message_id, timestamp, body)]
    if partner.previous_secret:
        signatures.append(_signers(partner.previous_secret).sign(message_id, timestamp, body))
    headers = dict(partner.headers)
    headers.update({
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    })
    return headers


def _path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Pool:
    """Idle keep-alive connections to one partner."""

    def __init__(self, partner: PartnerConfig, size: int):
        self.partner, self.size = partner, size
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def get(self) -> http.client.HTTPConnection:
        with self.lock:
            while self.idle:
                conn = self.idle.pop()
                if not _dropped(conn):
                    return conn
                conn.close()
        return guarded_connection(self.partner.url, allow_private=self.partner.allow_private,
                                  timeout=self.partner.timeout)

    def put(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            if len(self.idle) < self.size:
                self.idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self.lock:
            for conn in self.idle:
                conn.close()
            self.idle.clear()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server has closed (readable means EOF or junk)."""
    if conn.sock is None:
        return False
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class WebhookTransport:
    """Sends signed messages over keep-alive connections, a small pool per partner (thread-safe).

    The standard library's http.client does the HTTP (it costs about half the CPU per request
    of urllib3, which matters at thousands of messages a second); redirects are never followed."""

    def __init__(self, pool_size: int = POOL_SIZE):
        self.pool_size = pool_size
        self._pools: dict[tuple, _Pool] = {}
        self._lock = threading.Lock()

    def pool(self, partner: PartnerConfig) -> _Pool:
        key = (partner.name, partner.url, partner.allow_private, partner.timeout)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = _Pool(partner, self.pool_size)
        return pool

    def send(self, partner: PartnerConfig, message_id: str, event_type: str, data: dict | None = None,
             now: datetime | None = None, encoded_data: str | None = None) -> Outcome:
        timestamp = now or datetime.now(timezone.utc)
        if encoded_data is None:
            encoded_data = encode_data(event_type, data or {}, partner.payload)
        body = envelope(event_type, encoded_data, timestamp)
        headers = signed_headers(partner, message_id, timestamp, body)
        return self.post(partner, body.encode(), headers)

    def post(self, partner: PartnerConfig, body: bytes, headers: dict[str, str]) -> Outcome:
        pool = self.pool(partner)
        started = time.monotonic()
        conn = None
        try:
            conn = pool.get()
            conn.request("POST", _path(partner.url), body=body, headers=headers)
            resp = conn.getresponse()
            content = resp.read(RESPONSE_BODY_KEEP)
            # Drain a little so the connection can be reused; past that, close it rather
            # than read a huge answer nobody keeps.
            reusable = not resp.read(64 * 1024) and not resp.will_close
            status, resp_headers = resp.status, resp.headers
            if reusable:
                pool.put(conn)
            else:
                conn.close()
            conn = None
        except BlockedAddress as exc:
            return self._error("blocked_address", exc, started)
        except socket.gaierror as exc:
            return self._error("dns_error", exc, started)
        except (TimeoutError, socket.timeout) as exc:
            return self._error("timeout", exc, started)
        except ssl.SSLError as exc:
            return self._error("tls_error", exc, started)
        except (OSError, http.client.HTTPException) as exc:
            # Refused, reset, closed mid-answer, or not HTTP at all.
            return self._error("connection_error", exc, started)
        finally:
            if conn is not None:
                conn.close()
        duration = int((time.monotonic() - started) * 1000)
        return Outcome(status_code=status, body=content.decode("utf-8", "replace"), duration_ms=duration,
                       retry_after=resp_headers.get("retry-after"), location=resp_headers.get("location"))

    @staticmethod
    def _error(kind: str, exc: Exception, started: float) -> Outcome:
        text = str(exc) or type(exc).__name__
        return Outcome(error_class=kind, error=f"{type(exc).__name__}: {text}"[:500],
                       duration_ms=int((time.monotonic() - started) * 1000))

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
