"""Types and checks shared by every configuration model (settings, channels)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict

EVENT_TYPES = ("article.published", "article.updated", "article.unpublished")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
LANGUAGE_TAG_RE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def parse_duration(value: Any) -> float:
    """Seconds from "30s", "5m", "2h", "1d", "250ms" (or a bare number of seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like \"30s\", \"5m\" or \"2h\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration like \"30s\", \"5m\" or \"2h\", got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"expected an absolute {' or '.join(schemes)} URL, got {value!r}")
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
