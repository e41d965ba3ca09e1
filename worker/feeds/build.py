"""Building feed files: claim the feed's pending deliveries, read, render, write atomically.

The delivery rows of kind `feed` are the durable record that a feed needs a
rebuild. A build claims them *before* it reads the articles, so a change committed
after the claim has a new pending row and gets another build: the final state is
never lost. A build that fails puts its rows back to pending for the retry (and
the sweep, should the retry never come).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, or_, update

from worker.feeds.index import feed_items, recent_items
from worker.feeds.items import entry_cache, prepare, site_authority
from worker.feeds.render import make_channel, render_all
from worker.feeds.sitemap import MAX_URLS, SITEMAP_FILE, WINDOW, render_news_sitemap
from worker.store import DeliveryRow, utcnow

log = logging.getLogger("syndicate.feeds")

FEED_FORMATS = ("rss", "atom", "json")
CLAIM_LEASE = timedelta(minutes=5)


@dataclass
class BuildResult:
    """What one build did: `files` maps each file written to whether its bytes changed."""

    name: str
    built: bool
    claimed: int = 0
    entries: int = 0
    files: dict[str, bool] = field(default_factory=dict)

    @property
    def changed(self) -> list[str]:
        return [name for name, changed in self.files.items() if changed]


def write_atomic(path: Path, data: bytes) -> bool:
    """Write via a temporary file in the same directory and rename; return whether the bytes changed."""
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


def render_feed_files(session, feed, config) -> tuple[dict[str, bytes], int]:
    """{file name: bytes} for the feed's three files, and how many entries they hold."""
    settings = config.feed_settings
    # Distinct entries across all feeds are at most the sum of their limits (plus a margin for updates).
    entry_cache.reserve(sum(f.limit for f in config.feeds) + 256)
    authority = site_authority(config.site.url)
    hosts = tuple(settings.iframe_hosts)
    entries = [prepare(item, authority, hosts) for item in feed_items(session, feed)]
    channel = make_channel(feed, config.site, config.websub.hubs)
    documents = render_all(channel, entries)
    return {f"{feed.name}.{ext}": documents[ext] for ext in FEED_FORMATS}, len(entries)


def _claim(store, name: str) -> list[int]:
    now = utcnow()
    with store.session() as s:
        return list(s.scalars(
            update(DeliveryRow)
            .where(DeliveryRow.kind == "feed", DeliveryRow.destination == name,
                   or_(DeliveryRow.status == "pending",
                       and_(DeliveryRow.status == "sending", DeliveryRow.lease_until < now)))
            .values(status="sending", lease_until=now + CLAIM_LEASE, updated_at=now)
            .returning(DeliveryRow.id)
        ).all())


def _finish(store, ids: list[int], **values) -> None:
    if not ids:
        return
    with store.session() as s:
        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids)).values(**values)
                  .execution_options(synchronize_session=False))


def rebuild(store, config, feeds_dir: Path, name: str, force: bool = False) -> BuildResult | None:
    """Rebuild one feed's files and mark its pending feed deliveries delivered.

    Without `force`, a feed with no pending delivery is not rendered: every change
    already claimed was read by the build that claimed it. Returns None when the
    feed is not configured (its rows are then failed, with the reason).
    """
    claimed = _claim(store, name)
    feed = config.feed(name)
    if feed is None:
        _finish(store, claimed, status="failed", lease_until=None, updated_at=utcnow(),
                last_error=f"feed {name!r} is no longer configured")
        log.error("feed=%s stage=failed reason=not-configured rows=%d", name, len(claimed))
        return None
    if not claimed and not force:
        log.info("feed=%s stage=feed-skipped reason=no-pending-changes", name)
        return BuildResult(name, built=False)
    started = time.perf_counter()
    try:
        with store.session() as s:
            documents, entries = render_feed_files(s, feed, config)
        files = {file: write_atomic(Path(feeds_dir) / file, data) for file, data in documents.items()}
    except Exception as exc:
        _finish(store, claimed, status="pending", lease_until=None, updated_at=utcnow(), queued_at=utcnow(),
                last_error=f"feed build failed: {type(exc).__name__}: {exc}"[:2000])
        log.error("feed=%s stage=feed-failed rows=%d error=%s: %s", name, len(claimed), type(exc).__name__, exc)
        raise
    done = utcnow()
    _finish(store, claimed, status="delivered", attempts=DeliveryRow.attempts + 1, delivered_at=done,
            updated_at=done, lease_until=None, last_error=None)
    result = BuildResult(name, built=True, claimed=len(claimed), entries=entries, files=files)
    log.info("feed=%s stage=feed-built rows=%d entries=%d changed=%s ms=%.1f", name, len(claimed), entries,
             ",".join(result.changed) or "none", (time.perf_counter() - started) * 1000)
    return result


def build_news_sitemap(store, config, feeds_dir: Path, now: datetime | None = None) -> BuildResult | None:
    """Rewrite FEEDS_DIR/news-sitemap.xml from the articles of the last 48 hours (None when disabled)."""
    if not config.feed_settings.news_sitemap:
        return None
    now = now or utcnow()
    started = time.perf_counter()
    with store.session() as s:
        # Twice the cap: two stories sharing a URL count once.
        items = recent_items(s, now - WINDOW, MAX_URLS * 2)
    data = render_news_sitemap(items, config.site.publication_name or config.site.title, config.site.language, now)
    changed = write_atomic(Path(feeds_dir) / SITEMAP_FILE, data)
    log.info("feed=%s stage=sitemap-built articles=%d changed=%s ms=%.1f", SITEMAP_FILE, len(items),
             SITEMAP_FILE if changed else "none", (time.perf_counter() - started) * 1000)
    return BuildResult(SITEMAP_FILE, built=True, entries=len(items), files={SITEMAP_FILE: changed})
