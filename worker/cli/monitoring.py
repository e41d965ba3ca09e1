"""Sentry for the CLI: every command sets it up and reports an unexpected crash (one line to
the user, the exception with its stack trace to Sentry, exit 1); `sentry-test` checks the DSN."""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
import uuid

import click

from worker.cli import main
from worker.cli.common import console, err_console

# Exceptions that are a command's way of ending, not a crash.
_ENDINGS = (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit)


def guard(group: click.Group) -> None:
    """Set Sentry up for every command of `group` (after the group's own options, e.g.
    --config, are applied) and turn an unexpected exception into a report and one line."""
    from worker.observability import configure_sentry

    callback = group.callback

    @functools.wraps(callback)
    def set_up_then_run(*args, **kwargs):
        result = callback(*args, **kwargs)
        configure_sentry()
        return result

    group.callback = set_up_then_run
    invoke = group.invoke

    def guarded_invoke(ctx: click.Context):
        try:
            return invoke(ctx)
        except _ENDINGS:
            raise
        except Exception as exc:  # noqa: BLE001 - this is the one place a crash is handled
            if os.environ.get("SYNDICATE_TRACEBACK"):
                raise
            report_crash(ctx, exc)
            ctx.exit(1)

    # An instance attribute: this group's invocations go through the guard.
    group.invoke = guarded_invoke  # type: ignore[method-assign]


def report_crash(ctx: click.Context, exc: BaseException) -> None:
    from worker.observability import flush, redact, report_exception

    command = ctx.invoked_subcommand or ctx.info_name or "syndicate"
    event_id = report_exception(exc, command=command)
    if event_id:
        flush(timeout=5.0)
    first = (redact(str(exc)).strip().splitlines() or [""])[0][:300]
    where = f"reported to Sentry as {event_id}" if event_id else "set SENTRY_DSN to report such crashes"
    err_console.print(f"syndicate {command}: unexpected error: {type(exc).__name__}"
                      f"{': ' + first if first else ''} ({where}; SYNDICATE_TRACEBACK=1 shows the traceback)",
                      markup=False, soft_wrap=True)


guard(main)


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
