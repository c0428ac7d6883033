"""Add api_keys.scopes

Revision ID: 5c2e8f14a9d7
Revises: 3a7d2c91e5b0
Create Date: 2026-11-26 10:00:00

One side of the branch at 3a7d2c91e5b0, labelled `keys`.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "5c2e8f14a9d7"
down_revision = "3a7d2c91e5b0"
branch_labels = ("keys",)
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "scopes",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::text[]"),
        ),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "scopes")
