"""Social channel entries (`[[channels]]`): the keys every destination shares, and one
model per platform with its credentials.

A channel is a destination like a partner: the delivery engine reads `name`, the
filters, `timeout`, `rate_limit`, `retry_schedule` and `allow_private` from either.
Credentials are given as `${ENV}` references in the file; `secrets()` lists them
so they are scrubbed from logs, status output and error reports.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from config.common import (
    EVENT_TYPES,
    LANGUAGE_TAG_RE,
    Flag,
    HttpUrl,
    Name,
    MultilineText,
    PostDelay,
    RetryDelay,
    TimeoutDuration,
    _Strict,
    destination_rate,
    literal_host_refusal,
    validate_rate_limit,
    validate_retry_schedule,
    wants_event,
)

PLACEHOLDERS = ("title", "summary", "url", "section", "hashtags", "author")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")

EventType = Literal["article.published", "article.updated", "article.unpublished"]


class ChannelBase(_Strict):
    """What every channel has, whatever its platform."""

    # Keys holding credentials, scrubbed everywhere (set per platform).
    secret_keys: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = ""
    kind: ClassVar[str] = "channel"

    name: Name
    base_url: HttpUrl | None = None
    template: MultilineText = "{title} {url} {hashtags}"
    events: list[EventType] = Field(default_factory=lambda: list(EVENT_TYPES))
    sections: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    language: str | None = None
    hashtags: Flag = True
    # Post this long after the story's publication (None: at once).
    delay: PostDelay | None = None
    # At most this many posts a day; more are spread out, never dropped.
    daily_cap: int | None = Field(default=None, ge=1, le=100_000)
    allow_private: Flag = False
    timeout: TimeoutDuration = 10.0
    rate_limit: str | None = None
    retry_schedule: list[RetryDelay] = Field(
        default_factory=lambda: [5.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0]
    )

    _rate = field_validator("rate_limit")(classmethod(lambda cls, v: validate_rate_limit(v)))
    _schedule = field_validator("retry_schedule")(classmethod(lambda cls, v: validate_retry_schedule(v)))

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        unknown = [p for p in _PLACEHOLDER_RE.findall(v) if p not in PLACEHOLDERS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use "
                             + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
        if not v.strip():
            raise ValueError("the template is empty")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is not None and not LANGUAGE_TAG_RE.fullmatch(v):
            raise ValueError(f"expected a language tag such as \"en\" or \"pt-BR\", got {v!r}")
        return v

    @model_validator(mode="after")
    def _address_allowed(self) -> "ChannelBase":
        if not self.allow_private:
            reason = literal_host_refusal(self.api_base)
            if reason:
                raise ValueError(f"base_url: {reason}; set allow_private = true for a server on this network")
        return self

    @property
    def api_base(self) -> str:
        """The platform's API base URL, without a trailing slash."""
        return (self.base_url or self.default_base_url).rstrip("/")

    @property
    def rate(self) -> tuple[int, float] | None:
        return destination_rate(self.rate_limit)

    def wants(self, event_type: str, section: str | None, tags: list[str]) -> bool:
        return wants_event(self, event_type, section, tags)

    def secrets(self) -> list[str]:
        return [v for v in (getattr(self, k, None) for k in self.secret_keys) if isinstance(v, str) and v]


class MastodonChannel(ChannelBase):
    type: Literal["mastodon"]
    secret_keys: ClassVar[tuple[str, ...]] = ("token",)
    token: str = Field(repr=False, min_length=1)
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"

    @model_validator(mode="after")
    def _needs_base(self) -> "MastodonChannel":
        if self.base_url is None:
            raise ValueError("base_url: a Mastodon channel needs its instance, e.g. \"https://mastodon.social\"")
        return self


class BlueskyChannel(ChannelBase):
    type: Literal["bluesky"]
    default_base_url: ClassVar[str] = "https://bsky.social"
    secret_keys: ClassVar[tuple[str, ...]] = ("app_password",)
    # The link card carries the URL (and is what readers tap), so the text leaves it out
    # by default and keeps the room for the headline; "{url}" in a template still works.
    template: str = "{title} {hashtags}"
    handle: str = Field(min_length=1)
    app_password: str = Field(repr=False, min_length=1)


class TelegramChannel(ChannelBase):
    type: Literal["telegram"]
    default_base_url: ClassVar[str] = "https://api.telegram.org"
    secret_keys: ClassVar[tuple[str, ...]] = ("token",)
    token: str = Field(repr=False, min_length=1)
    chat_id: str | int

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, v: str | int) -> str:
        v = str(v).strip()
        if not re.fullmatch(r"-?\d+|@[A-Za-z][A-Za-z0-9_]{3,}", v):
            raise ValueError("expected a numeric chat id or a @channelusername")
        return v


class XChannel(ChannelBase):
    type: Literal["x"]
    default_base_url: ClassVar[str] = "https://api.x.com"
    secret_keys: ClassVar[tuple[str, ...]] = ("consumer_key", "consumer_secret", "access_token",
                                              "access_token_secret")
    consumer_key: str = Field(repr=False, min_length=1)
    consumer_secret: str = Field(repr=False, min_length=1)
    access_token: str = Field(repr=False, min_length=1)
    access_token_secret: str = Field(repr=False, min_length=1)


class FacebookChannel(ChannelBase):
    type: Literal["facebook"]
    default_base_url: ClassVar[str] = "https://graph.facebook.com/v21.0"
    secret_keys: ClassVar[tuple[str, ...]] = ("page_token",)
    page_id: str = Field(min_length=1)
    page_token: str = Field(repr=False, min_length=1)


class LinkedInChannel(ChannelBase):
    type: Literal["linkedin"]
    default_base_url: ClassVar[str] = "https://api.linkedin.com"
    secret_keys: ClassVar[tuple[str, ...]] = ("token",)
    organization: str = Field(pattern=r"^urn:li:organization:\d+$")
    token: str = Field(repr=False, min_length=1)
    # The API version (YYYYMM) sent as `LinkedIn-Version`.
    api_version: str = Field(default="202410", pattern=r"^\d{6}$")


class ThreadsChannel(ChannelBase):
    type: Literal["threads"]
    default_base_url: ClassVar[str] = "https://graph.threads.net/v1.0"
    secret_keys: ClassVar[tuple[str, ...]] = ("token",)
    user_id: str = Field(min_length=1)
    token: str = Field(repr=False, min_length=1)


ChannelConfig = Annotated[
    Union[MastodonChannel, BlueskyChannel, TelegramChannel, XChannel, FacebookChannel, LinkedInChannel,
          ThreadsChannel],
    Field(discriminator="type"),
]

CHANNEL_TYPES = ("mastodon", "bluesky", "telegram", "x", "facebook", "linkedin", "threads")
