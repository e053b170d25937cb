"""HTTP routes of the certificate flows: ceremonies, DS and IS keys, foreign CV material, certificates,
and the public, read-only publication (`/v1/pub/...`, listed in `app.PUBLIC_PATHS`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from icao_pki.keystore import KEY_SPECS
from icao_pki.policy import DocumentType

from .auth import ALL_PARTIES, Caller, allow
from .ceremonies import approve, propose
from .certificate_flows import create_ds_key, create_is_key, import_foreign_dv_certificate, register_foreign_cvca
from .errors import InvalidInput, NotFound
from .hierarchy import certificate_view
from .publication import current, index, media_type, publish_master_list, trusted_roots
from .routes import request_public
from .schemas import DerIn, RequestPublic
from .services import Services
from .store import PartyType, PublishedKind

P = PartyType


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
ProviderCaller = Annotated[Caller, Depends(allow(P.PROVIDER))]
AgencyCaller = Annotated[Caller, Depends(allow(P.AGENCY))]
#: the parties that submit ``is_certificate`` requests (its handler's submitters)
IsCaller = Annotated[Caller, Depends(allow(P.AGENCY, P.IS_OPERATOR))]
AnyCaller = Annotated[Caller, Depends(allow(*ALL_PARTIES))]

router = APIRouter(prefix="/v1")

#: the public publication paths, for `app.PUBLIC_PATHS`
PUBLICATION_PATHS = frozenset({
    "/v1/pub", "/v1/pub/objects/{object_id}", "/v1/pub/crl/{document_type}", "/v1/pub/master-list",
    "/v1/pub/trusted-roots",
})


class CeremonyIn(BaseModel):
    kind: str = Field(description="csca | cvca | dvca", examples=["csca"])
    document_type: DocumentType
    key_spec: str | None = Field(default=None, description=f"one of {', '.join(KEY_SPECS)}")
    validity_months: int | None = None
    key_usage_months: int | None = None
    key_usage_from: datetime | None = Field(
        default=None, description="CSCA only: the new key signs nothing before this (the 90-day notice)")


class DsKeyIn(BaseModel):
    document_type: DocumentType
    key_spec: str | None = Field(default=None, description=f"one of {', '.join(KEY_SPECS)}")


class IsKeyIn(BaseModel):
    document_type: DocumentType
    car: str | None = Field(default=None, max_length=16,
                            description="the DV to name as CAR (its CHR); default: our domestic DV valid now")


class ForeignCvcaIn(DerIn):
    document_type: DocumentType = Field(
        default=DocumentType.PASSPORT,
        description="the EAC hierarchy the foreign CVCA serves (a state may run one for passports and another "
                    "for ID cards); a link certificate takes the type of the CVCA it links from")


class ForeignCertificateIn(DerIn):
    request_id: str


class MasterListIn(BaseModel):
    document_type: DocumentType = DocumentType.PASSPORT


# --- ceremonies ----------------------------------------------------------------------------


@router.post("/ceremonies", status_code=status.HTTP_201_CREATED, tags=["ceremonies"],
             summary="Propose a key ceremony (CSCA, CVCA, DVCA); a second Provider officer must approve")
def post_ceremony(body: CeremonyIn, caller: ProviderCaller, services: ServicesDep) -> RequestPublic:
    payload = {k: (v.value if isinstance(v, DocumentType) else v.isoformat() if isinstance(v, datetime) else v)
               for k, v in body.model_dump().items() if v is not None}
    with services.store.transaction() as tx:
        return request_public(tx, propose(tx, services, caller, payload))


@router.post("/ceremonies/{request_id}/approve", tags=["ceremonies"],
             summary="Approve a ceremony (another Provider officer): generate the key in the HSM and sign")
def post_ceremony_approve(request_id: str, caller: ProviderCaller, services: ServicesDep) -> RequestPublic:
    req = approve(services, caller, request_id)
    with services.store.transaction() as tx:
        return request_public(tx, tx.request(req.id))


# --- DS keys and CV material --------------------------------------------------------------


@router.post("/ds/keys", status_code=status.HTTP_201_CREATED, tags=["certificates"],
             summary="An Agency's DS key, generated in the service's HSM, with its PKCS#10 request")
def post_ds_key(body: DsKeyIn, caller: AgencyCaller, services: ServicesDep) -> dict[str, Any]:
    return create_ds_key(services, caller, body.document_type, body.key_spec)


@router.post("/is/keys", status_code=status.HTTP_201_CREATED, tags=["certificates"],
             summary="An IS key generated in the service's HSM, with its CV request to submit as is_certificate")
def post_is_key(body: IsKeyIn, caller: IsCaller, services: ServicesDep) -> dict[str, Any]:
    return create_is_key(services, caller, body.document_type, body.car)


@router.post("/organisations/{organisation_id}/cvca", status_code=status.HTTP_201_CREATED, tags=["organisations"],
             summary="Register a foreign state's CVCA or CVCA link certificate (Provider only)")
def post_foreign_cvca(organisation_id: int, body: ForeignCvcaIn, caller: ProviderCaller,
                      services: ServicesDep) -> dict[str, Any]:
    return register_foreign_cvca(services, caller, organisation_id, body.data(), body.document_type)


@router.post("/cv/foreign-certificates", status_code=status.HTTP_201_CREATED, tags=["certificates"],
             summary="Install the certificate a foreign CVCA issued for our DV (Provider only)")
def post_foreign_certificate(body: ForeignCertificateIn, caller: ProviderCaller,
                             services: ServicesDep) -> dict[str, Any]:
    return import_foreign_dv_certificate(services, caller, body.request_id, body.data())


@router.post("/publication/master-list", status_code=status.HTTP_201_CREATED, tags=["publication"],
             summary="Sign and publish a new Master List (Provider only)")
def post_master_list(body: MasterListIn, caller: ProviderCaller, services: ServicesDep) -> dict[str, Any]:
    return publish_master_list(services, caller, body.document_type)


@router.get("/certificates", tags=["certificates"],
            summary="Certificates: the Provider sees all, a party the ones it holds")
def get_certificates(caller: AnyCaller, services: ServicesDep) -> list[dict[str, Any]]:
    with services.store.transaction() as tx:
        holder = None if caller.party_type is P.PROVIDER else caller.organisation_id
        return [certificate_view(c) for c in tx.certificates(organisation_id=holder)]


@router.get("/certificates/{certificate_id}", tags=["certificates"],
            summary="One certificate, if the caller holds it (the Provider sees all)")
def get_certificate(certificate_id: int, caller: AnyCaller, services: ServicesDep) -> dict[str, Any]:
    with services.store.transaction() as tx:
        cert = tx.certificate(certificate_id)
        if caller.party_type is not P.PROVIDER and cert.organisation_id != caller.organisation_id:
            raise NotFound(f"certificate {certificate_id} does not exist")
        return certificate_view(cert)


# --- public publication ---------------------------------------------------------------------


@router.get("/pub", tags=["publication"], summary="Everything published (public)")
def get_publication_index(services: ServicesDep) -> list[dict[str, Any]]:
    with services.store.transaction() as tx:
        return index(tx)


@router.get("/pub/objects/{object_id}", tags=["publication"], summary="One published object, DER (public)",
            response_class=Response)
def get_published_object(object_id: int, services: ServicesDep) -> Response:
    with services.store.transaction() as tx:
        row = tx.published_object(object_id)
        return Response(row.der, media_type=media_type(row.kind))


@router.get("/pub/crl/{document_type}", tags=["publication"], summary="The current CSCA CRL, DER (public)",
            response_class=Response)
def get_current_crl(document_type: str, services: ServicesDep) -> Response:
    try:
        doc = DocumentType(document_type)
    except ValueError:
        raise InvalidInput(f"unknown document type {document_type!r}") from None
    with services.store.transaction() as tx:
        return Response(current(tx, PublishedKind.CRL, doc).der, media_type=media_type(PublishedKind.CRL))


@router.get("/pub/master-list", tags=["publication"], summary="The current Master List, DER CMS (public)",
            response_class=Response)
def get_master_list(services: ServicesDep) -> Response:
    with services.store.transaction() as tx:
        return Response(current(tx, PublishedKind.MASTER_LIST).der, media_type="application/octet-stream")


@router.get("/pub/trusted-roots", tags=["publication"], summary="CSCA / CVCA certificates and links (public)")
def get_trusted_roots(services: ServicesDep) -> list[dict[str, Any]]:
    with services.store.transaction() as tx:
        return trusted_roots(tx)
