"""A stand-in partner: an HTTP server that verifies Standard Webhooks signatures as a
real partner does (with the `standardwebhooks` library) and can be told to fail.

It accepts a message only if the signature verifies against the partner's secret,
the timestamp is within the library's tolerance, the body is JSON with the
envelope fields, and the content type is JSON. Everything it receives is kept,
verified or not, so tests can assert on both.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool
    error: str | None
    message: dict | None
    at: float = field(default_factory=time.time)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


# A reply: (status, headers, body). A plan entry may also be a callable taking the request.
Reply = tuple[int, dict[str, str], bytes]


class PartnerServer:
    def __init__(self, secret: str, host: str = "127.0.0.1"):
        self.secret = secret
        self.webhook = Webhook(secret)
        self.received: list[Received] = []
        self.plan: deque[Reply | Callable[[Received], Reply]] = deque()
        self.default: Reply = (200, {}, b'{"ok":true}')
        self.delay = 0.0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = server._verify(headers, body)
                with server._cond:
                    reply = server.plan.popleft() if server.plan else server.default
                    server.received.append(rec)
                    server._cond.notify_all()
                if callable(reply):
                    reply = reply(rec)
                if server.delay:
                    time.sleep(server.delay)
                status, extra, payload = reply
                if not rec.verified and status < 300:
                    status, payload = 401, json.dumps({"error": rec.error}).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _verify(self, headers: dict[str, str], body: bytes) -> Received:
        try:
            if not headers.get("content-type", "").startswith("application/json"):
                raise WebhookVerificationError(f"content-type is {headers.get('content-type')!r}")
            message = self.webhook.verify(body, headers)
            for key in ("type", "timestamp", "data"):
                if key not in message:
                    raise WebhookVerificationError(f"envelope has no {key!r}")
            return Received(headers, body, True, None, message)
        except (WebhookVerificationError, ValueError) as exc:
            return Received(headers, body, False, f"{type(exc).__name__}: {exc}", None)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def start(self) -> "PartnerServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def verified(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.verified]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"partner did not see the expected messages within {timeout}s; "
                                         f"got {len(self.received)}: {[r.message and r.message['type'] for r in self.received]}")
                self._cond.wait(left)
            return list(self.received)
