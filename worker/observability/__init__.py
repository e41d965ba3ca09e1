"""Logging, secret redaction, Sentry setup and what becomes a Sentry event.

- `redaction`: `redact`, `install_secrets`: no secret in a log line, a stored error or an event;
- `logs`: `setup_logging`;
- `sentry`: `init_sentry` and the `before_send*` hooks, the same for every process;
- `capture`: the capture policy the engine, feed tasks and poller call (`report_*`);
- `crons`: Sentry Crons for every beat schedule.

`configure_process()` is what a worker, beat or CLI process calls once at start.
"""

from __future__ import annotations

from worker.observability.capture import (  # noqa: F401
    breadcrumb,
    classify_failure,
    delivery_details,
    report_delivery_failed,
    report_destination_disabled,
    report_exception,
    report_feed_failed,
    report_source_failing,
)
from worker.observability.logs import RedactingFilter, setup_logging  # noqa: F401
from worker.observability.redaction import install_secrets, install_secrets_on_first_use, redact  # noqa: F401
from worker.observability.sentry import (  # noqa: F401
    SentrySettings,
    before_breadcrumb,
    before_send,
    before_send_transaction,
    flush,
    init_sentry,
    sentry_enabled,
)


def configure_sentry(defer_secrets: bool = False) -> bool:
    """Secrets known to redaction, then Sentry if SENTRY_DSN is set (no logging changes: a CLI
    command keeps its own output). Returns whether Sentry is on.

    The configuration's secrets are installed now, except with `defer_secrets` (a CLI
    command): then just before the first redaction (a log line, a stored error, a Sentry
    event or breadcrumb: `scrub` in the `before_send*` hooks), so that a command which
    neither logs nor fails (`syndicate status`) never loads the settings models, and its
    Sentry setup is the light one (`init_sentry(command=True)`). A worker or beat installs
    them now, before it forks its pool processes."""
    from worker import runtime

    settings = SentrySettings.from_env()
    if not settings.dsn:
        settings = SentrySettings(runtime.environment().sentry_dsn, settings.environment,
                                  settings.traces_sample_rate)
    if defer_secrets:
        install_secrets_on_first_use(_install_config_secrets)
        if not settings.dsn:
            return False
    else:
        _install_config_secrets()
        install_secrets_on_first_use(None)
    enabled = init_sentry(settings, command=defer_secrets)
    if enabled and not defer_secrets:
        from worker.observability import crons

        crons.connect_signals()
    return enabled


def _install_config_secrets() -> None:
    from config import ConfigError
    from worker import runtime
    from worker.observability.redaction import config_secrets, secret_keys

    try:
        config = runtime.config()
    except ConfigError:
        return  # reported where the configuration is used
    install_secrets(config_secrets(config), secret_keys(config))


def configure_process(defer_secrets: bool = False) -> None:
    """Logging, secret scrubbing and Sentry for a worker, beat or CLI process (a CLI command
    defers loading the configuration's secrets: see configure_sentry)."""
    setup_logging()
    configure_sentry(defer_secrets=defer_secrets)
