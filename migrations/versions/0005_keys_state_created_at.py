"""Index for the unused-key cleanup: keys still generated, by age (cost grows with due work)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_keys_state_created_at", "keys", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_keys_state_created_at", table_name="keys")
