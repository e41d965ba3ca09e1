"""A stand-in partner: an HTTP server that verifies Standard Webhooks signatures as a
real partner does (with the `standardwebhooks` library) and can be told to fail.

It refuses, as a real receiver does and WHATEVER failure is planned, a request to any
path but its endpoint (404), any method but POST (405), a body that is not declared as
JSON (415), and one whose signature does not verify against the partner's secret, whose
timestamp is outside the library's five-minute tolerance, or whose envelope lacks its
fields (401). A refused request never consumes a planned reply. Everything it receives
is kept, verified or not, so tests can assert on both (`assert_only_valid`).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Callable
from urllib.parse import urlsplit

from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.standin_server import StandInHTTPServer


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
    status: int = 0  # what was answered (0: no answer: reset, or not yet)

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


PATH = "/hooks"


class PartnerServer:
    def __init__(self, secret: str, host: str = "127.0.0.1"):
        self.secret = secret
        self.webhook = Webhook(secret)
        self.received: list[Received] = []
        self.incomplete = 0  # requests cut off before their whole body arrived
        self.plan: deque[Reply | Callable[[Received], Reply]] = deque()
        self.default: Reply = (200, {}, b'{"ok":true}')
        self.delay = 0.0
        self._lock = threading.RLock()  # wait_for's predicate may call verified()
        self._cond = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _refuse_method(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = Received(headers, body, False, f"method {self.command} not allowed", None,
                               path=self.path, status=405)
                server._keep(rec)
                self._answer(405, {"Allow": "POST"}, b'{"error":"method not allowed"}')

            do_GET = do_PUT = do_PATCH = do_DELETE = _refuse_method

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-request (a worker killed while sending): a real
                    # server's framework never hands such a request to the application.
                    with server._cond:
                        server.incomplete += 1
                        server._cond.notify_all()
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = server._verify(headers, body, self.path)
                if not rec.verified:
                    # Refused before the application runs: no planned reply, delay or fault applies.
                    server._keep(rec)
                    self._answer(rec.status, {}, json.dumps({"error": rec.error}).encode())
                    return
                with server._cond:
                    reply = server.plan.popleft() if server.plan else server.default
                    rec.reply = reply
                if callable(reply):
                    reply = reply(rec)
                server._keep(rec)
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
                rec.status = status
                self._answer(status, extra, payload)

            def _answer(self, status: int, extra: dict[str, str], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True  # the sender gave up (timed out) first

        self.httpd = StandInHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: stopping the stand-in takes 50 ms, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _verify(self, headers: dict[str, str], body: bytes, path: str = PATH) -> Received:
        if urlsplit(path).path != PATH:
            return Received(headers, body, False, f"no endpoint at {path}", None, path=path, status=404)
        if not headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
            return Received(headers, body, False, f"content-type is {headers.get('content-type')!r}", None,
                            path=path, status=415)
        try:
            message = self.webhook.verify(body, headers)
            if not isinstance(message, dict):
                raise WebhookVerificationError("envelope is not an object")
            for key in ("type", "timestamp", "data"):
                if key not in message:
                    raise WebhookVerificationError(f"envelope has no {key!r}")
            return Received(headers, body, True, None, message, path=path)
        except (WebhookVerificationError, ValueError, TypeError) as exc:
            return Received(headers, body, False, f"{type(exc).__name__}: {exc}", None, path=path, status=401)

    def _keep(self, rec: Received) -> None:
        with self._cond:
            self.received.append(rec)
            self._cond.notify_all()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    def start(self) -> "PartnerServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def refused(self) -> list[Received]:
        """Requests a real partner would have refused (bad signature, path, type, ...)."""
        with self._lock:
            return [r for r in self.received if not r.verified]

    def assert_only_valid(self, incomplete: int = 0) -> None:
        """Every request that arrived verified, and `incomplete` were cut off mid-body."""
        bad = [(r.path, r.status, r.error) for r in self.refused()]
        assert not bad, f"the partner refused requests a real receiver would refuse: {bad}"
        assert self.incomplete == incomplete, f"{self.incomplete} requests were cut off, expected {incomplete}"

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
