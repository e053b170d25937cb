"""One CV certificate per (CAR, CHR): terminals and chips build the chain by these names, so a
CA must not certify two keys under one holder reference.  The flows refuse a CHR already
certified; this unique index holds it where two Provider instances race on PostgreSQL.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    duplicates = op.get_bind().execute(sa.text(
        "SELECT issuer, chr, COUNT(*) FROM certificates WHERE chr IS NOT NULL "
        "GROUP BY issuer, chr HAVING COUNT(*) > 1 ORDER BY issuer, chr"
    )).fetchall()  # fmt: skip
    if duplicates:  # the index cannot be built; say which rows an operator must look at
        listed = ", ".join(f"CAR {car} / CHR {chr_} ({count} certificates)" for car, chr_, count in duplicates)
        raise RuntimeError(f"certificates share a (CAR, CHR) and must be resolved before upgrading: {listed}")
    op.create_index("uq_certificates_issuer_chr", "certificates", ["issuer", "chr"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_certificates_issuer_chr", table_name="certificates")
