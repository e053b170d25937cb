"""Index on certificates.chr: every CV request looks its holder reference up (a new CHR must
not be held yet, a renewal finds its current certificate), and the table keeps every
certificate ever issued — IS certificates are renewed monthly

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_certificates_chr", "certificates", ["chr"])


def downgrade() -> None:
    op.drop_index("ix_certificates_chr", table_name="certificates")
