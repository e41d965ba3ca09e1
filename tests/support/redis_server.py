"""A redis-server of a test's own, on a free port, never the shared one: it can be stopped
(SIGKILL: nothing saved at that moment) and started again on the same port, with or
without the append-only file, so a test can restart the broker under running workers."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import redis as redis_lib


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, root: Path, appendonly: bool = False):
        self.root, self.appendonly, self.port = Path(root), appendonly, free_port()
        self.proc: subprocess.Popen | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url, socket_timeout=5)

    def start(self, timeout: float = 20) -> "RedisServer":
        # With AOF, fsync every write: a SIGKILL then loses nothing that was acknowledged.
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis_lib.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start "
                                       f"(see {self.root / 'redis.log'})")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGKILL: the server gets no chance to save anything or close connections cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()
