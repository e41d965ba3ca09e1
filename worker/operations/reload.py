"""Re-reading the configuration in running processes, without losing work.

`kill -HUP <pid>` on a worker or beat, or `syndicate reload` (a Celery remote-control
broadcast every worker answers), makes the process read the configuration file again:

- The new file is loaded and validated first. If it is invalid the process keeps the
  configuration it has, logs every problem, and answers the broadcast with an error.
- Then the process forgets its cached configuration and store (`runtime.reset()`), adds
  the new file's secrets to those it redacts from logs, and a worker replaces its pool
  processes once each has finished its current task (Celery's pool restart), so the next
  task runs under the new configuration and no running task is cut off.

Celery's own SIGHUP handler would restart a whole worker that is not attached to a
terminal (re-executing it after a warm shutdown); a beat has no handler and SIGHUP would
kill it. Both are replaced by this reload.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("syndicate.reload")

CONTROL_COMMAND = "reload_config"


def reload_configuration() -> tuple[bool, str]:
    """Load and check the configuration file, then make this process use it.

    Returns (ok, message); on a bad file nothing changes."""
    from config import ConfigError, Environment, load_config
    from worker import observability, runtime

    path = Environment.from_env().config_path
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration %s: %s", exc.path, problem)
        message = f"{path} is invalid ({len(exc.problems)} problem(s)); still using the previous configuration"
        log.error(message)
        return False, message
    except OSError as exc:
        message = f"cannot read {path} ({exc.strerror}); still using the previous configuration"
        log.error(message)
        return False, message
    # Old secrets stay redacted too: a message about an in-flight send may still carry one.
    from worker.observability.redaction import config_secrets, secret_keys

    observability.install_secrets(config_secrets(config), secret_keys(config))
    runtime.reset()
    from worker.store import reset_stores

    reset_stores()
    message = (f"configuration reloaded from {path}: {len(config.sources)} source(s), {len(config.feeds)} feed(s), "
               f"{len(config.partners)} partner(s), {len(config.channels)} channel(s)")
    log.info(message)
    return True, message


def reload_worker(controller) -> tuple[bool, str]:
    """Reload in a worker's main process, then replace its pool processes after their current task."""
    ok, message = reload_configuration()
    if ok and controller is not None:
        try:
            controller.reload()  # pool.restart(): each pool process exits once idle; new ones start fresh
        except Exception as exc:  # noqa: BLE001 - the main process has the new configuration regardless
            log.warning("pool processes not restarted (%s); they keep the old configuration until they recycle",
                        type(exc).__name__)
    return ok, message


def install_worker_reload(consumer) -> None:
    """On a ready worker: SIGHUP reloads (instead of Celery's restart), and the
    `reload_config` remote-control command does the same for `syndicate reload`."""
    from celery import platforms
    from celery.worker.control import control_command, ok as reply_ok

    controller = getattr(consumer, "controller", None)

    def on_hup(*_):
        # Off the signal handler: loading the file and logging are not done inside it.
        threading.Thread(target=reload_worker, args=(controller,), name="syndicate-reload", daemon=True).start()

    platforms.signals["SIGHUP"] = on_hup

    @control_command(name=CONTROL_COMMAND)
    def reload_config(state, **_):
        """Re-read the syndication configuration (see worker.operations.reload)."""
        done, message = reload_worker(state.consumer.controller)
        return reply_ok(message) if done else {"error": message}


def install_beat_reload() -> None:
    """On beat: SIGHUP reloads the configuration (beat's schedule is in the environment,
    so this refreshes what it logs and redacts)."""
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=reload_configuration, daemon=True).start())
