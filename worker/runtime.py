"""The process's view of its surroundings: configuration, environment, store, Redis.

Each is loaded once per process and can be reset (tests, and a forked child).
"""

from __future__ import annotations

import functools
import logging

import redis

from config import Environment, SyndicationConfig, load_config
from worker.store import Store, get_store

log = logging.getLogger("syndicate")


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment.from_env()


@functools.lru_cache(maxsize=1)
def config() -> SyndicationConfig:
    return load_config(environment().config_path)


def store() -> Store:
    return get_store(environment().database_url)


@functools.lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(environment().redis_url, socket_timeout=10, health_check_interval=30)


def reset() -> None:
    environment.cache_clear()
    config.cache_clear()
    redis_client.cache_clear()
