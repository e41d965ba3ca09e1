"""Article JSON as a transport gets it in production: the event data of a stored article.

Every input path stores an article through `parse_article`, which reads its text fields
(title, summary, authors, section, tags, image alt) as HTML text — markup removed,
entities decoded, once — and the event a transport prepares from is that article's
`.data()`. The fixture files hold raw WordPress-style text (`Syria&#8217;s`, `<p>…</p>`),
so transport tests pass their articles through here rather than straight to `prepare`;
text that must reach a reader as literal `&amp;` or `<b>` is written escaped in the
input (`&amp;amp;`, `&lt;b&gt;`), as a publisher's HTML would carry it.
"""

from __future__ import annotations

from worker.articles import parse_article

# Bookkeeping keys fixture articles carry that the input schema refuses (`version` is
# computed on the way in) or that `.data()` leaves out (`status`).
_NOT_INPUT = ("version", "status")


def stored(data: dict) -> dict:
    """`data` (one article, raw as an input path gives it) as stored and put on an event."""
    return parse_article({k: v for k, v in data.items() if k not in _NOT_INPUT}, "test").data()
