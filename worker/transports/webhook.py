"""Partner webhooks per the Standard Webhooks specification.

Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; body
`{"type", "timestamp", "data"}`, where data is the project's article JSON or, for
`payload = "ninjs"`, IPTC ninjs 2.0. Signed with the `standardwebhooks` library;
during secret rotation both signatures are sent, space-separated.

Sent over the shared outbound HTTP client (keep-alive pools per origin), which refuses
private, loopback and link-local peers unless the partner sets `allow_private`.
Redirects are never followed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from standardwebhooks import Webhook

from config import PartnerConfig
from worker.transports.base import Outcome, Post, Transport
from worker.transports.http import HttpClient, RequestFailed
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


class WebhookTransport(Transport):
    """Signed Standard Webhooks messages to partners, over the shared keep-alive pools
    (`worker/transports/http.py`); redirects are never followed. Every event — published,
    updated, unpublished — is a message of its own, so `deliver` always sends."""

    type = "webhook"

    def __init__(self, redis_client=None, http=None, pool_size: int = POOL_SIZE):
        super().__init__(redis_client, http or HttpClient(pool_size=pool_size))

    def prepare(self, dest: PartnerConfig, event_type: str, data: dict) -> str:
        return encode_data(event_type, data, dest.payload)

    def deliver(self, dest: PartnerConfig, post: Post) -> Outcome:
        return self.send(dest, post)

    def send(self, dest: PartnerConfig, post: Post) -> Outcome:
        encoded = post.prepared if post.prepared is not None else self.prepare(dest, post.event_type, {})
        return self.send_message(dest, post.message_id, post.event_type, encoded_data=encoded)

    def send_message(self, partner: PartnerConfig, message_id: str, event_type: str, data: dict | None = None,
                     now: datetime | None = None, encoded_data: str | None = None) -> Outcome:
        timestamp = now or datetime.now(timezone.utc)
        if encoded_data is None:
            encoded_data = encode_data(event_type, data or {}, partner.payload)
        body = envelope(event_type, encoded_data, timestamp)
        headers = signed_headers(partner, message_id, timestamp, body)
        return self.post(partner, body.encode(), headers)

    def post(self, partner: PartnerConfig, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            resp = self.http.request("POST", partner.url, timeout=partner.timeout,
                                     allow_private=partner.allow_private, headers=headers, body=body,
                                     max_body=RESPONSE_BODY_KEEP, cut=True)
        except RequestFailed as exc:
            return exc.outcome()
        return resp.outcome()
