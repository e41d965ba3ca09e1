"""Every command reports an unexpected crash: one line to the user, the exception with its
stack trace to Sentry, exit 1. Applied to the `syndicate` group in `worker/cli/__init__.py`."""

from __future__ import annotations

import functools
import os

import click

from worker.cli.common import err_console

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
        configure_sentry(defer_secrets=True)
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
