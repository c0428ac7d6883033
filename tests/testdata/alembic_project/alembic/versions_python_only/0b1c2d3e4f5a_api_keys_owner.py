"""Add api_keys.owner, filled differently offline

Revision ID: 0b1c2d3e4f5a
Revises: e7d6c5b4a392
Create Date: 2026-12-01 17:00:00

Its upgrade asks whether it runs offline, so what --sql prints is not what it runs online; its
downgrade raises NotImplementedError, Alembic's way to say it cannot be undone.
"""
from alembic import context, op
import sqlalchemy as sa

revision = "0b1c2d3e4f5a"
down_revision = "e7d6c5b4a392"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("owner", sa.Text()))
    if context.is_offline_mode():
        op.execute("UPDATE api_keys SET owner = 'unknown'")
    else:
        op.execute("UPDATE api_keys SET owner = current_user")


def downgrade() -> None:
    raise NotImplementedError("owner cannot be dropped: other services read it")
