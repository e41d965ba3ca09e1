"""How stored values are written out for a person: one safe line (`printable`) and RFC 3339
times in UTC (`iso`).

Standard library only, so that read-only commands (`syndicate status`) can show rows without
importing the sanitizer (lxml, nh3) or the article model (pydantic). `worker.sanitize` and
`worker.articles` re-export these names.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

# Line breaks, controls, surrogates, noncharacters and bidi overrides: what could forge or
# garble a log line or an operator's terminal.
_UNPRINTABLE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                             "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")


def printable(value: object, limit: int = 300) -> str:
    """`value` as one safe line: unprintable characters backslash-escaped, cut to `limit`."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    if _UNPRINTABLE_RE.search(text):
        text = _UNPRINTABLE_RE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"),
                                   text)
    return text


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
