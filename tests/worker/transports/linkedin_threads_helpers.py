"""What the delivery engine does around a transport, for in-process transport tests: one
delivery row whose saved remote state is fed back into each next attempt's Post, and the
fixture articles (tests/fixtures/linkedin_threads/) as stored."""

from __future__ import annotations

import json
from pathlib import Path

from tests.worker.transports.stored import stored
from worker.transports.base import PUBLISHED, Outcome, Post

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "linkedin_threads"


def wordpress_articles() -> list[dict]:
    """Article JSON made from /work/shared/fixtures/wordpress/posts.json by the WordPress source,
    as stored: the event data a transport's `prepare` receives."""
    return [stored(a) for a in json.loads((FIXTURES / "wordpress_articles.json").read_text())]


def tricky_articles() -> list[dict]:
    """Long, emoji, combining, right-to-left and entity-laden stories, as stored (their HTML
    text decoded once)."""
    return [stored(a) for a in json.loads((FIXTURES / "tricky_articles.json").read_text())]


def literal_article() -> dict:
    """A stored story whose title literally says `&amp;` and `<b>` (its HTML escaped them):
    readers must see those characters, not a second decoding of them."""
    raw = json.loads((FIXTURES / "wordpress_articles.json").read_text())[0]
    return stored(dict(raw, title="What &amp;amp; and &lt;b&gt; mean in HTML", summary="", tags=[]))


class Row:
    """One delivery row across attempts: `checkpoint` saves remote state at once, as the
    engine commits it, and each new attempt's Post starts from what was saved."""

    def __init__(self, event_type: str = PUBLISHED, article_id: str = "wp:101", previous: dict | None = None,
                 delivery_id: int = 1):
        self.event_type, self.article_id, self.previous = event_type, article_id, previous
        self.delivery_id = delivery_id
        self.remote: dict = {}
        self.saved: list[dict] = []
        self.outcomes: list[Outcome] = []
        self.attempts = 0

    def _checkpoint(self, remote: dict) -> None:
        self.remote = dict(remote)
        self.saved.append(dict(remote))

    def post(self, prepared) -> Post:
        self.attempts += 1
        return Post(delivery_id=self.delivery_id, message_id=f"msg_{self.delivery_id}", event_type=self.event_type,
                    article_id=self.article_id, attempt=self.attempts, prepared=prepared,
                    remote=dict(self.remote), previous=self.previous, checkpoint=self._checkpoint)

    def attempt(self, transport, dest, prepared) -> Outcome:
        outcome = transport.deliver(dest, self.post(prepared))
        self.outcomes.append(outcome)
        if outcome.remote:
            self.remote = {**self.remote, **outcome.remote}
        return outcome


def leaked(outcomes, *secrets: str) -> list[str]:
    """Any secret that shows in an outcome's body, error or disable reason."""
    found = []
    for o in outcomes:
        for text in (o.body, o.error or "", o.disable or "", o.skipped or "", json.dumps(o.remote or {})):
            found += [s for s in secrets if s and s in text]
    return found
