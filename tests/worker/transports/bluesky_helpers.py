"""What the Bluesky transport tests share: the channel, fixture articles (as stored, the
way a transport gets them), and a delivery row that keeps its saved remote state between
attempts as the engine does."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

from config.channels import BlueskyChannel
from tests.worker.transports.stored import stored
from worker.delivery.policy import DELIVERED, FAILED, PENDING, SKIPPED, DeliveryPolicy
from worker.transports.base import PUBLISHED, Outcome, Post

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bluesky" / "articles.json"
PASSWORD = "abcd-efgh-ijkl-mnop"
HANDLE = "news.example.com"


def raw_article(key: str, images_url: str = "http://127.0.0.1:9", **changes) -> dict:
    """A fixture article as its source gives it (WordPress HTML text), for tests that store it."""
    data = copy.deepcopy(json.loads(FIXTURES.read_text())["articles"][key])
    if data.get("image"):
        data["image"]["url"] = data["image"]["url"].replace("{images}", images_url)
    data.update(changes)
    return data


def article(key: str, images_url: str = "http://127.0.0.1:9", **changes) -> dict:
    """A fixture article, with `changes`, as stored: the event data `prepare` receives."""
    return stored(raw_article(key, images_url, **changes))


def channel(server, **values) -> BlueskyChannel:
    config = dict(name="bsky", type="bluesky", handle=HANDLE, app_password=PASSWORD, base_url=server.url,
                  allow_private=True, timeout=5)
    config.update(values)
    return BlueskyChannel(**config)


def reading(outcome: Outcome) -> str:
    """What the engine's policy makes of an outcome: delivered (or skipped), retry, failed,
    or disable (the channel)."""
    decision = DeliveryPolicy().decide(outcome, 1, [5.0, 60.0], datetime.now(timezone.utc))
    if decision.disable_destination:
        return "disable"
    return {DELIVERED: "delivered", SKIPPED: "delivered", PENDING: "retry", FAILED: "failed"}[decision.status]


class Row:
    """One delivery row: prepared once, attempted until told otherwise, its remote state
    saved by `checkpoint` and fed back into the next attempt."""

    def __init__(self, transport, dest, data: dict, event_type: str = PUBLISHED, previous: dict | None = None,
                 on_save=None):
        self.transport, self.dest, self.event_type, self.previous = transport, dest, event_type, previous
        self.data = data
        self.prepared = json.loads(json.dumps(transport.prepare(dest, event_type, data)))  # stored as JSON
        self.remote: dict = {}
        self.saves: list[dict] = []
        self.outcomes: list[Outcome] = []
        self.on_save = on_save

    def _save(self, remote: dict) -> None:
        self.remote = dict(remote)
        self.saves.append(dict(remote))
        if self.on_save:
            self.on_save(remote)

    def attempt(self) -> Outcome:
        post = Post(delivery_id=1, message_id="msg-1", event_type=self.event_type, article_id=self.data["id"],
                    attempt=len(self.outcomes) + 1, prepared=self.prepared, remote=dict(self.remote),
                    previous=self.previous, checkpoint=self._save)
        outcome = self.transport.deliver(self.dest, post)
        self.outcomes.append(outcome)
        if outcome.remote:
            self.remote = {**self.remote, **outcome.remote}
        return outcome


def assert_no_secrets(server, outcomes, caplog=None) -> None:
    """Neither the app password nor any token the server issued appears in an outcome or a log line."""
    secrets = [PASSWORD, *server.tokens()]
    texts = [repr(o) for o in outcomes]
    if caplog is not None:
        texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a credential leaked into {text[:200]!r}"
