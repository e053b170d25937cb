"""Indexes for the schedules' due-work queries (issue 5: cost grows with due work, not table size)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_keys_role_doc_state_usage", "keys", ["role", "document_type", "state", "usage_not_after"])
    op.create_index("ix_certificates_role_status_not_after", "certificates", ["role", "status", "not_after"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity_type", "entity_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_entity", table_name="audit_log")
    op.drop_index("ix_certificates_role_status_not_after", table_name="certificates")
    op.drop_index("ix_keys_role_doc_state_usage", table_name="keys")
