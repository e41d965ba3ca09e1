"""Bluesky (AT Protocol) sessions, shared by every worker process, and reading XRPC answers.

`com.atproto.server.createSession` is rate-limited per handle (30 per 5 minutes, 300 a
day on bsky.social), so a session is made once and kept: in Redis when the transport has
a client (every worker process uses the same one), else in this process. A lock per
account makes sure two workers finding no session (or the same expired one) do not both
create (or refresh) one: refresh tokens rotate, so a second refresh of the same token
would fail. An expired access token (`400 ExpiredToken`) is refreshed with
`com.atproto.server.refreshSession`; only when the refresh is refused is a new session
created. Tokens never leave this module except in the Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field

import redis

from worker.transports.base import Outcome
from worker.transports.http import HttpClient, RequestFailed, Response

log = logging.getLogger(__name__)

KEY_PREFIX = "syndicate:bluesky:session:"
# A stored session unused this long is dropped (bsky.social refresh tokens live ~2 months).
SESSION_TTL = 30 * 24 * 3600
LOCK_TIMEOUT = 60
# Errors meaning "this token is no good, get another", on any authenticated call.
TOKEN_ERRORS = ("ExpiredToken", "InvalidToken")


class SessionFailed(Exception):
    """No usable session; `outcome` says why (retry later, or disable the channel)."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.describe())
        self.outcome = outcome


@dataclass(frozen=True)
class Session:
    did: str
    handle: str
    access: str = field(repr=False)
    refresh: str = field(repr=False)

    def dump(self) -> str:
        return json.dumps({"did": self.did, "handle": self.handle, "accessJwt": self.access,
                           "refreshJwt": self.refresh})

    @classmethod
    def load(cls, raw) -> "Session | None":
        try:
            data = json.loads(raw)
            return cls(data["did"], data["handle"], data["accessJwt"], data["refreshJwt"])
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def from_answer(cls, data: dict, handle: str) -> "Session | None":
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data.get(k)
                                                 for k in ("did", "accessJwt", "refreshJwt")):
            return None
        return cls(data["did"], data.get("handle") or handle, data["accessJwt"], data["refreshJwt"])


# --- XRPC answers ----------------------------------------------------------------------

def error_name(resp: Response) -> str:
    data = resp.json()
    return str(data.get("error") or "") if isinstance(data, dict) else ""


def error_text(resp: Response) -> str:
    """`Error: message` from an XRPC error body (which never carries tokens)."""
    data = resp.json()
    if isinstance(data, dict):
        name, message = str(data.get("error") or ""), str(data.get("message") or "")
        return (f"{name}: {message}" if name and message else name or message)[:500]
    return resp.text[:200]


def needs_new_token(resp: Response) -> bool:
    return resp.status == 401 or (resp.status == 400 and error_name(resp) in TOKEN_ERRORS)


def rate_limit_wait(resp: Response, now: float | None = None) -> str | None:
    """Seconds to wait, from `ratelimit-reset` (epoch seconds, what Bluesky sends) or
    `retry-after`."""
    reset = resp.header("ratelimit-reset")
    if reset:
        try:
            return str(max(1, int(float(reset) - (now if now is not None else time.time()) + 0.999)))
        except ValueError:
            pass
    return resp.header("retry-after")


def answer_outcome(resp: Response, *, keep_body: bool = True, **extra) -> Outcome:
    """An XRPC answer as an Outcome. `keep_body=False` for answers that carry tokens on
    success (sessions): only the error's name and message are kept."""
    values = dict(status_code=resp.status, duration_ms=resp.duration_ms,
                  body=resp.text[:2048] if keep_body else (error_text(resp) if not resp.ok else ""))
    if not resp.ok:
        values["error"] = error_text(resp)
    if resp.status in (429, 503):
        values["retry_after"] = rate_limit_wait(resp)
    values.update(extra)
    return Outcome(**values)


# --- sessions --------------------------------------------------------------------------

class Sessions:
    """Sessions per account (PDS base URL + handle), shared through Redis when there is a
    client, else per process."""

    def __init__(self, http: HttpClient, redis_client=None):
        self.http, self.redis = http, redis_client
        self._local: dict[str, Session] = {}
        self._local_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def key(dest) -> str:
        account = f"{dest.api_base}\n{dest.handle.lower()}".encode()
        return KEY_PREFIX + hashlib.sha256(account).hexdigest()[:32]

    # -- storage --------------------------------------------------------------------

    def _load(self, key: str) -> Session | None:
        if self.redis is None:
            return self._local.get(key)
        try:
            raw = self.redis.get(key)
        except redis.RedisError as exc:
            raise SessionFailed(Outcome(error_class="session_store_error",
                                        error=f"Redis: {type(exc).__name__}", retryable=True)) from None
        return Session.load(raw) if raw else None

    def _store(self, key: str, session: Session | None) -> None:
        if self.redis is None:
            if session is None:
                self._local.pop(key, None)
            else:
                self._local[key] = session
            return
        try:
            if session is None:
                self.redis.delete(key)
            else:
                self.redis.set(key, session.dump(), ex=SESSION_TTL)
        except redis.RedisError as exc:
            log.warning("bluesky: could not store the session in Redis (%s)", type(exc).__name__)

    def _lock(self, key: str, dest):
        if self.redis is not None:
            return _RedisLock(self.redis.lock(key + ":lock", timeout=LOCK_TIMEOUT,
                                              blocking_timeout=2 * float(dest.timeout) + 5))
        with self._guard:
            return _ThreadLock(self._local_locks.setdefault(key, threading.Lock()))

    # -- what the transport calls ----------------------------------------------------

    def current(self, dest) -> Session:
        """The account's session, creating one only if there is none anywhere."""
        key = self.key(dest)
        session = self._load(key)
        if session is not None:
            return session
        with self._lock(key, dest):
            session = self._load(key)
            if session is None:
                session = self._create(dest, key)
            return session

    def renew(self, dest, stale: Session) -> Session:
        """A session to replace `stale` (whose access token was refused): the one another
        worker already made, or a refreshed one, or, if the refresh is refused, a new one."""
        key = self.key(dest)
        with self._lock(key, dest):
            stored = self._load(key)
            if stored is not None and stored.access != stale.access:
                return stored
            current = stored or stale
            resp = self._xrpc(dest, "com.atproto.server.refreshSession", token=current.refresh)
            if resp.ok:
                session = Session.from_answer(resp.json(), dest.handle)
                if session is not None:
                    self._store(key, session)
                    return session
            elif resp.status not in (400, 401):
                # Rate-limited or down: try again later rather than spend a createSession.
                raise SessionFailed(answer_outcome(resp, keep_body=False))
            log.info("bluesky %s: the session could not be refreshed (%s); creating a new one",
                     dest.name, error_text(resp) if not resp.ok else "unreadable answer")
            self._store(key, None)
            return self._create(dest, key)

    def forget(self, dest) -> None:
        self._store(self.key(dest), None)

    # -- XRPC calls --------------------------------------------------------------------

    def _xrpc(self, dest, nsid: str, *, token: str | None = None, json_body=None) -> Response:
        headers = {"authorization": f"Bearer {token}"} if token else None
        try:
            return self.http.request("POST", f"{dest.api_base}/xrpc/{nsid}", timeout=float(dest.timeout),
                                     allow_private=dest.allow_private, headers=headers, json_body=json_body)
        except RequestFailed as exc:
            raise SessionFailed(exc.outcome()) from None

    def _create(self, dest, key: str) -> Session:
        log.info("bluesky %s: creating a session for %s", dest.name, dest.handle)
        resp = self._xrpc(dest, "com.atproto.server.createSession",
                          json_body={"identifier": dest.handle, "password": dest.app_password})
        if resp.ok:
            session = Session.from_answer(resp.json(), dest.handle)
            if session is None:
                raise SessionFailed(Outcome(status_code=resp.status, duration_ms=resp.duration_ms,
                                            error="createSession answered without a session", retryable=True))
            self._store(key, session)
            return session
        if resp.status == 401 or (resp.status == 400 and error_name(resp) != "RateLimitExceeded"):
            # Wrong handle or app password, 2FA on a main password, a suspended account:
            # nothing a retry can fix.
            reason = (f"Bluesky refused the handle {dest.handle!r} and app password ({error_text(resp)}); "
                      "create an app password under Settings → Privacy and security → App passwords")
            raise SessionFailed(answer_outcome(resp, keep_body=False, disable=reason))
        raise SessionFailed(answer_outcome(resp, keep_body=False))


class _RedisLock:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        try:
            acquired = self.lock.acquire()
        except redis.RedisError as exc:
            raise SessionFailed(Outcome(error_class="session_store_error",
                                        error=f"Redis: {type(exc).__name__}", retryable=True)) from None
        if not acquired:
            raise SessionFailed(Outcome(error_class="session_busy", retryable=True,
                                        error="another worker is still signing in to Bluesky"))
        return self

    def __exit__(self, *exc):
        try:
            self.lock.release()
        except redis.RedisError:
            pass  # expired or gone: it frees itself after LOCK_TIMEOUT


class _ThreadLock:
    def __init__(self, lock: threading.Lock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()
