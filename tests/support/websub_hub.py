"""A stand-in WebSub hub: checks a publish ping as a real hub does, and can be told to fail.

A real hub (Google's, WebSubHub, Superfeedr) accepts a publish notification only as
a form-encoded POST (`application/x-www-form-urlencoded`) with `hub.mode=publish`
and the topic in `hub.url` (or `hub.topic`), an absolute http(s) URL; when both
are given they must agree. It answers 204 No Content, or 4xx naming the problem.
Every request is kept, accepted or not, so tests can assert on both.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from tests.support.standin_server import StandInHTTPServer

Reply = tuple[int, bytes]


@dataclass
class Ping:
    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool
    error: str | None
    topic: str | None
    status: int = 0
    at: float = field(default_factory=time.time)


def check_publish(headers: dict[str, str], body: bytes) -> tuple[str | None, str | None]:
    """(topic, None) for a valid publish ping, else (None, what is wrong)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None, f"content-type must be application/x-www-form-urlencoded, got {content_type!r}"
    try:
        form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"body is not form-encoded: {exc}"
    if form.get("hub.mode") != ["publish"]:
        return None, f"hub.mode must be 'publish', got {form.get('hub.mode')}"
    urls, topics = form.get("hub.url", []), form.get("hub.topic", [])
    if not urls and not topics:
        return None, "no hub.url or hub.topic"
    if len(urls) > 1 or len(topics) > 1:
        return None, "one topic per ping expected"
    topic = (urls or topics)[0]
    if urls and topics and urls[0] != topics[0]:
        return None, f"hub.url {urls[0]!r} and hub.topic {topics[0]!r} differ"
    parts = urlsplit(topic)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None, f"the topic must be an absolute http(s) URL, got {topic!r}"
    return topic, None


class WebSubHub:
    def __init__(self, host: str = "127.0.0.1"):
        self.received: list[Ping] = []
        # Replies to give before the default (204), e.g. [(503, b"busy")]; a callable gets the Ping.
        self.plan: deque[Reply | Callable[[Ping], Reply]] = deque()
        self._cond = threading.Condition()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                topic, error = check_publish(headers, body)
                ping = Ping(self.path, headers, body, error is None, error, topic)
                with hub._cond:
                    reply = hub.plan.popleft() if hub.plan else None
                if callable(reply):
                    reply = reply(ping)
                if error is not None:
                    status, payload = 400, error.encode()
                elif reply is not None:
                    status, payload = reply
                else:
                    status, payload = 204, b""
                ping.accepted = ping.accepted and 200 <= status < 300
                ping.status = status
                with hub._cond:
                    hub.received.append(ping)
                    hub._cond.notify_all()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self.send_response(405)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = StandInHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: stopping the stand-in takes 50 ms, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/hub"

    def start(self) -> "WebSubHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def accepted(self) -> list[Ping]:
        with self._cond:
            return [p for p in self.received if p.accepted]

    def wait_for(self, predicate: Callable[[list[Ping]], bool], timeout: float = 30.0) -> list[Ping]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"hub did not see the expected pings within {timeout}s; got "
                                         f"{[(p.status, p.topic, p.error) for p in self.received]}")
                self._cond.wait(left)
            return list(self.received)
