"""Key ceremonies: a new CSCA, CVCA or domestic DVCA, generated in the HSM.

Provider only, and never one person: one Provider officer proposes (the proposal is
recorded and checked against the decree's limits at once), a *different* Provider officer
approves, and only then is the key generated.  The ceremony itself is decide / sign / store:

* decide (read-only transaction): the proposal is open, the approver is a second officer,
  the issuing CA (for a DVCA, the CVCA; for a link, the previous root) is loaded and its
  key checked against its certificate;
* sign (no transaction; `authority.py` journals every HSM operation): generate the key,
  self-sign the root (or have the CVCA issue the DV), sign the link certificate from the
  previous root, sign the first CRL of a new CSCA;
* store (one transaction): key row, certificates, publication, the proposal completed; on a
  CVCA rollover also the previous CVCA key retired (`retire_superseded_cvca`).  The previous
  CSCA key is *not* retired: it keeps signing CRLs for the DS certificates it issued.

A failure after the key was generated destroys it (recorded); a crash is settled by
`Authority.recover` at start-up.  Proposals are rows of `requests` (type ``ceremony``,
applicant the Provider), so they appear in the Provider's request list and the audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from cvc.builders import build_cvca_certificate, build_cvca_link_certificate, build_dv_certificate, build_request
from cvc.certificate import parse_certificate as parse_cv_certificate
from cvc.validation import trust_point, verify_chain_at
from icao_pki.certificate import (
    build_csca_certificate,
    build_csca_link_certificate,
    parse_certificate,
)
from icao_pki.clock import ensure_utc
from icao_pki.crl import build_crl, verify_crl
from icao_pki.keystore import KEY_SPECS
from icao_pki.names import DistinguishedName
from icao_pki.policy import (
    CertificateFormat,
    DocumentType,
    Policy,
    Role,
    Window,
    add_months,
    cv_max_expiration,
)

from .auth import Caller
from .authority import CVCA_KEY_RETIRED, Authority, CaKey, GeneratedKey, Signed
from .errors import Forbidden, InvalidInput
from .hierarchy import authority_of, current_ca, day_end, day_start, publish, store_cv, store_x509
from .publication import publish_master_list
from .services import Services
from .store import Certificate, CrlScope, KeyState, PartyType, PublishedKind, Request, RequestState, StoreTx

CEREMONY = "ceremony"
KINDS = {"csca": Role.CSCA, "cvca": Role.CVCA, "dvca": Role.DVCA}
DEFAULT_SPECS = {
    (DocumentType.PASSPORT, Role.CSCA): "brainpoolP384r1",
    (DocumentType.IDCARD, Role.CSCA): "rsa3072",
    (DocumentType.PASSPORT, Role.CVCA): "brainpoolP256r1",
    (DocumentType.IDCARD, Role.CVCA): "brainpoolP256r1",
}
_DOC_LETTER = {DocumentType.PASSPORT: "P", DocumentType.IDCARD: "I"}


def label_sequence(label: str) -> int:
    return int(label.rsplit("-", 1)[1])


def cvca_chr(document_type: DocumentType, label: str) -> str:
    return f"VNCVCA{_DOC_LETTER[document_type]}{label_sequence(label):05d}"


def dv_chr(document_type: DocumentType, label: str, state: str = "VN") -> str:
    return f"VNDV{_DOC_LETTER[document_type]}{state}{label_sequence(label):05d}"


def crl_url(services: Services, document_type: DocumentType) -> str:
    return f"{services.settings.publication_base_url.rstrip('/')}/crl/{document_type.value}"


@dataclass(frozen=True)
class Proposal:
    kind: str
    role: Role
    document_type: DocumentType
    key_spec: str
    validity_months: int
    key_usage_months: int
    #: a CSCA's key is not used before this (the 90-day notice to receiving states, ICAO 9303-12
    #: §4.1.4): until then the previous CSCA keeps signing (`StoreTx.active_ca` reads the window)
    key_usage_from: datetime | None = None


def check_proposal(payload: dict[str, Any], policy: Policy) -> Proposal:
    """Refuse at proposal time what the decree forbids (problem+json names the article)."""
    kind = payload.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"ceremony kind must be one of {sorted(KINDS)}", kind=kind)
    role = KINDS[kind]
    try:
        document_type = DocumentType(payload.get("document_type"))
    except ValueError:
        raise InvalidInput("document_type must be passport or idcard") from None
    limit = policy.limit(document_type, role)
    validity = payload.get("validity_months", limit.certificate_validity_months)
    usage = payload.get("key_usage_months", limit.key_usage_months)
    if not isinstance(validity, int) or not isinstance(usage, int) or validity <= 0 or usage <= 0:
        raise InvalidInput("validity_months and key_usage_months must be positive integers")
    spec = payload.get("key_spec") or DEFAULT_SPECS.get((document_type, role), "brainpoolP256r1")
    if spec not in KEY_SPECS:
        raise InvalidInput(f"key_spec must be one of {list(KEY_SPECS)}", key_spec=spec)
    start = date(2001, 1, 1)
    if role is Role.CSCA:
        start_dt = day_start(start)
        policy.check_certificate(role, document_type, Window(start_dt, add_months(start_dt, validity)),
                                 key_usage=Window(start_dt, add_months(start_dt, usage)))
    else:
        policy.check_certificate(role, document_type, Window(start, cv_max_expiration(start, validity)),
                                 certificate_format=CertificateFormat.CV)
    usage_from = payload.get("key_usage_from")
    if usage_from is not None:
        if role is not Role.CSCA:
            raise InvalidInput("key_usage_from is for a CSCA ceremony (its 90-day advance notice)", kind=kind)
        try:
            usage_from = ensure_utc(datetime.fromisoformat(str(usage_from)))
        except ValueError:
            raise InvalidInput("key_usage_from must be an ISO 8601 date-time with a time zone",
                               key_usage_from=str(usage_from)) from None
    return Proposal(kind, role, document_type, spec, validity, usage, usage_from)


def csca_usage(p: Proposal, now: datetime) -> Window:
    """The new CSCA key's usage window: from the notice's end (or now, if that has passed) to
    `key_usage_months` after the ceremony — a later start shortens it, never moves its end, so the
    certificate (validity counted from the ceremony) still covers every DS it will sign."""
    start = now if p.key_usage_from is None else max(now, p.key_usage_from)
    usage = Window(start, add_months(now, p.key_usage_months))
    if usage.start >= usage.end:
        raise InvalidInput(f"key_usage_from {start.isoformat()} leaves the new CSCA key no usage period",
                           key_usage_from=start.isoformat())
    return usage


def propose(tx: StoreTx, services: Services, caller: Caller, payload: dict[str, Any]) -> Request:
    """First officer: record the proposal (nothing touches the HSM yet)."""
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider holds key ceremonies")
    proposal = check_proposal(payload, services.settings.policy)
    now = services.clock.now()
    body = {"kind": proposal.kind, "document_type": proposal.document_type.value, "key_spec": proposal.key_spec,
            "validity_months": proposal.validity_months, "key_usage_months": proposal.key_usage_months,
            "proposed_by_operator_id": caller.operator_id, "proposed_by": caller.operator_name}
    if proposal.key_usage_from is not None:
        csca_usage(proposal, now)  # refused now rather than at the approval
        body["key_usage_from"] = proposal.key_usage_from.isoformat()
    req = tx.add_request(request_id=str(uuid.uuid4()), request_type=CEREMONY,
                         document_type=proposal.document_type, applicant_organisation_id=caller.organisation_id,
                         ministry=None, payload=body, deadline=None, now=now)
    tx.append_audit(at=now, action="ceremony.proposed", entity_type="request", entity_id=req.id, details=body,
                    actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
    return req


@dataclass
class _Products:
    key: GeneratedKey
    root: Signed
    usage: Window
    link: Signed | None = None
    crl: Signed | None = None
    issuer: CaKey | None = None
    previous: CaKey | None = None
    others: list[Signed] = field(default_factory=list)


def approve(services: Services, caller: Caller, request_id: str) -> Request:
    """Second officer: run the ceremony (decide / sign / store)."""
    authority = authority_of(services)
    store = services.store
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider holds key ceremonies")
    now = services.clock.now().replace(microsecond=0)  # DER times: whole seconds
    with store.transaction() as tx:
        req = tx.request(request_id)
        if req.request_type != CEREMONY or req.state is not RequestState.SUBMITTED:
            raise InvalidInput(f"request {request_id} is not an open ceremony proposal")
        payload = dict(req.payload)
        if payload.get("proposed_by_operator_id") == caller.operator_id:
            raise Forbidden("a key ceremony needs two distinct Provider officers: the proposer cannot approve",
                            proposer=payload.get("proposed_by"))
        proposal = check_proposal(payload, services.settings.policy)
        previous: CaKey | None = None
        issuer: CaKey | None = None
        fmt = CertificateFormat.X509 if proposal.role is Role.CSCA else CertificateFormat.CV
        if proposal.role is Role.DVCA:
            _, issuer = current_ca(tx, authority, Role.CVCA, proposal.document_type, now, CertificateFormat.CV)
        else:
            found = tx.active_ca(proposal.role, proposal.document_type, now, certificate_format=fmt)
            if found is not None:
                previous = authority.load_ca(tx, found[0])
                authority.check_key(tx, previous, now)
    key = authority.generate_key(proposal.document_type, proposal.role, proposal.key_spec,
                                 purpose=f"ceremony {request_id}: {proposal.kind} {proposal.document_type.value}",
                                 request_id=request_id)
    try:
        products = _sign(services, authority, proposal, key, request_id, now, issuer, previous)
        with store.transaction() as tx:
            done = _store(tx, services, authority, caller, request_id, proposal, products, now)
    except Exception as exc:
        authority.discard(key, f"ceremony {request_id} failed: {type(exc).__name__}: {exc}",
                          actor_organisation_id=caller.organisation_id)
        raise
    if proposal.role is Role.CSCA:
        _publish_master_list(services, caller, request_id, proposal.document_type, now)
    return done


def _publish_master_list(services: Services, caller: Caller, request_id: str, doc: DocumentType,
                         now: datetime) -> None:
    """A new CSCA (and its link certificate) goes into a new Master List at once (ICAO 9303-12
    §4.1.4, the Master List being the secondary channel of the 90-day notice).  The ceremony has
    committed by now: a failure here is recorded, and the Provider publishes again by hand
    (``POST /v1/publication/master-list``)."""
    try:
        published = publish_master_list(services, caller, doc)
        action, details = "ceremony.master_list_published", {"master_list": published.get("id")}
    except Exception as exc:  # the ceremony stands; the list can be published again
        action, details = "ceremony.master_list_failed", {"error": f"{type(exc).__name__}: {exc}"}
    with services.store.transaction() as tx:
        tx.append_audit(at=now, action=action, entity_type="request", entity_id=request_id,
                        details={"document_type": doc.value, **details},
                        actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)


def _sign(services: Services, authority: Authority, p: Proposal, key: GeneratedKey, request_id: str, now: datetime,
          issuer: CaKey | None, previous: CaKey | None) -> _Products:
    policy = services.settings.policy
    doc = p.document_type
    if p.role is Role.CSCA:
        validity = Window(now, add_months(now, p.validity_months))
        usage = csca_usage(p, now)
        subject = DistinguishedName(common_name=f"CSCA Viet Nam {doc.label}", organizational_unit=doc.label)
        crl_points = [crl_url(services, doc)]

        def csca(signer: Any) -> bytes:
            return build_csca_certificate(signer, subject, validity=validity, private_key_usage=usage,
                                          document_type=doc, crl_distribution_points=crl_points, policy=policy)

        def verify_self(der: bytes) -> None:
            cert = parse_certificate(der)
            cert.verify_issued_by(cert)

        root = authority.sign(key.signer, key.label, csca, verify_self, purpose="CSCA certificate",
                              request_id=request_id)
        products = _Products(key=key, root=root, usage=usage, previous=previous)
        new_cert = parse_certificate(root.der)
        if previous is not None and previous.x509 is not None:
            old = previous.x509
            link_validity = Window(now, min(validity.end, old.not_after))

            def link(signer: Any) -> bytes:
                # the new CSCA's own name (9303-12 §5.1.2: a link certificate names the new CSCA);
                # if it differs from the old one's, the builder adds the NameChange extension
                return build_csca_link_certificate(signer, old, new_cert.spki_der, validity=link_validity,
                                                   private_key_usage=usage, document_type=doc,
                                                   crl_distribution_points=crl_points, subject=new_cert.subject,
                                                   policy=policy)

            products.link = authority.sign(previous.signer, previous.label, link,
                                           lambda der: parse_certificate(der).verify_issued_by(old),
                                           purpose="CSCA link certificate", request_id=request_id)

        def first_crl(signer: Any) -> bytes:
            return build_crl(signer, new_cert, this_update=now, next_update=now + services.settings.crl_next_update,
                             crl_number=1)

        products.crl = authority.sign(key.signer, key.label, first_crl, lambda der: _ok(verify_crl(der, new_cert)),
                                      purpose="CRL", request_id=request_id)
        return products

    today = now.date()
    if p.role is Role.CVCA:
        expiration = cv_max_expiration(today, p.validity_months)
        chr = cvca_chr(doc, key.label)

        def cvca(signer: Any) -> bytes:
            return build_cvca_certificate(signer, chr=chr, effective_date=today, expiration_date=expiration,
                                          document_type=doc, policy=policy)

        root = authority.sign(key.signer, key.label, cvca, lambda der: _ok(trust_point(parse_cv_certificate(der))),
                              purpose="CVCA certificate", request_id=request_id)
        products = _Products(key=key, root=root, usage=Window(day_start(today), day_end(expiration)),
                             previous=previous)
        if previous is not None and previous.cv is not None:
            old = previous.cv
            new = parse_cv_certificate(root.der)

            def cv_link(signer: Any) -> bytes:
                return build_cvca_link_certificate(signer, old, new, document_type=doc, policy=policy)

            products.link = authority.sign(
                previous.signer, previous.label, cv_link,
                lambda der: _ok(verify_chain_at(old, [parse_cv_certificate(der)], today)),
                purpose="CVCA link certificate", request_id=request_id)
        return products

    # domestic DVCA, issued by our CVCA from a request made with the new key
    assert issuer is not None and issuer.cv is not None
    cvca_cert = issuer.cv
    expiration = min(cv_max_expiration(today, p.validity_months), cvca_cert.expiration_date)
    chr = dv_chr(doc, key.label)
    request = authority.sign(key.signer, key.label, lambda s: build_request(s, chr=chr, car=cvca_cert.chr),
                             lambda der: None, purpose="DV certificate request", request_id=request_id)

    def dv(signer: Any) -> bytes:
        return build_dv_certificate(signer, cvca_cert, request.der, domestic=True, effective_date=today,
                                    expiration_date=expiration, document_type=doc, policy=policy)

    root = authority.sign(issuer.signer, issuer.label, dv,
                          lambda der: _ok(verify_chain_at(_trust_of(issuer), [parse_cv_certificate(der)], today)),
                          purpose="DV certificate", request_id=request_id)
    return _Products(key=key, root=root, usage=Window(day_start(today), day_end(expiration)), issuer=issuer,
                     others=[request])


def _trust_of(ca: CaKey) -> Any:
    assert ca.cv is not None
    return ca.cv


def _ok(_: object) -> None:
    return None


def retire_superseded_cvca(tx: StoreTx, policy: Policy, caller: Caller, request_id: str, previous: CaKey, *,
                           new_certificate: Certificate, new_key_id: int, link: Certificate, now: datetime) -> None:
    """The previous CVCA key: ACTIVE → RETIRED (compare-and-set), audited, in the ceremony's store step.

    Why: once the link certificate is signed, an old CVCA key has nothing left to sign — DV
    certificates, domestic and foreign, come from the newest CVCA (`hierarchy.current_ca`) — and a
    key that stays ACTIVE stays usable and stays in the HSM for good.  Retired in the same
    transaction that stores the link, so there is no moment with a new CVCA and a usable old key;
    the CAS also makes two concurrent ceremonies from one CVCA impossible: the second finds the key
    retired, its whole step rolls back and its new key is discarded.  The ``ds-key-destruction``
    job destroys the key once the old CVCA certificate's validity has ended
    (`signing.rollover.destroy_retired_cvca_keys`); its certificates stay published.

    Unlike a CSCA key: an old CSCA keeps signing CRLs for the DS certificates it issued
    (9303-12 §4.1.5), so a CSCA ceremony retires nothing."""
    tx.set_key_state(previous.key_id, KeyState.ACTIVE, KeyState.RETIRED, now=now)
    article = policy.limit(previous.document_type, Role.CVCA).article
    old_chr = previous.cv.chr if previous.cv is not None else None
    tx.append_audit(
        at=now, action=CVCA_KEY_RETIRED, entity_type="key", entity_id=previous.key_id,
        details={"reason": f"superseded by CVCA {new_certificate.chr}: its link certificate is signed, a CVCA key "
                           "has nothing left to sign after it",
                 "label": previous.label, "certificate_id": previous.certificate_id, "chr": old_chr,
                 "superseded_by": new_certificate.chr, "superseded_by_certificate_id": new_certificate.id,
                 "superseded_by_key_id": new_key_id, "link_certificate_id": link.id,
                 "ceremony_request_id": request_id, "article": article,
                 "destruction": "removed from the HSM by the ds-key-destruction schedule once its certificate's "
                                "validity has ended"},
        actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id,
    )  # fmt: skip


def _store(tx: StoreTx, services: Services, authority: Authority, caller: Caller, request_id: str, p: Proposal,
           products: _Products, now: datetime) -> Request:
    doc = p.document_type
    key_row = tx.add_key(hsm_label=products.key.label, role=p.role, document_type=doc, algorithm=products.key.spec,
                         now=now, organisation_id=caller.organisation_id, state=KeyState.ACTIVE,
                         usage_not_before=products.usage.start, usage_not_after=products.usage.end)
    authority.commit(tx, products.key.operation_id)
    result: dict[str, Any] = {"hsm_label": products.key.label, "key_id": key_row.id}
    if p.role is Role.CSCA:
        cert = store_x509(tx, products.root.der, role=Role.CSCA, document_type=doc, now=now, key_id=key_row.id,
                          organisation_id=caller.organisation_id, request_id=request_id)
        publish(tx, PublishedKind.CSCA, products.root.der, f"CSCA {cert.subject}", now, document_type=doc,
                certificate_id=cert.id)
        if products.link is not None and products.previous is not None:
            link = store_x509(tx, products.link.der, role=Role.CSCA, document_type=doc, now=now,
                              issuer_certificate_id=products.previous.certificate_id,
                              organisation_id=caller.organisation_id, request_id=request_id)
            publish(tx, PublishedKind.CSCA_LINK, products.link.der, f"CSCA link {link.subject}", now,
                    document_type=doc, certificate_id=link.id)
            authority.commit(tx, products.link.operation_id)
            result["link_certificate_id"] = link.id
        assert products.crl is not None
        crl_cert = parse_certificate(products.root.der)
        crl = tx.add_crl(scope=CrlScope.CSCA, issuer_fingerprint_sha256=cert.fingerprint_sha256,
                         issuer_name=crl_cert.subject_str, crl_number=1, this_update=now,
                         next_update=now + services.settings.crl_next_update, der=products.crl.der, now=now)
        publish(tx, PublishedKind.CRL, products.crl.der, f"CRL 1 of {cert.subject}", now, document_type=doc,
                crl_id=crl.id, replace=True)
        authority.commit(tx, products.crl.operation_id)
    elif p.role is Role.CVCA:
        cert = store_cv(tx, products.root.der, role=Role.CVCA, document_type=doc, now=now, key_id=key_row.id,
                        organisation_id=caller.organisation_id, request_id=request_id)
        publish(tx, PublishedKind.CVCA, products.root.der, f"CVCA {cert.chr}", now, document_type=doc,
                certificate_id=cert.id)
        if products.link is not None and products.previous is not None:
            link = store_cv(tx, products.link.der, role=Role.CVCA, document_type=doc, now=now,
                            issuer_certificate_id=products.previous.certificate_id,
                            organisation_id=caller.organisation_id, request_id=request_id)
            publish(tx, PublishedKind.CVCA_LINK, products.link.der, f"CVCA link {link.chr}", now,
                    document_type=doc, certificate_id=link.id)
            authority.commit(tx, products.link.operation_id)
            result["link_certificate_id"] = link.id
            retire_superseded_cvca(tx, services.settings.policy, caller, request_id, products.previous,
                                   new_certificate=cert, new_key_id=key_row.id, link=link, now=now)
            result["retired_key_id"] = products.previous.key_id
    else:
        assert products.issuer is not None
        cert = store_cv(tx, products.root.der, role=Role.DVCA, document_type=doc, now=now, key_id=key_row.id,
                        issuer_certificate_id=products.issuer.certificate_id,
                        organisation_id=caller.organisation_id, request_id=request_id)
        for other in products.others:
            authority.commit(tx, other.operation_id)
    authority.commit(tx, products.root.operation_id)
    result["certificate_id"] = cert.id
    result["chr" if cert.chr else "serial"] = cert.chr or cert.serial
    req = tx.transition_request(request_id, RequestState.SUBMITTED, RequestState.COMPLETED, now=now)
    req = tx.set_request_result(request_id, result, now=now)
    tx.append_audit(at=now, action="ceremony.completed", entity_type="request", entity_id=request_id,
                    details={"kind": p.kind, "document_type": doc.value, **result},
                    actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
    return req

