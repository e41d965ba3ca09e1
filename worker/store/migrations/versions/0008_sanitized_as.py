"""articles.sanitized_as: the sanitizer rules a stored body is a fixed point of, so feeds
need not sanitize it again (NULL for rows stored before: feeds sanitize those, as they did)

Revision ID: 0008_sanitized_as
Revises: 0007_destinations
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_sanitized_as"
down_revision = "0007_destinations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("sanitized_as", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("sanitized_as")
