"""Ingesting a list of articles: stored a batch to a transaction, each batch's work enqueued
once it is committed; a batch the store refuses is stored again one article a transaction,
so a refused article rejects only itself."""

from __future__ import annotations

import logging

import sqlalchemy.exc

from config import SyndicationConfig
from worker.articles import Article
from worker.pipeline.dispatch import dispatch
from worker.pipeline.events import Recorded, log_recorded
from worker.pipeline.record import chunks, record_article, record_articles

log = logging.getLogger("syndicate.pipeline")

# Articles stored per transaction by `ingest_articles`.
INGEST_BATCH = 100


class Ingested(list):
    """The articles `ingest_articles` stored (a list of `Recorded`), and whether their work
    reached the broker (`queued` False: it goes out once the broker is back)."""

    queued: bool = True


def ingest_articles(articles: list[Article], config: SyndicationConfig, store, origin: str = "ingest",
                    warn_broker_down: bool = True) -> Ingested:
    """Store the articles, INGEST_BATCH to a transaction, and enqueue each batch's work once it
    is committed (so sending starts while later batches are stored). When a batch fails, its
    articles are stored again one to a transaction, so an article the store refuses (say, a
    value too long for its column) rejects only itself: its Recorded carries the `error`,
    and the others are stored. Once the broker is found down, later batches are not offered
    to it (one connection attempt in all): their rows are committed, the sweep sends them."""
    results = Ingested()
    for batch in chunks(articles, INGEST_BATCH):
        try:
            with store.session() as session:
                stored = record_articles(session, batch, config, origin=origin)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
            raise  # the store is unreachable: no article would be stored alone either
        except (sqlalchemy.exc.SQLAlchemyError, ValueError):
            stored = [_ingest_alone(article, config, store, origin) for article in batch]
        for rec in stored:
            log_recorded(rec)
        if results.queued:
            results.queued = dispatch(stored, config, warn_broker_down)
        results += stored
    return results


def _ingest_alone(article: Article, config: SyndicationConfig, store, origin: str) -> Recorded:
    try:
        with store.session() as session:
            return record_article(session, article, config, origin=origin)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        raise
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        log.error("article=%s stage=refused-by-store error=%s", article.id, reason)
        return Recorded(article.id, error=f"the store refused it: {reason}")
