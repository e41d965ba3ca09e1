"""partner delivery: attempt error class, partner state bookkeeping, supersede index

Revision ID: 0005_delivery
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import worker.store.models


revision = "0005_delivery"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_class", sa.String(length=60), nullable=True))
    with op.batch_alter_table("partner_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", worker.store.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("disabled_by", sa.String(length=40), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        # The order check (is there a newer event for this article and partner?) runs on every claim.
        batch_op.create_index("ix_deliveries_article_destination",
                              ["article_id", "kind", "destination", "event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_article_destination")
    with op.batch_alter_table("partner_state", schema=None) as batch_op:
        batch_op.drop_column("disabled_by")
        batch_op.drop_column("disabled_at")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("error_class")
