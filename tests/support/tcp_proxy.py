"""A TCP proxy a test puts in front of a server it cannot stop (the shared PostgreSQL),
so it can make that server unreachable for a while: `cut()` resets every open
connection and refuses new ones until `restore()`."""

from __future__ import annotations

import selectors
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1"):
        self.upstream = upstream
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.host = host
        self.cut_now = False
        self.connections = 0
        self.refused = 0
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> "TcpProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        self._reset_all()

    def cut(self) -> None:
        """Unreachable from now on: open connections are reset, new ones refused."""
        self.cut_now = True
        self._reset_all()

    def restore(self) -> None:
        self.cut_now = False

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            # SO_LINGER 0: close() sends RST, as when a server's host goes away.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def _reset_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for client, server in pairs:
            self._reset(client)
            self._reset(server)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            if self.cut_now:
                self.refused += 1
                self._reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                self._reset(client)
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.add((client, server))
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(client, selectors.EVENT_READ, server)
            sel.register(server, selectors.EVENT_READ, client)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            with self._lock:
                self._pairs.discard((client, server))
            for sock in (client, server):
                try:
                    sock.close()
                except OSError:
                    pass
