"""`syndicate sentry-test`: send a test event and say whether the DSN accepted it. (Crash
reports for every command: `worker/cli/crash.py`.)"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid


from worker.cli import main
from worker.cli.common import console, err_console

@main.command("sentry-test")
def sentry_test() -> None:
    """Send a test event to Sentry and say whether the DSN accepted it."""
    from sentry_sdk.transport import Transport

    from worker.observability import SentrySettings, init_sentry
    from worker.observability.sentry import release, shutdown

    settings = SentrySettings.from_env()
    if not settings.dsn:
        err_console.print("SENTRY_DSN is not set: nothing to test", markup=False)
        raise SystemExit(1)

    answers: list[tuple[int | None, str]] = []

    class AnsweringTransport(Transport):
        """Sends each envelope at once and keeps Sentry's answer (the SDK's own transport
        sends in the background and keeps none)."""

        def capture_envelope(self, envelope) -> None:
            auth = self.parsed_dsn.to_auth(f"syndicate/{release()}")
            request = urllib.request.Request(
                auth.get_api_url(), data=envelope.serialize(), method="POST",
                headers={"Content-Type": "application/x-sentry-envelope", "X-Sentry-Auth": auth.to_header()})
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    answers.append((resp.status, ""))
            except urllib.error.HTTPError as exc:
                answers.append((exc.code, exc.read(300).decode("utf-8", "replace")))
            except (urllib.error.URLError, OSError) as exc:
                answers.append((None, str(getattr(exc, "reason", exc))))

    shutdown()
    try:
        init_sentry(settings, transport=AnsweringTransport)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed DSN
        err_console.print(f"SENTRY_DSN is not usable: {type(exc).__name__}: {exc}", markup=False)
        raise SystemExit(1) from None
    import sentry_sdk

    marker = uuid.uuid4().hex[:8]
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("syndicate_test", marker)
        event_id = sentry_sdk.capture_message(f"syndicate sentry-test {marker}: Sentry receives this deployment's "
                                              "events", level="info")
    sentry_sdk.flush(timeout=15)
    shutdown()
    from sentry_sdk.utils import Dsn

    where = f"{Dsn(settings.dsn).host} (project {Dsn(settings.dsn).project_id}, environment {settings.environment})"
    status, detail = answers[0] if answers else (None, "the event was not sent (dropped before sending)")
    if status is not None and 200 <= status < 300:
        console.print(f"Sentry at {where} accepted test event {event_id}", markup=False)
        return
    what = f"answered HTTP {status}" if status is not None else "could not be reached"
    err_console.print(f"Sentry at {where} {what}: {detail.strip()[:300]}", markup=False, soft_wrap=True)
    raise SystemExit(1)
