"""Request and response bodies (one family per entity: …Create / …Public)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from icao_pki.policy import DocumentType

from .store import OperatorKind, PartyType


def _decode_b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None


class SignedDocumentIn(BaseModel):
    """A CMS SignedData (DER), base64-encoded."""

    document: str = Field(description="base64 of the DER CMS SignedData", examples=["MIAGCSqGSIb3DQEHAqCAMIACAQEx..."])

    @field_validator("document")
    @classmethod
    def _b64(cls, value: str) -> str:
        _decode_b64(value)
        return value

    def der(self) -> bytes:
        return _decode_b64(self.document)


class DerIn(BaseModel):
    der: str = Field(description="base64 of a DER certificate or CRL")

    @field_validator("der")
    @classmethod
    def _b64(cls, value: str) -> str:
        _decode_b64(value)
        return value

    def data(self) -> bytes:
        return _decode_b64(self.der)


class OrganisationCertificateIn(DerIn):
    hsm_label: str | None = Field(
        None, description="PKCS#11 label when the service's HSM holds this organisation's key (centralised signing)"
    )


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Cục Quản lý xuất nhập cảnh", "party_type": "agency", "country": "VN",
        "ministry": "Bộ Công an", "document_types": ["passport"],
    }]})

    name: str = Field(min_length=1, max_length=200)
    party_type: PartyType
    country: str = Field(min_length=2, max_length=3)
    ministry: str | None = None
    document_types: list[DocumentType] = []
    auto_countersign: bool = False
    webhook_url: str | None = None


class OrganisationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    party_type: PartyType
    country: str
    ministry: str | None
    document_types: list[str]
    auto_countersign: bool
    webhook_url: str | None
    created_at: datetime


class OrganisationCertificatePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    organisation_id: int
    fingerprint_sha256: str
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    hsm_label: str | None = None


class OperatorCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: OperatorKind = OperatorKind.OPERATOR


class OperatorCreated(BaseModel):
    id: int
    organisation_id: int
    name: str
    kind: OperatorKind
    token: str = Field(description="bearer token; shown once, only its hash is stored")


class CrlPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    issuer_name: str
    crl_number: int
    this_update: datetime
    next_update: datetime | None


class SignaturePublic(BaseModel):
    organisation_id: int
    purpose: str
    signing_time: datetime
    signer_fingerprint_sha256: str
    content_sha256: str


class RequestPublic(BaseModel):
    id: str
    request_type: str
    document_type: DocumentType | None
    applicant_organisation_id: int
    ministry: str | None
    state: str
    payload: dict[str, Any]
    deadline: datetime | None
    rejection_reason: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    signatures: list[SignaturePublic] = []


class NotificationPublic(BaseModel):
    id: int
    event: str
    request_id: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class AuditVerification(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_broken_seq: int | None
    reason: str | None


class Health(BaseModel):
    status: str
    time: datetime
    database: str
    request_types: list[str]
