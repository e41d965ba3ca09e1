"""Refusing partner URLs that point inside the network (server-side request forgery).

A partner URL is typed by an operator, but the name in it resolves wherever its DNS
says, and can change after `syndicate check` passed it. So the check is made twice:
on the literal host when the configuration is loaded, and on the address actually
connected to, at send time (`GuardedHTTPConnection`), which also defeats DNS
rebinding: there is no second lookup between the check and the connection.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class BlockedAddress(Exception):
    """The partner's host is (or resolved to) an address partners may not use."""

    def __init__(self, host: str, address: str, why: str):
        super().__init__(f"refused to connect to {host} ({address}): {why} address; "
                         "set allow_private = true for an intranet partner")
        self.host, self.address, self.why = host, address, why


def address_refusal(address: str) -> str | None:
    """Why an IP address is not a public one (None when it is)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "private"
    return None


def literal_host_refusal(url: str) -> str | None:
    """Why a URL's host, written as a literal address or a local name, is refused."""
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    why = address_refusal(host)
    if why:
        return f"{host} is a {why} address"
    return None


class _Guard:
    allow_private = False

    def _check_peer(self, sock) -> None:
        if self.allow_private:
            return
        address = sock.getpeername()[0]
        why = address_refusal(address)
        if why:
            sock.close()
            raise BlockedAddress(self.host, address, why)


class GuardedHTTPConnection(_Guard, HTTPConnection):
    def __init__(self, *args, allow_private: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    def _new_conn(self):
        sock = super()._new_conn()
        self._check_peer(sock)
        return sock


class GuardedHTTPSConnection(_Guard, HTTPSConnection):
    def __init__(self, *args, allow_private: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    def _new_conn(self):
        sock = super()._new_conn()
        self._check_peer(sock)
        return sock


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


def guarded_pool(url: str, *, allow_private: bool, maxsize: int, timeout) -> HTTPConnectionPool:
    """A keep-alive connection pool to the URL's origin that refuses private peers."""
    parts = urlsplit(url)
    cls = GuardedHTTPSConnectionPool if parts.scheme == "https" else GuardedHTTPConnectionPool
    return cls(parts.hostname, parts.port, maxsize=maxsize, block=False, timeout=timeout, retries=False,
               allow_private=allow_private)
