"""The capture policy, privacy and trace propagation, in this process against the stand-in
Sentry with the real SDK: what becomes an event, how it is grouped, what it carries, and
that no secret and no trace header leaves."""

import logging

import pytest
import sentry_sdk

from tests.support.http import Reply, StandIn
from tests.support.sentry_server import SentryServer
from tests.worker.test_observability_redaction import BEARER, BOT_TOKEN, config_with_secrets
from tests.conftest import new_secret
from worker.observability import (
    SentrySettings,
    classify_failure,
    flush,
    init_sentry,
    install_secrets,
    report_delivery_failed,
    report_destination_disabled,
    report_feed_failed,
    report_source_failing,
)
from worker.observability.redaction import config_secrets, secret_keys
from worker.observability.sentry import shutdown
from worker.transports.http import HttpClient


@pytest.fixture
def sentry():
    server = SentryServer().start()
    init_sentry(SentrySettings(server.dsn, "test", 1.0))
    yield server
    shutdown()
    server.stop()


def dead(destination: str, failure: str, n: int, final: bool = True, status: int | None = 503) -> None:
    report_delivery_failed(
        destination=destination, destination_type="partner", article_id=f"web:story-{n}",
        event_type="article.published", attempt=3, http_status=status, failure_class=failure, final=final,
        source="web", webhook_id=f"msg_{n}", article_url=f"https://lnn.example/story-{n}",
        article_title=f"Story {n}", reason="gave up after 3 attempts; last: HTTP 503",
        attempt_log=[{"status_code": status, "duration_ms": 12, "response_body": "down"}] * 3)


def test_failure_classes():
    assert [classify_failure(503), classify_failure(500), classify_failure(401), classify_failure(429),
            classify_failure(302), classify_failure(None, "timeout"), classify_failure(None, "connection_error"),
            classify_failure(None, "blocked_address")] == [
        "http-5xx", "http-5xx", "http-401", "http-429", "redirect", "timeout", "connection", "blocked-address"]


def test_an_outage_is_one_issue_per_destination_and_failure_class(sentry):
    with sentry_sdk.isolation_scope():
        dead("acme", "http-5xx", 0, final=False)  # a retry: breadcrumb only
        for n in range(3):
            dead("acme", "http-5xx", n)
            dead("globex", "http-401", n, status=401)
        dead("acme", "timeout", 9, status=None)
    flush()
    events = sentry.events()
    assert sorted({tuple(e["fingerprint"]) for e in events}) == [
        ("delivery-dead", "acme", "http-5xx"), ("delivery-dead", "acme", "timeout"),
        ("delivery-dead", "globex", "http-401")]
    assert len(events) == 7, "a retry is a breadcrumb, not an event"
    event = next(e for e in events if e["fingerprint"][1] == "globex")
    assert event["level"] == "error" and event["release"].startswith("syndicate@")
    assert event["environment"] == "test"
    assert {k: event["tags"][k] for k in ("destination", "destination_type", "event_type", "attempt",
                                          "http_status", "source")} == {
        "destination": "globex", "destination_type": "partner", "event_type": "article.published",
        "attempt": "3", "http_status": "401", "source": "web"}
    assert event["tags"]["article_id"].startswith("web:story-")
    delivery = event["contexts"]["delivery"]
    assert delivery["webhook_id"].startswith("msg_") and delivery["article_url"].startswith("https://lnn.example/")
    assert delivery["attempt_log"][0] == {"status_code": 401, "duration_ms": 12, "response_body": "down"}
    crumbs = [c for c in events[0]["breadcrumbs"]["values"] if c.get("category") == "delivery"]
    assert crumbs and "will retry" in crumbs[0]["message"]
    assert not any(e["_dropped_tags"] for e in events), "Sentry would drop these tags"


def test_disabled_destinations_failing_sources_and_feeds(sentry, tmp_path):
    from datetime import datetime, timedelta, timezone

    report_destination_disabled(destination="acme", destination_type="partner", reason="HTTP 410: gone",
                                http_status=410)
    now = datetime.now(timezone.utc)
    assert report_source_failing(source="wp", source_type="wordpress", failures=2, failing_since=now,
                                 error="HTTP 503", alert_after=600) is None
    for failures in (7, 8):
        report_source_failing(source="wp", source_type="wordpress", failures=failures,
                              failing_since=now - timedelta(minutes=20), error="HTTP 503", alert_after=600)
    try:
        (tmp_path / "feeds").write_text("a file where the feeds directory should be")
        (tmp_path / "feeds" / "all.xml").write_text("x")
    except OSError as exc:
        report_feed_failed(feed="all", exc=exc, will_retry=True, retries=2)
    flush()
    by_print = {}
    for e in sentry.events():
        by_print.setdefault(tuple(e["fingerprint"]), []).append(e)
    assert set(by_print) == {("destination-disabled", "acme"), ("source-failing", "wp"),
                             ("feed-failed", "all", "NotADirectoryError")}
    assert len(by_print[("source-failing", "wp")]) == 2
    feed = by_print[("feed-failed", "all", "NotADirectoryError")][0]
    assert feed["exception"]["values"][-1]["stacktrace"]["frames"], "the stack trace"
    assert feed["tags"]["will_retry"] == "True"


class Telegramish(StandIn):
    """Answers like the Bot API, so the request goes all the way through http.client."""

    def __init__(self):
        super().__init__()
        self.route("POST", "/bot{token}/sendMessage", lambda req: Reply(200, {"ok": True, "result": {}}))


def test_no_secret_and_no_trace_header_leaves(sentry, tmp_path):
    secret = new_secret()
    config = config_with_secrets(secret)
    install_secrets(config_secrets(config), secret_keys(config))
    shutdown()
    init_sentry(SentrySettings(sentry.dsn, "test", 1.0))  # the scrubber now knows the header names
    bot = Telegramish().start()
    http = HttpClient()
    try:
        with sentry_sdk.start_transaction(name="tasks.deliver.deliver_batch", op="queue.task.celery"):
            http.request("POST", f"{bot.url}/bot{BOT_TOKEN}/sendMessage", timeout=5, allow_private=True,
                         json_body={"chat_id": "@lnn_news", "text": "hello"},
                         headers={"Authorization": f"Bearer {BEARER}"})
        logging.getLogger("syndicate.delivery").warning("sent with secret %s and headers %s", secret,
                                                        config.partners[0].headers)
        headers = dict(config.partners[0].headers)  # noqa: F841 - a local variable of the crash
        try:
            raise RuntimeError(f"partner answered with our header {BEARER} and signature v1,{'A' * 44}")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
    finally:
        http.close()
        bot.stop()
    flush()
    sent = bot.seen()[0]
    assert "sentry-trace" not in sent.headers and "baggage" not in sent.headers
    assert sentry.transactions() and sentry.events()
    span = next(s for s in sentry.transactions()[0]["spans"] if s["op"] == "http.client")
    assert "/bot[redacted]/sendMessage" in span["description"]
    everything = sentry.everything()
    for value in [secret, secret.removeprefix("whsec_"), BEARER, BOT_TOKEN, "acme-api-key-42", "A" * 44,
                  "x-consumer-secret-1", "abcd efgh ijkl mnop"]:
        assert value not in everything, value


def test_crons_check_in_every_schedule_ok_when_it_ran_and_error_when_it_did_not(sentry, redis_client):
    import time

    from tasks.maintenance import sweep
    from worker.celery import app
    from worker.observability import crons

    started = time.time() - 1000
    crons.record_run(sender=sweep)  # the sweep ran just now; poll_due never did
    sent = crons.check_in_schedules(app, redis_client, started, interval=60)
    assert sent == {"syndicate-sweep-due-deliveries": "ok", "syndicate-poll-due-sources": "error"}
    assert crons.check_in_schedules(app, redis_client, started, interval=60) == {}, "one check-in per interval"
    flush()
    check_ins = {c["monitor_slug"]: c for c in sentry.check_ins()}
    assert {s: c["status"] for s, c in check_ins.items()} == sent
    assert check_ins["syndicate-sweep-due-deliveries"]["monitor_config"]["schedule"] == {
        "type": "interval", "value": 1, "unit": "minute"}
    assert not sentry.dropped, [d.why for d in sentry.dropped]
