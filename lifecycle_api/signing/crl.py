"""Periodic CSCA CRLs (9303-12 §4.1.5: nextUpdate at most 90 days; default reissued daily).

The revocation flow (issue 6, `lifecycle_api.revocation`) issues a CRL on every revocation;
this issuer is what the `crl-publication` schedule calls when the latest CRL of a CSCA is
missing, older than the interval, or close to its nextUpdate.  It lists every revocation
recorded for certificates the CSCA issued (including Art. 18.1 automatic revocations of
expired certificates), numbers the CRL one above the last, stores and publishes it.

It signs through the sign component (`lifecycle_api.authority.Authority`), like every CA
signature of the service: the CSCA key is loaded and checked to be the certificate's key,
a journal row is committed before the HSM sees the CRL, the CRL is verified against the
CSCA certificate before the row is done, and the row is committed in the same transaction
that stores and publishes the CRL — a crash in between leaves a signature that `recover()`
marks abandoned, never a CRL that is published but unjournalled.

`Authority.check_crl_key`, not `check_key`: the latter bounds *certificate* signing by the key's usage
window and state, but a CSCA keeps issuing CRLs for as long as certificates it issued may be in use
(9303-12 §4.1.5: a CRL at least every 90 days), including after its key's rollover.  The key
must still be in the HSM and match the certificate (`load_ca`); retired keys are destroyed
only after their certificates' validity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from icao_pki.crl import MAX_CRL_INTERVAL, RevocationReason, RevokedEntry, build_crl, verify_crl

from ..authority import Authority
from ..store import CrlScope, PublishedKind


@dataclass
class HsmCrlIssuer:
    authority: Authority
    next_update: timedelta = timedelta(days=30)

    def __post_init__(self) -> None:
        if self.next_update > MAX_CRL_INTERVAL:
            raise ValueError(f"nextUpdate interval {self.next_update} exceeds {MAX_CRL_INTERVAL} (9303-12 §4.1.5)")

    def issue_crl(self, due: object, now: datetime) -> int:
        """`due` carries `csca_certificate_id` (schedules.decisions.CrlDue); returns the CRL row id."""
        csca_id = int(due.csca_certificate_id)  # type: ignore[attr-defined]
        now = now.replace(microsecond=0)
        authority, store = self.authority, self.authority.store
        with store.transaction() as tx:
            csca_row = tx.certificate(csca_id)
            ca = authority.load_ca(tx, csca_row)
            authority.check_crl_key(tx, ca)
            fingerprint, document_type = csca_row.fingerprint_sha256, csca_row.document_type
            latest = tx.latest_crl(fingerprint, CrlScope.CSCA)
            previous = latest.crl_number if latest else None
            number = tx.next_crl_number(fingerprint)
            entries = [
                RevokedEntry(serial_number=int(c.serial, 16), revocation_date=r.revoked_at.replace(microsecond=0),
                             reason=_reason(r.reason), invalidity_date=r.invalidity_date)
                for r, c in tx.revocations_of_issuer(csca_id) if c.serial and r.revoked_at is not None
            ]  # fmt: skip
        assert ca.x509 is not None
        csca = ca.x509

        def build(signer: Any) -> bytes:
            return build_crl(signer, csca, this_update=now, next_update=now + self.next_update, crl_number=number,
                             revoked=entries, previous_crl_number=previous)  # fmt: skip

        def verify(der: bytes) -> None:
            verify_crl(der, csca)

        signed = authority.sign(ca.signer, ca.label, build, verify, purpose="CRL (periodic)",
                                details={"crl_number": number, "csca_certificate_id": csca_id})  # fmt: skip
        der = signed.der
        try:
            with store.transaction() as tx:
                row = tx.add_crl(scope=CrlScope.CSCA, issuer_fingerprint_sha256=fingerprint,
                                 issuer_name=csca.subject_str, crl_number=number, this_update=now,
                                 next_update=now + self.next_update, der=der, now=now)  # fmt: skip
                tx.add_published(kind=PublishedKind.CRL, name=f"CRL {number} of {csca.subject_str}", der=der,
                                 sha256=hashlib.sha256(der).hexdigest(), now=now, document_type=document_type,
                                 crl_id=row.id)  # fmt: skip
                authority.commit(tx, signed.operation_id)
                tx.append_audit(at=now, action="crl.issued", entity_type="crl", entity_id=row.id,
                                details={"csca_certificate_id": csca_id, "crl_number": number,
                                         "revoked": len(entries), "hsm_operation_id": signed.operation_id})  # fmt: skip
                return row.id
        except Exception as exc:
            # e.g. the revocation flow took this number first: the CRL was never stored nor published
            authority.abandon(signed.operation_id, f"CRL {number} not stored: {type(exc).__name__}: {exc}")
            raise


def _reason(text: str) -> RevocationReason | None:
    try:
        return RevocationReason(text)
    except ValueError:
        return None
