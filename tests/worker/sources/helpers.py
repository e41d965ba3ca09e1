"""Shared by the source tests: a configuration with sources and an in-process poll."""

from __future__ import annotations

from sqlalchemy import select

from config import parse_config
from worker.store import EventRow, RejectionRow
from worker.watch import poll_source

SITE = """
[site]
title = "London News Net"
url = "https://london-news-net.example"
feeds_url = "https://london-news-net.example/feeds"
"""


def source_config(**source) -> "object":
    """A configuration holding one source (no feeds or partners: nothing is enqueued)."""
    lines = [SITE, "[[sources]]"]
    for key, value in source.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return parse_config("\n".join(lines) + "\n", "test.toml", {})


def poll(config, store, redis_client, name: str | None = None, source=None):
    name = name or config.sources[0].name
    return poll_source(name, config=config, store=store, redis_client=redis_client, source=source)


def events(store, article_id: str | None = None) -> list[tuple[str, str]]:
    with store.session() as s:
        query = select(EventRow).order_by(EventRow.id)
        if article_id:
            query = query.where(EventRow.article_id == article_id)
        return [(e.article_id, e.type) for e in s.scalars(query)]


def rejections(store) -> list[RejectionRow]:
    with store.session() as s:
        return list(s.scalars(select(RejectionRow).order_by(RejectionRow.id)))
