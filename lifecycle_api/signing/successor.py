"""Issuing a DS key and its certificate directly with a CSCA key the same HSM holds.

This is the Provider's *act* step of a DS issuance reduced to its essentials: generate the
key in the HSM, build the DS certificate under the decree's limits (`build_ds_certificate`
refuses anything longer), record the key (ACTIVE, usage window = the certificate's
PrivateKeyUsagePeriod, budget = the policy's signature limit) and the certificate, audit.

It serves the bootstrap of a DS key, the simulation and the tests.  In production a
successor is asked for through the Agency → Cơ yếu → Provider flow (`rollover.
SuccessorRequester` implementations that submit a DS request); see `rollover.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from icao_pki.certificate import build_ds_certificate, parse_certificate
from icao_pki.clock import Clock
from icao_pki.keystore import KeyStore
from icao_pki.names import DistinguishedName
from icao_pki.policy import DEFAULT_POLICY, CertificateFormat, DocumentType, Policy, Role, Window, add_months

from ..store import KeyState, PublishedKind, Store, StoreTx


@dataclass
class DirectDsIssuer:
    """Generates DS keys in the HSM and certifies them with the CSCA key `csca_label`."""

    store: Store
    keystore: KeyStore
    clock: Clock
    csca_label: str
    csca_der: bytes
    policy: Policy = DEFAULT_POLICY
    algorithm: str = "secp256r1"
    crl_distribution_point: str = "http://pkd.icao-pki.invalid/crl/csca.crl"
    hierarchy_id: int | None = None
    organisation_id: int | None = None
    csca_certificate_id: int | None = None

    def issue(self, document_type: DocumentType | str, *, start: datetime | None = None) -> int:
        """A new ACTIVE DS key with its certificate; returns the key id."""
        doc = DocumentType(document_type)
        now = self.clock.now()
        start = (start or now).replace(microsecond=0)
        limit = self.policy.limit(doc, Role.DS)
        csca = parse_certificate(self.csca_der)
        validity_end = min(add_months(start, limit.certificate_validity_months), csca.not_after)
        usage_end = min(add_months(start, limit.key_usage_months), validity_end)
        label = str(self.keystore.next_label(doc.value, "ds"))
        signer = self.keystore.generate_key(label, self.algorithm, reason=f"{doc.value} DS key")
        der = build_ds_certificate(
            self.keystore.signer(self.csca_label), csca, signer.public_key_info(),
            DistinguishedName(f"Document Signer {label}", organizational_unit=doc.label),
            validity=Window(start, validity_end), private_key_usage=Window(start, usage_end),
            document_type=doc, crl_distribution_points=[self.crl_distribution_point], policy=self.policy,
        )  # fmt: skip
        cert = parse_certificate(der)
        with self.store.transaction() as tx:
            key = tx.add_key(
                hsm_label=label, role=Role.DS, document_type=doc, algorithm=self.algorithm, now=now,
                hierarchy_id=self.hierarchy_id, organisation_id=self.organisation_id,
                usage_not_before=start, usage_not_after=usage_end, max_signatures=limit.max_signatures,
                state=KeyState.ACTIVE,
            )  # fmt: skip
            row = self._record_certificate(tx, key.id, doc, der, cert.serial_number, now)
            tx.append_audit(
                at=now, action="ds_key.issued", entity_type="key", entity_id=key.id,
                details={"label": label, "certificate_id": row, "usage_not_before": start.isoformat(),
                         "usage_not_after": usage_end.isoformat(), "max_signatures": limit.max_signatures},
            )  # fmt: skip
            return key.id

    def _record_certificate(
        self, tx: StoreTx, key_id: int, doc: DocumentType, der: bytes, serial: int, now: datetime
    ) -> int:
        cert = parse_certificate(der)
        fingerprint = hashlib.sha256(der).hexdigest()
        row = tx.add_certificate(
            hierarchy_id=self.hierarchy_id, key_id=key_id, organisation_id=self.organisation_id,
            issuer_certificate_id=self.csca_certificate_id,
            certificate_format=CertificateFormat.X509, role=Role.DS, document_type=doc, serial=f"{serial:x}", subject=cert.subject_str,
            issuer=cert.issuer_str, not_before=cert.not_before, not_after=cert.not_after, der=der,
            fingerprint_sha256=fingerprint, created_at=now,
        )  # fmt: skip
        tx.add_published(kind=PublishedKind.DS, name=cert.subject_str, der=der, sha256=fingerprint, now=now,
                         document_type=doc, certificate_id=row.id)
        return row.id

    # --- rollover.SuccessorRequester ---------------------------------------------------------

    def successor_pending(self, tx: StoreTx, document_type: DocumentType) -> bool:
        return False  # issuance is synchronous: the successor key row exists once asked for

    def request_successor(self, document_type: DocumentType, predecessor_key_id: int, now: datetime) -> str:
        key_id = self.issue(document_type, start=now)
        return f"key:{key_id}"
