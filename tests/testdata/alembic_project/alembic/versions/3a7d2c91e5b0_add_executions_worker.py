"""Add executions.worker

Revision ID: 3a7d2c91e5b0
Revises: fc0e7b400c13
Create Date: 2026-11-25 09:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "3a7d2c91e5b0"
down_revision = "fc0e7b400c13"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("worker", sa.String(64)))
    op.create_index("ix_executions_worker", "executions", ["worker"])


def downgrade() -> None:
    op.drop_index("ix_executions_worker", table_name="executions")
    op.drop_column("executions", "worker")
