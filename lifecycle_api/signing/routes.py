"""HTTP transport of the DS signing service: ``POST /v1/ds/{document_type}/sod`` and ``/sod/batch``.

Who may sign (deny by default): an Agency serving that document type (Art. 24 / 27: the
agency that personalises the documents) or a Provider *service account* (the machine
client of a personalisation line run by the Provider).  Errors are the service's typed
errors; `lifecycle_api.problems` maps them to problem+json.

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
from .service import DsSigningService, NoSigningKey, SignedSod, SodInput

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


SignerCaller = Annotated[Caller, Depends(allow(PartyType.AGENCY, PartyType.PROVIDER))]

router = APIRouter(prefix="/v1/ds", tags=["DS signing"])


def _service(request: Request, caller: Caller, document_type: str) -> tuple[DsSigningService, DocumentType]:
    try:
        doc = DocumentType(document_type)
    except ValueError:
        raise InvalidInput(f"unknown document type {document_type!r}", document_type=document_type) from None
    services: Services = request.app.state.services
    with services.store.transaction() as tx:
        if caller.party_type is PartyType.AGENCY:
            if doc.value not in (tx.organisation(caller.organisation_id).document_types or []):
                raise Forbidden(f"{caller.organisation_name} does not issue {doc.label} documents",
                                document_type=doc.value)
        else:
            operator = tx.session.get(Operator, caller.operator_id)
            if operator is None or operator.kind is not OperatorKind.SERVICE_ACCOUNT:
                raise Forbidden("only a Provider service account (a personalisation line) may sign SODs")
    service = getattr(request.app.state, "ds_signing", None)
    if service is None:
        raise ServiceUnavailable("DS signing is not enabled on this instance (it needs the HSM key store)")
    return service, doc


@router.post("/{document_type}/sod", response_model=SodOut)
def sign_sod(document_type: str, body: SodIn, request: Request, caller: SignerCaller) -> Response:
    service, doc = _service(request, caller, document_type)
    return _json(_out(service.sign_batch(doc, [body.to_input()])[0]))


@router.post("/{document_type}/sod/batch", response_model=SodBatchOut)
def sign_sod_batch(document_type: str, body: SodBatchIn, request: Request, caller: SignerCaller) -> Response:
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


def mount_signing(app: FastAPI, service: DsSigningService | None) -> None:
    """Enable DS signing on an app built by `create_app`."""
    app.state.ds_signing = service
    app.include_router(router)
