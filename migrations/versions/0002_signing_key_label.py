"""organisation certificates: PKCS#11 label of a key the service may sign with for that organisation

Used for automatic countersigning (a Cơ yếu unit whose key is held centrally, letter 293).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hsm_label", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.drop_column("hsm_label")
