"""Add execution_logs

Revision ID: 8b41d6e07f23
Revises: 3a7d2c91e5b0
Create Date: 2026-11-26 11:00:00

The other side of the branch at 3a7d2c91e5b0.
"""
from alembic import op
import sqlalchemy as sa

revision = "8b41d6e07f23"
down_revision = "3a7d2c91e5b0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "execution_logs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column(
            "execution_id",
            sa.BigInteger(),
            sa.ForeignKey("executions.id", ondelete="CASCADE", name="fk_execution_logs_execution"),
            nullable=False,
        ),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column(
            "logged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
    )
    op.create_index("ix_execution_logs_execution_id", "execution_logs", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_execution_logs_execution_id", table_name="execution_logs")
    op.drop_table("execution_logs")
