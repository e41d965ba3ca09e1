"""article_terms: published articles by section and tag, for feed queries

Revision ID: 0003_feeds
Revises: 0001
Create Date: 2026-11-26 20:00:00
"""
import sqlalchemy as sa
from alembic import op

import worker.store.models

revision = "0003_feeds"
down_revision = "0001"
branch_labels = None
depends_on = None

# Kept in step with worker.feeds.index.TERM_MAX_CHARS (a migration must not import code that may change).
TERM_MAX_CHARS = 200


def upgrade() -> None:
    op.create_table(
        "article_terms",
        sa.Column("article_id", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("term", sa.String(length=200), nullable=False),
        sa.Column("published_at", worker.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("article_id", "kind", "term"),
    )
    # In the feeds' order (newest first, then id), so reading a term's newest N is an
    # index range scan of N entries, with or without planner statistics.
    op.create_index("ix_article_terms_term_published", "article_terms",
                    ["kind", "term", sa.text("published_at DESC"), "article_id"], unique=False)
    _backfill()


def _backfill() -> None:
    """Index the articles stored before this revision, a page at a time."""
    articles = sa.table(
        "articles",
        sa.column("id", sa.String), sa.column("section", sa.String), sa.column("tags", sa.JSON),
        sa.column("status", sa.String), sa.column("published_at", worker.store.models.UTCDateTime()),
    )
    terms = sa.table(
        "article_terms",
        sa.column("article_id", sa.String), sa.column("kind", sa.String), sa.column("term", sa.String),
        sa.column("published_at", worker.store.models.UTCDateTime()),
    )
    bind = op.get_bind()
    last_id = ""
    while True:
        page = bind.execute(
            sa.select(articles.c.id, articles.c.section, articles.c.tags, articles.c.published_at)
            .where(articles.c.status == "published", articles.c.id > last_id)
            .order_by(articles.c.id).limit(1000)
        ).all()
        if not page:
            return
        rows = []
        for article_id, section, tags, published_at in page:
            seen = set()
            for kind, term in [("section", section)] + [("tag", t) for t in (tags or [])]:
                if isinstance(term, str) and term and len(term) <= TERM_MAX_CHARS and (kind, term) not in seen:
                    seen.add((kind, term))
                    rows.append({"article_id": article_id, "kind": kind, "term": term, "published_at": published_at})
        if rows:
            bind.execute(terms.insert(), rows)
        last_id = page[-1][0]


def downgrade() -> None:
    op.drop_index("ix_article_terms_term_published", table_name="article_terms")
    op.drop_table("article_terms")
