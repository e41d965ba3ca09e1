"""One delivery row as the engine keeps it, for transport tests: each attempt is a `Post`
carrying the remote state earlier attempts saved (by checkpoint or in their outcome), and
no outcome may show any of the channel's secrets."""

from __future__ import annotations

import json

from worker.transports import Outcome, Post
from worker.transports.base import PUBLISHED


def assert_no_secret(outcome: Outcome, secrets) -> None:
    shown = " ".join(str(v) for v in (outcome.body, outcome.error, outcome.disable, outcome.skipped,
                                      json.dumps(outcome.remote)))
    for secret in secrets:
        assert secret not in shown


class Row:
    def __init__(self, transport, dest, event_type, data, previous=None, secrets=()):
        self.transport, self.dest, self.event_type = transport, dest, event_type
        self.prepared = transport.prepare(dest, event_type, data)
        self.article_id = data["id"]
        self.remote: dict = {}
        self.saved: list[dict] = []
        self.previous = previous
        self.attempts = 0
        # The channel's own credentials, and any the test names (e.g. the stand-in's real token).
        self.secrets = tuple(secrets) + tuple(dest.secrets())

    def attempt(self) -> Outcome:
        self.attempts += 1

        def checkpoint(remote):
            self.saved.append(dict(remote))
            self.remote = dict(remote)

        post = Post(delivery_id=1, message_id="msg-1", event_type=self.event_type, article_id=self.article_id,
                    attempt=self.attempts, prepared=self.prepared, remote=dict(self.remote),
                    previous=self.previous, checkpoint=checkpoint)
        outcome = self.transport.deliver(self.dest, post)
        assert_no_secret(outcome, self.secrets)
        if outcome.remote:
            self.remote = {**self.remote, **outcome.remote}
        return outcome


def publish(transport, dest, data, secrets=()) -> tuple[Row, Outcome]:
    row = Row(transport, dest, PUBLISHED, data, secrets=secrets)
    return row, row.attempt()
