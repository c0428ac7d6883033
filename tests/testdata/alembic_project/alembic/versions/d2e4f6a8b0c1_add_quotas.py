"""Add quotas, with a period enum and the default plans

Revision ID: d2e4f6a8b0c1
Revises: b7c9a1d3e5f2
Create Date: 2026-11-29 14:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "d2e4f6a8b0c1"
down_revision = "b7c9a1d3e5f2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    quotas = op.create_table(
        "quotas",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("api_key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id", ondelete="CASCADE")),
        sa.Column("period", sa.Enum("daily", "monthly", name="quota_period"), nullable=False),
        sa.Column("max_executions", sa.Integer(), nullable=False),
        sa.UniqueConstraint("api_key_id", "period", name="uq_quotas_key_period"),
    )
    op.bulk_insert(
        quotas,
        [
            {"api_key_id": None, "period": "daily", "max_executions": 1000},
            {"api_key_id": None, "period": "monthly", "max_executions": 20000},
        ],
    )
    op.alter_column("executions", "language", type_=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    op.alter_column("executions", "language", type_=sa.String(32), existing_nullable=False)
    op.drop_table("quotas")
    op.execute("DROP TYPE quota_period")
