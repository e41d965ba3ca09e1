"""Where the infrastructure is (Redis, the database, the feeds directory, Sentry), from the
process environment. Kept apart from the settings models so that a command that needs only
a URL (`syndicate status`) does not import pydantic."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG_PATH = "config/syndication.toml"


@dataclass(frozen=True)
class Environment:
    """Infrastructure locations, from the process environment."""

    redis_url: str = "redis://localhost:6379/0"
    database_url: str = "sqlite:///var/syndicate.db"
    feeds_dir: Path = Path("var/feeds")
    sentry_dsn: str | None = None
    config_path: Path = Path(DEFAULT_CONFIG_PATH)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Environment":
        env = dict(os.environ if env is None else env)
        return cls(
            redis_url=env.get("REDIS_URL") or "redis://localhost:6379/0",
            database_url=env.get("DATABASE_URL") or "sqlite:///var/syndicate.db",
            feeds_dir=Path(env.get("FEEDS_DIR") or "var/feeds"),
            sentry_dsn=env.get("SENTRY_DSN") or None,
            config_path=Path(env.get("SYNDICATE_CONFIG") or DEFAULT_CONFIG_PATH),
        )
