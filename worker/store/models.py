"""The store's tables. Delivery rows are the source of truth; the broker only carries work.

The schema itself is created by the Alembic migrations beside this file
(`syndicate migrate`); these classes must match them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no offset, so store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class ArticleRow(Base):
    __tablename__ = "articles"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    content_html: Mapped[str] = mapped_column(Text, default="")
    # `worker.sanitize.sanitizer_fingerprint` of the rules content_html is a fixed point of
    # (`sanitize_to_store`); NULL (rows stored before it, or bodies that are not): feeds sanitize again.
    sanitized_as: Mapped[str | None] = mapped_column(String(40), nullable=True)
    authors: Mapped[list] = mapped_column(JSON, default=list)
    section: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    image: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    language: Mapped[str | None] = mapped_column(String(20), nullable=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="published")
    version: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_articles_status_published", "status", "published_at"),)


class ArticleTermRow(Base):
    """Which published article carries which section or tag, with its publication time.

    Tags live in a JSON column that no index can serve on every backend; this small
    table lets a feed read only the newest articles of each of its sections and tags,
    so the cost of a rebuild does not grow with the number of stored articles.
    Maintained with the article (`worker.feeds.index.index_article`); only published
    articles have rows.
    """

    __tablename__ = "article_terms"

    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # section | tag
    term: Mapped[str] = mapped_column(String(200), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)


# In the feeds' order (newest first, then id): a term's newest N rows are an index range scan.
Index("ix_article_terms_term_published", ArticleTermRow.kind, ArticleTermRow.term, ArticleTermRow.published_at.desc(),
      ArticleTermRow.article_id)


class EventRow(Base):
    """One article event (published / updated / unpublished) with the data sent for it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("articles.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(40), default="ingest")
    # What cleaning removed from the publisher's input (markup, control characters, ...).
    notes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryRow(Base):
    """One delivery per (event, destination); `status` is the truth about it.

    status: pending → sending → delivered | pending (retry) | failed | dead | superseded
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"), index=True)
    article_id: Mapped[str] = mapped_column(String(300), index=True)
    version: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))  # partner | channel | feed
    destination: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a task for this row was last put on the broker; the sweep re-enqueues
    # rows that are due but whose task has not run for a while (lost in a crash).
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # The post on a social platform: {"id", "url", ...}; saved before a risky step too
    # (a Bluesky rkey chosen before the first try), so a retry finishes the same post.
    remote: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("event_id", "kind", "destination", name="uq_delivery_event_destination"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_destination", "kind", "destination", "status"),
        Index("ix_deliveries_article_destination", "article_id", "kind", "destination", "event_id"),
    )


class AttemptRow(Base):
    """One try of a delivery: written before the request, completed after."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # timeout | connection_error | dns_error | blocked_address | tls_error | http_<status> ...
    error_class: Mapped[str | None] = mapped_column(String(60), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # The worker process that made it (host and pid), so an attempt whose worker died is known.
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SourceStateRow(Base):
    """Where a source's poller is: its cursor and its health."""

    __tablename__ = "source_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[dict] = mapped_column(JSON, default=dict)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RejectionRow(Base):
    """Input that could not become an article, kept so nothing is silently lost."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    upstream_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    article_id: Mapped[str | None] = mapped_column(String(300), nullable=True, index=True)
    where: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DestinationStateRow(Base):
    """Operator- or policy-set state of a destination (a partner or a channel): disabled by
    an operator, by a 410 Gone, or by a platform refusing its credentials. Health that may
    be lost (the breaker, pauses) lives in Redis; this must not be."""

    __tablename__ = "destination_state"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # partner | channel
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_by: Mapped[str | None] = mapped_column(String(40), nullable=True)  # "policy" | "operator"
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def as_dict(row: Any) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
