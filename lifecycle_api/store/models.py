"""The lifecycle system's tables (SQLAlchemy 2 typed ORM).

One row type per thing the decree talks about: the parties (Art. 3, 24, 27) and their
official-use certificates, the operators acting for them, the PKI hierarchies per document
type with their keys and certificates (Art. 23, 26), requests with every signature on them
(Art. 25, 28, 30–32), revocations (Art. 17–19), CRLs and published objects (Art. 6, 36.6),
the hash-chained audit log and the notification outbox.

`migrations/` creates exactly this schema; `tests/api/test_migrations.py` compares them.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from icao_pki.policy import CertificateFormat, DocumentType, Role

from .types import EnumText, UTCDateTime


class PartyType(str, Enum):
    """REQUIREMENTS.md §1."""

    PROVIDER = "provider"
    AGENCY = "agency"
    COYEU = "coyeu"
    FOREIGN_STATE = "foreign_state"
    IS_OPERATOR = "is_operator"


class OperatorKind(str, Enum):
    OPERATOR = "operator"  # a person
    SERVICE_ACCOUNT = "service_account"  # a machine client


class KeyState(str, Enum):
    GENERATED = "generated"  # in the HSM, no certificate yet
    ACTIVE = "active"
    RETIRED = "retired"  # usage window over, budget spent, superseded (IS, CVCA) or never certified
    DESTROYED = "destroyed"  # removed from the HSM (recorded, never deleted from here)


class CertificateStatus(str, Enum):
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class RequestState(str, Enum):
    SUBMITTED = "submitted"  # signed by the applicant, awaiting the Cơ yếu unit
    COUNTERSIGNED = "countersigned"  # awaiting the Provider
    COMPLETED = "completed"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in (RequestState.COMPLETED, RequestState.REJECTED)


class SignaturePurpose(str, Enum):
    APPLICATION = "application"
    COUNTERSIGNATURE = "countersignature"
    REJECTION = "rejection"


class OutboxState(str, Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after the configured number of attempts


class CrlScope(str, Enum):
    CSCA = "csca"  # our CSCA CRLs (ICAO 9303-12)
    ORG_PKI = "org_pki"  # the government CA's CRLs, used to check organisation signatures


class PublishedKind(str, Enum):
    CSCA = "csca"
    CSCA_LINK = "csca_link"
    CRL = "crl"
    MASTER_LIST = "master_list"
    CVCA = "cvca"
    CVCA_LINK = "cvca_link"
    DS = "ds"
    TRUSTED_ROOTS = "trusted_roots"


class HsmOperationKind(str, Enum):
    GENERATE_KEY = "generate_key"
    SIGN = "sign"


class HsmOperationState(str, Enum):
    """The journal of the sign component (STYLE: write down what you are about to sign
    before touching the HSM)."""

    PENDING = "pending"  # written and committed before the HSM is touched
    DONE = "done"  # the HSM did it (key exists / signature made and verified); not yet part of a committed step
    COMMITTED = "committed"  # the result is part of a committed workflow step
    FAILED = "failed"  # the HSM or the builder refused; nothing came out
    ABANDONED = "abandoned"  # a signature was made but its step never committed (never handed out)
    DESTROYED = "destroyed"  # a generated key whose step failed, destroyed in the HSM


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    party_type: Mapped[PartyType] = mapped_column(EnumText(PartyType))
    ministry: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(3))  # ISO 3166 alpha-2/3 or ICAO code ("VN", "UTO")
    document_types: Mapped[list[Any]] = mapped_column(JSON, default=list)  # DocumentType values served
    auto_countersign: Mapped[bool] = mapped_column(Boolean, default=False)  # Cơ yếu units: sign valid requests at once
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class OrganisationCertificate(Base):
    """An official-use certificate registered for an organisation (Art. 30–32 signer identity)."""

    __tablename__ = "organisation_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(64))  # hex
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    registered_at: Mapped[datetime]
    #: set when the key is held by the service's HSM (centralised signing, letter 293): the
    #: service may then sign for this organisation, e.g. auto-countersign for a Cơ yếu unit
    hsm_label: Mapped[str | None] = mapped_column(String(100))


class Operator(Base):
    """A person or service account acting for one organisation; the credential is stored hashed."""

    __tablename__ = "operators"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OperatorKind] = mapped_column(EnumText(OperatorKind))
    token_id: Mapped[str] = mapped_column(String(64), unique=True)  # public half of the bearer token
    credential_hash: Mapped[str] = mapped_column(String(300))  # scrypt$n$r$p$salt$hash
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class Hierarchy(Base):
    """One PKI per document type and format: the passport X.509 (CSCA) tree, the ID-card CV (CVCA) tree…"""

    __tablename__ = "hierarchies"
    __table_args__ = (UniqueConstraint("document_type", "certificate_format"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    document_type: Mapped[DocumentType] = mapped_column(EnumText(DocumentType))
    certificate_format: Mapped[CertificateFormat] = mapped_column(EnumText(CertificateFormat))
    created_at: Mapped[datetime]


class Key(Base):
    """A private key in the HSM, known here only by its label; counters are compare-and-set."""

    __tablename__ = "keys"
    __table_args__ = (
        CheckConstraint("signatures_used >= 0 AND signatures_reserved >= 0", name="counters_non_negative"),
        CheckConstraint(
            "max_signatures IS NULL OR signatures_used + signatures_reserved <= max_signatures",
            name="counters_within_max",
        ),
        # the signing service and the rollover/destruction schedules look keys up by these
        Index("ix_keys_role_doc_state_usage", "role", "document_type", "state", "usage_not_after"),
        # the unused-key cleanup: keys still generated, oldest first (signing.unused_keys)
        Index("ix_keys_state_created_at", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hierarchy_id: Mapped[int | None] = mapped_column(ForeignKey("hierarchies.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)  # holder
    role: Mapped[Role] = mapped_column(EnumText(Role))
    document_type: Mapped[DocumentType] = mapped_column(EnumText(DocumentType))
    hsm_label: Mapped[str] = mapped_column(String(100), unique=True)
    algorithm: Mapped[str] = mapped_column(String(40))  # curve name or rsaNNNN
    state: Mapped[KeyState] = mapped_column(EnumText(KeyState))
    usage_not_before: Mapped[datetime | None]
    usage_not_after: Mapped[datetime | None]
    signatures_used: Mapped[int] = mapped_column(Integer, default=0)
    signatures_reserved: Mapped[int] = mapped_column(Integer, default=0)
    max_signatures: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    destroyed_at: Mapped[datetime | None]


class Certificate(Base):
    """An issued or imported certificate, X.509 (serial) or CV (CHR)."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("issuer", "serial"),
        CheckConstraint("serial IS NOT NULL OR chr IS NOT NULL", name="serial_or_chr"),
        # renewal and expiry schedules: certificates of a role and status ending before a date
        Index("ix_certificates_role_status_not_after", "role", "status", "not_after"),
        # a CV certificate is named by (CAR, CHR): terminals and chips find the chain by them,
        # so one CA never certifies two keys under one CHR; the flows refuse a CHR already
        # certified, and this holds it where they race (two Provider instances on PostgreSQL).
        # X.509 rows have no CHR (NULLs never collide).
        Index("uq_certificates_issuer_chr", "issuer", "chr", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hierarchy_id: Mapped[int | None] = mapped_column(ForeignKey("hierarchies.id"), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("keys.id"), index=True)
    issuer_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)  # holder
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"))
    certificate_format: Mapped[CertificateFormat] = mapped_column(EnumText(CertificateFormat))
    role: Mapped[Role] = mapped_column(EnumText(Role))
    document_type: Mapped[DocumentType] = mapped_column(EnumText(DocumentType))
    status: Mapped[CertificateStatus] = mapped_column(EnumText(CertificateStatus))
    serial: Mapped[str | None] = mapped_column(String(64))  # X.509, hex
    # CV certificate holder reference; indexed: a CHR is looked up on every CV request (new, renewal, foreign DV)
    chr: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(String(500))  # issuer DN (X.509) or CAR (CV)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class Request(Base):
    """A certification / revocation request moving Agency → Cơ yếu unit → Provider (Art. 25, 28)."""

    __tablename__ = "requests"
    __table_args__ = (Index("ix_requests_state_deadline", "state", "deadline"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4
    request_type: Mapped[str] = mapped_column(String(50))
    document_type: Mapped[DocumentType | None] = mapped_column(EnumText(DocumentType))
    applicant_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    ministry: Mapped[str | None] = mapped_column(String(100), index=True)  # whose Cơ yếu unit countersigns
    state: Mapped[RequestState] = mapped_column(EnumText(RequestState))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    deadline: Mapped[datetime | None]
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RequestSignature(Base):
    """Every signed document on a request, kept as received (CMS SignedData DER)."""

    __tablename__ = "request_signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    purpose: Mapped[SignaturePurpose] = mapped_column(EnumText(SignaturePurpose))
    cms_der: Mapped[bytes] = mapped_column(LargeBinary)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # a document is accepted once
    signer_fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    signing_time: Mapped[datetime]
    verified_at: Mapped[datetime]


class Revocation(Base):
    """Art. 17 reason, Art. 18 requester, Art. 19.2b deadline."""

    __tablename__ = "revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(50))
    requested_by_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"))
    requested_at: Mapped[datetime]
    deadline: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    invalidity_date: Mapped[datetime | None]
    published_at: Mapped[datetime | None]


class Crl(Base):
    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("issuer_fingerprint_sha256", "crl_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[CrlScope] = mapped_column(EnumText(CrlScope))
    issuer_fingerprint_sha256: Mapped[str] = mapped_column(String(64), index=True)
    issuer_name: Mapped[str] = mapped_column(Text)
    crl_number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime]
    next_update: Mapped[datetime | None]
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class PublishedObject(Base):
    """What the public, read-only publication endpoints serve (Art. 36.6)."""

    __tablename__ = "published_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[PublishedKind] = mapped_column(EnumText(PublishedKind))
    document_type: Mapped[DocumentType | None] = mapped_column(EnumText(DocumentType))
    name: Mapped[str] = mapped_column(String(200))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    crl_id: Mapped[int | None] = mapped_column(ForeignKey("crls.id"))
    published_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only, hash-chained: entry_hash = SHA-256(canonical JSON of the fields incl. prev_hash)."""

    __tablename__ = "audit_log"
    # notices are de-duplicated per entity, so that lookup must not scan the whole log
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor_organisation_id: Mapped[int | None] = mapped_column(Integer)  # no FK: the log outlives everything
    actor_operator_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # a fork cannot be committed
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class HsmOperation(Base):
    """One HSM operation, journalled in its own committed transaction before the HSM is
    touched; recovery (`lifecycle_api.authority.Authority.recover`) settles every row left
    pending or done by a crash: generated keys are destroyed, signatures abandoned."""

    __tablename__ = "hsm_operations"
    __table_args__ = (Index("ix_hsm_operations_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[HsmOperationKind] = mapped_column(EnumText(HsmOperationKind))
    hsm_label: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(36))  # no FK: a ceremony or a bare key has none
    input_sha256: Mapped[str | None] = mapped_column(String(64))  # what was handed to the HSM to sign
    output_sha256: Mapped[str | None] = mapped_column(String(64))  # the verified product (certificate, CRL…)
    state: Mapped[HsmOperationState] = mapped_column(EnumText(HsmOperationState))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OutboxMessage(Base):
    """A notification to one organisation, written in the same transaction as the event (at-least-once)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    request_id: Mapped[str | None] = mapped_column(ForeignKey("requests.id"))
    event: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[OutboxState] = mapped_column(EnumText(OutboxState))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
