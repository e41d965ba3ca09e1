"""Refusing partner URLs that point inside the network (server-side request forgery).

A partner URL is typed by an operator, but the name in it resolves wherever its DNS
says, and can change after `syndicate check` passed it. So the check is made twice:
on the literal host when the configuration is loaded, and on the address actually
connected to, at send time (`GuardedHTTPConnection`), which also defeats DNS
rebinding: there is no second lookup between the check and the connection.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from urllib.parse import urlsplit

from config.common import address_refusal, literal_host_refusal  # noqa: F401 - re-exported


class BlockedAddress(Exception):
    """The partner's host is (or resolved to) an address partners may not use."""

    def __init__(self, host: str, address: str, why: str):
        super().__init__(f"refused to connect to {host} ({address}): {why} address; "
                         "set allow_private = true for an intranet partner")
        self.host, self.address, self.why = host, address, why


def check_peer(sock: socket.socket, host: str, allow_private: bool) -> None:
    """Refuse the connection if the address actually connected to is not a public one."""
    if allow_private:
        return
    address = sock.getpeername()[0]
    why = address_refusal(address)
    if why:
        sock.close()
        raise BlockedAddress(host, address, why)


class GuardedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection that checks the peer it connected to (see the module docstring)."""

    def __init__(self, host: str, port: int | None, *, timeout: float, connect_timeout: float,
                 allow_private: bool):
        super().__init__(host, port, timeout=timeout)
        self.connect_timeout, self.allow_private = connect_timeout, allow_private

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        check_peer(sock, self.host, self.allow_private)
        sock.settimeout(self.timeout)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class GuardedHTTPSConnection(GuardedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int | None, *, timeout: float, connect_timeout: float,
                 allow_private: bool, context: ssl.SSLContext | None = None):
        super().__init__(host, port, timeout=timeout, connect_timeout=connect_timeout, allow_private=allow_private)
        self.context = context or ssl.create_default_context()

    def connect(self) -> None:
        self.sock = self.context.wrap_socket(self._open(), server_hostname=self.host)


def guarded_connection(url: str, *, allow_private: bool, timeout: float) -> GuardedHTTPConnection:
    """A (keep-alive) connection to the URL's origin that refuses private peers."""
    parts = urlsplit(url)
    cls = GuardedHTTPSConnection if parts.scheme == "https" else GuardedHTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout, connect_timeout=min(timeout, 10.0),
               allow_private=allow_private)
