"""A stand-in upstream feed (a wire service's RSS or Atom): serves whatever document the
test sets, with an ETag and Last-Modified, answering a matching conditional GET with
304 Not Modified as a real server does; can be told to fail.

Like a real wire service's server it refuses, before anything else (a planned failure
included), a request for any other path (404) and, when it has credentials
(`require_basic_auth`), one without them or with wrong ones (401 with WWW-Authenticate).
`send_etag = False` makes it a server that only sends Last-Modified (so the client must
use If-Modified-Since)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler

import time

from tests.support.standin_server import StandInHTTPServer


class FeedServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.body = b""
        self.content_type = "application/rss+xml; charset=utf-8"
        self.last_modified = formatdate(usegmt=True)
        self.status = 200
        self.hang = 0.0
        self.requests: list[dict[str, str]] = []
        self.refused: list[tuple[int, str]] = []  # (status, why) of what a real server refuses
        self.credentials: tuple[str, str] | None = None
        self.send_etag = True
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.requests.append(headers)
                refusal = server._refusal(self.path, headers)
                if refusal is not None:
                    code, why, extra = refusal
                    with server.lock:
                        server.refused.append((code, why))
                    payload = why.encode()
                    self.send_response(code)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with server.lock:
                    body, status, etag = server.body, server.status, server.etag if server.send_etag else None
                    last_modified, content_type = server.last_modified, server.content_type
                if server.hang:
                    time.sleep(server.hang)
                if status != 200:
                    payload = b"<html><body>Service Unavailable</body></html>"
                    self.send_response(status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if (etag and headers.get("if-none-match") == etag) or (
                        "if-none-match" not in headers and headers.get("if-modified-since") == last_modified):
                    self.send_response(304)
                    if etag:
                        self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Last-Modified", last_modified)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = StandInHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        # A short poll interval: stopping the stand-in takes 50 ms, not half a second.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def require_basic_auth(self, username: str, password: str) -> None:
        self.credentials = (username, password)

    def _refusal(self, path: str, headers: dict[str, str]) -> tuple[int, str, dict] | None:
        if path.split("?", 1)[0] != "/rss":
            return 404, f"no feed at {path}", {}
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if not hmac.compare_digest(headers.get("authorization", "").encode(), expected.encode()):
                why = "wrong credentials" if headers.get("authorization") else "credentials required"
                return 401, why, {"WWW-Authenticate": 'Basic realm="wire"'}
        return None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/rss"

    def serve(self, body: str | bytes, content_type: str | None = None) -> None:
        with self.lock:
            self.body = body.encode() if isinstance(body, str) else body
            self.last_modified = formatdate(usegmt=True)
            if content_type:
                self.content_type = content_type

    def start(self) -> "FeedServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
