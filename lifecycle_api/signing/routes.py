"""HTTP transport of the DS signing service: ``POST /v1/ds/{document_type}/sod`` and ``/sod/batch``,
and the exact count per DS key: ``GET /v1/ds/{document_type}/keys``.

Who may sign (deny by default): an Agency serving that document type (Art. 24 / 27: the
agency that personalises the documents) or a Provider *service account* (the machine
client of a personalisation line run by the Provider).  Errors are the service's typed
errors; `lifecycle_api.problems` maps them to problem+json.

Who may read the count: the same Agency, and any Provider operator (its officers watch the
rollovers).  The count is read from the database, so any instance answers it, with or without
an HSM.

Mount with `mount_signing(app, service)`: it stores the service on ``app.state.ds_signing``
and includes the router (every route carries an `allow(...)` dependency).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import Base64Bytes, BaseModel, Field

from icao_pki.policy import DocumentType

from ..auth import Caller, allow
from ..errors import Forbidden, InvalidInput, ServiceUnavailable
from ..services import Services
from ..store import Operator, OperatorKind, PartyType
from . import keys as keyq
from .service import DsSigningService, NoSigningKey, SignedSod, SodInput, ds_article

MAX_BATCH = 1000


class SodIn(BaseModel):
    """One document: complete data-group TLVs or their SHA-256 hashes, base64, keyed by DG number."""

    data_groups: dict[int, Base64Bytes] | None = None
    dg_hashes: dict[int, Base64Bytes] | None = None

    def to_input(self) -> SodInput:
        return SodInput(data_groups=self.data_groups, dg_hashes=self.dg_hashes)


class SodBatchIn(BaseModel):
    items: list[SodIn] = Field(min_length=1, max_length=MAX_BATCH)


class SodOut(BaseModel):
    sod: str = Field(description="EF.SOD (0x77-wrapped), base64")
    key_id: int
    key_label: str
    certificate_id: int
    signed_at: datetime


class SodBatchOut(BaseModel):
    items: list[SodOut]
    #: set when signing stopped mid-batch: `items` are the SODs made (and counted), the rest was refused
    refused: int = 0
    refused_detail: str | None = None


class DsKeyUsageOut(BaseModel):
    """One DS key's count, exact once every instance has settled its batches."""

    key_id: int
    key_label: str = Field(description="PKCS#11 label of the key (it never leaves the HSM)")
    state: str = Field(description="generated (awaiting its certificate), active, retired or destroyed")
    certificate_id: int | None = Field(description="the DS certificate SODs name, if the key has one")
    signed: int = Field(description="documents signed with this key: SODs made and counted")
    reserved_unused: int = Field(
        description="slots reserved but not (yet) signed: held by a running instance (given back when it "
                    "closes) or wasted by a crash; they count against the limit, so it is never exceeded")
    max_signatures: int | None = Field(description="the decree's limit for this key")
    remaining: int | None = Field(description="max_signatures − signed − reserved_unused")
    usage_not_before: datetime | None
    usage_not_after: datetime | None = Field(description="end of the private key's usage window")
    within_limit: bool = Field(description="signed + reserved_unused ≤ max_signatures")
    signing_now: bool = Field(description="the key a SOD of this document type would be signed with now")


class DsKeysOut(BaseModel):
    document_type: str
    article: str = Field(description="the article of Decree 68/2024 that sets the DS key's limits")
    at: datetime = Field(description="when the count was read (the service's clock)")
    keys: list[DsKeyUsageOut]


def _out(signed: SignedSod) -> dict[str, Any]:
    """`SodOut` as JSON-ready values (what pydantic would write, datetimes in UTC with Z)."""
    return {"sod": base64.b64encode(signed.sod).decode(), "key_id": signed.key_id, "key_label": signed.key_label,
            "certificate_id": signed.certificate_id,
            "signed_at": signed.signed_at.astimezone(UTC).isoformat().replace("+00:00", "Z")}


def _json(content: dict[str, Any]) -> Response:
    """The response body written once with the C JSON encoder.  Why: a personalisation line's
    batch is 1,000 SODs of ~2 kB; building and re-validating a pydantic model per SOD cost the
    HTTP path a third of its rate.  The declared `response_model` still documents the shape
    (tests compare the two)."""
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


#: signing and reading the count alike; which Agency and which Provider operator is checked per route
AgencyOrProvider = Annotated[Caller, Depends(allow(PartyType.AGENCY, PartyType.PROVIDER))]

router = APIRouter(prefix="/v1/ds", tags=["DS signing"])


def _document_type(document_type: str) -> DocumentType:
    try:
        return DocumentType(document_type)
    except ValueError:
        accepted = ", ".join(d.value for d in DocumentType)
        raise InvalidInput(f"unknown document type {document_type!r}: expected one of {accepted}",
                           document_type=document_type) from None


def _check_agency(tx: Any, caller: Caller, doc: DocumentType) -> None:
    if doc.value not in (tx.organisation(caller.organisation_id).document_types or []):
        raise Forbidden(f"{caller.organisation_name} does not issue {doc.label} documents", document_type=doc.value)


def _service(request: Request, caller: Caller, document_type: str) -> tuple[DsSigningService, DocumentType]:
    doc = _document_type(document_type)
    services: Services = request.app.state.services
    with services.store.transaction() as tx:
        if caller.party_type is PartyType.AGENCY:
            _check_agency(tx, caller, doc)
        else:
            operator = tx.session.get(Operator, caller.operator_id)
            if operator is None or operator.kind is not OperatorKind.SERVICE_ACCOUNT:
                raise Forbidden("only a Provider service account (a personalisation line) may sign SODs")
    service = getattr(request.app.state, "ds_signing", None)
    if service is None:
        raise ServiceUnavailable("DS signing is not enabled on this instance (it needs the HSM key store)")
    return service, doc


@router.post("/{document_type}/sod", response_model=SodOut)
def sign_sod(document_type: str, body: SodIn, request: Request, caller: AgencyOrProvider) -> Response:
    service, doc = _service(request, caller, document_type)
    return _json(_out(service.sign_batch(doc, [body.to_input()])[0]))


@router.post("/{document_type}/sod/batch", response_model=SodBatchOut)
def sign_sod_batch(document_type: str, body: SodBatchIn, request: Request, caller: AgencyOrProvider) -> Response:
    service, doc = _service(request, caller, document_type)
    try:
        signed = service.sign_batch(doc, [i.to_input() for i in body.items])
    except NoSigningKey as exc:
        partial: list[SignedSod] = getattr(exc, "partial_sods", [])
        if not partial:
            raise
        return _json({"items": [_out(s) for s in partial], "refused": len(body.items) - len(partial),
                      "refused_detail": exc.message})
    return _json({"items": [_out(s) for s in signed], "refused": 0, "refused_detail": None})


@router.get("/{document_type}/keys", response_model=DsKeysOut)
def ds_key_usage(document_type: str, request: Request, caller: AgencyOrProvider) -> DsKeysOut:
    """Every DS key of the document type with its exact count (issue 5 §2), oldest first."""
    doc = _document_type(document_type)
    services: Services = request.app.state.services
    now = services.clock.now()
    with services.store.transaction() as tx:
        if caller.party_type is PartyType.AGENCY:
            _check_agency(tx, caller, doc)
        views = keyq.ds_keys(tx, doc)
        current = keyq.signing_candidates(tx, doc, now, limit=1)
    signing = current[0].key_id if current else None
    keys = [DsKeyUsageOut(
        key_id=v.key_id, key_label=v.hsm_label, state=v.state.value, certificate_id=v.certificate_id,
        signed=v.signatures_used, reserved_unused=v.signatures_reserved, max_signatures=v.max_signatures,
        remaining=v.remaining, usage_not_before=v.usage_not_before, usage_not_after=v.usage_not_after,
        within_limit=v.remaining is None or v.remaining >= 0,
        signing_now=v.key_id == signing) for v in views]
    return DsKeysOut(document_type=doc.value, article=ds_article(services.settings.policy, doc), at=now, keys=keys)


def mount_signing(app: FastAPI, service: DsSigningService | None) -> None:
    """Enable DS signing on an app built by `create_app`."""
    app.state.ds_signing = service
    app.include_router(router)
