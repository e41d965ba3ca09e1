"""Configuration and helpers shared by the feed tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import parse_config
from worker.feeds import build_news_sitemap, rebuild
from worker.feeds.items import entry_cache
from worker.pipeline import record_article

FEEDS_URL = "https://london-news-net.example/feeds"
HUB = "https://hub.example/publish"

FEEDS_TOML = """
[site]
title = "London News Net"
url = "https://london-news-net.example"
language = "en"
feeds_url = "https://london-news-net.example/feeds"
publication_name = "London News Net"

[[feeds]]
name = "all"
title = "All stories"

[[feeds]]
name = "world"
title = "World"
description = "World news from London News Net"
sections = ["World"]

[[feeds]]
name = "russia"
title = "Russia"
tags = ["Russia"]

[[feeds]]
name = "mixed"
title = "Sport and AI"
sections = ["Sport"]
tags = ["AI"]

[[feeds]]
name = "latest3"
title = "Latest three"
limit = 3
"""


def make_config(extra: str = ""):
    return parse_config(FEEDS_TOML + extra, "test.toml", {})


@pytest.fixture
def config():
    return make_config(f'\n[websub]\nhubs = ["{HUB}"]\n')


@pytest.fixture(autouse=True)
def _fresh_entry_cache():
    # Each test renders from scratch: nothing prepared by an earlier test is reused.
    entry_cache.clear()
    yield
    entry_cache.clear()


def store_articles(store, config, articles):
    results = []
    for article in articles:
        with store.session() as s:
            results.append(record_article(s, article, config))
    return results


def build_files(store, config, feeds_dir: Path, name: str) -> dict[str, bytes]:
    result = rebuild(store, config, feeds_dir, name, force=True)
    assert result is not None and result.built
    return {file: (feeds_dir / file).read_bytes() for file in result.files}


def build_sitemap(store, config, feeds_dir: Path, now=None) -> bytes:
    assert build_news_sitemap(store, config, feeds_dir, now=now) is not None
    return (feeds_dir / "news-sitemap.xml").read_bytes()
