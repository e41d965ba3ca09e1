"""What every transport is, takes, returns or raises.

A transport turns one delivery into requests to one kind of destination: a partner's
webhook endpoint, or a social platform's API. The delivery engine (`worker/delivery/`)
does everything else, the same way for every kind: claiming rows, pacing, the breaker,
deciding what an outcome means (`DeliveryPolicy`), retries, dead letters and replay.

A transport:
- `prepare`s the message once per (event, destination) — the body or post text,
  fitted to the platform's limits;
- `send`s it (a new post), `update`s the post it made earlier (an edited story) or
  `delete`s it (a withdrawn story), and returns an `Outcome` saying what the platform
  answered and, for a post, its `remote` identity (id, URL) to store on the delivery row;
- never raises for a failure the network or the platform can produce: every such
  failure is an `Outcome`. An exception is a bug (the engine records it as one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

PUBLISHED, UPDATED, UNPUBLISHED = "article.published", "article.updated", "article.unpublished"


class TransportError(Exception):
    """A delivery that cannot go out; `permanent` says whether retrying could help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Outcome:
    """What happened on one attempt: an HTTP answer, or an error before one arrived.

    Beyond the HTTP facts, a transport may say:
    - `remote`: the post's identity on the platform (e.g. {"id", "url"}), stored on the row;
    - `skipped`: nothing needed sending, and why ("Bluesky posts cannot be edited",
      "no post to delete") — a final state, not a failure;
    - `retryable`: overrides the status-code reading (a platform that answers 400 with a
      "try again" error code, or 200 with an error in the body);
    - `disable`: the destination itself is unusable (credentials rejected, endpoint gone):
      it is disabled with this reason and its deliveries wait for `destinations enable`.
    """

    status_code: int | None = None
    body: str = ""
    error_class: str | None = None
    error: str | None = None
    retry_after: str | None = None
    location: str | None = None
    duration_ms: int = 0
    remote_id: str | None = None
    remote: dict | None = None
    skipped: str | None = None
    retryable: bool | None = None
    disable: str | None = None

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        if self.retryable is not None or self.disable is not None:
            return False
        return self.status_code is not None and 200 <= self.status_code < 300

    @classmethod
    def skip(cls, why: str, **kwargs) -> "Outcome":
        return cls(skipped=why, **kwargs)

    def describe(self) -> str:
        if self.skipped is not None:
            return f"skipped: {self.skipped}"
        if self.status_code is None:
            return f"{self.error_class}: {self.error}"
        text = f"HTTP {self.status_code}"
        if self.location:
            text += f" (redirect to {self.location}; redirects are not followed)"
        if self.error and not self.ok:
            text += f": {self.error[:200]}"
        elif self.body and not self.ok:
            text += f": {self.body[:200]}"
        return text


@dataclass
class Post:
    """One attempt at one delivery, as the engine hands it to a transport."""

    delivery_id: int
    # Stable for the delivery row across its attempts: the idempotency key (the
    # webhook-id for partners, Mastodon's Idempotency-Key, ...).
    message_id: str
    event_type: str
    article_id: str
    attempt: int
    # What `prepare` returned for this (event, destination).
    prepared: Any = None
    # This row's remote state so far: what an earlier attempt saved with `checkpoint`
    # (a Bluesky rkey chosen before the first try, a Threads container id).
    remote: dict = field(default_factory=dict)
    # The remote state of the post this article has on this destination now (from the
    # last row that made, edited or kept it), for update and delete; None if there is none.
    previous: dict | None = None
    # When the live post was made (for platforms that allow deleting only for a while).
    previous_at: Any = None
    # Persist remote state on the row *before* a step whose answer could be lost, so a
    # retry can finish the same post instead of making a second one. Commits at once.
    checkpoint: Callable[[dict], None] = lambda remote: None

    def save(self, **values) -> None:
        self.remote = {**self.remote, **values}
        self.checkpoint(self.remote)


class Transport(ABC):
    """One destination type. One instance per type per worker process (it may hold
    connection pools and sessions); `dest` is the partner's or channel's configuration."""

    #: the `type` of the channels it serves ("webhook" for partners)
    type: ClassVar[str]
    #: whether an edited story edits the post; if not, the update is recorded as skipped
    follows_edits: ClassVar[bool] = True
    #: whether a withdrawn story deletes the post
    follows_deletes: ClassVar[bool] = True

    def __init__(self, redis_client=None, http=None):
        from worker.transports.http import HttpClient

        # Shared state across worker processes (sessions, instance limits), or None.
        self.redis = redis_client
        self.http = http or HttpClient()

    @abstractmethod
    def prepare(self, dest, event_type: str, data: dict) -> Any:
        """The message for this event, made once per (event, destination) and reused by
        every attempt; JSON-serialisable. `data` is the event's article JSON."""

    @abstractmethod
    def send(self, dest, post: Post) -> Outcome:
        """Publish a new post (or, for a webhook, send any event)."""

    def update(self, dest, post: Post) -> Outcome:
        """Edit `post.previous` to match the prepared message."""
        return Outcome.skip(f"{self.type} posts cannot be edited; the original stays up")

    def delete(self, dest, post: Post) -> Outcome:
        """Remove `post.previous`."""
        return Outcome.skip(f"{self.type} posts are not deleted by syndicate")

    def deliver(self, dest, post: Post) -> Outcome:
        """What the engine calls: send, update or delete according to the event and to
        whether the article already has a live post here (`post.previous`)."""
        live = post.previous if post.previous and not post.previous.get("deleted") else None
        if post.event_type == UNPUBLISHED:
            if live is None:
                return Outcome.skip("no post to delete")
            if not live.get("id"):
                return Outcome.skip("the post has an unknown id (its answer was lost); delete it by hand",
                                    remote=dict(live))
            if not self.follows_deletes:
                return Outcome.skip(f"{self.type} posts are not deleted")
            return self.delete(dest, post)
        # An edit — or a republish of a story that already has a post here: edited, never
        # posted twice.
        if live is not None:
            if not live.get("id"):
                return Outcome.skip("an earlier post of this story exists or may exist, with an unknown id "
                                    "(its answer was lost); not posted again — check the channel", remote=dict(live))
            if not self.follows_edits:
                return Outcome.skip(f"{self.type} posts cannot be edited; the original stays up",
                                    remote=dict(live))
            return self.update(dest, post)
        # Published, or updated with nothing posted yet (the first post failed, or the
        # story only now matches this channel's filters): a new post.
        return self.send(dest, post)

    def close(self) -> None:
        """Release pools and sessions (worker shutdown, tests)."""
        self.http.close()
