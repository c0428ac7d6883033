"""Index executions by worker and time, concurrently

Revision ID: f1a2b3c4d5e6
Revises: d2e4f6a8b0c1
Create Date: 2026-11-30 15:00:00

CREATE INDEX CONCURRENTLY cannot run in a transaction: Alembic's autocommit block.
"""
from alembic import op

revision = "f1a2b3c4d5e6"
down_revision = "d2e4f6a8b0c1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_executions_worker_created_at",
            "executions",
            ["worker", "created_at"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_executions_worker_created_at",
            table_name="executions",
            postgresql_concurrently=True,
        )
