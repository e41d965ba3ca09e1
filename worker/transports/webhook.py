"""Partner webhooks per the Standard Webhooks specification.

Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; body
`{"type", "timestamp", "data"}`, where data is the project's article JSON or, for
`payload = "ninjs"`, IPTC ninjs 2.0. Signed with the `standardwebhooks` library;
during secret rotation both signatures are sent, space-separated.

Each partner has its own keep-alive connection pool (urllib3), which refuses
private, loopback and link-local peers unless the partner sets `allow_private`.
Redirects are never followed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timezone

import urllib3
from standardwebhooks import Webhook
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from config import PartnerConfig
from worker.delivery.ssrf import BlockedAddress, guarded_pool
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
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


class WebhookTransport:
    """Sends signed messages over one keep-alive pool per partner (thread-safe)."""

    def __init__(self, pool_size: int = POOL_SIZE):
        self.pool_size = pool_size
        self._pools: dict[tuple, urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()

    def pool(self, partner: PartnerConfig) -> urllib3.HTTPConnectionPool:
        key = (partner.name, partner.url, partner.allow_private)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = guarded_pool(partner.url, allow_private=partner.allow_private,
                                                           maxsize=self.pool_size, timeout=partner.timeout)
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
        started = time.monotonic()
        try:
            resp = self.pool(partner).urlopen(
                "POST", _path(partner.url), body=body, headers=headers, redirect=False, retries=False,
                timeout=urllib3.Timeout(connect=min(partner.timeout, 10.0), read=partner.timeout),
                preload_content=False, assert_same_host=False,
            )
            try:
                content = resp.read(RESPONSE_BODY_KEEP)
                # Drain a little so the connection can be reused; past that, close it
                # rather than read a huge answer nobody keeps.
                if resp.read(64 * 1024):
                    resp.close()
            finally:
                resp.release_conn()
        except BlockedAddress as exc:
            return self._error("blocked_address", exc, started)
        # Most specific first: in urllib3 a NameResolutionError is a NewConnectionError,
        # which is a ConnectTimeoutError.
        except NameResolutionError as exc:
            return self._error("dns_error", exc, started)
        except NewConnectionError as exc:
            return self._error("connection_error", exc, started)
        except (ConnectTimeoutError, ReadTimeoutError, socket.timeout, TimeoutError) as exc:
            return self._error("timeout", exc, started)
        except SSLError as exc:
            return self._error("tls_error", exc, started)
        except ProtocolError as exc:
            # Reset or closed mid-answer.
            return self._error("connection_error", exc, started)
        except (HTTPError, OSError) as exc:
            return self._error(type(exc).__name__, exc, started)
        duration = int((time.monotonic() - started) * 1000)
        return Outcome(status_code=resp.status, body=content.decode("utf-8", "replace"), duration_ms=duration,
                       retry_after=resp.headers.get("retry-after"), location=resp.headers.get("location"))

    @staticmethod
    def _error(kind: str, exc: Exception, started: float) -> Outcome:
        return Outcome(error_class=kind, error=str(exc)[:500], duration_ms=int((time.monotonic() - started) * 1000))

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
