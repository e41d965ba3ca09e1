"""Loading and validating the syndication configuration.

One TOML file describes *what* to syndicate (site, sources, feeds, partners,
channels); the environment says *where* the infrastructure is (Redis, the
database, the feeds directory, Sentry). `load_config` reads the file and
collects every problem it finds — unknown keys, unset `${NAME}` variables,
bad URLs, duplicate names — so an operator fixes them all in one pass.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from config.common import (  # noqa: F401 - re-exported
    _ENV_REF_RE,
    EVENT_TYPES,
    LANGUAGE_TAG_RE,
    Duration,
    Flag,
    Headers,
    HttpUrl,
    Name,
    PlainText,
    PollInterval,
    RetryDelay,
    SourceName,
    TimeoutDuration,
    UnpublishWindow,
    _check_url,
    _Strict,
    destination_rate,
    literal_host_refusal,
    parse_duration,
    validate_rate_limit,
    validate_retry_schedule,
    validate_timeout,
    wants_event,
)

from config.channels import CHANNEL_TYPES, ChannelConfig  # noqa: E402
from config.environment import DEFAULT_CONFIG_PATH, Environment  # noqa: E402,F401 - re-exported



class SiteConfig(_Strict):
    title: PlainText
    url: HttpUrl
    language: str = "en"
    feeds_url: HttpUrl
    description: PlainText = ""
    publication_name: PlainText = ""

    @field_validator("language")
    @classmethod
    def _language_tag(cls, v: str) -> str:
        # Feeds carry it as <language>, xml:lang and news:language; readers and
        # validators reject anything that is not a language tag.
        if not LANGUAGE_TAG_RE.fullmatch(v):
            raise ValueError(f"expected a language tag such as \"en\" or \"en-GB\", got {v!r}")
        return v


class SourceConfig(_Strict):
    name: SourceName
    type: Literal["wordpress", "feed", "directory"]
    url: HttpUrl | None = None
    path: str | None = None
    interval: PollInterval = 60.0
    username: PlainText | None = None
    app_password: PlainText | None = Field(default=None, repr=False)
    unpublish_window: UnpublishWindow = 7 * 86400
    timeout: TimeoutDuration = 20.0

    @field_validator("path")
    @classmethod
    def _path_not_empty(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "\x00" in v):
            raise ValueError("path cannot be empty or contain a NUL character")
        return v


class FeedConfig(_Strict):
    name: str
    title: PlainText
    sections: list[PlainText] = Field(default_factory=list)
    tags: list[PlainText] = Field(default_factory=list)
    limit: int = Field(default=50, ge=1, le=1000, strict=True)
    description: PlainText = ""

    @field_validator("name")
    @classmethod
    def _safe_file_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("a feed name becomes a file name: use letters, digits, '-', '_' or '.'")
        return v

    @field_validator("sections", "tags")
    @classmethod
    def _indexable_terms(cls, v: list[str]) -> list[str]:
        # Feeds find their articles through an index of terms up to 200 characters.
        for term in v:
            if not term or len(term) > 200:
                raise ValueError(f"each entry must be 1 to 200 characters, got {len(term)}")
        return v

    def holds(self, section: str | None, tags: list[str]) -> bool:
        """Whether an article with this section and these tags belongs in the feed."""
        if not self.sections and not self.tags:
            return True
        if self.sections and section in self.sections:
            return True
        return bool(self.tags and set(self.tags) & set(tags))


def _check_secret(value: str) -> str:
    if not value.startswith("whsec_"):
        raise ValueError("expected a secret of the form whsec_<base64>")
    try:
        raw = base64.b64decode(value[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ is not valid base64") from None
    if len(raw) < 16:
        raise ValueError("the secret is too short: use at least 16 random bytes (24 is the norm)")
    return value


WebhookSecret = Annotated[str, BeforeValidator(lambda v: _check_secret(v) if isinstance(v, str) else v)]


class PartnerConfig(_Strict):
    name: Name
    url: HttpUrl
    secret: WebhookSecret = Field(repr=False)
    previous_secret: WebhookSecret | None = Field(default=None, repr=False)
    events: list[Literal["article.published", "article.updated", "article.unpublished"]] = Field(
        default_factory=lambda: list(EVENT_TYPES)
    )
    sections: list[PlainText] = Field(default_factory=list)
    tags: list[PlainText] = Field(default_factory=list)
    allow_private: Flag = False
    timeout: TimeoutDuration = 10.0
    rate_limit: str | None = None
    retry_schedule: list[RetryDelay] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    headers: Headers = Field(default_factory=dict)
    payload: Literal["article", "ninjs"] = "article"

    kind: ClassVar[str] = "partner"

    _rate = field_validator("rate_limit")(classmethod(lambda cls, v: validate_rate_limit(v)))
    _schedule = field_validator("retry_schedule")(classmethod(lambda cls, v: validate_retry_schedule(v)))

    @model_validator(mode="after")
    def _address_allowed(self) -> "PartnerConfig":
        # A literal private, loopback or link-local address is refused here; names are
        # resolved and checked again at send time (worker/delivery/ssrf.py).
        if not self.allow_private:
            reason = literal_host_refusal(self.url)
            if reason:
                raise ValueError(f"url: {reason}; set allow_private = true for an intranet partner")
        return self

    @property
    def rate(self) -> tuple[int, float] | None:
        """(requests, per seconds) from rate_limit, or None for no limit."""
        return destination_rate(self.rate_limit)

    def wants(self, event_type: str, section: str | None, tags: list[str]) -> bool:
        return wants_event(self, event_type, section, tags)


class WebSubConfig(_Strict):
    hubs: list[HttpUrl] = Field(default_factory=list)


# Video players newsrooms embed; any other iframe is removed from feed content.
DEFAULT_IFRAME_HOSTS = ("www.youtube.com", "www.youtube-nocookie.com", "player.vimeo.com")


class FeedSettingsConfig(_Strict):
    """Settings shared by every feed file (`[feed_settings]`)."""

    # Each feed is rebuilt at most once per window, and always after the last change.
    rebuild_window: Annotated[float, BeforeValidator(parse_duration), Field(le=300)] = 2.0
    # Hosts whose iframes (https only) survive sanitizing; a leading "." also allows subdomains.
    iframe_hosts: list[str] = Field(default_factory=lambda: list(DEFAULT_IFRAME_HOSTS))
    news_sitemap: Flag = True

    @field_validator("iframe_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        out = []
        for host in v:
            if not re.fullmatch(r"\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", host):
                raise ValueError(f"expected a host name such as \"www.youtube.com\" (no scheme or path), got {host!r}")
            out.append(host.lower())
        return out


class SyndicationConfig(_Strict):
    site: SiteConfig
    sources: list[SourceConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    partners: list[PartnerConfig] = Field(default_factory=list)
    channels: list[ChannelConfig] = Field(default_factory=list)
    websub: WebSubConfig = Field(default_factory=WebSubConfig)
    feed_settings: FeedSettingsConfig = Field(default_factory=FeedSettingsConfig)

    def channel(self, name: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.name == name), None)

    def destination(self, kind: str, name: str) -> "PartnerConfig | ChannelConfig | None":
        """A partner or channel by kind and name (what a delivery row names)."""
        return self.partner(name) if kind == "partner" else self.channel(name) if kind == "channel" else None

    @property
    def destinations(self) -> list["PartnerConfig | ChannelConfig"]:
        return [*self.partners, *self.channels]

    def partner(self, name: str) -> PartnerConfig | None:
        return next((p for p in self.partners if p.name == name), None)

    def feed(self, name: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.name == name), None)

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def secrets(self) -> list[str]:
        """Every secret value in the file, for scrubbing logs and error reports."""
        found = []
        for p in self.partners:
            found += [p.secret, p.previous_secret or ""]
        for s in self.sources:
            found.append(s.app_password or "")
        for p in self.partners:
            found += [v for v in p.headers.values()]
        for c in self.channels:
            found += c.secrets()
        return [s for s in found if s and len(s) >= 6]


@dataclass(frozen=True)
class ConfigProblem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class ConfigError(Exception):
    def __init__(self, path: str, problems: list[ConfigProblem]):
        self.path = path
        self.problems = problems
        super().__init__(
            f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems)
        )


# --- where a problem is -------------------------------------------------------

_LIST_TABLES = ("sources", "feeds", "partners", "channels")


def _entry_label(raw: dict, table: str, index: int) -> str:
    entries = raw.get(table)
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        name = entries[index].get("name")
        if isinstance(name, str) and name:
            return f"[[{table}]] {name!r}"
    return f"[[{table}]] #{index + 1}"


def _where(raw: dict, loc: tuple) -> str:
    if not loc:
        return "(top level)"
    head, rest = loc[0], list(loc[1:])
    if head in _LIST_TABLES and rest and isinstance(rest[0], int):
        label = _entry_label(raw, head, rest.pop(0))
    else:
        label = f"[{head}]"
    # Literal/union validators add their own segments (e.g. 'literal[...]'); keep only keys and indexes.
    keys = []
    if head == "channels" and rest and rest[0] in CHANNEL_TYPES:
        rest.pop(0)  # the discriminated union's tag (the channel's type), not a key
    for part in rest:
        if isinstance(part, int):
            keys.append(f"[{part}]")
        elif not (part.startswith(("literal[", "function-", "union[")) or part in ("str", "int", "float")):
            keys.append(("." if keys else "") + part)
    return f"{label} {''.join(keys)}".strip() if keys else label


def _describe(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see config/syndication.example.toml)"
    if kind == "missing":
        return "required key is missing"
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def _resolve_env(node: Any, env: dict[str, str], path: tuple, problems: list, raw: dict, unresolved: set) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, env, path + (k,), problems, raw, unresolved) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, env, path + (i,), problems, raw, unresolved) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name not in env:
                unresolved.add(path)
                problems.append(
                    ConfigProblem(_where(raw, path), f"environment variable {name} is not set (referenced as ${{{name}}})")
                )
                return ""
            return env[name]

        return _ENV_REF_RE.sub(sub, node)
    return node


def _duplicate_names(raw: dict) -> list[ConfigProblem]:
    problems = []
    for table in _LIST_TABLES:
        entries = raw.get(table)
        if not isinstance(entries, list):
            continue
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            name = entry["name"]
            if name in seen:
                problems.append(
                    ConfigProblem(
                        f"[[{table}]] {name!r}",
                        f"duplicate name: entries #{seen[name] + 1} and #{i + 1} are both called {name!r}",
                    )
                )
            else:
                seen[name] = i
    return problems


def _source_requirements(raw: dict) -> list[ConfigProblem]:
    problems = []
    for i, entry in enumerate(raw.get("sources") or []):
        if not isinstance(entry, dict):
            continue
        label = _entry_label(raw, "sources", i)
        kind = entry.get("type")
        if kind in ("wordpress", "feed") and not entry.get("url"):
            problems.append(ConfigProblem(f"{label} url", f"a {kind} source needs a url"))
        if kind == "directory" and not entry.get("path"):
            problems.append(ConfigProblem(f"{label} path", "a directory source needs a path"))
    return problems


def parse_config(text: str, path: str = "<config>", env: dict[str, str] | None = None) -> SyndicationConfig:
    """Parse TOML text into a validated config, or raise ConfigError listing every problem."""
    env = dict(os.environ if env is None else env)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("(file)", f"not valid TOML: {exc}")]) from None
    problems: list[ConfigProblem] = []
    unresolved: set[tuple] = set()
    resolved = _resolve_env(raw, env, (), problems, raw, unresolved)
    problems += _duplicate_names(raw)
    problems += _source_requirements(raw)
    try:
        config = SyndicationConfig.model_validate(resolved)
    except ValidationError as exc:
        for error in exc.errors():
            if any(tuple(error["loc"][: len(u)]) == u for u in unresolved):
                continue  # already reported as an unset variable
            problems.append(ConfigProblem(_where(raw, error["loc"]), _describe(error)))
        config = None
    if problems:
        raise ConfigError(path, problems)
    assert config is not None
    return config


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> SyndicationConfig:
    if path is None:
        path = Environment.from_env(env).config_path
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            [ConfigProblem("(file)", "no such file: set SYNDICATE_CONFIG or copy config/syndication.example.toml")],
        ) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [ConfigProblem("(file)", "is a directory, not a configuration file: "
                                                               "give the path of the .toml file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [ConfigProblem("(file)", f"not UTF-8: {exc}")]) from None
    except OSError as exc:
        raise ConfigError(str(path), [ConfigProblem("(file)", f"cannot be read: {exc.strerror or exc}")]) from None
    return parse_config(text, str(path), env)
