"""The PKI hierarchies as the store holds them: finding CAs, CV chains, storing products.

Shared by the key ceremonies, the certificate flows and revocation, so each of them states
only its decision.  Nothing here touches the HSM; `authority.py` does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from cvc.certificate import CvCertificate
from cvc.certificate import parse_certificate as parse_cv_certificate
from icao_pki.certificate import parse_certificate
from icao_pki.policy import CertificateFormat, DocumentType, Role

from .authority import Authority, CaKey
from .errors import InvalidInput, LifecycleError, NotFound
from .services import Services
from .store import Certificate, CertificateStatus, PublishedKind, StoreTx


class NoAuthority(LifecycleError):
    """The service runs without an HSM key store, so it cannot sign."""

    kind = "no-hsm"


def authority_of(services: Services) -> Authority:
    if services.authority is None:
        raise NoAuthority("this service has no HSM key store; certificate flows need one (icao-pki serve opens it)")
    return services.authority


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_end(day: date) -> datetime:
    """A CV expiration date is valid through the whole day."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def hierarchy_id(tx: StoreTx, document_type: DocumentType, fmt: CertificateFormat, now: datetime) -> int:
    """One hierarchy per document type and format, created on first use."""
    from sqlalchemy import select

    from .store import Hierarchy

    row = tx.session.scalars(
        select(Hierarchy).where(Hierarchy.document_type == document_type, Hierarchy.certificate_format == fmt)
    ).first()
    if row is None:
        name = f"{document_type.value} {'CSCA (X.509)' if fmt is CertificateFormat.X509 else 'CVCA (CV)'}"
        row = tx.add_hierarchy(name=name, document_type=document_type, certificate_format=fmt, now=now)
    return row.id


def store_x509(tx: StoreTx, der: bytes, *, role: Role, document_type: DocumentType, now: datetime,
               key_id: int | None = None, issuer_certificate_id: int | None = None,
               organisation_id: int | None = None, request_id: str | None = None) -> Certificate:
    cert = parse_certificate(der)
    return tx.add_certificate(
        hierarchy_id=hierarchy_id(tx, document_type, CertificateFormat.X509, now), key_id=key_id,
        issuer_certificate_id=issuer_certificate_id, organisation_id=organisation_id, request_id=request_id,
        certificate_format=CertificateFormat.X509, role=role, document_type=document_type,
        serial=format(cert.serial_number, "x"), chr=None, subject=cert.subject_str, issuer=cert.issuer_str,
        not_before=cert.not_before, not_after=cert.not_after, der=der, fingerprint_sha256=fingerprint(der),
        created_at=now,
    )


def store_cv(tx: StoreTx, der: bytes, *, role: Role, document_type: DocumentType, now: datetime,
             key_id: int | None = None, issuer_certificate_id: int | None = None,
             organisation_id: int | None = None, request_id: str | None = None,
             hierarchy: bool = True) -> Certificate:
    cert = parse_cv_certificate(der)
    return tx.add_certificate(
        hierarchy_id=hierarchy_id(tx, document_type, CertificateFormat.CV, now) if hierarchy else None,
        key_id=key_id, issuer_certificate_id=issuer_certificate_id, organisation_id=organisation_id,
        request_id=request_id, certificate_format=CertificateFormat.CV, role=role, document_type=document_type,
        serial=None, chr=cert.chr, subject=cert.chr, issuer=cert.car, not_before=day_start(cert.effective_date),
        not_after=day_end(cert.expiration_date), der=der, fingerprint_sha256=fingerprint(der), created_at=now,
    )


def publish(tx: StoreTx, kind: PublishedKind, der: bytes, name: str, now: datetime, *,
            document_type: DocumentType | None = None, certificate_id: int | None = None,
            crl_id: int | None = None, replace: bool = False) -> None:
    if replace:
        tx.withdraw_published(kind, now=now, document_type=document_type)
    tx.add_published(kind=kind, name=name, der=der, sha256=fingerprint(der), now=now,
                     document_type=document_type, certificate_id=certificate_id, crl_id=crl_id)


def current_ca(tx: StoreTx, authority: Authority, role: Role, document_type: DocumentType, now: datetime,
               fmt: CertificateFormat, *, organisation_id: int | None = None) -> tuple[Certificate, CaKey]:
    """The CA that signs now, loaded with its key checked against its certificate."""
    found = tx.active_ca(role, document_type, now, certificate_format=fmt, organisation_id=organisation_id)
    if found is None:
        raise NotFound(f"no active {role.value.upper()} for {document_type.value} with a usable key; run the key ceremony",
                       role=role.value, document_type=document_type.value)
    row, _key = found
    ca = authority.load_ca(tx, row)
    authority.check_key(tx, ca, now)
    return row, ca


@dataclass(frozen=True)
class CvChain:
    """A CV certificate's chain as the store knows it: trust point (self-signed CVCA) and the rest."""

    trust: CvCertificate
    chain: list[CvCertificate]
    rows: list[Certificate]


def cv_chain(tx: StoreTx, row: Certificate) -> CvChain:
    """Follow issuer links up to a self-signed CVCA (ours or a registered foreign one)."""
    rows = [row]
    seen = {row.id}
    while True:
        top = rows[-1]
        cert = parse_cv_certificate(top.der)
        if cert.is_self_signed:
            break
        if top.issuer_certificate_id is None:
            parent = _cvca_by_chr(tx, cert.car)
            if parent is None:
                raise InvalidInput(f"the issuer {cert.car} of {cert.chr} is not registered")
        else:
            parent = tx.certificate(top.issuer_certificate_id)
        if parent.id in seen:
            raise InvalidInput(f"certificate loop at {parent.chr}")
        seen.add(parent.id)
        rows.append(parent)
    certs = [parse_cv_certificate(r.der) for r in rows]
    return CvChain(trust=certs[-1], chain=list(reversed(certs[:-1])), rows=list(reversed(rows)))


def _cvca_by_chr(tx: StoreTx, chr: str) -> Certificate | None:
    for row in tx.certificates(role=Role.CVCA, certificate_format=CertificateFormat.CV):
        if row.chr == chr:
            return row
    return None


def certificate_view(row: Certificate) -> dict[str, Any]:
    import base64

    return {
        "certificate_id": row.id,
        "role": Role(row.role).value,
        "document_type": DocumentType(row.document_type).value,
        "format": CertificateFormat(row.certificate_format).value,
        "serial": row.serial,
        "chr": row.chr,
        "subject": row.subject,
        "issuer": row.issuer,
        "not_before": row.not_before.isoformat(),
        "not_after": row.not_after.isoformat(),
        "fingerprint_sha256": row.fingerprint_sha256,
        "status": CertificateStatus(row.status).value,
        "der": base64.b64encode(row.der).decode(),
    }
