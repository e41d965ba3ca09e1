"""The process's view of its surroundings: configuration, environment, store, Redis.

Each is loaded once per process and can be reset (tests, and a forked child). Each
library is imported when its accessor is first called: a command that only reads the
store (`syndicate status`) pays for neither pydantic's settings models nor redis.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from config.environment import Environment

if TYPE_CHECKING:
    import redis

    from config import SyndicationConfig
    from worker.store import Store

log = logging.getLogger("syndicate")


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment.from_env()


@functools.lru_cache(maxsize=1)
def config() -> "SyndicationConfig":
    from config import load_config

    return load_config(environment().config_path)


def store() -> "Store":
    from worker.store import get_store

    return get_store(environment().database_url)


@functools.lru_cache(maxsize=1)
def redis_client() -> "redis.Redis":
    import redis

    return redis.Redis.from_url(environment().redis_url, socket_timeout=10, health_check_interval=30)


def reset() -> None:
    environment.cache_clear()
    config.cache_clear()
    redis_client.cache_clear()
