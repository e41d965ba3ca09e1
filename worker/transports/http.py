"""Outbound HTTP for every transport: keep-alive pools per origin, the address check on
every connection, no redirects followed, bounded answers, no tracing headers.

Built on the standard library's http.client (about half urllib3's CPU per request).
Every request a transport makes — API calls, image downloads — goes through here, so
the same URL safety rules hold for all of them (`allow_private`), and no third party
ever receives `sentry-trace` or `baggage` headers (nothing here adds them).
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlencode, urlsplit

from worker.delivery.ssrf import BlockedAddress, guarded_connection
from worker.transports.base import Outcome

RESPONSE_BODY_KEEP = 64 * 1024
USER_AGENT = "syndicate/0.1 (+https://github.com/syndicate)"
POOL_SIZE = 16


class RequestFailed(Exception):
    """No HTTP answer: `error_class` is timeout | connection_error | dns_error | tls_error |
    blocked_address | too_large.

    `sent` says whether the whole request had been written when it failed: if not, the
    server cannot have carried it out (safe to send again); if so, it may have been (a
    timeout or reset while waiting for the answer), which matters for requests without
    an idempotency key."""

    def __init__(self, error_class: str, message: str, duration_ms: int = 0, sent: bool = False):
        super().__init__(message)
        self.error_class, self.duration_ms, self.sent = error_class, duration_ms, sent

    def outcome(self, **kwargs) -> Outcome:
        return Outcome(error_class=self.error_class, error=str(self)[:500], duration_ms=self.duration_ms, **kwargs)


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes
    duration_ms: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body as JSON, or None if it is not JSON (an HTML error page, a cut answer)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def outcome(self, **kwargs) -> Outcome:
        """The answer as an Outcome (the body kept short); keyword arguments add to it."""
        values = dict(status_code=self.status, body=self.text[:2048], duration_ms=self.duration_ms,
                      retry_after=self.header("retry-after"), location=self.header("location"))
        values.update(kwargs)
        return Outcome(**values)


class _Pool:
    """Idle keep-alive connections to one origin."""

    def __init__(self, origin: str, allow_private: bool, timeout: float, size: int):
        self.origin, self.allow_private, self.timeout, self.size = origin, allow_private, timeout, size
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()

    def get(self) -> http.client.HTTPConnection:
        with self.lock:
            while self.idle:
                conn = self.idle.pop()
                if not _dropped(conn):
                    return conn
                conn.close()
        return guarded_connection(self.origin, allow_private=self.allow_private, timeout=self.timeout)

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


def _target(parts) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class HttpClient:
    """Thread-safe; one per transport per process."""

    def __init__(self, pool_size: int = POOL_SIZE):
        self.pool_size = pool_size
        self._pools: dict[tuple, _Pool] = {}
        self._lock = threading.Lock()

    def _pool(self, parts, allow_private: bool, timeout: float) -> _Pool:
        origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        key = (origin, allow_private, timeout)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = _Pool(origin, allow_private, timeout, self.pool_size)
        return pool

    def request(self, method: str, url: str, *, timeout: float, allow_private: bool = False,
                headers: dict[str, str] | None = None, body: bytes | None = None, json_body=None,
                form: dict | None = None, max_body: int = RESPONSE_BODY_KEEP, cut: bool = False) -> Response:
        """One request; raises RequestFailed when no answer came. `json_body` and `form`
        set the body and its content type. An answer longer than `max_body` is an error
        (`too_large`), or with `cut`, kept only up to `max_body` bytes."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestFailed("bad_url", f"not an absolute http(s) URL: {url[:200]!r}")
        send_headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            send_headers["content-type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            send_headers["content-type"] = "application/x-www-form-urlencoded"
        send_headers.update({k.lower(): v for k, v in (headers or {}).items()})
        pool = self._pool(parts, allow_private, timeout)
        started = time.monotonic()
        conn = None
        sent = False
        try:
            conn = pool.get()
            conn.request(method, _target(parts), body=body, headers=send_headers)
            sent = True
            resp = conn.getresponse()
            content = resp.read(max_body + 1)
            too_large = len(content) > max_body
            if too_large and cut:
                content, too_large = content[:max_body], False
                # Drain a little so the connection can be reused; past that, close it rather
                # than read a huge answer nobody keeps.
                reusable = not resp.read(64 * 1024) and not resp.will_close
            else:
                reusable = not too_large and not resp.read(64 * 1024) and not resp.will_close
            status, resp_headers = resp.status, resp.headers
            if reusable:
                pool.put(conn)
            else:
                conn.close()
            conn = None
        except BlockedAddress as exc:
            raise self._failed("blocked_address", exc, started, sent) from None
        except socket.gaierror as exc:
            raise self._failed("dns_error", exc, started, sent) from None
        except (TimeoutError, socket.timeout) as exc:
            raise self._failed("timeout", exc, started, sent) from None
        except ssl.SSLError as exc:
            raise self._failed("tls_error", exc, started, sent) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed("connection_error", exc, started, sent) from None
        finally:
            if conn is not None:
                conn.close()
        duration = int((time.monotonic() - started) * 1000)
        if too_large:
            raise RequestFailed("too_large", f"the answer is larger than {max_body} bytes", duration, sent=True)
        return Response(status, resp_headers, content, duration)

    def fetch(self, url: str, *, timeout: float, allow_private: bool = False, max_bytes: int,
              accept: str = "*/*") -> Response:
        """A GET of at most `max_bytes` (e.g. an image to upload); RequestFailed("too_large")
        when it is bigger."""
        return self.request("GET", url, timeout=timeout, allow_private=allow_private,
                            headers={"accept": accept}, max_body=max_bytes)

    @staticmethod
    def _failed(kind: str, exc: Exception, started: float, sent: bool = False) -> RequestFailed:
        text = str(exc) or type(exc).__name__
        return RequestFailed(kind, f"{type(exc).__name__}: {text}"[:500], int((time.monotonic() - started) * 1000),
                             sent=sent)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()
