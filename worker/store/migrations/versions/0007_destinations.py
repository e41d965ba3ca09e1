"""One engine for every destination kind: destination state for partners and channels
alike (migrated from partner_state), remote state on delivery rows (a post's id and URL,
a Bluesky rkey chosen before the first try), what cleaning removed on events, and the
workers an attempt killed (poison messages).

Revision ID: 0007_destinations
Revises: 0006_merge
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_destinations"
down_revision = "0006_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "destination_state",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_by", sa.String(40), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO destination_state (kind, name, disabled, disabled_reason, disabled_at, disabled_by, changed_at) "
        "SELECT 'partner', name, disabled, disabled_reason, disabled_at, disabled_by, changed_at FROM partner_state"
    )
    op.drop_table("partner_state")
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("remote", sa.JSON(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("worker", sa.String(200), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("notes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("notes")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("worker")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("remote")
    op.create_table(
        "partner_state",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_by", sa.String(40), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
    )
    op.execute(
        "INSERT INTO partner_state (name, disabled, disabled_reason, disabled_at, disabled_by, changed_at) "
        "SELECT name, disabled, disabled_reason, disabled_at, disabled_by, changed_at FROM destination_state "
        "WHERE kind = 'partner'"
    )
    op.drop_table("destination_state")
