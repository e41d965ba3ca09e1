"""Engine, sessions and migrations for the store (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import ast
import functools
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not install.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets the CLI read while workers write; busy_timeout waits for the lock
            # instead of failing when two processes write at once.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Store:
    """One database: an engine and a session factory."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.engine = _make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        # Loading Alembic and its scripts costs a command about 0.3 s: skip it when the store
        # already stands at the scripts' heads (read from the files, without importing them).
        if self.is_at_heads():
            return
        from alembic import command

        command.upgrade(alembic_config(self.url), "heads")

    def is_at_heads(self) -> bool:
        try:
            with self.engine.connect() as conn:
                stored = {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
        except Exception:  # noqa: BLE001 - no version table yet (or unreadable): let Alembic decide
            return False
        return bool(stored) and stored == script_heads()

    def is_migrated(self) -> bool:
        return "deliveries" in inspect(self.engine).get_table_names()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


_REVISION_RE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


@functools.lru_cache(maxsize=1)
def script_heads() -> frozenset[str]:
    """The revisions no other migration script builds on (what `alembic heads` prints)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict(_REVISION_RE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"].strip()))
        down = ast.literal_eval(found.get("down_revision", "None").strip())
        parents.update([down] if isinstance(down, str) else (down or ()))
    return frozenset(revisions - parents)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


_stores: dict[str, Store] = {}
_lock = threading.Lock()


def get_store(url: str | None = None) -> Store:
    """The process's Store for `url` (default: DATABASE_URL), created once."""
    if url is None:
        from config import Environment

        url = Environment.from_env().database_url
    url = normalize_url(url)
    with _lock:
        if url not in _stores:
            _stores[url] = Store(url)
        return _stores[url]


def reset_stores() -> None:
    """Forget cached engines (after fork, a child must not reuse the parent's connections)."""
    with _lock:
        for store in _stores.values():
            store.engine.dispose(close=False)
        _stores.clear()


def close_stores() -> None:
    """Close every store's pooled connections (a process that is exiting: SQLite checkpoints
    its write-ahead log and removes it when the last connection closes)."""
    with _lock:
        for store in _stores.values():
            store.dispose()
