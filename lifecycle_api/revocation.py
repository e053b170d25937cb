"""Revocation (Decree 68/2024 Art. 17–19): who may ask for what, and a new CRL at once.

Request type ``revocation``, payload ``{"certificate_id", "reason"}`` with an Art. 17
reason (`icao_pki.crl.RevocationReason` values), optional ``invalidity_date`` (ISO).

* Art. 17: the certificates this service issues (DS, IS, DV) belong to devices and
  services (Art. 17.4): the reasons of Art. 17.1 and "service stopped" apply; the personal
  reasons (Art. 17.2b/c) and dissolution (Art. 17.3b) do not.  Expiry (Art. 17.1a) is not
  requested: the Provider revokes expired certificates itself (Art. 18.1).
* Art. 18: the directly managing organisation asks (Art. 18.2) — the holder itself or an
  Agency of the holder's ministry; a prosecuting body or the police (Art. 18.5, the
  ministries in `LAW_ENFORCEMENT_MINISTRIES`) may ask for any certificate.
* Art. 19.2b: the Provider acts within one working day (configurable: 12 hours); the
  deadline is the request's, listed by `/v1/requests/overdue`.  On acting, an X.509
  certificate's CSCA signs a new CRL (cRLNumber one above the last) and it is published
  in the same transaction as the revocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from icao_pki.certificate import parse_certificate
from icao_pki.crl import RevocationReason, RevokedEntry, build_crl, verify_crl
from icao_pki.policy import CertificateFormat, DocumentType, Policy, Role

from .auth import Caller
from .authority import Signed
from .deadlines import DeadlineRule
from .errors import Forbidden, InvalidInput
from .handlers import ActContext, PrepareContext, RequestHandler
from .hierarchy import authority_of, publish
from .services import Services
from .store import Certificate, CertificateStatus, CrlScope, KeyState, PartyType, PublishedKind, StoreTx

REVOCATION = "revocation"
#: Art. 18.5: "cơ quan tiến hành tố tụng, cơ quan công an"
LAW_ENFORCEMENT_MINISTRIES = frozenset({"Bộ Công an"})
_NOT_FOR_DEVICES = {
    RevocationReason.POSITION_CHANGED: "Art. 17.2b",
    RevocationReason.RETIRED_OR_DECEASED: "Art. 17.2c",
    RevocationReason.ORGANISATION_DISSOLVED: "Art. 17.3b",
}


def parse_reason(payload: Mapping[str, Any]) -> RevocationReason:
    try:
        reason = RevocationReason(payload.get("reason"))
    except ValueError:
        raise InvalidInput("payload.reason must be an Art. 17 reason",
                           allowed=[r.value for r in RevocationReason]) from None
    if reason is RevocationReason.EXPIRED:
        raise Forbidden("Art. 18.1: the Provider revokes expired certificates itself; no request is needed",
                        article="Art. 18.1")
    if reason in _NOT_FOR_DEVICES:
        raise InvalidInput(f"{_NOT_FOR_DEVICES[reason]}: '{reason.description}' applies to personal or organisation "
                           "certificates, not to DS/IS/DV certificates (Art. 17.4)",
                           article=_NOT_FOR_DEVICES[reason])
    return reason


def validate_revocation(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    parse_reason(payload)
    if not isinstance(payload.get("certificate_id"), int):
        raise InvalidInput("payload.certificate_id is required")


def check_authority(tx: StoreTx, requester_id: int, payload: Mapping[str, Any]) -> Certificate:
    """Art. 18: may this organisation ask to revoke this certificate for this reason?"""
    reason = parse_reason(payload)
    cert = tx.certificate(payload["certificate_id"])
    if cert.organisation_id is None or Role(cert.role) in (Role.CSCA, Role.CVCA):
        raise Forbidden("root and link certificates are revoked by the Provider's own ceremony, not by request")
    if cert.status is not CertificateStatus.ACTIVE:
        raise InvalidInput(f"certificate {cert.id} is already {cert.status.value}")
    requester = tx.organisation(requester_id)
    holder = tx.organisation(cert.organisation_id)
    if reason is RevocationReason.LAW_ENFORCEMENT_REQUEST:
        if requester.ministry not in LAW_ENFORCEMENT_MINISTRIES:
            raise Forbidden("Art. 18.5: only a prosecuting body or the police may request this revocation",
                            article="Art. 18.5")
        return cert
    managing = requester.id == holder.id or (
        requester.party_type is PartyType.AGENCY and requester.ministry is not None
        and requester.ministry == holder.ministry
    )
    if not managing:
        raise Forbidden("Art. 18.2: only the directly managing organisation may request this revocation",
                        article="Art. 18.2")
    return cert


def check_submission(tx: StoreTx, caller: Caller, payload: Mapping[str, Any]) -> None:
    check_authority(tx, caller.organisation_id, payload)


@dataclass(frozen=True)
class _PreparedRevocation:
    certificate_id: int
    reason: RevocationReason
    crl: Signed | None
    crl_number: int | None
    issuer_fingerprint: str | None
    issuer_name: str | None


def prepare_revocation(ctx: PrepareContext) -> _PreparedRevocation:
    services, now = ctx.services, ctx.now
    authority = authority_of(services)
    payload = ctx.request.payload
    with services.store.transaction() as tx:
        cert = check_authority(tx, ctx.request.applicant_organisation_id, payload)
        reason = parse_reason(payload)
        if CertificateFormat(cert.certificate_format) is not CertificateFormat.X509 or cert.issuer_certificate_id is None:
            return _PreparedRevocation(cert.id, reason, None, None, None, None)
        csca_row = tx.certificate(cert.issuer_certificate_id)
        ca = authority.load_ca(tx, csca_row)
        authority.check_crl_key(tx, ca)
        entries = [
            RevokedEntry(serial_number=int(c.serial, 16), revocation_date=r.revoked_at, reason=RevocationReason(r.reason),
                         invalidity_date=r.invalidity_date)
            for r, c in tx.revocations_of_issuer(csca_row.id) if r.revoked_at is not None and c.serial
        ]
        entries.append(RevokedEntry(serial_number=int(cert.serial or "0", 16), revocation_date=now, reason=reason,
                                    invalidity_date=_when(payload.get("invalidity_date"))))
        previous = tx.latest_crl(csca_row.fingerprint_sha256, CrlScope.CSCA)
        number = tx.next_crl_number(csca_row.fingerprint_sha256)
        fp, issuer_name = csca_row.fingerprint_sha256, csca_row.subject
    assert ca.x509 is not None
    csca = ca.x509

    def build(signer: Any) -> bytes:
        return build_crl(signer, csca, this_update=now, next_update=now + services.settings.crl_next_update,
                         crl_number=number, revoked=entries,
                         previous_crl_number=previous.crl_number if previous else None)

    signed = authority.sign(ca.signer, ca.label, build, lambda der: _ok(verify_crl(der, csca)), purpose="CRL",
                            request_id=ctx.request.id, details={"crl_number": number})
    return _PreparedRevocation(cert.id, reason, signed, number, fp, issuer_name)


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput("payload.invalidity_date must be ISO 8601") from None
    if when.tzinfo is None:
        raise InvalidInput("payload.invalidity_date needs a time zone")
    return when


def _ok(_: object) -> None:
    return None


def act_revocation(ctx: ActContext) -> dict[str, Any]:
    p: _PreparedRevocation = ctx.prepared
    tx, now = ctx.tx, ctx.now
    assert ctx.services is not None
    req = tx.request(ctx.request.id)
    cert = tx.certificate(p.certificate_id)
    tx.set_certificate_status(cert.id, CertificateStatus.ACTIVE, CertificateStatus.REVOKED)
    if cert.key_id is not None:
        key = tx.key(cert.key_id)
        if key.state is KeyState.ACTIVE:
            tx.set_key_state(key.id, KeyState.ACTIVE, KeyState.RETIRED, now=now)
    tx.add_revocation(certificate_id=cert.id, reason=p.reason.value,
                      requested_by_organisation_id=ctx.request.applicant_organisation_id, request_id=req.id,
                      requested_at=req.created_at, deadline=req.deadline or now, revoked_at=now,
                      invalidity_date=_when(ctx.request.payload.get("invalidity_date")),
                      published_at=now if p.crl else None)
    result: dict[str, Any] = {"certificate_id": cert.id, "reason": p.reason.value, "article": p.reason.article,
                              "revoked_at": now.isoformat()}
    if p.crl is not None:
        assert p.crl_number is not None and p.issuer_fingerprint and p.issuer_name
        parsed = parse_certificate(tx.certificate(cert.issuer_certificate_id).der) if cert.issuer_certificate_id else None
        crl = tx.add_crl(scope=CrlScope.CSCA, issuer_fingerprint_sha256=p.issuer_fingerprint,
                         issuer_name=parsed.subject_str if parsed else p.issuer_name, crl_number=p.crl_number,
                         this_update=now, next_update=now + ctx.services.settings.crl_next_update, der=p.crl.der,
                         now=now)
        publish(tx, PublishedKind.CRL, p.crl.der, f"CRL {p.crl_number} of {p.issuer_name}", now,
                document_type=DocumentType(cert.document_type), crl_id=crl.id, replace=True)
        authority_of(ctx.services).commit(tx, p.crl.operation_id)
        result["crl_number"] = p.crl_number
    tx.append_audit(at=now, action="certificate.revoked", entity_type="certificate", entity_id=cert.id,
                    details=result, actor_organisation_id=ctx.caller.organisation_id,
                    actor_operator_id=ctx.caller.operator_id)
    return result


def revocation_handler(services: Services, deadline: DeadlineRule) -> RequestHandler:
    return RequestHandler(
        REVOCATION, frozenset({PartyType.AGENCY, PartyType.IS_OPERATOR}), act_revocation,
        validate=validate_revocation, document_type_required=False, deadline=deadline,
        prepare=prepare_revocation, check_submission=check_submission,
        description="Art. 17-19 revocation; a new CRL is signed and published at once",
    )
