"""Reading only what a feed holds.

A feed lists the newest published articles of some sections and/or tags. Tags are
in a JSON column, so the store keeps `article_terms` (one row per published
article and section or tag, with its publication time, indexed by (kind, term,
published_at)). A feed reads at most `limit` ids per term from that index, merges
them, and loads those `limit` articles: the work depends on the feed's size and
number of terms, not on how many articles the store holds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from config import FeedConfig
from worker.feeds.items import FeedItem
from worker.store import ArticleRow, ArticleTermRow
from worker.store.bulk import bulk_insert

# Longer terms are not indexed (they would not fit the column or an index entry);
# `syndicate check` refuses feed filters that long.
TERM_MAX_CHARS = 200


def article_terms(section: str | None, tags) -> list[tuple[str, str]]:
    terms: list[tuple[str, str]] = []
    for kind, term in [("section", section)] + [("tag", t) for t in (tags or [])]:
        if isinstance(term, str) and term and len(term) <= TERM_MAX_CHARS and (kind, term) not in terms:
            terms.append((kind, term))
    return terms


def index_article(session: Session, article_id: str) -> None:
    """Bring the article's index rows in line with its stored state. Call after a flush,
    in the transaction that changed the article."""
    row = session.get(ArticleRow, article_id)
    state = None if row is None else {"id": row.id, "status": row.status, "section": row.section,
                                       "tags": row.tags, "published_at": row.published_at}
    replace_terms(session, [article_id], [state] if state else [])


def replace_terms(session: Session, stale_ids: list[str], states: list[dict]) -> None:
    """The index rows of many articles at once: those of `stale_ids` removed, then one row per
    term of each published article in `states` (dicts with id, status, section, tags,
    published_at, as stored) inserted in one statement. Call in the transaction that stored them."""
    for start in range(0, len(stale_ids), 500):
        session.execute(delete(ArticleTermRow).where(ArticleTermRow.article_id.in_(stale_ids[start:start + 500]))
                        .execution_options(synchronize_session=False))
    rows = [{"article_id": s["id"], "kind": kind, "term": term, "published_at": s["published_at"]}
            for s in states if s["status"] == "published"
            for kind, term in article_terms(s["section"], s["tags"])]
    if rows:
        bulk_insert(session.connection(), ArticleTermRow.__table__, rows)


def _newest_first(rows: list[ArticleRow]) -> list[ArticleRow]:
    # Same order as the queries: newest publication first, then id, so ties are stable.
    rows = sorted(rows, key=lambda r: r.id)
    return sorted(rows, key=lambda r: r.published_at, reverse=True)


def feed_items(session: Session, feed: FeedConfig) -> list[FeedItem]:
    """The newest published articles the feed holds (at most `limit`), newest first."""
    if not feed.sections and not feed.tags:
        rows = session.scalars(
            select(ArticleRow).where(ArticleRow.status == "published")
            .order_by(ArticleRow.published_at.desc(), ArticleRow.id).limit(feed.limit)
        ).all()
        return [FeedItem.from_row(r) for r in rows]
    wanted = [("section", s) for s in feed.sections if len(s) <= TERM_MAX_CHARS]
    wanted += [("tag", t) for t in feed.tags if len(t) <= TERM_MAX_CHARS]
    candidates: dict[str, datetime] = {}
    for kind, term in wanted:
        for article_id, published_at in session.execute(
            select(ArticleTermRow.article_id, ArticleTermRow.published_at)
            .where(ArticleTermRow.kind == kind, ArticleTermRow.term == term)
            .order_by(ArticleTermRow.published_at.desc(), ArticleTermRow.article_id).limit(feed.limit)
        ):
            candidates[article_id] = published_at
    chosen = sorted(candidates, key=lambda i: (-candidates[i].timestamp(), i))[: feed.limit]
    if not chosen:
        return []
    rows = session.scalars(select(ArticleRow).where(ArticleRow.id.in_(chosen))).all()
    # The index is maintained with the article; checking again costs nothing and keeps a
    # stale index row (say, from a store edited by hand) from showing a withdrawn story.
    rows = [r for r in rows if r.status == "published" and feed.holds(r.section, r.tags or [])]
    return [FeedItem.from_row(r) for r in _newest_first(rows)]


def recent_items(session: Session, since: datetime, limit: int) -> list[FeedItem]:
    """Published articles published at or after `since`, newest first, without their bodies
    (the news sitemap needs only URL, title, language and date)."""
    rows = session.execute(
        select(ArticleRow.id, ArticleRow.url, ArticleRow.title, ArticleRow.language, ArticleRow.published_at,
               ArticleRow.updated_at, ArticleRow.version)
        .where(ArticleRow.status == "published", ArticleRow.published_at >= since)
        .order_by(ArticleRow.published_at.desc(), ArticleRow.id).limit(limit)
    ).all()
    return [FeedItem(r.id, r.url, r.title, "", "", (), None, (), None, r.language, r.published_at, r.updated_at,
                     r.version) for r in rows]
