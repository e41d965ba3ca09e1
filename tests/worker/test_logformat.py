"""Log lines: readable text by default, one JSON object per line with LOG_FORMAT=json,
and Celery's per-run lines for periodic tasks dropped unless at debug level."""

import json
import logging

from worker.logformat import JsonFormatter, QuietPeriodicTasks, formatter_from_env, quiet_periodic_tasks
from worker.observability import RedactingFilter, install_secrets


def _record(name="syndicate.delivery", msg="delivered %s", args=("a:1",), **extra):
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_text_by_default_and_json_when_asked():
    assert not isinstance(formatter_from_env({}), JsonFormatter)
    assert isinstance(formatter_from_env({"LOG_FORMAT": "JSON"}), JsonFormatter)


def test_a_json_line_carries_the_message_and_the_delivery_fields():
    line = JsonFormatter().format(_record(article_id="a:1", destination="acme", attempt=2, outcome="delivered"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "delivered a:1" and entry["level"] == "info" and entry["logger"] == "syndicate.delivery"
    assert (entry["article_id"], entry["destination"], entry["attempt"], entry["outcome"]) == ("a:1", "acme", 2,
                                                                                               "delivered")
    assert entry["time"].endswith("Z")


def test_json_lines_are_redacted_like_text_lines():
    install_secrets(["whsec_topsecret"])
    try:
        record = _record(msg="sending with %s", args=("whsec_topsecret",))
        RedactingFilter().filter(record)
        assert "topsecret" not in JsonFormatter().format(record)
    finally:
        install_secrets([])


def test_periodic_task_lines_are_dropped_and_others_kept():
    quiet = QuietPeriodicTasks({"tasks.maintenance.sweep"})
    succeeded = _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", None)
    succeeded.args = {"name": "tasks.maintenance.sweep", "id": "x"}
    other = _record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", None)
    other.args = {"name": "tasks.deliver.deliver_batch", "id": "y"}
    sending = _record("celery.beat", "Scheduler: Sending due task %s (%s)", ("sweep", "tasks.maintenance.sweep"))
    assert not quiet.filter(succeeded) and not quiet.filter(sending)
    assert quiet.filter(other)


def test_debug_level_keeps_them():
    assert quiet_periodic_tasks(["t"], loglevel="debug") is False


def test_the_log_level_comes_from_syndicate_log_level_never_below_info(monkeypatch):
    import logging

    from worker.observability import logs

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        for env, expected in (("WARNING", logging.WARNING), ("error", logging.ERROR), ("DEBUG", logging.INFO),
                              ("nonsense", logging.INFO), (None, logging.INFO)):
            root.handlers = [h for h in root.handlers if not getattr(h, "_syndicate", False)]
            if env is None:
                monkeypatch.delenv("SYNDICATE_LOG_LEVEL", raising=False)
            else:
                monkeypatch.setenv("SYNDICATE_LOG_LEVEL", env)
            logs.setup_logging()
            assert root.level == expected, env
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
