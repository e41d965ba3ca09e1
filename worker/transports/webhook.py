"""Partner webhooks per the Standard Webhooks specification.

Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; body
`{"type", "timestamp", "data"}`. Signed with the `standardwebhooks` library;
during secret rotation both signatures are sent, space-separated.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import requests
from standardwebhooks import Webhook

from config import PartnerConfig
from worker.transports.base import Outcome

MAX_BODY_BYTES = 1_000_000
RESPONSE_BODY_KEEP = 2048
TRUNCATION_MARKER = "\n<!-- syndicate: content truncated to fit the 1 MB message limit -->"
USER_AGENT = "syndicate-webhooks/0.1 (+https://github.com/)"


def message_body(event_type: str, data: dict, timestamp: datetime) -> str:
    """The JSON body, cut (never dropped) to at most 1 MB by shortening content_html."""
    envelope = {"type": event_type, "timestamp": timestamp.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
                "data": data}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    size = len(body.encode())
    if size <= MAX_BODY_BYTES or not data.get("content_html"):
        return body
    content = data["content_html"]
    excess = size - MAX_BODY_BYTES + len(TRUNCATION_MARKER.encode()) + 64
    while True:
        # Cut by characters, then check the encoded size (non-ASCII takes more bytes).
        keep = max(0, len(content) - excess)
        cut = dict(data, content_html=content[:keep] + TRUNCATION_MARKER, truncated=True)
        body = json.dumps(dict(envelope, data=cut), ensure_ascii=False, separators=(",", ":"))
        if len(body.encode()) <= MAX_BODY_BYTES or keep == 0:
            return body
        excess *= 2


def signed_headers(partner: PartnerConfig, message_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    signatures = [Webhook(partner.secret).sign(message_id, timestamp, body)]
    if partner.previous_secret:
        signatures.append(Webhook(partner.previous_secret).sign(message_id, timestamp, body))
    headers = dict(partner.headers)
    headers.update({
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    })
    return headers


class WebhookTransport:
    """Sends one signed message to one partner over a pooled HTTP session."""

    def __init__(self, session: requests.Session | None = None):
        self.http = session or requests.Session()

    def send(self, partner: PartnerConfig, message_id: str, event_type: str, data: dict,
             now: datetime | None = None) -> Outcome:
        timestamp = now or datetime.now(timezone.utc)
        body = message_body(event_type, data, timestamp)
        headers = signed_headers(partner, message_id, timestamp, body)
        started = time.monotonic()
        try:
            resp = self.http.post(partner.url, data=body.encode(), headers=headers,
                                  timeout=partner.timeout, allow_redirects=False)
        except requests.Timeout as exc:
            return self._error("timeout", exc, started)
        except requests.ConnectionError as exc:
            return self._error("connection_error", exc, started)
        except requests.RequestException as exc:
            return self._error(type(exc).__name__, exc, started)
        duration = int((time.monotonic() - started) * 1000)
        text = resp.content[:RESPONSE_BODY_KEEP].decode("utf-8", "replace")
        return Outcome(status_code=resp.status_code, body=text, duration_ms=duration,
                       retry_after=resp.headers.get("retry-after"), location=resp.headers.get("location"))

    @staticmethod
    def _error(kind: str, exc: Exception, started: float) -> Outcome:
        return Outcome(error_class=kind, error=str(exc)[:500], duration_ms=int((time.monotonic() - started) * 1000))
