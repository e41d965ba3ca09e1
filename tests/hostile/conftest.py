"""Shared by the hostile corpus tests: a deployment's configuration, the CLI in-process,
and the checks every path must pass (feeds valid, nothing unsafe stored or sent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.conftest import new_secret, write_config
from tests.hostile.corpus import text_is_safe
from tests.worker.feeds.validators import assert_valid_feed_files
from worker.store import ArticleRow, EventRow, RejectionRow

FEEDS_URL = "https://london-news-net.example/feeds"


@pytest.fixture
def hostile_config(tmp_path) -> Path:
    """A configuration with a feed of everything and a partner (not started: the tests read
    what would be sent to it, the event data)."""
    return write_config(
        tmp_path / "syndication.toml",
        partners=[{"name": "acme", "url": "http://127.0.0.1:9/hooks", "secret": new_secret(), "allow_private": True}],
        feeds=[{"name": "all", "title": "All stories", "limit": 1000}],
        extra=f'[[sources]]\nname = "drop"\ntype = "directory"\npath = "{tmp_path / "incoming"}"\n',
    )


@pytest.fixture
def cli(hostile_config, store, redis_url, tmp_path):
    """Run `syndicate ...` in this process against this test's store, Redis and config."""
    from worker import runtime

    env = {"DATABASE_URL": store.url, "REDIS_URL": redis_url, "FEEDS_DIR": str(tmp_path / "feeds"),
           "SYNDICATE_CONFIG": str(hostile_config)}

    def run(*args: str, input: str | bytes | None = None):
        runtime.reset()
        try:
            return CliRunner().invoke(_main(), ["--config", str(hostile_config), *args], env=env, input=input,
                                      catch_exceptions=True)
        finally:
            runtime.reset()

    return run


def _main():
    from worker.cli import main

    return main


def stored(store) -> dict[str, ArticleRow]:
    with store.session() as s:
        return {a.id: a for a in s.scalars(select(ArticleRow))}


def rejection_rows(store, source: str | None = None) -> list[RejectionRow]:
    with store.session() as s:
        query = select(RejectionRow).order_by(RejectionRow.id)
        if source:
            query = query.where(RejectionRow.source == source)
        return list(s.scalars(query))


def event_data(store) -> dict[str, dict]:
    """What a partner is sent, per article id (the last event's data)."""
    with store.session() as s:
        return {e.article_id: e.data for e in s.scalars(select(EventRow).order_by(EventRow.id))}


def assert_nothing_unsafe_stored_or_sent(store) -> None:
    problems = {aid: p for aid, row in stored(store).items() if (p := text_is_safe(row))}
    assert not problems, problems
    for article_id, data in event_data(store).items():
        for key in ("title", "summary", "section"):
            value = (data.get(key) or "").lower()
            assert "<script" not in value and "onerror=" not in value, (article_id, key, value[:80])
        assert "hunter2" not in str(data) and "secret@" not in str(data), article_id


def assert_feeds_valid(store, config_path: Path, feeds_dir: Path) -> dict:
    from config import load_config
    from worker.feeds import build_news_sitemap, rebuild

    config = load_config(config_path, env={})
    result = rebuild(store, config, feeds_dir, "all", force=True)
    files = {file: (feeds_dir / file).read_bytes() for file in result.files}
    documents = assert_valid_feed_files(files, FEEDS_URL, "all")
    build_news_sitemap(store, config, feeds_dir)
    from lxml import etree

    etree.fromstring((feeds_dir / "news-sitemap.xml").read_bytes())
    return documents
