"""Feed files: RSS 2.0, Atom 1.0 and JSON Feed 1.1 per `[[feeds]]` entry, and the news sitemap.

- `items`: the stored article as a feed sees it, and the prepared (sanitized) entry.
- `render`: the three formats, byte-stable; the feedgen traps and how they are avoided.
- `entries`: each entry's RSS item, Atom entry and JSON item, written as escaped text.
- `sitemap`: FEEDS_DIR/news-sitemap.xml (Google News).
- `index`: the queries, which read only what a feed holds.
- `build`: claim pending feed deliveries, render, write atomically.
- `coalesce`: one build per feed per window, always after the last change.
"""

from worker.feeds.build import BuildResult, build_news_sitemap, rebuild, write_atomic  # noqa: F401
from worker.feeds.sitemap import SITEMAP_FILE  # noqa: F401
