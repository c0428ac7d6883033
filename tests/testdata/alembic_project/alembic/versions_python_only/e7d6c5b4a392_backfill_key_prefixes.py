"""Backfill key prefixes from the hashed keys

Revision ID: e7d6c5b4a392
Revises: f1a2b3c4d5e6
Create Date: 2026-12-01 16:00:00

A data migration in Python: it reads rows through the connection and writes each one back, which
offline (--sql) mode cannot render.
"""
from alembic import op
import sqlalchemy as sa

revision = "e7d6c5b4a392"
down_revision = "f1a2b3c4d5e6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, hashed_key FROM api_keys")).fetchall()
    for key_id, hashed_key in rows:
        connection.execute(
            sa.text("UPDATE api_keys SET key_prefix = :prefix WHERE id = :id"),
            {"prefix": hashed_key[:8], "id": key_id},
        )


def downgrade() -> None:
    pass
