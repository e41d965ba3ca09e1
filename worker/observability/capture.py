"""What becomes a Sentry event, grouped so that one outage is one issue.

The engine, the feed tasks and the source poller call these functions with plain values;
nothing here knows the engine's classes. Each does nothing (beyond a breadcrumb) when
Sentry is not set up.

| what                                   | event?       | fingerprint                                   |
|----------------------------------------|--------------|-----------------------------------------------|
| a delivery that will be retried        | breadcrumb   | -                                             |
| a delivery dead after its retries      | error        | delivery-dead, <destination>, <failure class> |
| a delivery failed for good (e.g. 401)  | error        | delivery-failed, <destination>, <class>       |
| a destination disabled (410, creds)    | error        | destination-disabled, <destination>           |
| a source failing past the threshold    | error        | source-failing, <source>                      |
| a feed or the sitemap failing to build | error+stack  | feed-failed, <feed>, <exception type>         |
| any other unexpected exception         | error+stack  | (Sentry's own grouping by stack)              |
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Iterable

from worker.observability.redaction import redact
from worker.observability.sentry import as_event_tags, sentry_enabled

# A source is reported once it has been failing this long (seconds).
SOURCE_ALERT_AFTER = float(os.environ.get("SYNDICATE_SOURCE_ALERT_AFTER", "900"))
RESPONSE_BODY_IN_EVENT = 500


def classify_failure(http_status: int | None, error_class: str | None = None) -> str:
    """The kind of failure, as grouped: http-5xx, http-401, http-429, redirect, timeout,
    connection, dns, tls, blocked-address, ..."""
    if http_status is not None:
        if http_status >= 500:
            return "http-5xx"
        if 300 <= http_status < 400:
            return "redirect"
        return f"http-{http_status}"
    kind = (error_class or "unknown").lower().replace("_", "-")
    return {"connection-error": "connection", "dns-error": "dns", "tls-error": "tls"}.get(kind, kind)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _capture(message: str, level: str, fingerprint: list[str], tags: dict[str, Any],
             contexts: dict[str, dict], exc: BaseException | None = None) -> str | None:
    if not sentry_enabled():
        return None
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = [str(part) for part in fingerprint]
        scope.level = level
        for key, value in as_event_tags(tags).items():
            scope.set_tag(key, value)
        for name, context in contexts.items():
            scope.set_context(name, context)
        if exc is not None:
            return sentry_sdk.capture_exception(exc)
        return sentry_sdk.capture_message(redact(message), level=level)


def breadcrumb(category: str, message: str, level: str = "info", **data: Any) -> None:
    if not sentry_enabled():
        return
    import sentry_sdk

    sentry_sdk.add_breadcrumb(category=category, message=redact(message), level=level,
                              data={k: v for k, v in data.items() if v is not None})


def attempt_entry(status_code: int | None, duration_ms: int | None, error: str | None = None,
                  response_body: str | None = None, started_at: datetime | None = None,
                  outcome: str | None = None) -> dict:
    """One line of an attempt log as sent to Sentry (the body cut short)."""
    return {"started_at": started_at.isoformat(timespec="seconds") if started_at else None,
            "status_code": status_code, "duration_ms": duration_ms, "outcome": outcome,
            "error": redact(error or "")[:300] or None,
            "response_body": redact(response_body or "")[:RESPONSE_BODY_IN_EVENT] or None}


def report_delivery_failed(*, destination: str, destination_type: str, article_id: str, event_type: str,
                           attempt: int, http_status: int | None, failure_class: str, final: bool,
                           status: str = "dead", source: str | None = None, webhook_id: str | None = None,
                           attempt_log: Iterable[dict] = (), article_url: str | None = None,
                           article_title: str | None = None, reason: str = "") -> str | None:
    """A delivery attempt failed. `final`: it will not be tried again (dead after its retries,
    or failed for good): one event, in one issue per (destination, failure class). Otherwise
    a breadcrumb. `failure_class` is classify_failure(...). Returns the event id, if one was sent."""
    tags = {"destination": destination, "destination_type": destination_type, "article_id": article_id,
            "event_type": event_type, "attempt": attempt, "http_status": http_status, "source": source,
            "failure_class": failure_class, "delivery_status": status if final else "retrying"}
    if not final:
        breadcrumb("delivery", f"{destination}: attempt {attempt} failed ({failure_class}), will retry",
                   level="warning", **tags, reason=redact(reason)[:300])
        return None
    contexts = {"delivery": {
        "destination": destination, "destination_type": destination_type, "status": status,
        "article_id": article_id, "article_url": article_url, "article_title": article_title,
        "event_type": event_type, "webhook_id": webhook_id, "attempts": attempt,
        "reason": redact(reason)[:1000], "attempt_log": list(attempt_log)[-20:],
    }}
    what = "dead after its retries" if status == "dead" else "failed"
    return _capture(f"Delivery to {destination} {what}: {failure_class}", "error",
                    [f"delivery-{status}", destination, failure_class], tags, contexts)


def report_destination_disabled(*, destination: str, destination_type: str, reason: str,
                                http_status: int | None = None, by: str = "policy") -> str | None:
    """A destination was disabled (410 Gone, credentials rejected): its deliveries wait for an
    operator. One issue per destination."""
    tags = {"destination": destination, "destination_type": destination_type, "http_status": http_status,
            "disabled_by": by}
    contexts = {"destination": {"name": destination, "type": destination_type, "reason": redact(reason)[:1000],
                                "disabled_at": _now_iso(),
                                "enable_with": f"syndicate partners enable {destination}"
                                if destination_type == "partner" else None}}
    return _capture(f"Destination {destination} disabled: {redact(reason)[:200]}", "error",
                    ["destination-disabled", destination], tags, contexts)


def report_source_failing(*, source: str, source_type: str | None, failures: int,
                          failing_since: datetime | None, error: str, permanent: bool = False,
                          alert_after: float | None = None) -> str | None:
    """A poll of a source failed. Once it has been failing longer than the threshold
    (SYNDICATE_SOURCE_ALERT_AFTER seconds, 15 min by default), each failure is an event in
    one issue per source; before that, a breadcrumb."""
    alert_after = SOURCE_ALERT_AFTER if alert_after is None else alert_after
    now = datetime.now(timezone.utc)
    since = failing_since.replace(tzinfo=failing_since.tzinfo or timezone.utc) if failing_since else now
    failing_for = (now - since).total_seconds()
    tags = {"source": source, "source_type": source_type, "failures": failures}
    if failing_for < alert_after:
        breadcrumb("source", f"source {source} poll failed ({failures} in a row)", level="warning",
                   **tags, error=redact(error)[:300])
        return None
    contexts = {"source": {"name": source, "type": source_type, "consecutive_failures": failures,
                           "failing_since": since.isoformat(timespec="seconds"),
                           "failing_for_seconds": round(failing_for), "permanent": permanent,
                           "last_error": redact(error)[:1000]}}
    return _capture(f"Source {source} failing for {round(failing_for / 60)} min", "error",
                    ["source-failing", source], tags, contexts)


def report_feed_failed(*, feed: str, exc: BaseException, will_retry: bool, retries: int = 0) -> str | None:
    """A feed (or the news sitemap) failed to build: the exception with its stack trace, one
    issue per feed and exception type, even when the build will be tried again."""
    tags = {"feed": feed, "will_retry": will_retry, "retries": retries}
    return _capture(f"Feed {feed} failed to build", "error", ["feed-failed", feed, type(exc).__name__], tags,
                    {"feed": {"name": feed, "will_retry": will_retry, "retries": retries}}, exc=exc)


def report_exception(exc: BaseException, **tags: Any) -> str | None:
    """An unexpected exception that is handled (retried, or turned into a failure): sent with
    its stack trace and Sentry's own grouping."""
    if not sentry_enabled():
        return None
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for key, value in as_event_tags(tags).items():
            scope.set_tag(key, value)
        return sentry_sdk.capture_exception(exc)


def delivery_details(session, delivery_ids: list[int]) -> dict[int, dict]:
    """For deliveries about to be reported: their attempt log (oldest first, bodies cut
    short), the article's URL, title and source. Read in the engine's own session."""
    from sqlalchemy import select

    from worker.store import ArticleRow, AttemptRow, DeliveryRow

    if not delivery_ids or not sentry_enabled():
        return {}
    details: dict[int, dict] = {i: {"attempt_log": []} for i in delivery_ids}
    rows = session.execute(select(DeliveryRow.id, ArticleRow.url, ArticleRow.title, ArticleRow.source)
                           .join(ArticleRow, ArticleRow.id == DeliveryRow.article_id)
                           .where(DeliveryRow.id.in_(delivery_ids)))
    for r in rows:
        details[r.id].update(article_url=r.url, article_title=r.title, source=r.source)
    for a in session.scalars(select(AttemptRow).where(AttemptRow.delivery_id.in_(delivery_ids))
                             .order_by(AttemptRow.id)):
        details[a.delivery_id]["attempt_log"].append(
            attempt_entry(a.status_code, a.duration_ms, a.error, a.response_body, a.started_at, a.outcome))
    return details
