"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Generated from lifecycle_api.store.models, then reviewed by hand: portable types only.
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_organisation_id", sa.Integer(), nullable=True),
        sa.Column("actor_operator_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_log_entry_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_log_prev_hash")),
    )
    op.create_table(
        "crls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("issuer_fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("issuer_name", sa.Text(), nullable=False),
        sa.Column("crl_number", sa.Integer(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crls")),
        sa.UniqueConstraint("issuer_fingerprint_sha256", "crl_number", name=op.f("uq_crls_issuer_fingerprint_sha256")),
    )
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crls_issuer_fingerprint_sha256"), ["issuer_fingerprint_sha256"], unique=False
        )

    op.create_table(
        "hierarchies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("certificate_format", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hierarchies")),
        sa.UniqueConstraint("document_type", "certificate_format", name=op.f("uq_hierarchies_document_type")),
        sa.UniqueConstraint("name", name=op.f("uq_hierarchies_name")),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("party_type", sa.String(length=32), nullable=False),
        sa.Column("ministry", sa.String(length=100), nullable=True),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("document_types", sa.JSON(), nullable=False),
        sa.Column("auto_countersign", sa.Boolean(), nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hierarchy_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("hsm_label", sa.String(length=100), nullable=False),
        sa.Column("algorithm", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("usage_not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("usage_not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signatures_used", sa.Integer(), nullable=False),
        sa.Column("signatures_reserved", sa.Integer(), nullable=False),
        sa.Column("max_signatures", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "max_signatures IS NULL OR signatures_used + signatures_reserved <= max_signatures",
            name=op.f("ck_keys_counters_within_max"),
        ),
        sa.CheckConstraint(
            "signatures_used >= 0 AND signatures_reserved >= 0", name=op.f("ck_keys_counters_non_negative")
        ),
        sa.ForeignKeyConstraint(["hierarchy_id"], ["hierarchies.id"], name=op.f("fk_keys_hierarchy_id_hierarchies")),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_keys_organisation_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keys")),
        sa.UniqueConstraint("hsm_label", name=op.f("uq_keys_hsm_label")),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_keys_hierarchy_id"), ["hierarchy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_keys_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("credential_hash", sa.String(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_operators_organisation_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("organisation_id", "name", name=op.f("uq_operators_organisation_id")),
        sa.UniqueConstraint("token_id", name=op.f("uq_operators_token_id")),
    )
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operators_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "organisation_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_organisation_certificates_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_certificates")),
        sa.UniqueConstraint("fingerprint_sha256", name=op.f("uq_organisation_certificates_fingerprint_sha256")),
    )
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organisation_certificates_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_type", sa.String(length=50), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=True),
        sa.Column("applicant_organisation_id", sa.Integer(), nullable=False),
        sa.Column("ministry", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["applicant_organisation_id"],
            ["organisations.id"],
            name=op.f("fk_requests_applicant_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_requests_applicant_organisation_id"), ["applicant_organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_requests_ministry"), ["ministry"], unique=False)
        batch_op.create_index("ix_requests_state_deadline", ["state", "deadline"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hierarchy_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("issuer_certificate_id", sa.Integer(), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("certificate_format", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("chr", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("serial IS NOT NULL OR chr IS NOT NULL", name=op.f("ck_certificates_serial_or_chr")),
        sa.ForeignKeyConstraint(
            ["hierarchy_id"], ["hierarchies.id"], name=op.f("fk_certificates_hierarchy_id_hierarchies")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificates_issuer_certificate_id_certificates"),
        ),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=op.f("fk_certificates_key_id_keys")),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_certificates_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_certificates_request_id_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("fingerprint_sha256", name=op.f("uq_certificates_fingerprint_sha256")),
        sa.UniqueConstraint("issuer", "serial", name=op.f("uq_certificates_issuer")),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_certificates_hierarchy_id"), ["hierarchy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificates_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificates_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_notification_outbox_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_notification_outbox_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
    )
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_outbox_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_index("ix_notification_outbox_state_next", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "request_signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("cms_der", sa.LargeBinary(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("signer_fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("signing_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"], name=op.f("fk_request_signatures_organisation_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_request_signatures_request_id_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_signatures")),
        sa.UniqueConstraint("content_sha256", name=op.f("uq_request_signatures_content_sha256")),
    )
    with op.batch_alter_table("request_signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_signatures_request_id"), ["request_id"], unique=False)

    op.create_table(
        "published_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("document_type", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=True),
        sa.Column("crl_id", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name=op.f("fk_published_objects_certificate_id_certificates")
        ),
        sa.ForeignKeyConstraint(["crl_id"], ["crls.id"], name=op.f("fk_published_objects_crl_id_crls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_objects")),
    )
    op.create_table(
        "revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=50), nullable=False),
        sa.Column("requested_by_organisation_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["certificates.id"], name=op.f("fk_revocations_certificate_id_certificates")
        ),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_revocations_request_id_requests")),
        sa.ForeignKeyConstraint(
            ["requested_by_organisation_id"],
            ["organisations.id"],
            name=op.f("fk_revocations_requested_by_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocations")),
        sa.UniqueConstraint("certificate_id", name=op.f("uq_revocations_certificate_id")),
    )


def downgrade() -> None:
    op.drop_table("revocations")
    op.drop_table("published_objects")
    with op.batch_alter_table("request_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_signatures_request_id"))

    op.drop_table("request_signatures")
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_outbox_state_next")
        batch_op.drop_index(batch_op.f("ix_notification_outbox_organisation_id"))

    op.drop_table("notification_outbox")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_key_id"))
        batch_op.drop_index(batch_op.f("ix_certificates_hierarchy_id"))

    op.drop_table("certificates")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_state_deadline")
        batch_op.drop_index(batch_op.f("ix_requests_ministry"))
        batch_op.drop_index(batch_op.f("ix_requests_applicant_organisation_id"))

    op.drop_table("requests")
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisation_certificates_organisation_id"))

    op.drop_table("organisation_certificates")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operators_organisation_id"))

    op.drop_table("operators")
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_keys_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_keys_hierarchy_id"))

    op.drop_table("keys")
    op.drop_table("organisations")
    op.drop_table("hierarchies")
    with op.batch_alter_table("crls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crls_issuer_fingerprint_sha256"))

    op.drop_table("crls")
    op.drop_table("audit_log")
