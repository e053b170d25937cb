"""Publication (Art. 36.6, 9303-12 §5): what anyone may fetch, read-only, without credentials.

CSCA and link certificates, the current CRL of each document type (DER), the Master List,
CVCA and link certificates, DS certificates and the trusted-root list.  Everything served
is a `published_objects` row written in the same transaction as the event that produced
it (ceremony, issuance, revocation), so the publication is never ahead of the database.

The Master List is signed by a Master List signer issued from the CSCA of the document
type for this purpose (`publish_master_list`): a fresh key per list, journalled like every
HSM operation (the decree gives the ML signer no role, so its key has no `keys` row; its
certificate is inside the list).
"""

from __future__ import annotations

import base64
from typing import Any

from icao_pki.certificate import build_master_list_signer_certificate, parse_certificate
from icao_pki.masterlist import build_master_list, parse_master_list, verify_master_list
from icao_pki.names import DistinguishedName
from icao_pki.policy import CertificateFormat, DocumentType, Role, Window, add_months

from .auth import Caller
from .errors import Forbidden, NotFound
from .hierarchy import authority_of, current_ca, publish
from .services import Services
from .store import CertificateStatus, PartyType, PublishedKind, PublishedObject, StoreTx

MEDIA_TYPES = {
    PublishedKind.CRL: "application/pkix-crl",
    PublishedKind.MASTER_LIST: "application/octet-stream",
    PublishedKind.CVCA: "application/octet-stream",
    PublishedKind.CVCA_LINK: "application/octet-stream",
}
CERTIFICATE_MEDIA_TYPE = "application/pkix-cert"


def media_type(kind: PublishedKind) -> str:
    return MEDIA_TYPES.get(PublishedKind(kind), CERTIFICATE_MEDIA_TYPE)


def object_view(row: PublishedObject, base: str = "/v1/pub") -> dict[str, Any]:
    return {"id": row.id, "kind": PublishedKind(row.kind).value,
            "document_type": DocumentType(row.document_type).value if row.document_type else None,
            "name": row.name, "sha256": row.sha256, "published_at": row.published_at.isoformat(),
            "url": f"{base}/objects/{row.id}"}


def index(tx: StoreTx) -> list[dict[str, Any]]:
    return [object_view(row) for kind in PublishedKind for row in tx.published(kind)]


def current(tx: StoreTx, kind: PublishedKind, document_type: DocumentType | None = None) -> PublishedObject:
    rows = tx.published(kind, document_type=document_type)
    if not rows:
        raise NotFound(f"nothing published as {kind.value}" + (f" for {document_type.value}" if document_type else ""))
    return rows[-1]


def trusted_roots(tx: StoreTx) -> list[dict[str, Any]]:
    """Our trust anchors as relying parties load them: CSCA and CVCA certificates with links."""
    out = []
    for kind in (PublishedKind.CSCA, PublishedKind.CSCA_LINK, PublishedKind.CVCA, PublishedKind.CVCA_LINK):
        for row in tx.published(kind):
            if row.certificate_id is not None:
                cert = tx.certificate(row.certificate_id)
                if cert.status is not CertificateStatus.ACTIVE:
                    continue
                out.append({**object_view(row), "subject": cert.subject, "not_after": cert.not_after.isoformat(),
                            "der": base64.b64encode(row.der).decode()})
    return out


def publish_master_list(services: Services, caller: Caller, document_type: DocumentType) -> dict[str, Any]:
    """Sign and publish a new Master List of every active CSCA and link certificate."""
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider publishes the Master List")
    authority = authority_of(services)
    now = services.clock.now().replace(microsecond=0)  # DER times: whole seconds
    with services.store.transaction() as tx:
        csca_row, ca = current_ca(tx, authority, Role.CSCA, document_type, now, CertificateFormat.X509)
        entries = [c.der for c in tx.certificates(role=Role.CSCA, certificate_format=CertificateFormat.X509,
                                                   statuses=[CertificateStatus.ACTIVE])]
    assert ca.x509 is not None
    csca = ca.x509
    spec = "rsa2048" if ca.signer.curve is None else "brainpoolP256r1"
    key = authority.generate_key(document_type, "mls", spec, purpose="Master List signer")
    try:
        validity = Window(now, min(add_months(now, 3), csca_row.not_after))
        subject = DistinguishedName(common_name=f"Master List Signer Viet Nam {key.label}")
        spki = key.signer.public_key_info()
        mls = authority.sign(
            ca.signer, ca.label,
            lambda s: build_master_list_signer_certificate(s, csca, spki, subject, validity=validity,
                                                           document_type=document_type,
                                                           policy=services.settings.policy),
            lambda der: parse_certificate(der).verify_issued_by(csca), purpose="Master List signer certificate")
        ml = authority.sign(
            key.signer, key.label,
            lambda s: build_master_list(entries, signer=s, signer_certificate=mls.der,
                                        signer_csca_certificate=csca_row.der, signing_time=now),
            lambda der: _ok(verify_master_list(parse_master_list(der), trust_anchors=[csca_row.der], at=now)),
            purpose="Master List")
        with services.store.transaction() as tx:
            for op in (key.operation_id, mls.operation_id, ml.operation_id):
                authority.commit(tx, op)
            publish(tx, PublishedKind.MASTER_LIST, ml.der, f"Master List {now:%Y-%m-%dT%H:%M:%SZ}", now,
                    replace=True)
            tx.append_audit(at=now, action="publication.master_list", entity_type="published_object",
                            entity_id=key.label, details={"entries": len(entries), "signer_label": key.label},
                            actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
            row = current(tx, PublishedKind.MASTER_LIST)
            return object_view(row) | {"entries": len(entries)}
    except Exception as exc:
        authority.discard(key, f"Master List failed: {type(exc).__name__}: {exc}")
        raise


def _ok(_: object) -> None:
    return None
