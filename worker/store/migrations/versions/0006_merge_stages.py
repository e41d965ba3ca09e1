"""Join the feeds and delivery branches of the schema into one head.

Revision ID: 0006_merge
Revises: 0003_feeds, 0005_delivery
"""

revision = "0006_merge"
down_revision = ("0003_feeds", "0005_delivery")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
