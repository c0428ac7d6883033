"""Merge the keys and logs branches

Revision ID: b7c9a1d3e5f2
Revises: 5c2e8f14a9d7, 9e0f3b5a2c68
Create Date: 2026-11-28 13:00:00

"""
revision = "b7c9a1d3e5f2"
down_revision = ("5c2e8f14a9d7", "9e0f3b5a2c68")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
