"""What every transport returns or raises."""

from __future__ import annotations

from dataclasses import dataclass


class TransportError(Exception):
    """A delivery that cannot go out; `permanent` says whether retrying could help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Outcome:
    """What happened on one attempt: an HTTP answer, or an error before one arrived."""

    status_code: int | None = None
    body: str = ""
    error_class: str | None = None
    error: str | None = None
    retry_after: str | None = None
    location: str | None = None
    duration_ms: int = 0
    remote_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> str:
        if self.status_code is None:
            return f"{self.error_class}: {self.error}"
        text = f"HTTP {self.status_code}"
        if self.location:
            text += f" (redirect to {self.location}; redirects are not followed)"
        if self.body and not self.ok:
            text += f": {self.body[:200]}"
        return text
