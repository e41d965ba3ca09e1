"""Feed files: RSS 2.0 and Atom per `[[feeds]]` entry, written atomically.

Built from the store only (the articles the feed holds), so identical stored
articles give identical bytes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from feedgen.feed import FeedGenerator
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import FeedConfig, SiteConfig
from worker.articles import Article
from worker.store import ArticleRow

log = logging.getLogger("syndicate.feeds")


def feed_articles(session: Session, feed: FeedConfig) -> list[Article]:
    """The newest published articles the feed holds, newest first."""
    query = select(ArticleRow).where(ArticleRow.status == "published")
    if feed.sections and not feed.tags:
        query = query.where(ArticleRow.section.in_(feed.sections))
    query = query.order_by(ArticleRow.published_at.desc(), ArticleRow.id)
    if not feed.tags:
        rows = session.scalars(query.limit(feed.limit)).all()
        return [Article.from_row(r) for r in rows]
    # Tag filters live in a JSON column; filter in Python, reading in pages.
    out: list[Article] = []
    for row in session.scalars(query.execution_options(yield_per=500)):
        if feed.holds(row.section, row.tags or []):
            out.append(Article.from_row(row))
            if len(out) >= feed.limit:
                break
    return out


def render_feed(feed: FeedConfig, site: SiteConfig, articles: list[Article]) -> dict[str, bytes]:
    """{"rss": bytes, "atom": bytes} for the feed."""
    fg = FeedGenerator()
    base = site.feeds_url.rstrip("/")
    fg.id(f"{base}/{feed.name}.atom")
    fg.title(feed.title)
    fg.subtitle(feed.description or feed.title)
    fg.language(site.language)
    fg.link(href=f"{base}/{feed.name}.atom", rel="self")
    fg.link(href=site.url, rel="alternate")
    newest = max((a.updated_at for a in articles), default=None)
    if newest is not None:
        fg.updated(newest)
        fg.lastBuildDate(newest)
    for article in reversed(articles):  # feedgen prepends entries
        fe = fg.add_entry()
        fe.id(article.url)
        fe.guid(article.url, permalink=True)
        fe.title(article.title)
        fe.link(href=article.url)
        if article.summary:
            fe.description(article.summary)
        fe.content(article.content_html, type="html")
        fe.published(article.published_at)
        fe.updated(article.updated_at)
        for name in article.authors:
            fe.author(name=name)
    return {"rss": fg.rss_str(pretty=True), "atom": fg.atom_str(pretty=True)}


def write_atomic(path: Path, data: bytes) -> bool:
    """Write via a temporary file and rename; return whether the bytes changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def build_feed(session: Session, feed: FeedConfig, site: SiteConfig, feeds_dir: Path) -> list[str]:
    """Render and write one feed's files; return the names of files whose bytes changed."""
    articles = feed_articles(session, feed)
    changed = []
    for ext, data in render_feed(feed, site, articles).items():
        name = f"{feed.name}.{ext}"
        if write_atomic(Path(feeds_dir) / name, data):
            changed.append(name)
    return changed


def rebuild(store, config, feeds_dir: Path, name: str) -> list[str] | None:
    """Rebuild one feed and mark its pending feed deliveries done.

    The rows are claimed before the articles are read, so any change committed
    after the claim gets a new pending row and another rebuild: the last change
    is never lost. Returns the changed files, or None when the feed is unknown.
    """
    from datetime import timedelta

    from sqlalchemy import and_, or_, update

    from worker.store import DeliveryRow, utcnow

    feed = config.feed(name)
    now = utcnow()
    with store.session() as s:
        claimed = s.scalars(
            update(DeliveryRow)
            .where(DeliveryRow.kind == "feed", DeliveryRow.destination == name,
                   or_(DeliveryRow.status == "pending",
                       and_(DeliveryRow.status == "sending", DeliveryRow.lease_until < now)))
            .values(status="sending", lease_until=now + timedelta(minutes=5), updated_at=now)
            .returning(DeliveryRow.id)
        ).all()
    if feed is None:
        with store.session() as s:
            s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(claimed)).values(
                status="failed", last_error=f"feed {name!r} is no longer configured", lease_until=None))
        log.error("feed=%s stage=failed reason=not configured", name)
        return None
    with store.session() as s:
        changed = build_feed(s, feed, config.site, feeds_dir)
    done = utcnow()
    with store.session() as s:
        if claimed:
            s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(claimed)).values(
                status="delivered", attempts=DeliveryRow.attempts + 1, delivered_at=done, updated_at=done,
                lease_until=None, last_error=None))
    log.info("feed=%s stage=feeds-rebuilt articles_marked=%d changed=%s", name, len(claimed), ",".join(changed) or "none")
    return changed
