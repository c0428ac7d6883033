"""Add the active_api_keys view

Revision ID: 9e0f3b5a2c68
Revises: 8b41d6e07f23
Create Date: 2026-11-27 12:00:00

Follows 8b41d6e07f23 and depends on 5c2e8f14a9d7 (the other branch), whose scopes column the view
reads.
"""
from alembic import op

revision = "9e0f3b5a2c68"
down_revision = "8b41d6e07f23"
branch_labels = None
depends_on = ("5c2e8f14a9d7",)


def upgrade() -> None:
    op.execute(
        """
        CREATE VIEW active_api_keys AS
        SELECT k.id, k.name, k.key_prefix, k.scopes,
               (SELECT count(*) FROM executions e WHERE e.api_key_id = k.id) AS executions
        FROM api_keys k
        WHERE k.is_active AND (k.expires_at IS NULL OR k.expires_at > now())
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW active_api_keys")
