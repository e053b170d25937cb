"""Periodic CSCA CRLs (9303-12 §4.1.5: nextUpdate at most 90 days; default reissued daily).

The revocation flow (issue 6, `lifecycle_api.revocation`) issues a CRL on every revocation;
this issuer is what the `crl-publication` schedule calls when the latest CRL of a CSCA is
missing, older than the interval, or close to its nextUpdate.  It lists every revocation
recorded for certificates the CSCA issued (including Art. 18.1 automatic revocations of
expired certificates), numbers the CRL one above the last, stores and publishes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from icao_pki.certificate import parse_certificate
from icao_pki.crl import MAX_CRL_INTERVAL, RevocationReason, RevokedEntry, build_crl, parse_crl
from icao_pki.keystore import KeyStore

from ..store import Certificate, CrlScope, Key, PublishedKind, Revocation, Store


@dataclass
class HsmCrlIssuer:
    store: Store
    keystore: KeyStore
    next_update: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if self.next_update > MAX_CRL_INTERVAL:
            raise ValueError(f"nextUpdate interval {self.next_update} exceeds {MAX_CRL_INTERVAL} (9303-12 §4.1.5)")

    def issue_crl(self, due: object, now: datetime) -> int:
        """`due` carries `csca_certificate_id` (schedules.decisions.CrlDue); returns the CRL row id."""
        csca_id = int(due.csca_certificate_id)  # type: ignore[attr-defined]
        now = now.replace(microsecond=0)
        with self.store.transaction() as tx:
            csca_row = tx.certificate(csca_id)
            key = tx.session.get(Key, csca_row.key_id) if csca_row.key_id else None
            if key is None:
                raise ValueError(f"CSCA certificate {csca_id} has no key in this HSM")
            label, csca_der, fingerprint = key.hsm_label, csca_row.der, csca_row.fingerprint_sha256
            latest = tx.latest_crl(fingerprint, CrlScope.CSCA)
            previous = latest.crl_number if latest else None
            revoked = tx.session.execute(
                select(Revocation, Certificate)
                .join(Certificate, Certificate.id == Revocation.certificate_id)
                .where(Certificate.issuer_certificate_id == csca_id, Revocation.revoked_at.is_not(None))
                .order_by(Revocation.id)
            ).all()
            entries = [
                RevokedEntry(serial_number=int(c.serial, 16), revocation_date=r.revoked_at.replace(microsecond=0),
                             reason=_reason(r.reason))
                for r, c in revoked if c.serial and r.revoked_at is not None
            ]  # fmt: skip
        number = (previous or 0) + 1
        csca = parse_certificate(csca_der)
        der = build_crl(self.keystore.signer(label), csca, this_update=now, next_update=now + self.next_update,
                        crl_number=number, revoked=entries, previous_crl_number=previous)
        parsed = parse_crl(der)
        with self.store.transaction() as tx:
            row = tx.add_crl(scope=CrlScope.CSCA, issuer_fingerprint_sha256=fingerprint, issuer_name=csca.subject_str,
                             crl_number=number, this_update=now, next_update=now + self.next_update, der=der, now=now)
            tx.add_published(kind=PublishedKind.CRL, name=f"CRL {number} of {csca.subject_str}", der=der,
                             sha256=hashlib.sha256(der).hexdigest(), now=now, document_type=csca_row.document_type,
                             crl_id=row.id)
            tx.append_audit(at=now, action="crl.issued", entity_type="crl", entity_id=row.id,
                            details={"csca_certificate_id": csca_id, "crl_number": number,
                                     "revoked": len(entries), "entries_parsed": len(parsed.entries)})
            return row.id


def _reason(text: str) -> RevocationReason | None:
    try:
        return RevocationReason(text)
    except ValueError:
        return None
