"""What an incoming article means: which event it makes, the event's data, and the
article as every destination may show it (sanitized once, here)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from config import SyndicationConfig
from worker.articles import Article, iso
from worker.sanitize import sanitize_to_store
from worker.store import ArticleRow

log = logging.getLogger("syndicate.pipeline")

PUBLISHED, UPDATED, UNPUBLISHED = "article.published", "article.updated", "article.unpublished"


def new_message_id() -> str:
    # Standard Webhooks ids are opaque: "msg_" + 128 random bits in hex (the shape of a
    # UUID's hex, a third of the cost of building a UUID: a batch makes thousands).
    return "msg_" + secrets.token_hex(16)


@dataclass
class Recorded:
    """What storing one article produced."""

    article_id: str
    event_type: str | None = None
    event_id: int | None = None
    version: str | None = None
    partner_deliveries: list[int] = field(default_factory=list)
    feed_names: list[str] = field(default_factory=list)
    channel_deliveries: list[int] = field(default_factory=list)
    # Set when the store refused this article (nothing of it was stored).
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.event_type is not None


def decide_event(existing: ArticleRow | None, article: Article) -> str | None:
    """Which event an incoming article makes, given what the store holds."""
    if article.status == "unpublished":
        if existing is not None and existing.status == "published":
            return UNPUBLISHED
        return None
    if existing is None or existing.status == "unpublished":
        return PUBLISHED
    if existing.version != article.version:
        return UPDATED
    return None


def unpublished_data(article_id: str, url: str, version: str, updated_at: datetime) -> dict:
    return {"id": article_id, "url": url, "version": version, "updated_at": iso(updated_at)}


def republishable(article: Article, config: SyndicationConfig) -> Article:
    """The article as every destination may show it: its body sanitized here, once, for every
    input path (ingest, each source), so feeds, partners and channels get the same safe HTML
    and the content version is computed on what they get."""
    return stored_form(article, config)[0]


def stored_form(article: Article, config: SyndicationConfig) -> tuple[Article, str | None]:
    """`republishable(article)`, and the `sanitized_as` marker its row is stored with."""
    clean, sanitized_as = sanitize_to_store(article.content_html, article.url, config.feed_settings.iframe_hosts)
    if clean != article.content_html:
        article = article.model_copy(update={"content_html": clean})
    return article, sanitized_as


_DATA_FIELDS = ("id", "url", "title", "summary", "content_html", "authors", "section", "tags", "image", "language")


def event_data(values: dict) -> dict:
    """`Article.data()` made from `Article.row_values()`, so the content version (a hash of the
    whole body) is computed once per article, not twice (tests check the two agree)."""
    data = {k: values[k] for k in _DATA_FIELDS}
    data["authors"], data["tags"] = list(data["authors"]), list(data["tags"])
    data.update(published_at=iso(values["published_at"]), updated_at=iso(values["updated_at"]),
                version=values["version"])
    return data


def log_recorded(rec: Recorded) -> None:
    if rec.changed:
        log.info("article=%s stage=stored event=%s version=%s feeds=%d partners=%d channels=%d",
                 rec.article_id, rec.event_type, rec.version, len(rec.feed_names), len(rec.partner_deliveries),
                 len(rec.channel_deliveries))
    else:
        # Pollers re-read an overlap on every poll: an unchanged article is not a stage.
        log.debug("article=%s stage=stored event=none (unchanged)", rec.article_id)
