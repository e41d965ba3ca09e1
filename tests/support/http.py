"""One HTTP server base for every stand-in platform (Mastodon, Bluesky, Telegram, X, ...).

A stand-in subclasses `StandIn` and registers routes; each route is a method that
takes a `Request` and returns a `Reply` (or raises `Refuse` with the status and body
the real service would send). The base does what every stand-in needs:

- keeps every request (accepted or refused) in `requests`, with `wait_for`;
- refuses a request whose body was cut off (the sender died mid-request), as a
  real server's framework would, counting it in `incomplete`;
- *faults*, planned per route, applied after the real checks:
  `fail(route, status, body, headers)` answers an error instead of running the route;
  `lose_answer(route)` **carries the request out and then drops the connection**
  without answering (the failure a real network produces: the post exists, the
  sender never hears so); `reset(route)` drops the connection without carrying it out;
  `slow(route, seconds)` answers late.
- The checks the real service makes (auth, lengths, signatures) run first, whatever
  fault is planned: a request the real service would refuse is refused.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from tests.support.standin_server import StandInHTTPServer


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    route: str = ""
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    status: int = 0  # what was answered (0: no answer: lost or reset)
    accepted: bool = False  # the route ran and returned a 2xx
    error: str | None = None  # why it was refused
    at: float = field(default_factory=time.time)

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def arg(self, name: str, default=None):
        """A parameter from the query, a form body or a JSON body."""
        if name in self.query:
            return self.query[name][-1]
        ctype = self.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            return self.form().get(name, default)
        if ctype.startswith("application/json"):
            data = self.json()
            if isinstance(data, dict):
                return data.get(name, default)
        return default


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict/list → JSON; bytes/str as is
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return self.body or b"", "application/octet-stream" if self.body else "application/json"


class Refuse(Exception):
    """What the real service answers to a request it refuses."""

    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body}")
        self.reply = Reply(status, body, headers or {})


LOSE, RESET = "lose", "reset"


@dataclass
class Fault:
    kind: str  # "fail" | LOSE | RESET | "slow"
    reply: Reply | None = None
    seconds: float = 0.0


class StandIn:
    """Subclass, then call `route(method, pattern, handler)` in __init__; patterns use
    `{name}` for a path segment."""

    def __init__(self, host: str = "127.0.0.1"):
        self.requests: list[Request] = []
        self.incomplete = 0
        self.faults: dict[str, deque[Fault]] = {}
        self._routes: list[tuple[str, re.Pattern, str, Callable[[Request], Reply]]] = []
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Without this, Nagle's algorithm and delayed ACKs hold each answer ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _handle(self):
                server._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.httpd = StandInHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: stopping a stand-in takes 50 ms, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    # -- set-up ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Callable[[Request], Reply], name: str | None = None):
        regex = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$")
        self._routes.append((method, regex, name or f"{method} {pattern}", handler))

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- faults ---------------------------------------------------------------------

    def _plan(self, route: str, fault: Fault, times: int) -> None:
        with self._lock:
            q = self.faults.setdefault(route, deque())
            for _ in range(times):
                q.append(fault)

    def fail(self, route: str, status: int, body: object = None, headers: dict | None = None, times: int = 1):
        self._plan(route, Fault("fail", Reply(status, body if body is not None else {"error": "planned"},
                                              headers or {})), times)

    def lose_answer(self, route: str, times: int = 1):
        """Carry the request out, then drop the connection without answering."""
        self._plan(route, Fault(LOSE), times)

    def reset(self, route: str, times: int = 1):
        """Drop the connection without carrying the request out."""
        self._plan(route, Fault(RESET), times)

    def slow(self, route: str, seconds: float, times: int = 1):
        self._plan(route, Fault("slow", seconds=seconds), times)

    # -- what was seen --------------------------------------------------------------

    def seen(self, route: str | None = None, accepted: bool | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests
                    if (route is None or r.route == route) and (accepted is None or r.accepted == accepted)]

    def refused(self) -> list[Request]:
        """Requests the real service would have refused (a 4xx from a check, not a planned fault)."""
        with self._lock:
            return [r for r in self.requests if r.error is not None]

    def wait_for(self, predicate: Callable[["StandIn"], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{type(self).__name__}: {what or 'condition'} not met within {timeout}s; "
                                         f"saw {[(r.route, r.status) for r in self.requests]}")
                self._cond.wait(min(left, 0.5))

    # -- serving --------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        if len(body) < length:
            with self._cond:
                self.incomplete += 1
            h.close_connection = True
            return
        parts = urlsplit(h.path)
        req = Request(h.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                      {k.lower(): v for k, v in h.headers.items()}, body)
        handler = None
        for method, regex, name, fn in self._routes:
            m = regex.match(parts.path)
            if m and method == h.command:
                handler, req.route, req.params = fn, name, m.groupdict()
                break
        fault = None
        if handler is not None:
            with self._lock:
                q = self.faults.get(req.route)
                fault = q.popleft() if q else None
        try:
            if handler is None:
                raise Refuse(404, {"error": f"no such endpoint: {h.command} {parts.path}"})
            if fault is not None and fault.kind == RESET:
                self._record(req)
                self._drop(h)
                return
            if fault is not None and fault.kind == "fail":
                # The checks the real service makes still come first.
                self.check(req)
                reply = fault.reply
            else:
                self.check(req)
                reply = handler(req)
                req.accepted = 200 <= reply.status < 300
        except Refuse as refusal:
            reply = refusal.reply
            req.error = str(refusal)
        if fault is not None and fault.kind == LOSE:
            self._record(req)
            self._drop(h)
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        req.status = reply.status
        self._record(req)
        payload, ctype = reply.payload()
        try:
            h.send_response(reply.status)
            headers = {"content-type": ctype, **reply.headers}
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("content-length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:
            h.close_connection = True

    def check(self, req: Request) -> None:
        """The checks every request to this service passes before its route runs (auth,
        content type), whatever fault is planned; raise Refuse. Overridden by stand-ins."""

    def _record(self, req: Request) -> None:
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        # SO_LINGER 0: close() sends RST; the sender sees a reset, never an answer.
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()
