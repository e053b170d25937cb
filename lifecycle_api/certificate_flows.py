"""The certificate flows of REQUIREMENTS.md §3, as request handlers of the workflow.

Each flow is the same three hops — the applicant signs, its ministry's Cơ yếu unit
countersigns, the Provider acts — and the Provider's act is decide / sign / store: the
handler's `prepare` decides (read-only) and signs through the sign component outside any
transaction; its `act` stores the product in the workflow step's one transaction.

Request types (payload fields; every binary value base64):

* ``ds_certificate`` (Agency): ``{"hsm_label", "csr"}`` — the DS key the Agency generated in
  the service's HSM (`POST /v1/ds/keys`) and its PKCS#10 request; the Provider issues from
  the CSCA of the document type with PKUP ≤ the decree's DS key-usage limit and a
  signature budget from the policy.  Optional ``key_usage_months``, ``validity_months``.
* ``is_certificate`` (Agency, IS operator): ``{"cv_request"}`` — a CV request naming our DV
  (CAR).  A renewal is an authenticated request whose outer signature is made with the
  applicant's *current* IS key (its certificate's CHR as outer CAR); only the holder of that
  certificate may renew it.  Optional ``validity_days``.  When the requested key is an IS key
  of the applicant generated in the service's HSM (`POST /v1/is/keys`, `create_is_key`, or a
  renewal by `signing.is_renewal`), issuing the certificate activates that key and links the
  certificate to it, so the schedules can renew it and later destroy it.
* ``foreign_dv_certificate`` (Agency): ``{"cv_request", "foreign_state_organisation_id"}`` —
  a foreign DV's request, authenticated (TR-03139 Table 2) by that state's CVCA registered
  for the request's document type (initial request) or by the DV's still-valid certificate
  that our CVCA issued to that state (successive request: same country code and holder
  mnemonic, new sequence number); the Provider issues a foreign-DV certificate (role 01)
  from our CVCA.  The requested CHR must start with the state's country code and be new: a
  CHR any certificate here holds (active, expired or revoked), or that an earlier request of
  the state still pending asks for, is refused, at submission and again when the Provider
  acts.  The result names the outer CAR (``authenticated_by``) and ``successive``.
* ``dv_request_abroad`` (Agency): ``{"foreign_state_organisation_id"}`` — the Provider
  generates our DV key and its CV request to that state's newest CVCA of the request's
  document type, always outer-signed: by our newest DV certificate from that hierarchy that
  is valid now and whose key can sign (successive request; the scheduler's renewals abroad),
  else by our CVCA (initial request: the first one, or after every earlier certificate
  expired).  The result names the outer CAR (``authenticated_by``), ``successive`` and the
  valid certificates ``passed_over`` because their key cannot sign (with why); the
  request is returned for export and the foreign certificate comes back through
  `POST /v1/cv/foreign-certificates` (`import_foreign_dv_certificate`).
* ``revocation`` (Agency, IS operator): see `revocation.py`.

A foreign state's CVCAs are registered per document type (`register_foreign_cvca`): a state
may run separate EAC hierarchies for passports and ID cards, and the two foreign flows above
stay within the hierarchy of their request's document type.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from cvc.builders import build_authenticated_request, build_dv_certificate, build_request, build_terminal_certificate
from cvc.certificate import AuthenticatedRequest, ChatRole, CvRequest, parse_request
from cvc.certificate import parse_certificate as parse_cv_certificate
from cvc.errors import CvcError
from cvc.reference import HolderReference
from cvc.validation import check_chain_at, trust_point, verify_chain_at, verify_request
from icao_pki.certificate import build_ds_certificate, parse_certificate
from icao_pki.keystore import KEY_SPECS, KeyInactive, KeyNotFound, KeyStoreError
from icao_pki.names import DistinguishedName
from icao_pki.pa import mrz_country_to_alpha2
from icao_pki.policy import (
    CertificateFormat,
    DocumentType,
    Policy,
    PolicyViolation,
    Role,
    Window,
    add_months,
    cv_max_expiration,
)
from icao_pki.signature import load_spki

from .auth import Caller
from .authority import Authority, AuthorityError, CaKey, GeneratedKey, Signed
from .ceremonies import crl_url, dv_chr
from .csr import build_csr, parse_and_verify_csr
from .deadlines import DeadlineRule
from .errors import Conflict, Forbidden, InternalFailure, InvalidInput, NotFound, ServiceUnavailable
from .handlers import ActContext, HandlerRegistry, PrepareContext, RequestHandler
from .hierarchy import (
    CvChain,
    authority_of,
    certificate_view,
    current_ca,
    cv_chain,
    day_end,
    day_start,
    fingerprint,
    publish,
    store_cv,
    store_x509,
)
from .services import Services
from .store import (
    AuditEntry,
    Certificate,
    CertificateStatus,
    Key,
    KeyState,
    Organisation,
    PartyType,
    PublishedKind,
    Request,
    RequestState,
    StoreTx,
)

DS = "ds_certificate"
IS = "is_certificate"
FOREIGN_DV = "foreign_dv_certificate"
DV_ABROAD = "dv_request_abroad"
DEFAULT_DS_SPEC = {DocumentType.PASSPORT: "brainpoolP256r1", DocumentType.IDCARD: "rsa2048"}
#: audit actions naming the CHR promised to an IS key not yet certified
IS_KEY_GENERATED = "is.key_generated"
RENEWAL_REQUESTED = "is.renewal_requested"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bytes(payload: Mapping[str, Any], name: str) -> bytes:
    value = payload.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"payload.{name} (base64) is required")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"payload.{name} is not base64") from None


def _int(payload: Mapping[str, Any], name: str, default: int) -> int:
    value = payload.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInput(f"payload.{name} must be a positive integer")
    return value


_REF = datetime(2001, 1, 1, tzinfo=UTC)


# --- DS -------------------------------------------------------------------------------------


def ds_subject(document_type: DocumentType, organisation: str, label: str) -> DistinguishedName:
    return DistinguishedName(common_name=f"Document Signer {document_type.label} {label}",
                             organizational_unit=organisation[:64])


def create_ds_key(services: Services, caller: Caller, document_type: DocumentType, key_spec: str | None) -> dict[str, Any]:
    """The Agency's DS key, generated in the service's HSM, with its CSR (proof of possession).

    The key is known to the database (state generated, holder the Agency) only when the
    step commits; a failure destroys it, a crash leaves it to `Authority.recover`."""
    if caller.party_type is not PartyType.AGENCY:
        raise Forbidden("only an Agency requests DS keys")
    authority = authority_of(services)
    with services.store.transaction() as tx:
        org = tx.organisation(caller.organisation_id)
        if document_type.value not in org.document_types:
            raise Forbidden(f"{org.name} does not serve {document_type.label} issuance")
        org_name = org.name
    spec = key_spec or DEFAULT_DS_SPEC[document_type]
    key = authority.generate_key(document_type, Role.DS, spec, purpose=f"DS key of {org_name}")
    try:
        subject = ds_subject(document_type, org_name, key.label).to_asn1()
        csr = authority.sign(key.signer, key.label, lambda s: build_csr(s, subject),
                             lambda der: _same_key(parse_and_verify_csr(der).spki_der, key), purpose="DS CSR")
        now = services.clock.now()
        with services.store.transaction() as tx:
            row = tx.add_key(hsm_label=key.label, role=Role.DS, document_type=document_type, algorithm=spec, now=now,
                             organisation_id=caller.organisation_id, state=KeyState.GENERATED)
            authority.commit(tx, key.operation_id)
            authority.commit(tx, csr.operation_id)
            tx.append_audit(at=now, action="ds.key_generated", entity_type="key", entity_id=row.id,
                            details={"hsm_label": key.label, "document_type": document_type.value, "spec": spec},
                            actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
            return {"key_id": row.id, "hsm_label": key.label, "document_type": document_type.value,
                    "csr": b64(csr.der)}
    except BaseException as exc:
        if isinstance(exc, Exception):  # a crash (KeyboardInterrupt, kill) is left to recovery
            authority.discard(key, f"DS key request failed: {type(exc).__name__}: {exc}",
                              actor_organisation_id=caller.organisation_id)
        raise


def _same_key(spki_der: bytes, key: GeneratedKey) -> None:
    if load_spki(spki_der) != load_spki(key.signer.public_key_info()):
        raise InvalidInput("the CSR does not carry the generated key")


def validate_ds(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    _bytes(payload, "csr")
    if not isinstance(payload.get("hsm_label"), str):
        raise InvalidInput("payload.hsm_label (the DS key's label) is required")
    assert document_type is not None
    limit = policy.limit(document_type, Role.DS)
    usage = _int(payload, "key_usage_months", limit.key_usage_months)
    validity = _int(payload, "validity_months", limit.certificate_validity_months)
    policy.check_certificate(Role.DS, document_type, Window(_REF, add_months(_REF, validity)),
                             key_usage=Window(_REF, add_months(_REF, usage)))


def check_ds_submission(tx: StoreTx, caller: Caller, payload: Mapping[str, Any]) -> None:
    """At submission: the CSR proves possession and names a DS key of the applicant not yet certified."""
    csr = parse_and_verify_csr(_bytes(payload, "csr"))
    key = tx.key_by_label(payload["hsm_label"])
    if key is None or key.organisation_id != caller.organisation_id or key.role is not Role.DS:
        raise InvalidInput(f"{payload['hsm_label']} is not a DS key of the applicant")
    if key.state is not KeyState.GENERATED:
        raise InvalidInput(f"DS key {key.hsm_label} is {key.state.value}; a DS key is certified once")
    del csr


def destroy_rejected_ds_key(services: Services, req: Any) -> None:
    """A rejected DS request: its key will never be certified, so it leaves the HSM (recorded)."""
    label = req.payload.get("hsm_label")
    now = services.clock.now()
    with services.store.transaction() as tx:
        key = tx.key_by_label(label) if isinstance(label, str) else None
        if key is None or key.state is not KeyState.GENERATED or key.organisation_id != req.applicant_organisation_id:
            return
        key_id = key.id
    record = authority_of(services).keystore.destroy(label, reason=f"DS request {req.id} rejected")
    with services.store.transaction() as tx:
        tx.set_key_state(key_id, KeyState.GENERATED, KeyState.DESTROYED, now=now)
        tx.append_audit(at=now, action="hsm.key_destroyed", entity_type="key", entity_id=key_id,
                        details={"hsm_label": label, "reason": f"DS request {req.id} rejected",
                                 "spki_sha256": record.get("spki_sha256")},
                        actor_organisation_id=req.applicant_organisation_id)


@dataclass(frozen=True)
class _PreparedDs:
    signed: Signed
    key_id: int
    csca_id: int
    usage: Window
    max_signatures: int | None


def prepare_ds(ctx: PrepareContext) -> _PreparedDs:
    services, req, now = ctx.services, ctx.request, ctx.now
    authority = authority_of(services)
    doc = DocumentType(req.document_type)
    csr = parse_and_verify_csr(_bytes(req.payload, "csr"))
    label = req.payload["hsm_label"]
    with services.store.transaction() as tx:
        key = tx.key_by_label(label)
        if key is None or key.organisation_id != req.applicant_organisation_id or key.role is not Role.DS \
                or key.document_type is not doc:
            raise InvalidInput(f"{label} is not a {doc.value} DS key of the applicant", hsm_label=label)
        if key.state is not KeyState.GENERATED:
            raise InvalidInput(f"DS key {label} is {key.state.value}; a DS key is certified once", hsm_label=label)
        if load_spki(authority.keystore.signer(label).public_key_info()) != csr.public_key:
            raise InvalidInput(f"the CSR does not carry the key {label} holds")
        org_name = tx.organisation(req.applicant_organisation_id).name
        csca_row, ca = current_ca(tx, authority, Role.CSCA, doc, now, CertificateFormat.X509)
        key_id = key.id
    limit = ctx.policy.limit(doc, Role.DS)
    usage = Window(now, add_months(now, _int(req.payload, "key_usage_months", limit.key_usage_months)))
    end = add_months(now, _int(req.payload, "validity_months", limit.certificate_validity_months))
    validity = Window(now, min(end, csca_row.not_after))
    assert ca.x509 is not None
    csca = ca.x509
    subject = ds_subject(doc, org_name, label)

    def build(signer: Any) -> bytes:
        return build_ds_certificate(signer, csca, csr.spki_der, subject, validity=validity, private_key_usage=usage,
                                    document_type=doc, crl_distribution_points=[crl_url(services, doc)],
                                    policy=ctx.policy)

    signed = authority.sign(ca.signer, ca.label, build, lambda der: parse_certificate(der).verify_issued_by(csca),
                            purpose="DS certificate", request_id=req.id)
    return _PreparedDs(signed, key_id, ca.certificate_id, usage, limit.max_signatures)


def act_ds(ctx: ActContext) -> dict[str, Any]:
    p: _PreparedDs = ctx.prepared
    doc = DocumentType(ctx.request.document_type)
    authority = authority_of(_services_of(ctx))
    ctx.tx.activate_key(p.key_id, expected=KeyState.GENERATED, usage_not_before=p.usage.start,
                        usage_not_after=p.usage.end, max_signatures=p.max_signatures)
    cert = store_x509(ctx.tx, p.signed.der, role=Role.DS, document_type=doc, now=ctx.now, key_id=p.key_id,
                      issuer_certificate_id=p.csca_id, organisation_id=ctx.request.applicant_organisation_id,
                      request_id=ctx.request.id)
    publish(ctx.tx, PublishedKind.DS, p.signed.der, f"DS {cert.subject}", ctx.now, document_type=doc,
            certificate_id=cert.id)
    authority.commit(ctx.tx, p.signed.operation_id)
    key = ctx.tx.key(p.key_id)
    return {**certificate_view(cert), "hsm_label": key.hsm_label, "key_id": key.id,
            "max_signatures": p.max_signatures, "key_usage_not_after": p.usage.end.isoformat()}


# --- CV: IS certificates -----------------------------------------------------------------------


def _cv_request(payload: Mapping[str, Any]) -> CvRequest | AuthenticatedRequest:
    try:
        return parse_request(_bytes(payload, "cv_request"))
    except CvcError as exc:
        raise InvalidInput(f"payload.cv_request is not a CV request: {exc}") from None


def validate_is(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    _cv_request(payload)
    assert document_type is not None
    days = _int(payload, "validity_days", 30)
    start = date(2001, 1, 1)
    policy.check_certificate(Role.IS, document_type, Window(start, start + timedelta(days=days - 1)),
                             certificate_format=CertificateFormat.CV)


@dataclass(frozen=True)
class _PreparedCv:
    signed: Signed
    issuer_id: int
    chain: list[bytes]
    role: Role
    holder_id: int
    others: tuple[Signed, ...] = ()
    #: the holder's IS key in our HSM that this certificate certifies (activated by `act_cv`)
    key_id: int | None = None


def _dv_for(tx: StoreTx, car: str | None, doc: DocumentType, now: datetime) -> Certificate:
    """Our DV named by the request's CAR (domestic, or certified by a foreign CVCA)."""
    if car is not None:
        row = tx.certificate_by_chr(car)
        if row is not None and row.role is Role.DVCA and row.key_id is not None:
            return row
        raise InvalidInput(f"the request names CAR {car}, which is not a DV of this service", car=car)
    found = tx.active_ca(Role.DVCA, doc, now, certificate_format=CertificateFormat.CV)
    if found is None:
        raise NotFound(f"no active {doc.value} DV; run the DVCA ceremony")
    return found[0]


def prepare_is(ctx: PrepareContext) -> _PreparedCv:
    services, req, now = ctx.services, ctx.request, ctx.now
    authority = authority_of(services)
    doc = DocumentType(req.document_type)
    request = _cv_request(req.payload)
    inner = request.request if isinstance(request, AuthenticatedRequest) else request
    today = now.date()
    with services.store.transaction() as tx:
        dv_row = _dv_for(tx, inner.car, doc, now)
        if dv_row.status is not CertificateStatus.ACTIVE or not (dv_row.not_before <= now <= dv_row.not_after):
            raise InvalidInput(f"DV {dv_row.chr} is not valid now")
        chain = cv_chain(tx, dv_row)
        dv = authority.load_ca(tx, dv_row, inherited_curve=chain.trust.public_key.curve)
        authority.check_key(tx, dv, now)
        if isinstance(request, AuthenticatedRequest):
            _check_renewal(tx, request, req.applicant_organisation_id, today)
        if tx.certificate_by_chr(inner.chr) is not None:
            raise InvalidInput(f"{inner.chr} is already certified; a new key needs a new holder reference")
    try:
        verify_request(request)
        requested_key = inner.public_key.public_key()
    except CvcError as exc:
        raise InvalidInput(f"the CV request does not verify: {exc}") from None
    with services.store.transaction() as tx:
        held_key_id = _held_is_key(tx, services, req.applicant_organisation_id, doc, requested_key)
    assert dv.cv is not None
    dv_cert = dv.cv
    days = _int(req.payload, "validity_days", 30)
    expiration = min(today + timedelta(days=days - 1), cv_max_expiration(today, ctx.policy.limit(doc, Role.IS)
                                                                          .certificate_validity_months),
                     dv_cert.expiration_date)

    def build(signer: Any) -> bytes:
        return build_terminal_certificate(signer, dv_cert, request, effective_date=today, expiration_date=expiration,
                                          document_type=doc, policy=ctx.policy)

    signed = authority.sign(
        dv.signer, dv.label, build,
        lambda der: _ok(verify_chain_at(chain.trust, [*chain.chain, parse_cv_certificate(der)], today)),
        purpose="IS certificate", request_id=req.id)
    return _PreparedCv(signed, dv.certificate_id, [r.der for r in chain.rows], Role.IS, req.applicant_organisation_id,
                       key_id=held_key_id)


def _check_renewal(tx: StoreTx, request: AuthenticatedRequest, applicant: int, today: date) -> None:
    """Outer signature by the applicant's *current* IS certificate (TR-03110-3 C.2.6)."""
    current = tx.certificate_by_chr(request.outer_car)
    if current is None or current.role is not Role.IS:
        raise InvalidInput(f"outer CAR {request.outer_car} is not an IS certificate of this service")
    if current.organisation_id != applicant:
        raise Forbidden("an IS operator can only renew its own IS certificates", outer_car=request.outer_car)
    if current.status is not CertificateStatus.ACTIVE:
        raise InvalidInput(f"{request.outer_car} is {current.status.value}; renew only with a current certificate")
    chain = cv_chain(tx, current)
    report = check_chain_at(chain.trust, chain.chain, today)
    if report.findings or report.terminal is None:
        raise InvalidInput(f"the current IS certificate {request.outer_car} is not valid today",
                           findings=[f.message for f in report.findings])
    try:
        request.verify_outer_signature(report.terminal.public_key, report.terminal.algorithm)
    except CvcError as exc:
        raise InvalidInput(f"the outer signature does not verify with {request.outer_car}: {exc}") from None


def act_cv(ctx: ActContext) -> dict[str, Any]:
    p: _PreparedCv = ctx.prepared
    doc = DocumentType(ctx.request.document_type)
    authority = authority_of(_services_of(ctx))
    held: dict[str, Any] = {}
    if p.key_id is not None:  # an IS key of the holder in our HSM: usable (renewable) from now on
        issued = parse_cv_certificate(p.signed.der)
        ctx.tx.activate_key(p.key_id, expected=KeyState.GENERATED, usage_not_before=day_start(issued.effective_date),
                            usage_not_after=day_end(issued.expiration_date), max_signatures=None)
        held = {"key_id": p.key_id, "hsm_label": ctx.tx.key(p.key_id).hsm_label}
    cert = store_cv(ctx.tx, p.signed.der, role=p.role, document_type=doc, now=ctx.now, key_id=p.key_id,
                    issuer_certificate_id=p.issuer_id, organisation_id=p.holder_id, request_id=ctx.request.id)
    authority.commit(ctx.tx, p.signed.operation_id)
    for other in p.others:
        authority.commit(ctx.tx, other.operation_id)
    if p.holder_id != ctx.request.applicant_organisation_id:
        ctx.tx.enqueue_notification(organisation_id=p.holder_id, event="certificate.issued",
                                    payload={"event": "certificate.issued", "request_id": ctx.request.id,
                                             "certificate": b64(p.signed.der), "chr": cert.chr},
                                    now=ctx.now, request_id=ctx.request.id)
    return {**certificate_view(cert), "chain": [b64(d) for d in p.chain], **held}


# --- CV: IS keys generated in the service's HSM -------------------------------------------------


def _holder_country(country: str) -> str:
    """The CHR's two-letter country: the holder's own, else Viet Nam (our DV certifies domestic terminals)."""
    code = (country or "").upper()
    return code if len(code) == 2 and code.isalpha() else "VN"


def _reserved_is_chrs(tx: StoreTx, organisation_id: int, certificate_ids: list[int]) -> set[str]:
    """CHRs already promised to the holder's IS keys that are not certified yet: those of its
    generated IS keys (`create_is_key`) and of its renewal requests (`signing.is_renewal`).
    Looked up by entity (indexed), never by scanning the audit log."""
    key_ids = tx.session.scalars(
        select(Key.id).where(Key.role == Role.IS, Key.organisation_id == organisation_id,
                             Key.state == KeyState.GENERATED)
    ).all()  # fmt: skip
    reserved: set[str] = set()
    for entity_type, ids, action in (("key", key_ids, IS_KEY_GENERATED),
                                     ("certificate", certificate_ids, RENEWAL_REQUESTED)):
        if not ids:
            continue
        for details in tx.session.scalars(
            select(AuditEntry.details).where(AuditEntry.entity_type == entity_type,
                                             AuditEntry.entity_id.in_([str(i) for i in ids]),
                                             AuditEntry.action == action)
        ).all():  # fmt: skip
            if isinstance(details, dict) and isinstance(details.get("chr"), str):
                reserved.add(details["chr"])
    return reserved


def next_is_chr(tx: StoreTx, organisation_id: int, document_type: DocumentType, after: str | None = None) -> str:
    """The holder's next IS certificate holder reference.

    A chip refuses a key whose CHR it already knows (TR-03110-3 A.7.1), so a new IS key
    always gets a new sequence number: the one after `after` (the certificate being renewed)
    or after the holder's latest IS certificate of this document type; for a holder without
    one, ``<country>IS<P|I><organisation id>00001``.  Skips every CHR already certified and
    every CHR promised to a key of the holder still waiting for its certificate."""
    certificates = [c for c in tx.certificates(role=Role.IS, organisation_id=organisation_id,
                                               certificate_format=CertificateFormat.CV) if c.chr]
    reserved = _reserved_is_chrs(tx, organisation_id, [c.id for c in certificates])
    if after is None:
        same_type = [c for c in certificates if DocumentType(c.document_type) is DocumentType(document_type)]
        after = same_type[-1].chr if same_type else None
    if after is None:
        org = tx.organisation(organisation_id)
        letter = _IS_DOC_LETTER[DocumentType(document_type)]
        reference = HolderReference(_holder_country(org.country), f"IS{letter}{org.id % 1_000_000:04d}", "00001")
    else:
        reference = HolderReference.parse(after).next_sequence()
    while tx.certificate_by_chr(str(reference)) is not None or str(reference) in reserved:
        reference = reference.next_sequence()
    return str(reference)


_IS_DOC_LETTER = {DocumentType.PASSPORT: "P", DocumentType.IDCARD: "I"}


def _chain_root_is_ours(tx: StoreTx, row: Certificate) -> bool:
    return cv_chain(tx, row).rows[0].key_id is not None


def _is_issuer(tx: StoreTx, car: str | None, document_type: DocumentType, now: datetime) -> Certificate:
    """The DV an IS key's request names: the one asked for (a DV of this service), else our
    domestic DV (chain up to our own CVCA) valid now, with its key active."""
    if car is not None:
        row = _dv_for(tx, car, document_type, now)
        if DocumentType(row.document_type) is not DocumentType(document_type):
            raise InvalidInput(f"DV {car} issues {DocumentType(row.document_type).value} certificates, "
                               f"not {document_type.value}", car=car)
        candidates = [row]
    else:
        candidates = sorted(tx.certificates(role=Role.DVCA, document_type=document_type,
                                            certificate_format=CertificateFormat.CV,
                                            statuses=[CertificateStatus.ACTIVE]),
                            key=lambda r: (r.not_before, r.id), reverse=True)  # fmt: skip
    for row in candidates:
        if row.key_id is None or row.status is not CertificateStatus.ACTIVE:
            continue
        if not (row.not_before <= now <= row.not_after):
            continue
        key = tx.key(row.key_id)
        if key.state is not KeyState.ACTIVE or (key.usage_not_after is not None and key.usage_not_after < now):
            continue
        if car is None and not _chain_root_is_ours(tx, row):
            continue  # a DV certified by a foreign CVCA is named explicitly, never picked by default
        return row
    if car is not None:
        raise InvalidInput(f"DV {car} is not valid now or its key is not active", car=car)
    raise NotFound(f"no active {document_type.value} DV; run the DVCA ceremony", document_type=document_type.value)


def _is_key_spec(trust_curve: Any, dv: Any) -> str:
    """The new key's type: the chain's curve (a terminal key inherits the CVCA's domain
    parameters, so any other curve could not be verified by a chip), or RSA of the DV's size."""
    if trust_curve is not None:
        spec = str(trust_curve.name)
    else:
        spec = f"rsa{dv.public_key.bits}"
    if spec not in KEY_SPECS:
        raise ServiceUnavailable(f"the DV chain uses {spec}, which this key store cannot generate", spec=spec)
    return spec


def create_is_key(services: Services, caller: Caller, document_type: DocumentType,
                  car: str | None = None) -> dict[str, Any]:
    """The caller's IS key, generated in the service's HSM, with its CV request ready to submit.

    Why here rather than in the terminal: the schedules can renew an IS certificate (1 month,
    Art. 23.2c / 26.2c) without a human only when the service's HSM holds the current key
    (`signing.is_renewal`).  The key is generated on the DV chain's curve, the request's inner
    signature is made by it (CHR: the holder's next, CAR: our DV valid now) and checked
    before it is handed out.  The key is known to the database (role IS, state generated,
    holder the caller's organisation) only when this step commits; a failure destroys it,
    a crash leaves it to `Authority.recover`.  Submitting the request as an ``is_certificate``
    and its completion make the key active, linked to its certificate."""
    if caller.party_type not in (PartyType.AGENCY, PartyType.IS_OPERATOR):
        raise Forbidden("only an IS operator or an Agency requests IS keys", party_type=caller.party_type.value)
    authority = authority_of(services)
    now = services.clock.now()
    with services.store.transaction() as tx:
        org = tx.organisation(caller.organisation_id)
        if document_type.value not in org.document_types:
            raise Forbidden(f"{org.name} does not serve {document_type.label} issuance",
                            document_type=document_type.value)
        dv_row = _is_issuer(tx, car, document_type, now)
        chain = cv_chain(tx, dv_row)
        dv_cert = parse_cv_certificate(dv_row.der)
        spec = _is_key_spec(chain.trust.public_key.curve, dv_cert)
        algorithm = dv_cert.public_key.algorithm
        dv_chr_now = str(dv_row.chr)
        chr = next_is_chr(tx, org.id, document_type)
        org_name = org.name
    key = authority.generate_key(document_type, Role.IS, spec, purpose=f"IS key of {org_name}")
    try:
        request = authority.sign(
            key.signer, key.label, lambda s: build_request(s, chr=chr, car=dv_chr_now, algorithm=algorithm),
            lambda der: _own_cv_request(der, key, chr, dv_chr_now), purpose="IS request (inner, new IS key)",
            details={"chr": chr, "car": dv_chr_now},
        )  # fmt: skip
        now = services.clock.now()
        with services.store.transaction() as tx:
            if tx.certificate_by_chr(chr) is not None or chr in _reserved_is_chrs(
                    tx, caller.organisation_id,
                    [c.id for c in tx.certificates(role=Role.IS, organisation_id=caller.organisation_id)]):
                raise Conflict(f"{chr} was taken meanwhile by another IS key of {org_name}; ask again", chr=chr)
            row = tx.add_key(hsm_label=key.label, role=Role.IS, document_type=document_type, algorithm=spec, now=now,
                             organisation_id=caller.organisation_id, state=KeyState.GENERATED)
            authority.commit(tx, key.operation_id)
            authority.commit(tx, request.operation_id)
            tx.append_audit(at=now, action=IS_KEY_GENERATED, entity_type="key", entity_id=row.id,
                            details={"hsm_label": key.label, "document_type": document_type.value, "spec": spec,
                                     "chr": chr, "car": dv_chr_now},
                            actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
            return {"key_id": row.id, "hsm_label": key.label, "document_type": document_type.value, "spec": spec,
                    "chr": chr, "car": dv_chr_now, "cv_request": b64(request.der)}
    except BaseException as exc:
        if isinstance(exc, Exception):  # a crash (KeyboardInterrupt, kill) is left to recovery
            authority.discard(key, f"IS key request failed: {type(exc).__name__}: {exc}",
                              actor_organisation_id=caller.organisation_id)
        raise


def _own_cv_request(der: bytes, key: GeneratedKey, chr: str, car: str) -> None:
    """The request handed out is a plain request for exactly the generated key, CHR and CAR."""
    request = parse_request(der)
    if isinstance(request, AuthenticatedRequest):
        raise InternalFailure("the IS key's request came out authenticated")
    verify_request(request)
    if request.chr != chr or request.car != car:
        raise InternalFailure(f"the IS request names {request.chr} / {request.car}, not {chr} / {car}")
    if load_spki(key.signer.public_key_info()) != request.public_key.public_key():
        raise InternalFailure("the IS request does not carry the generated key")


def _held_is_key(tx: StoreTx, services: Services, applicant: int, document_type: DocumentType,
                 public_key: Any) -> int | None:
    """The applicant's IS key generated in our HSM that this request certifies, if any.

    Matched on the HSM's public key (never on a label the request could name), among the
    applicant's generated IS keys of the document type — a handful at most."""
    authority = authority_of(services)
    keys = tx.session.scalars(
        select(Key).where(Key.role == Role.IS, Key.organisation_id == applicant, Key.state == KeyState.GENERATED,
                          Key.document_type == DocumentType(document_type)).order_by(Key.id)
    ).all()  # fmt: skip
    for key in keys:
        try:
            held = load_spki(authority.keystore.signer(key.hsm_label).public_key_info())
        except KeyStoreError:
            continue
        if held == public_key:
            return key.id
    return None


def destroy_rejected_is_key(services: Services, req: Any) -> None:
    """A rejected IS request for a key generated here: that key will never be certified, so it
    leaves the HSM (recorded), as a rejected DS key does."""
    if services.authority is None or req.document_type is None:
        return  # no HSM here, so no key of ours can be behind the request
    try:
        request = parse_request(_bytes(req.payload, "cv_request"))
    except (CvcError, InvalidInput):
        return
    inner = request.request if isinstance(request, AuthenticatedRequest) else request
    try:
        public_key = inner.public_key.public_key()
    except CvcError:
        return
    now = services.clock.now()
    with services.store.transaction() as tx:
        key_id = _held_is_key(tx, services, req.applicant_organisation_id, DocumentType(req.document_type),
                              public_key)
        if key_id is None:
            return
        label = tx.key(key_id).hsm_label
    reason = f"IS request {req.id} rejected"
    try:
        record = authority_of(services).keystore.destroy(label, reason=reason)
        outcome, spki = "destroyed", record.get("spki_sha256")
    except KeyNotFound:
        outcome, spki = "already absent from the HSM", None
    with services.store.transaction() as tx:
        tx.set_key_state(key_id, KeyState.GENERATED, KeyState.DESTROYED, now=now)
        tx.append_audit(at=now, action="hsm.key_destroyed", entity_type="key", entity_id=key_id,
                        details={"hsm_label": label, "reason": reason, "outcome": outcome, "spki_sha256": spki},
                        actor_organisation_id=req.applicant_organisation_id)


# --- CV: a foreign DV certified by our CVCA ----------------------------------------------------


def validate_foreign_dv(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    request = _cv_request(payload)
    if not isinstance(request, AuthenticatedRequest):
        raise InvalidInput("a foreign DV request must be authenticated: by its state's CVCA (initial request) "
                           "or by the DV's current certificate from us (successive request)")
    if not isinstance(payload.get("foreign_state_organisation_id"), int):
        raise InvalidInput("payload.foreign_state_organisation_id is required")
    assert document_type is not None
    days = _int(payload, "validity_days", 90)
    start = date(2001, 1, 1)
    policy.check_certificate(Role.DVCA, document_type, Window(start, start + timedelta(days=days - 1)),
                             certificate_format=CertificateFormat.CV)


def _foreign_state(tx: StoreTx, organisation_id: Any) -> int:
    org = tx.organisation(organisation_id)
    if org.party_type is not PartyType.FOREIGN_STATE:
        raise InvalidInput(f"organisation {organisation_id} is not a foreign state")
    return org.id


def _documents(document_type: DocumentType) -> str:
    """'passports' / 'ID cards', for refusals that name the EAC hierarchy."""
    return f"{document_type.label}s"


def _registered_cvca(tx: StoreTx, state_id: int, chr: str, document_type: DocumentType) -> Certificate:
    """The state's active registered CVCA with this CHR, in its hierarchy for `document_type`.

    A state may run separate EAC hierarchies for passports and ID cards; a CVCA registered
    for one says nothing about the other, so a CVCA of the other document type is refused by
    name rather than reported as unknown."""
    rows = [row for row in tx.certificates(role=Role.CVCA, organisation_id=state_id,
                                           certificate_format=CertificateFormat.CV)
            if row.chr == chr and row.status is CertificateStatus.ACTIVE]
    for row in rows:
        if DocumentType(row.document_type) is document_type:
            return row
    if rows:
        registered = DocumentType(rows[0].document_type)
        raise InvalidInput(f"{chr} is registered as that state's CVCA for {_documents(registered)}, "
                           f"not for {_documents(document_type)}", chr=chr,
                           registered_document_type=registered.value, document_type=document_type.value)
    raise InvalidInput(f"{chr} is not a registered CVCA of that state", chr=chr)


@dataclass(frozen=True)
class _ForeignDvOuterKey:
    """The key a foreign DV request's outer signature is checked with."""

    public_key: Any
    algorithm: Any
    successive: bool


def _outer_by_state_cvca(tx: StoreTx, state_id: int, request: AuthenticatedRequest, doc: DocumentType,
                         today: date) -> _ForeignDvOuterKey:
    """Initial request: outer-signed by the state's CVCA registered for `doc` (through its links)."""
    outer_chain = cv_chain(tx, _registered_cvca(tx, state_id, request.outer_car, doc))
    if not outer_chain.chain:
        tp = trust_point(outer_chain.trust)
        return _ForeignDvOuterKey(tp.public_key, tp.algorithm, successive=False)
    key, algorithm = _end_of_chain_key(outer_chain, today, f"the foreign CVCA chain to {request.outer_car}")
    return _ForeignDvOuterKey(key, algorithm, successive=False)


def _end_of_chain_key(chain: CvChain, today: date, what: str, **data: Any) -> tuple[Any, Any]:
    """The public key and algorithm of the chain's last certificate, once the chain is valid
    today (refused naming `what` otherwise), on the domain parameters it inherits."""
    report = check_chain_at(chain.trust, chain.chain, today)
    if report.findings:
        raise InvalidInput(f"{what} is not valid today", findings=[f.message for f in report.findings], **data)
    last = chain.chain[-1]
    return last.public_key.public_key(_issuing_curve(chain)), last.public_key.algorithm


def _same_holder(new_chr: str, current_chr: str) -> bool:
    """Same country code and holder mnemonic: only the sequence number of a CHR may change."""
    try:
        new, current = HolderReference.parse(new_chr), HolderReference.parse(current_chr)
    except CvcError:
        return False
    return (new.country, new.mnemonic) == (current.country, current.mnemonic)


def _outer_by_current_dv(tx: StoreTx, state_id: int, request: AuthenticatedRequest, doc: DocumentType,
                         now: datetime) -> _ForeignDvOuterKey | None:
    """Successive request: outer-signed by the DV's still-valid certificate that our CVCA issued
    to that state (TR-03110-3 C.2.6, TR-03139 Table 2); None when we issued no DV certificate
    with that CHR at all.

    Why each refusal: a certificate of another state, of the other document type, revoked or
    expired no longer (or never) speaks for this DV; and a DV may only renew itself — the new
    CHR keeps the country code and holder mnemonic of the certificate that authenticates it,
    so DV B cannot vouch for a key of DV A."""
    car = request.outer_car
    issued = [row for row in tx.session.scalars(
        select(Certificate).where(Certificate.chr == car, Certificate.role == Role.DVCA,
                                  Certificate.certificate_format == CertificateFormat.CV)
        .order_by(Certificate.id)
    ).all() if row.issuer_certificate_id is not None and _issued_by_our_cvca(tx, row)]  # fmt: skip
    if not issued:
        return None
    state = tx.organisation(state_id)
    mine = [row for row in issued if row.organisation_id == state_id]
    if not mine:
        holder = issued[-1].organisation_id
        holder_name = tx.organisation(holder).name if holder is not None else "no organisation"
        raise InvalidInput(f"outer CAR {car} is a DV certificate we issued to {holder_name}, not to {state.name}; "
                           "a successive request is authenticated by the DV's own certificate", outer_car=car)
    row = mine[-1]
    issued_for = DocumentType(row.document_type)
    if issued_for is not doc:
        raise InvalidInput(f"outer CAR {car} is a DV certificate for {_documents(issued_for)}, "
                           f"not for {_documents(doc)}", outer_car=car, document_type=doc.value)
    if row.status is CertificateStatus.REVOKED:
        raise InvalidInput(f"the DV certificate {car} that authenticates the request is revoked; "
                           "a successive request needs the DV's still-valid certificate", outer_car=car)
    if row.status is not CertificateStatus.ACTIVE or not (row.not_before <= now <= row.not_after):
        raise InvalidInput(f"the DV certificate {car} that authenticates the request is not valid now "
                           f"({row.not_before:%Y-%m-%d} – {row.not_after:%Y-%m-%d}); when it has expired, "
                           "the request must be an initial one, authenticated by the state's CVCA", outer_car=car)
    if not _same_holder(request.chr, car):
        raise InvalidInput(f"the request for {request.chr} is authenticated by {car}, a DV certificate of "
                           "another holder: a successive request keeps the country code and holder mnemonic "
                           "of the certificate that authenticates it", chr=request.chr, outer_car=car)
    if request.chr == car:
        raise InvalidInput(f"the request reuses the CHR {car} of the certificate that authenticates it; "
                           "a new key needs a new sequence number", chr=request.chr)
    key, algorithm = _end_of_chain_key(cv_chain(tx, row), now.date(),
                                       f"the DV certificate {car} that authenticates the request", outer_car=car)
    return _ForeignDvOuterKey(key, algorithm, successive=True)


def _issued_by_our_cvca(tx: StoreTx, row: Certificate) -> bool:
    assert row.issuer_certificate_id is not None
    issuer = tx.certificate(row.issuer_certificate_id)
    return issuer.role is Role.CVCA and issuer.key_id is not None


def _foreign_dv_outer_key(tx: StoreTx, state_id: int, request: AuthenticatedRequest, doc: DocumentType,
                          now: datetime) -> _ForeignDvOuterKey:
    """Whose outer signature a foreign DV request carries: the state's CVCA (initial request)
    or the DV's current certificate from us (successive); anything else is refused, naming both."""
    car = request.outer_car
    if any(row.chr == car for row in tx.certificates(role=Role.CVCA, organisation_id=state_id,
                                                     certificate_format=CertificateFormat.CV)):
        return _outer_by_state_cvca(tx, state_id, request, doc, now.date())
    found = _outer_by_current_dv(tx, state_id, request, doc, now)
    if found is not None:
        return found
    state = tx.organisation(state_id)
    raise InvalidInput(f"outer CAR {car} is neither a CVCA of {state.name} registered for {_documents(doc)} "
                       "(initial request) nor a DV certificate our CVCA issued to it (successive request)",
                       outer_car=car, document_type=doc.value)


def _state_alpha2(country: str) -> str | None:
    """The state's ISO 3166-1 alpha-2 code, as a CHR carries it (TR-03110-3 A.7.1), or None
    when we cannot tell.

    Organisations store alpha-2, alpha-3 or an ICAO 9303-3 code ("VN", "VNM", "GBD"); the longer
    ones go through the table Passive Authentication already binds documents to countries with
    (`mrz_country_to_alpha2`), so there is one conversion.  A code it does not know (ICAO's
    fictional "UTO") is not compared rather than guessed."""
    code = country.strip().upper()
    if len(code) == 2 and code.isalpha():
        return code
    return mrz_country_to_alpha2(code)


def _check_chr_country(state: Organisation, chr: str, what: str = "DV", named: str = "the requested CHR") -> None:
    """A foreign DV's or CVCA's CHR starts with its own state's country code (TR-03110-3
    A.7.1): a request or a CVCA brought in for one state naming another state's country
    would put a certificate of the wrong state on every inspection system that trusts ours."""
    try:
        reference = HolderReference.parse(chr)
    except CvcError as exc:
        raise InvalidInput(f"{named} {chr!r} is not a holder reference (TR-03110-3 A.7.1: country code, "
                           f"holder mnemonic, sequence number): {exc}", chr=chr) from None
    country = _state_alpha2(state.country)
    if country is not None and reference.country != country:
        stored = f" ({state.country})" if state.country.strip().upper() != country else ""
        raise InvalidInput(f"{named} {chr} has the country code {reference.country}, but {state.name}'s "
                           f"country is {country}{stored}: a {what}'s CHR starts with its own state's ISO 3166-1 "
                           "alpha-2 code (TR-03110-3 A.7.1)", chr=chr, chr_country=reference.country,
                           state_country=state.country)


#: the sequence-number rule each refusal of a reused CHR names
_NEW_SEQUENCE_RULE = ("a new DV key needs a new sequence number (TR-03110-3 A.7.1, TR-03139): two certificates "
                      "with the same CHR break chain building on every inspection system")


def _refuse_certified_chr(tx: StoreTx, chr: str, now: datetime) -> None:
    """Any certificate here counts, whatever its state: an expired or revoked certificate is
    still known by its CHR to the chips and inspection systems that saw it, so that CHR can
    never name another key."""
    held = tx.certificate_by_chr(chr)
    if held is None:
        return
    status = held.status.value
    if held.status is CertificateStatus.ACTIVE and held.not_after < now:
        status = CertificateStatus.EXPIRED.value
    raise InvalidInput(f"the requested CHR {chr} is already held by certificate {held.id} ({held.role.value}, "
                       f"{status}); {_NEW_SEQUENCE_RULE}", chr=chr, certificate_id=held.id)


def _refuse_pending_chr(tx: StoreTx, state_id: int, chr: str, request_id: str | None) -> None:
    """Refuses a CHR that an earlier foreign DV request of the same state, not yet completed
    nor rejected, asks for too: only one of them can get it, and the first to ask does.
    `request_id` None: a request being submitted, so every pending one is earlier.

    A request the Provider refused stays countersigned in its queue until it is rejected, so
    it keeps its CHR until then.  Cheap: requests not yet completed nor rejected are few and
    found by state; the CHR is read from each one's CV request, as it is not stored apart."""
    me = tx.request(request_id) if request_id is not None else None
    pending = tx.session.scalars(
        select(Request).where(Request.request_type == FOREIGN_DV, Request.id != (request_id or ""),
                              Request.state.in_([RequestState.SUBMITTED, RequestState.COUNTERSIGNED]))
        .order_by(Request.created_at, Request.id)
    ).all()  # fmt: skip
    for other in pending:
        if me is not None and (other.created_at, other.id) > (me.created_at, me.id):
            break
        if other.payload.get("foreign_state_organisation_id") != state_id:
            continue
        try:
            other_chr = _cv_request(other.payload).chr
        except InvalidInput:
            continue
        if other_chr == chr:
            raise InvalidInput(f"the requested CHR {chr} is already asked for by request {other.id} of the same state, "
                               f"submitted earlier and still {other.state.value} (until it is completed or "
                               f"rejected); {_NEW_SEQUENCE_RULE}", chr=chr, request_id=other.id)


def _refuse_chr(tx: StoreTx, state_id: int, chr: str, now: datetime, request_id: str | None) -> None:
    """The requested CHR is the state's own and new: its country code, no certificate holding
    it, no earlier pending request of the state asking for it (`request_id` None at submission)."""
    _check_chr_country(tx.organisation(state_id), chr)
    _refuse_certified_chr(tx, chr, now)
    _refuse_pending_chr(tx, state_id, chr, request_id)


def foreign_dv_submission_check(services: Services) -> Callable[[StoreTx, Caller, Mapping[str, Any]], None]:
    """The CHR refusals at submission as well as when the Provider acts: the Agency hears at
    once, and a request that can never be certified does not wait in the Cơ yếu unit's and the
    Provider's queues (nor hold its CHR there until someone rejects it).  The act checks again:
    a certificate or an earlier request may have come since."""

    def check(tx: StoreTx, caller: Caller, payload: Mapping[str, Any]) -> None:
        state_id = _foreign_state(tx, payload["foreign_state_organisation_id"])
        _refuse_chr(tx, state_id, _cv_request(payload).chr, services.clock.now(), None)

    return check


@dataclass(frozen=True, kw_only=True)
class _PreparedForeignDv(_PreparedCv):
    chr: str
    #: the outer CAR: the state's CVCA (initial) or the DV's current certificate from us (successive)
    authenticated_by: str
    successive: bool


def prepare_foreign_dv(ctx: PrepareContext) -> _PreparedForeignDv:
    """A foreign DV's request, certified by our CVCA of the request's document type.

    TR-03139 Table 2: an initial request is authenticated by the state's CVCA registered for
    that document type; a successive one by the DV's still-valid certificate that our CVCA
    issued to it (`_outer_by_current_dv`).  The foreign DV lives in its state's hierarchy for
    that document type (a passport DV under the state's passport CVCA), so an outer signature
    by the state's CVCA of the other document type does not vouch for it and is refused by name.

    The requested CHR is the state's own (its country code) and new: not held by any
    certificate we know, nor asked for by an earlier request of the state still pending —
    all refused here, before anything is signed."""
    services, req, now = ctx.services, ctx.request, ctx.now
    authority = authority_of(services)
    doc = DocumentType(req.document_type)
    request = _cv_request(req.payload)
    assert isinstance(request, AuthenticatedRequest)
    today = now.date()
    with services.store.transaction() as tx:
        state_id = _foreign_state(tx, req.payload["foreign_state_organisation_id"])
        outer_key = _foreign_dv_outer_key(tx, state_id, request, doc, now)
        _refuse_chr(tx, state_id, request.chr, now, req.id)
        cvca_row, cvca = current_ca(tx, authority, Role.CVCA, doc, now, CertificateFormat.CV,
                                    organisation_id=None)
    try:
        request.verify_outer_signature(outer_key.public_key, outer_key.algorithm)
        verify_request(request)
    except CvcError as exc:
        raise InvalidInput(f"the foreign DV request does not verify: {exc}") from None
    assert cvca.cv is not None
    ours = cvca.cv
    days = _int(req.payload, "validity_days", 90)
    expiration = min(today + timedelta(days=days - 1), ours.expiration_date)

    def build(signer: Any) -> bytes:
        return build_dv_certificate(signer, ours, request, domestic=False, effective_date=today,
                                    expiration_date=expiration, document_type=doc, policy=ctx.policy)

    signed = authority.sign(cvca.signer, cvca.label, build,
                            lambda der: _ok(verify_chain_at(ours, [parse_cv_certificate(der)], today)),
                            purpose="foreign DV certificate", request_id=req.id,
                            details={"outer_car": request.outer_car, "successive": outer_key.successive})
    return _PreparedForeignDv(signed, cvca_row.id, [cvca_row.der], Role.DVCA, state_id, chr=request.chr,
                              authenticated_by=request.outer_car, successive=outer_key.successive)


def act_foreign_dv(ctx: ActContext) -> dict[str, Any]:
    """`act_cv`, once the CHR is still free in the storing transaction: another request for
    it may have been certified while this one was being signed (the signature is then
    abandoned, nothing stored).  The result names the outer CAR and whether the request was
    successive, as `act_dv_abroad`'s does."""
    p: _PreparedForeignDv = ctx.prepared
    held = ctx.tx.certificate_by_chr(p.chr)
    if held is not None:
        raise Conflict(f"the requested CHR {p.chr} was certified meanwhile (certificate {held.id}); "
                       f"{_NEW_SEQUENCE_RULE}", chr=p.chr, certificate_id=held.id)
    return {**act_cv(ctx), "authenticated_by": p.authenticated_by, "successive": p.successive}


# --- CV: our DV certified by a foreign CVCA ----------------------------------------------------


def validate_dv_abroad(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    if not isinstance(payload.get("foreign_state_organisation_id"), int):
        raise InvalidInput("payload.foreign_state_organisation_id is required")


@dataclass(frozen=True)
class _PreparedAbroad:
    key: GeneratedKey
    request: Signed
    outer: Signed
    chr: str
    foreign_cvca_chr: str
    state_id: int
    #: the outer CAR: our DV certificate from that state (successive) or our CVCA (initial)
    authenticated_by: str
    successive: bool
    #: our valid DV certificates from that hierarchy whose key could not sign (chr, certificate_id, why)
    passed_over: list[dict[str, Any]]


@dataclass(frozen=True)
class _OuterSigner:
    """The key that outer-signs a request, the CAR it goes by, and how to check its signature.

    `public_key` is the certificate's key on the domain parameters it is verified with: a DV
    certificate carries none and inherits them from the CVCA above it (TR-03110-3 A.7.4.2)."""

    ca: CaKey
    car: str
    public_key: Any
    algorithm: Any
    successive: bool


def _issuing_curve(chain: CvChain) -> Any:
    """The domain parameters a certificate below `chain` inherits: those of the nearest CVCA
    above it that carries them (None for RSA)."""
    curves = [c.public_key.curve for c in [chain.trust, *chain.chain]
              if c.role is ChatRole.CVCA and c.public_key.curve is not None]
    return curves[-1] if curves else None


def _current_dv_abroad(tx: StoreTx, authority: Authority, issuer_ids: set[int], doc: DocumentType,
                       now: datetime) -> tuple[_OuterSigner | None, list[dict[str, Any]]]:
    """Our newest DV certificate from these foreign CVCAs that can still outer-sign now, and the
    valid ones passed over because their key cannot (chr, certificate_id, why): a request that
    goes out initial although we hold a valid certificate may be refused by a foreign CVCA that
    expects a successive one, so the result and the journal say why.

    Why: TR-03110-3 C.2.6 and TR-03139 Table 2 make the outer signature of a *successive*
    request mandatory, made with the DV's still-valid certificate from that foreign CVCA; the
    foreign CVCA checks it against the certificate it issued.  A certificate counts only when
    it is active and valid now and its key is active, inside its usage window, and held by
    the HSM as the key of that certificate — a key that cannot sign does not make the request
    successive."""
    rows = [r for r in tx.certificates(role=Role.DVCA, document_type=doc, certificate_format=CertificateFormat.CV,
                                       statuses=[CertificateStatus.ACTIVE])
            if r.issuer_certificate_id in issuer_ids and r.key_id is not None
            and r.not_before <= now <= r.not_after]
    passed_over: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r.not_before, r.id), reverse=True):
        assert row.key_id is not None
        state = tx.key(row.key_id).state
        if state is not KeyState.ACTIVE:
            passed_over.append({"chr": row.chr, "certificate_id": row.id, "why": f"its key is {state.value}"})
            continue
        curve = _issuing_curve(cv_chain(tx, row))
        try:
            dv = authority.load_ca(tx, row, inherited_curve=curve)
            authority.check_key(tx, dv, now)
        except (AuthorityError, PolicyViolation, KeyInactive) as exc:  # not held, destroyed, outside its window
            passed_over.append({"chr": row.chr, "certificate_id": row.id, "why": str(exc)})
            continue
        assert dv.cv is not None
        return _OuterSigner(dv, dv.cv.chr, dv.cv.public_key.public_key(curve), dv.cv.public_key.algorithm,
                            successive=True), passed_over
    return None, passed_over


def prepare_dv_abroad(ctx: PrepareContext) -> _PreparedAbroad:
    """Our DV key and its CV request to the foreign state's CVCA of the request's document type.

    The CAR is the state's newest CVCA registered for that document type and valid now: a DV
    for our ID-card inspection systems must be certified in the state's ID-card hierarchy,
    never its passport one, so a state with no such CVCA is refused, naming the type.

    Every request is outer-signed (TR-03139 Table 2): while we hold a DV certificate from that
    hierarchy that is valid now and whose key can sign, the request is *successive* and that
    DV key signs it (outer CAR = its CHR) — the scheduler's renewals abroad go this way;
    otherwise (the first request, or every earlier certificate expired) it is *initial* again
    and our CVCA signs it, as the domestic CVCA vouches for a DV it does not know yet."""
    services, req, now = ctx.services, ctx.request, ctx.now
    authority = authority_of(services)
    doc = DocumentType(req.document_type)
    with services.store.transaction() as tx:
        state_id = _foreign_state(tx, req.payload["foreign_state_organisation_id"])
        state = tx.organisation(state_id)
        registered = tx.certificates(role=Role.CVCA, document_type=doc, organisation_id=state_id,
                                     certificate_format=CertificateFormat.CV)
        cvcas = [r for r in registered
                 if r.status is CertificateStatus.ACTIVE and r.not_before <= now <= r.not_after]
        if not cvcas:
            raise InvalidInput(f"{state.name} has no registered CVCA for {_documents(doc)} valid now",
                               document_type=doc.value)
        foreign_cvca = max(cvcas, key=lambda r: (r.not_before, r.id))
        outer_signer, passed_over = _current_dv_abroad(tx, authority, {r.id for r in registered}, doc, now)
        if outer_signer is None:
            _, cvca = current_ca(tx, authority, Role.CVCA, doc, now, CertificateFormat.CV)
            assert cvca.cv is not None
            tp = trust_point(cvca.cv)
            outer_signer = _OuterSigner(cvca, cvca.cv.chr, tp.public_key, tp.algorithm, successive=False)
        country = state.country.upper()
        curve_of_foreign = parse_cv_certificate(foreign_cvca.der).public_key.curve
    spec = curve_of_foreign.name if curve_of_foreign is not None else "rsa2048"
    key = authority.generate_key(doc, Role.DVCA, spec, purpose=f"DV key for {country}", request_id=req.id)
    try:
        chr = dv_chr(doc, key.label, country[:3])
        inner = authority.sign(key.signer, key.label, lambda s: build_request(s, chr=chr, car=foreign_cvca.chr),
                               lambda der: _ok(verify_request(parse_request(der))), purpose="DV request abroad",
                               request_id=req.id)
        o = outer_signer
        by = f"our DV {o.car}" if o.successive else f"our CVCA {o.car}"
        outer = authority.sign(
            o.ca.signer, o.ca.label,
            lambda s: build_authenticated_request(inner.der, s, outer_car=o.car, outer_algorithm=o.algorithm),
            lambda der: _verify_outer(der, o), purpose=f"DV request abroad (outer, {by})",
            request_id=req.id, details={"outer_car": o.car, "successive": o.successive, "passed_over": passed_over})
        return _PreparedAbroad(key, inner, outer, chr, foreign_cvca.chr, state_id, o.car, o.successive, passed_over)
    except Exception as exc:
        authority.discard(key, f"request {req.id} failed: {exc}")
        raise


def _verify_outer(der: bytes, signer: _OuterSigner) -> None:
    request = parse_request(der)
    if not isinstance(request, AuthenticatedRequest) or request.outer_car != signer.car:
        raise InternalFailure(f"the DV request abroad did not come out authenticated by {signer.car}")
    request.verify_outer_signature(signer.public_key, signer.algorithm)


def act_dv_abroad(ctx: ActContext) -> dict[str, Any]:
    p: _PreparedAbroad = ctx.prepared
    authority = authority_of(_services_of(ctx))
    doc = DocumentType(ctx.request.document_type)
    row = ctx.tx.add_key(hsm_label=p.key.label, role=Role.DVCA, document_type=doc, algorithm=p.key.spec,
                         now=ctx.now, organisation_id=ctx.caller.organisation_id, state=KeyState.GENERATED)
    for op in (p.key.operation_id, p.request.operation_id, p.outer.operation_id):
        authority.commit(ctx.tx, op)
    return {"cv_request": b64(p.outer.der), "chr": p.chr, "car": p.foreign_cvca_chr, "authenticated": True,
            "authenticated_by": p.authenticated_by, "successive": p.successive, "passed_over": p.passed_over,
            "key_id": row.id, "hsm_label": p.key.label, "foreign_state_organisation_id": p.state_id}


def import_foreign_dv_certificate(services: Services, caller: Caller, request_id: str, der: bytes) -> dict[str, Any]:
    """The foreign state's certificate for our DV: verified against that state's registered
    CVCA (through its link certificates), bound to our key, then installed.

    Only the state's CVCAs registered for the request's document type take part: the request
    went to that hierarchy's CVCA, and the trust point must not be picked from the other
    hierarchy (the state's passport root would not verify its ID-card certificates).  Within
    it, the trust point is the self-signed root that the certificate's CAR leads back to
    through the registered link certificates — not merely the first root registered: a state
    that re-keyed without a link certificate has two, and only one of them reaches the CAR."""
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider installs foreign certificates")
    authority = authority_of(services)
    now = services.clock.now()
    try:
        cert = parse_cv_certificate(der)
    except CvcError as exc:
        raise InvalidInput(f"not a CV certificate: {exc}") from None
    with services.store.transaction() as tx:
        req = tx.request(request_id)
        if req.request_type != DV_ABROAD or req.state is not RequestState.COMPLETED or not req.result:
            raise InvalidInput(f"request {request_id} is not a completed DV request abroad")
        if cert.chr != req.result["chr"]:
            raise InvalidInput(f"the certificate is for {cert.chr}, the request was for {req.result['chr']}")
        if tx.certificate_by_chr(cert.chr) is not None:
            raise InvalidInput(f"{cert.chr} is already installed")
        state_id = req.result["foreign_state_organisation_id"]
        doc = DocumentType(req.document_type)
        try:
            issuer_row = _registered_cvca(tx, state_id, cert.car, doc)
        except InvalidInput as exc:
            raise InvalidInput(f"the certificate's CAR {exc.message}", **exc.data) from None
        # the trust point is the root this CAR's own chain reaches through the registered link
        # certificates: after a re-key without a link, the state has two self-signed roots
        up = cv_chain(tx, issuer_row)
        trust = up.trust
        try:
            verify_chain_at(trust, [*up.chain, cert], now.date())
        except CvcError as exc:
            raise InvalidInput(f"the certificate does not verify against {trust.chr}: {exc}") from None
        key = tx.key(req.result["key_id"])
        held = load_spki(authority.keystore.signer(key.hsm_label).public_key_info())
        if held != cert.public_key.public_key(_issuing_curve(up)):
            raise InvalidInput("the certificate does not carry our DV key")
        tx.activate_key(key.id, expected=KeyState.GENERATED, usage_not_before=day_start(cert.effective_date),
                        usage_not_after=day_end(cert.expiration_date), max_signatures=None)
        row = store_cv(tx, der, role=Role.DVCA, document_type=doc, now=now, key_id=key.id,
                       issuer_certificate_id=issuer_row.id, organisation_id=caller.organisation_id,
                       request_id=request_id)
        tx.append_audit(at=now, action="cv.foreign_dv_installed", entity_type="certificate", entity_id=row.id,
                        details={"chr": row.chr, "car": cert.car}, actor_organisation_id=caller.organisation_id,
                        actor_operator_id=caller.operator_id)
        return certificate_view(row)


def document_type_of(value: DocumentType | str) -> DocumentType:
    """`value` as a DocumentType, or a refusal naming the accepted values (callers outside
    the HTTP schema, e.g. the demo bootstrap, pass plain strings)."""
    try:
        return DocumentType(value)
    except ValueError:
        accepted = ", ".join(d.value for d in DocumentType)
        raise InvalidInput(f"unknown document type {value!r}: expected one of {accepted}",
                           document_type=str(value)) from None


def register_foreign_cvca(services: Services, caller: Caller, organisation_id: int, der: bytes,
                          document_type: DocumentType | str = DocumentType.PASSPORT) -> dict[str, Any]:
    """Organisation setup for a foreign state: its CVCA (self-signed) or a link certificate
    from a CVCA already registered for it, verified before it is trusted.

    `document_type` is the EAC hierarchy the CVCA serves: a state may run one CVCA for its
    passports and another for its ID cards, and our DV requests abroad and the foreign DV
    requests we certify must meet the CVCA of their own document type.  Passport by default,
    as every CVCA was before the document type could be given.  A link certificate belongs
    to the hierarchy of the CVCA it links from, so it must be registered for the same type."""
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider registers foreign CVCAs")
    doc = document_type_of(document_type)
    now = services.clock.now()
    try:
        cert = parse_cv_certificate(der)
    except CvcError as exc:
        raise InvalidInput(f"not a CV certificate: {exc}") from None
    with services.store.transaction() as tx:
        state_id = _foreign_state(tx, organisation_id)
        issuer_id = None
        if cert.role is not ChatRole.CVCA:
            raise InvalidInput(f"{cert.chr} is not a CVCA certificate")
        _check_chr_country(tx.organisation(state_id), cert.chr, "CVCA", "the CVCA's CHR")
        try:
            if cert.is_self_signed:
                trust_point(cert)
            else:
                issuer_row = _registered_cvca(tx, state_id, cert.car, doc)
                up = cv_chain(tx, issuer_row)
                verify_chain_at(up.trust, [*up.chain, cert], now.date())
                issuer_id = issuer_row.id
        except CvcError as exc:
            raise InvalidInput(f"the CVCA certificate does not verify: {exc}") from None
        known = tx.certificate_by_fingerprint(fingerprint(der))
        if known is not None:
            # certificates are unique by fingerprint: one CVCA certificate serves one document type here
            raise Conflict(f"{cert.chr} is already registered for {_documents(DocumentType(known.document_type))}",
                           chr=cert.chr, certificate_id=known.id,
                           document_type=DocumentType(known.document_type).value)
        row = store_cv(tx, der, role=Role.CVCA, document_type=doc, now=now, issuer_certificate_id=issuer_id,
                       organisation_id=state_id, hierarchy=False)
        tx.append_audit(at=now, action="cv.foreign_cvca_registered", entity_type="certificate", entity_id=row.id,
                        details={"chr": row.chr, "car": row.issuer, "organisation_id": state_id,
                                 "document_type": doc.value},
                        actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
        return certificate_view(row)


def _ok(_: object) -> None:
    return None


def _services_of(ctx: ActContext) -> Services:
    if ctx.services is None:
        raise RuntimeError("the workflow did not hand the services to the handler")
    return ctx.services


def certificate_handlers(services: Services) -> list[RequestHandler]:
    """The certificate flows bound to one running service."""
    from .revocation import revocation_handler


    def authority_discard(prepared: _PreparedAbroad, reason: str) -> None:
        authority_of(services).discard(prepared.key, reason)

    def abandon(prepared: Any, reason: str) -> None:
        """The store step failed after signing: the product was never handed out."""
        for signed in (getattr(prepared, "signed", None), getattr(prepared, "crl", None),
                       *getattr(prepared, "others", ())):
            if isinstance(signed, Signed):
                authority_of(services).abandon(signed.operation_id, reason)

    agency = frozenset({PartyType.AGENCY})
    return [
        RequestHandler(DS, agency, act_ds, validate=validate_ds, prepare=prepare_ds, check_submission=check_ds_submission,
                       after_rejection=destroy_rejected_ds_key, discard=abandon,
                       description="DS certificate from the CSCA of the document type"),
        RequestHandler(IS, frozenset({PartyType.AGENCY, PartyType.IS_OPERATOR}), act_cv, validate=validate_is,
                       prepare=prepare_is, after_rejection=destroy_rejected_is_key, discard=abandon,
                       description="IS (terminal) certificate from our DV; renewal authenticated"),
        RequestHandler(FOREIGN_DV, agency, act_foreign_dv, validate=validate_foreign_dv, prepare=prepare_foreign_dv,
                       check_submission=foreign_dv_submission_check(services), discard=abandon,
                       description="foreign DV certificate from our CVCA"),
        RequestHandler(DV_ABROAD, agency, act_dv_abroad, validate=validate_dv_abroad, prepare=prepare_dv_abroad,
                       discard=authority_discard, description="our DV key and CV request to a foreign CVCA"),
        replace(revocation_handler(services, DeadlineRule.parse(services.settings.revocation_deadline)),
                discard=abandon),
    ]


def register_certificate_handlers(services: Services) -> HandlerRegistry:
    for handler in certificate_handlers(services):
        if handler.request_type not in services.handlers.types():
            services.handlers.register(handler)
    return services.handlers


__all__ = ["DS", "DV_ABROAD", "FOREIGN_DV", "IS", "IS_KEY_GENERATED", "RENEWAL_REQUESTED", "create_ds_key",
           "create_is_key", "import_foreign_dv_certificate", "next_is_chr", "register_certificate_handlers",
           "register_foreign_cvca"]
