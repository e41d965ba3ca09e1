"""A stand-in partner: an HTTP server that verifies Standard Webhooks signatures as a
real partner does (with the `standardwebhooks` library) and can be told to fail.

It accepts a message only if the signature verifies against the partner's secret,
the timestamp is within the library's tolerance, the body is JSON with the
envelope fields, and the content type is JSON. Everything it receives is kept,
verified or not, so tests can assert on both.
"""

from __future__ import annotations

import json
import socket
import struct
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
    path: str = "/"
    reply: object = None

    @property
    def key(self) -> tuple[str, str, str]:
        """(article id, version, event type) of a verified message."""
        data = (self.message or {}).get("data") or {}
        return data.get("id", ""), data.get("version", ""), (self.message or {}).get("type", "")

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


# A reply: (status, headers, body). A plan entry may also be a callable taking the request,
# a `Slow` (answer after a delay, e.g. longer than the sender's timeout) or `RESET`
# (drop the connection with a TCP reset instead of answering).
Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Slow:
    seconds: float
    reply: Reply = (200, {}, b'{"ok":true}')


class _Reset:
    def __repr__(self) -> str:
        return "RESET"


RESET = _Reset()


def redirect(status: int = 302, location: str = "https://elsewhere.example/hooks") -> Reply:
    return (status, {"Location": location}, b"")


def retry_after(status: int, value: str) -> Reply:
    """429 or 503 with a Retry-After of seconds ("30") or an HTTP date."""
    return (status, {"Retry-After": value}, b'{"error":"slow down"}')


class PartnerServer:
    def __init__(self, secret: str, host: str = "127.0.0.1"):
        self.secret = secret
        self.webhook = Webhook(secret)
        self.received: list[Received] = []
        self.incomplete = 0  # requests cut off before their whole body arrived
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
                if len(body) < length:
                    # The sender went away mid-request (a worker killed while sending): a real
                    # server's framework never hands such a request to the application.
                    with server._cond:
                        server.incomplete += 1
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = server._verify(headers, body, self.path)
                with server._cond:
                    reply = server.plan.popleft() if server.plan else server.default
                    rec.reply = reply
                    server.received.append(rec)
                    server._cond.notify_all()
                if callable(reply):
                    reply = reply(rec)
                if server.delay:
                    time.sleep(server.delay)
                if reply is RESET:
                    # SO_LINGER 0: close() sends RST, the sender sees "connection reset".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(reply, Slow):
                    time.sleep(reply.seconds)
                    reply = reply.reply
                status, extra, payload = reply
                if not rec.verified and status < 300:
                    status, payload = 401, json.dumps({"error": rec.error}).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True  # the sender gave up (timed out) first

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _verify(self, headers: dict[str, str], body: bytes, path: str = "/") -> Received:
        try:
            if not headers.get("content-type", "").startswith("application/json"):
                raise WebhookVerificationError(f"content-type is {headers.get('content-type')!r}")
            message = self.webhook.verify(body, headers)
            for key in ("type", "timestamp", "data"):
                if key not in message:
                    raise WebhookVerificationError(f"envelope has no {key!r}")
            return Received(headers, body, True, None, message, path=path)
        except (WebhookVerificationError, ValueError) as exc:
            return Received(headers, body, False, f"{type(exc).__name__}: {exc}", None, path=path)

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

    def ids_per_message(self) -> dict[tuple[str, str, str], set[str]]:
        """For each (article, version, event) received verified, the webhook-ids it came under.
        A partner deduplicating by webhook-id sees each message once only if every set has one id."""
        found: dict[tuple[str, str, str], set[str]] = {}
        for rec in self.verified():
            found.setdefault(rec.key, set()).add(rec.webhook_id)
        return found
