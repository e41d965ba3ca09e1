"""The HTTP server every stand-in runs on: the standard library's threading server with a
real server's listen backlog.

socketserver's default backlog is 5: a burst of more concurrent connections (a worker's
parallel lanes) overflows it, the kernel drops the handshake, and the client retries it
after 1 s, then 3 s, a delay no real endpoint (nginx: 511) would add and that made request
timing in tests depend on luck."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class StandInHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
