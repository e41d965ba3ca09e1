"""Keeping secrets out of everything that leaves the process: log lines, stored errors and
what is sent to Sentry.

Two nets, both always on:

- **by value**: every secret the configuration holds (`config.secrets()`), in every form
  it can take on its way out — a `whsec_` secret without its prefix and as decoded bytes,
  a WordPress app password inside a Basic authorization, URL-encoded copies — is
  replaced wherever it appears (installed when the process starts; a CLI command without
  a DSN installs them just before its first redaction: `install_secrets_on_first_use`);
- **by shape**: what looks like a credential whatever its value — a signature, a bearer
  token or JWT, a password inside a URL, a Telegram bot token in a path, a token in a
  query string — is replaced too, so a credential obtained at run time (a session JWT)
  is caught as well.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Any, Callable, Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"

_installed_secrets: list[str] = []
# Header names whose values are credentials (partner `headers` are added at install time).
_installed_keys: set[str] = set()
# Installs the configuration's secrets when redaction is first used (see install_secrets_on_first_use).
_pending_install: Callable[[], None] | None = None
_installing = False
_install_lock = threading.RLock()

_SHAPES: list[tuple[re.Pattern, str]] = [
    # Standard Webhooks signatures: "v1,<base64>" (space-separated when rotating).
    (re.compile(r"v1,[A-Za-z0-9+/=]{20,}"), "v1," + REDACTED),
    # user:password@ inside a URL.
    (re.compile(r"(?<=://)[^/@\s:'\"]+:[^/@\s'\"]+@"), REDACTED + "@"),
    # A Telegram bot token in a path: /bot123456:ABC.../sendMessage
    (re.compile(r"/bot\d+:[A-Za-z0-9_-]+"), "/bot" + REDACTED),
    # Credentials in a query string.
    (re.compile(r"(?i)([?&](?:access_token|token|key|api_key|apikey|password|secret|signature|sig|"
                r"client_secret|sentry_key)=)[^&#\s'\"]+"), r"\1" + REDACTED),
    # Authorization header values, wherever they are written out.
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\b(Token|OAuth)\s+[A-Za-z0-9._~+/=-]{20,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(oauth_signature|oauth_token)=\"?[^\",\s&]+"), r"\1=" + REDACTED),
    # A JWT (a session token obtained at run time, e.g. Bluesky's accessJwt).
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),
]


def secret_forms(secret: str) -> list[str]:
    """The forms a secret may take in a message: itself, URL-encoded, the token of a
    "Bearer <token>" value, and for a `whsec_` secret its bare base64 and decoded key bytes."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    # "Bearer <token>" as a header value: the token may also be written on its own.
    forms.update(part for part in secret.split() if len(part) >= 12 and part != secret)
    if secret.startswith("whsec_"):
        bare = secret.removeprefix("whsec_")
        forms.add(bare)
        try:
            raw = base64.b64decode(bare, validate=True)
            forms.update({repr(raw), raw.hex()})
        except (binascii.Error, ValueError):
            pass
    return [f for f in forms if f]


def config_secrets(config) -> list[str]:
    """Every secret of a configuration, in every form it may be written (see secret_forms),
    including the Basic authorization a WordPress source sends."""
    found: list[str] = []
    for secret in config.secrets():
        found += secret_forms(secret)
    for source in config.sources:
        if source.username and source.app_password:
            found.append(base64.b64encode(f"{source.username}:{source.app_password}".encode()).decode())
    return found


def secret_keys(config) -> set[str]:
    """Names (lower case) under which a secret is held: partner header names, channel credential keys."""
    keys: set[str] = set()
    for partner in config.partners:
        keys.update(name.lower() for name in partner.headers)
    for channel in config.channels:
        keys.update(k.lower() for k in getattr(channel, "secret_keys", ()))
    return keys


def install_secrets(secrets: Iterable[str], keys: Iterable[str] = ()) -> None:
    """Make `redact` (and so logs and Sentry) know these secrets from now on."""
    values = set(_installed_secrets)
    for secret in secrets:
        if secret and len(secret) >= 6:
            values.update(secret_forms(secret))
    # Longest first, so a secret that contains another is replaced whole.
    _installed_secrets[:] = sorted(values, key=len, reverse=True)
    _installed_keys.update(k.lower() for k in keys)


def install_secrets_on_first_use(install: Callable[[], None] | None) -> None:
    """Call `install` (which calls `install_secrets`) just before the first redaction that
    uses the installed secrets: a command that never logs, stores an error or reports a
    crash never loads the configuration for them (`syndicate status`). None: nothing is
    pending any more (the secrets were installed at once)."""
    global _pending_install
    _pending_install = install


def _install_pending() -> None:
    global _pending_install, _installing
    if _pending_install is None:
        return
    with _install_lock:  # another thread redacting meanwhile waits for the secrets
        if _pending_install is None or _installing:
            return  # installed meanwhile, or a log line written by the install itself
        _installing = True
        try:
            _pending_install()
        except Exception:  # noqa: BLE001 - redaction never fails; the shapes still apply, and
            pass  # the command that needs the configuration says why it cannot be read
        finally:
            _pending_install, _installing = None, False


def installed_keys() -> set[str]:
    _install_pending()
    return set(_installed_keys)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret and everything shaped like a credential replaced."""
    if not text:
        return text
    if secrets is None:
        _install_pending()
    for secret in (_installed_secrets if secrets is None else secrets):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, keys: set[str] | None = None) -> Any:
    """A copy of a JSON-like value with every string redacted and every value held under a
    secret key (e.g. a partner's `X-Api-Key` header) replaced."""
    if keys is None:
        _install_pending()
        keys = _installed_keys
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {(redact(k) if isinstance(k, str) else k): (REDACTED if isinstance(k, str) and k.lower() in keys and v else scrub(v, keys))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, keys) for v in value]
    return value
