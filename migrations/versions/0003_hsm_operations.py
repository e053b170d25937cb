"""hsm_operations: the sign component's journal (written before the HSM is touched)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hsm_operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("hsm_label", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("input_sha256", sa.String(length=64), nullable=True),
        sa.Column("output_sha256", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hsm_operations")),
    )
    with op.batch_alter_table("hsm_operations", schema=None) as batch_op:
        batch_op.create_index("ix_hsm_operations_state", ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hsm_operations", schema=None) as batch_op:
        batch_op.drop_index("ix_hsm_operations_state")
    op.drop_table("hsm_operations")
