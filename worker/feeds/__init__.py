"""Feed files: RSS 2.0, Atom 1.0 and JSON Feed 1.1 per `[[feeds]]` entry, and the news sitemap.

- `items`: the stored article as a feed sees it, and the prepared (sanitized) entry.
- `render`: the three formats, byte-stable; the feedgen traps and how they are avoided.
- `entries`: each entry's RSS item, Atom entry and JSON item, written as escaped text.
- `sitemap`: FEEDS_DIR/news-sitemap.xml (Google News).
- `index`: the queries, which read only what a feed holds.
- `build`: claim pending feed deliveries, render, write atomically.
- `coalesce`: one build per feed per window, always after the last change.

The names below are imported when first used: storing an article needs only `index`
(and `coalesce` to ask for a build), not the renderers (`syndicate ingest`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy_exports import lazy_getattr

_LAZY = {
    "BuildResult": "worker.feeds.build",
    "build_news_sitemap": "worker.feeds.build",
    "rebuild": "worker.feeds.build",
    "write_atomic": "worker.feeds.build",
    "SITEMAP_FILE": "worker.feeds.sitemap",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from worker.feeds.build import BuildResult, build_news_sitemap, rebuild, write_atomic  # noqa: F401
    from worker.feeds.sitemap import SITEMAP_FILE  # noqa: F401


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
