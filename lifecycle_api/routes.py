"""HTTP routes.  Each state-changing route is one workflow step in one transaction.

Routes parse, authorise (`allow(...)`), open the transaction and call one decide function;
they neither check permissions inline nor map errors (that is `problems.py`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from .audit import verify_chain
from .auth import ALL_PARTIES, Caller, allow
from .errors import NotFound
from .notifications import notification_view
from .organisations import create_operator, create_organisation, register_certificate
from .schemas import (
    AuditVerification,
    CrlPublic,
    DerIn,
    Health,
    NotificationPublic,
    OperatorCreate,
    OperatorCreated,
    OrganisationCertificateIn,
    OrganisationCertificatePublic,
    OrganisationCreate,
    OrganisationPublic,
    RequestPublic,
    SignaturePublic,
    SignedDocumentIn,
)
from .services import Services
from .store import PartyType, RequestState, StoreTx
from .store import Request as RequestRow
from .workflow import (
    act_and_record,
    after_countersigned,
    countersign,
    list_requests,
    queue,
    reject,
    submit_request,
    visible_request,
)

P = PartyType


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
ProviderCaller = Annotated[Caller, Depends(allow(P.PROVIDER))]
AnyCaller = Annotated[Caller, Depends(allow(*ALL_PARTIES))]
RequesterCaller = Annotated[Caller, Depends(allow(P.AGENCY, P.FOREIGN_STATE, P.IS_OPERATOR))]
CoyeuCaller = Annotated[Caller, Depends(allow(P.COYEU))]
ReviewerCaller = Annotated[Caller, Depends(allow(P.COYEU, P.PROVIDER))]

router = APIRouter(prefix="/v1")


def request_public(tx: StoreTx, req: RequestRow) -> RequestPublic:
    return RequestPublic(
        id=req.id,
        request_type=req.request_type,
        document_type=req.document_type,
        applicant_organisation_id=req.applicant_organisation_id,
        ministry=req.ministry,
        state=req.state.value,
        payload=req.payload,
        deadline=req.deadline,
        rejection_reason=req.rejection_reason,
        result=req.result,
        created_at=req.created_at,
        updated_at=req.updated_at,
        signatures=[
            SignaturePublic(
                organisation_id=s.organisation_id,
                purpose=s.purpose.value,
                signing_time=s.signing_time,
                signer_fingerprint_sha256=s.signer_fingerprint_sha256,
                content_sha256=s.content_sha256,
            )
            for s in tx.request_signatures(req.id)
        ],
    )


# --- public ------------------------------------------------------------------------------------


@router.get("/health", tags=["service"], summary="Liveness and database reachability")
def health(services: ServicesDep) -> Health:
    with services.store.transaction() as tx:
        tx.organisations_of_type(PartyType.PROVIDER)
    return Health(status="ok", time=services.clock.now(), database=services.store.engine.dialect.name,
                  request_types=services.handlers.types())


# --- organisations (Provider administration) ---------------------------------------------------


@router.post("/organisations", status_code=status.HTTP_201_CREATED, tags=["organisations"],
             summary="Register a party (Provider only)")
def post_organisation(body: OrganisationCreate, caller: ProviderCaller, services: ServicesDep) -> OrganisationPublic:
    with services.store.transaction() as tx:
        org = create_organisation(tx, services, caller, **body.model_dump())
        return OrganisationPublic.model_validate(org)


@router.get("/organisations", tags=["organisations"], summary="List parties (Provider only)")
def get_organisations(caller: ProviderCaller, services: ServicesDep) -> list[OrganisationPublic]:
    with services.store.transaction() as tx:
        return [OrganisationPublic.model_validate(o) for o in tx.organisations()]


@router.get("/organisations/{organisation_id}", tags=["organisations"],
            summary="One party: the Provider sees all, a party sees itself")
def get_organisation(organisation_id: int, caller: AnyCaller, services: ServicesDep) -> OrganisationPublic:
    if caller.party_type is not P.PROVIDER and caller.organisation_id != organisation_id:
        raise NotFound(f"organisation {organisation_id} does not exist")
    with services.store.transaction() as tx:
        return OrganisationPublic.model_validate(tx.organisation(organisation_id))


@router.post("/organisations/{organisation_id}/certificates", status_code=status.HTTP_201_CREATED,
             tags=["organisations"], summary="Register an official-use certificate (Provider only)")
def post_organisation_certificate(organisation_id: int, body: OrganisationCertificateIn, caller: ProviderCaller,
                                  services: ServicesDep) -> OrganisationCertificatePublic:
    with services.store.transaction() as tx:
        row = register_certificate(tx, services, caller, organisation_id, body.data(), hsm_label=body.hsm_label)
        return OrganisationCertificatePublic.model_validate(row)


@router.post("/organisations/{organisation_id}/operators", status_code=status.HTTP_201_CREATED,
             tags=["organisations"], summary="Create an operator or service account; the token is shown once")
def post_operator(organisation_id: int, body: OperatorCreate, caller: ProviderCaller,
                  services: ServicesDep) -> OperatorCreated:
    with services.store.transaction() as tx:
        new = create_operator(tx, services, caller, organisation_id, name=body.name, kind=body.kind)
        op = new.operator
        return OperatorCreated(id=op.id, organisation_id=op.organisation_id, name=op.name, kind=op.kind, token=new.token)


@router.post("/trust/crls", status_code=status.HTTP_201_CREATED, tags=["organisations"],
             summary="Import a CRL of the government CA, used to check signers at signing time (Provider only)")
def post_org_pki_crl(body: DerIn, caller: ProviderCaller, services: ServicesDep) -> CrlPublic:
    with services.store.transaction() as tx:
        row = services.checker.import_crl(tx, body.data(), services.clock.now())
        tx.append_audit(at=services.clock.now(), action="trust.crl_imported", entity_type="crl", entity_id=row.id,
                        details={"issuer": row.issuer_name, "crl_number": row.crl_number},
                        actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
        return CrlPublic.model_validate(row)


# --- the request workflow ----------------------------------------------------------------------


@router.post("/requests", status_code=status.HTTP_201_CREATED, tags=["requests"],
             summary="Submit a signed request (Agency; foreign state / IS operator where the request type allows)")
def post_request(body: SignedDocumentIn, caller: RequesterCaller, services: ServicesDep) -> RequestPublic:
    with services.store.transaction() as tx:
        req = submit_request(tx, services, caller, body.der())
        request_id, countersigned = req.id, req.state is RequestState.COUNTERSIGNED
    if countersigned:  # its Cơ yếu unit countersigned automatically: the Provider's policy may act now
        after_countersigned(services, request_id)
    with services.store.transaction() as tx:
        return request_public(tx, tx.request(request_id))


@router.get("/requests", tags=["requests"], summary="Requests the caller may see")
def get_requests(caller: AnyCaller, services: ServicesDep) -> list[RequestPublic]:
    with services.store.transaction() as tx:
        return [request_public(tx, r) for r in list_requests(tx, caller)]


@router.get("/requests/overdue", tags=["requests"], summary="Open requests past their deadline (Provider only)")
def get_overdue(caller: ProviderCaller, services: ServicesDep) -> list[RequestPublic]:
    with services.store.transaction() as tx:
        return [request_public(tx, r) for r in tx.overdue_requests(services.clock.now())]


@router.get("/requests/{request_id}", tags=["requests"], summary="One request, if the caller is a party to it")
def get_request(request_id: str, caller: AnyCaller, services: ServicesDep) -> RequestPublic:
    with services.store.transaction() as tx:
        return request_public(tx, visible_request(tx, caller, request_id))


@router.post("/requests/{request_id}/countersign", tags=["requests"],
             summary="Countersign a request of the caller's ministry (Cơ yếu unit only)")
def post_countersign(request_id: str, body: SignedDocumentIn, caller: CoyeuCaller,
                     services: ServicesDep) -> RequestPublic:
    with services.store.transaction() as tx:
        countersign(tx, services, caller, request_id, body.der())
    after_countersigned(services, request_id)  # the Provider's policy: act at once on some types
    with services.store.transaction() as tx:
        return request_public(tx, tx.request(request_id))


@router.post("/requests/{request_id}/reject", tags=["requests"],
             summary="Reject with a signed reason (Cơ yếu unit before countersigning, Provider after)")
def post_reject(request_id: str, body: SignedDocumentIn, caller: ReviewerCaller, services: ServicesDep) -> RequestPublic:
    with services.store.transaction() as tx:
        req = reject(tx, services, caller, request_id, body.der())
        handler = services.handlers.get(req.request_type)
    if handler.after_rejection is not None:  # e.g. destroy the DS key generated for the request
        handler.after_rejection(services, req)
    with services.store.transaction() as tx:
        return request_public(tx, tx.request(request_id))


@router.post("/requests/{request_id}/act", tags=["requests"],
             summary="The Provider acts on a countersigned request through its type's handler")
def post_act(request_id: str, caller: ProviderCaller, services: ServicesDep) -> RequestPublic:
    req = act_and_record(services.store, services, caller, request_id)
    with services.store.transaction() as tx:
        return request_public(tx, tx.request(req.id))


@router.get("/queue", tags=["requests"],
            summary="What waits for the caller: countersignatures (Cơ yếu unit) or actions (Provider)")
def get_queue(caller: ReviewerCaller, services: ServicesDep) -> list[RequestPublic]:
    with services.store.transaction() as tx:
        return [request_public(tx, r) for r in queue(tx, caller)]


# --- notifications and audit -------------------------------------------------------------------


@router.get("/notifications", tags=["notifications"], summary="The caller's organisation's notifications")
def get_notifications(caller: AnyCaller, services: ServicesDep) -> list[NotificationPublic]:
    with services.store.transaction() as tx:
        return [NotificationPublic(**notification_view(m)) for m in tx.notifications(caller.organisation_id)]


@router.get("/audit/verify", tags=["audit"], summary="Recompute the audit hash chain (Provider only)")
def get_audit_verify(caller: ProviderCaller, services: ServicesDep) -> AuditVerification:
    with services.store.transaction() as tx:
        report = verify_chain(tx.audit_entries())
    return AuditVerification(ok=report.ok, entries=report.entries, head_hash=report.head_hash,
                             first_broken_seq=report.first_broken_seq, reason=report.reason)
