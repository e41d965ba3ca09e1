"""Types and checks shared by every configuration model (settings, channels)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import idna
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictBool

EVENT_TYPES = ("article.published", "article.updated", "article.unpublished")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


# No duration anywhere may exceed this: a worker computes `now + duration`, which must stay a date.
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds from "30s", "5m", "2h", "1d", "250ms" (or a bare number of seconds);
    finite, not negative, and at most ten years."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like \"30s\", \"5m\" or \"2h\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration like \"30s\", \"5m\" or \"2h\", got {str(value)[:40]!r}")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be finite")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("a duration can be at most 3650d")
    return seconds


def human_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def duration_between(low: float, high: float, *, low_inclusive: bool = True) -> Any:
    """A duration type bounded for one key (each key's sensible range: a poll interval of a
    year, or a retry of a millisecond, is a mistake the worker cannot run well)."""
    def check(seconds: float) -> float:
        if seconds > high or seconds < low or (seconds == low and not low_inclusive):
            lower = f"more than {human_duration(low)}" if not low_inclusive else human_duration(low)
            raise ValueError(f"expected a duration from {lower} to {human_duration(high)}, "
                             f"got {human_duration(seconds)}")
        return seconds

    return Annotated[float, BeforeValidator(parse_duration), AfterValidator(check)]


Duration = Annotated[float, BeforeValidator(parse_duration)]
# Per-key ranges, shared by partners and channels.
TimeoutDuration = duration_between(0.0, 300.0, low_inclusive=False)
RetryDelay = duration_between(0.1, 7 * 86400.0)
PostDelay = duration_between(0.0, 7 * 86400.0)
PollInterval = duration_between(1.0, 86400.0)
UnpublishWindow = duration_between(60.0, 365 * 86400.0)

_URL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?")


def _check_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """An absolute URL with a valid host and port; no spaces or control characters."""
    expected = f"expected an absolute {' or '.join(schemes)} URL, got {value[:200]!r}"
    if _URL_FORBIDDEN_RE.search(value):
        raise ValueError(f"{expected}: it contains a space or a control character")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{expected}: {exc}") from None
    if parts.scheme not in schemes or not parts.netloc or not parts.hostname:
        raise ValueError(expected)
    if port == 0:
        raise ValueError(f"{expected}: port 0 is not a port")
    host = parts.hostname
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{expected}: {host!r} is not a valid IPv6 address") from None
    elif not _HOST_RE.fullmatch(host):
        try:
            idna.encode(host.rstrip("."), uts46=True)
        except (idna.IDNAError, UnicodeError, ValueError):
            raise ValueError(f"{expected}: {host!r} is not a valid host name") from None
    return value


HttpUrl = Annotated[str, BeforeValidator(lambda v: _check_url(v) if isinstance(v, str) else v)]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo such as `secert` must not pass silently.
    model_config = ConfigDict(extra="forbid", frozen=True)



def validate_rate_limit(v: str | None) -> str | None:
    if v is not None and (not re.fullmatch(r"\d+/(s|m|h|d)", v) or int(v.split("/")[0]) == 0):
        raise ValueError('expected a rate like "20/s", "600/m", "1000/h" or "50/d"')
    return v


def destination_rate(rate_limit: str | None) -> tuple[int, float] | None:
    """(requests, per seconds) from a rate like "20/s", or None for no limit."""
    if not rate_limit:
        return None
    count, unit = rate_limit.split("/")
    return int(count), {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]


def validate_timeout(v: float) -> float:
    if not 0 < v <= 300:
        raise ValueError("timeout must be more than 0 and at most 5m")
    return v


def validate_retry_schedule(v: list[float]) -> list[float]:
    if len(v) > 50:
        raise ValueError("at most 50 retries")
    return v


# --- names and text -----------------------------------------------------------------

_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def check_plain(v: str) -> str:
    """Text from the file that ends up in feeds, logs or requests: no control characters
    (one would make every feed file invalid XML, or forge a log line)."""
    if m := _CONTROL_RE.search(v):
        raise ValueError(f"contains control character U+{ord(m.group()):04X}")
    return v


PlainText = Annotated[str, AfterValidator(check_plain)]


def check_multiline(v: str) -> str:
    """Like `check_plain`, but line breaks and tabs are text here (a post template)."""
    return check_plain(v.replace("\n", " ").replace("\r", " ").replace("\t", " ")) and v


MultilineText = Annotated[str, AfterValidator(check_multiline)]


def check_name(v: str) -> str:
    """A partner's or channel's name: it names delivery rows (100 characters) and log lines."""
    if not v.strip() or len(v) > 100:
        raise ValueError("expected a name of 1 to 100 characters")
    return check_plain(v)


Name = Annotated[str, AfterValidator(check_name)]

# A source's name is the first part of its articles' ids (`wp:101`).
_SOURCE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_source_name(v: str) -> str:
    if not _SOURCE_NAME_RE.fullmatch(v):
        raise ValueError("a source's name starts its articles' ids (\"wp:101\"): use 1 to 100 letters, digits, "
                         "'_', '.' or '-'")
    return v


SourceName = Annotated[str, AfterValidator(check_source_name)]

# --- HTTP headers an operator may add ---------------------------------------------------

# RFC 9110 token characters: what a header name may be made of.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Visible characters, spaces and tabs (RFC 9110 field-value), never CR, LF or NUL.
_FIELD_VALUE_RE = re.compile(r"[\t\x20-\x7e\xa0-\xff]*")
# Framing and hop-by-hop headers belong to the HTTP client (a wrong Content-Length sends a
# partner one byte and calls it delivered); the signature headers belong to the sender.
RESERVED_HEADERS = frozenset({
    "content-length", "transfer-encoding", "host", "connection", "keep-alive", "proxy-connection", "te",
    "trailer", "upgrade", "expect", "content-encoding", "content-type",
    "webhook-id", "webhook-timestamp", "webhook-signature",
})


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > 50:
        raise ValueError("at most 50 headers")
    for name, value in headers.items():
        if not _TOKEN_RE.fullmatch(name):
            raise ValueError(f"header name {name[:60]!r} is not a valid HTTP header name (letters, digits and "
                             "!#$%&'*+-.^_`|~ only)")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} cannot be set: syndicate sets it (framing, hop-by-hop or "
                             "signature header)")
        if not isinstance(value, str) or not _FIELD_VALUE_RE.fullmatch(value) or len(value) > 8192:
            raise ValueError(f"header {name!r}: the value must be at most 8,192 Latin-1 characters without "
                             "CR, LF or other control characters")
    return headers


Headers = Annotated[dict[str, str], AfterValidator(check_headers)]
Flag = StrictBool


# --- addresses outbound requests may not reach without allow_private ---------------

_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def address_refusal(address: str) -> str | None:
    """Why an IP address is not a public one (None when it is)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "private"
    return None


def literal_host_refusal(url: str) -> str | None:
    """Why a URL's host, written as a literal address or a local name, is refused."""
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        return f"{host} is a loopback name"
    why = address_refusal(host)
    if why:
        return f"{host} is a {why} address"
    return None


def wants_event(dest, event_type: str, section: str | None, tags: list[str]) -> bool:
    """Whether a destination (partner or channel) takes this event of a story with this
    section and these tags: the event is one of its `events`, and the story matches any of
    its `sections` or `tags` (or it lists neither)."""
    if event_type not in dest.events:
        return False
    if not dest.sections and not dest.tags:
        return True
    if dest.sections and section in dest.sections:
        return True
    return bool(dest.tags and set(dest.tags) & set(tags))
