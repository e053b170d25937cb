"""The Art. 30–32 check wired to the store: registered certificates and imported CRLs.

`signed_documents.verify_signed_document` is pure; this binds its two lookups to one
transaction of the store, and keeps the trust anchors and time tolerances in one place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import crl as asn1_crl
from asn1crypto import x509

from icao_pki.signature import PublicKeyError, SignatureError, load_spki, verify_signature
from icao_pki.signer import HashAlgorithm

from .errors import Conflict, InvalidInput
from .signed_documents import (
    CertificateNotValidAtSigningTime,
    OrgPkiTrust,
    VerifiedSignature,
    build_path,
    verify_signed_document,
)
from .store import Crl, CrlScope, StoreTx


@dataclass(frozen=True)
class SignatureChecker:
    trust: OrgPkiTrust
    tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta | None = timedelta(days=1)

    def verify(self, tx: StoreTx, der: bytes, organisation_id: int, now: datetime) -> VerifiedSignature:
        def crls(fingerprint: str) -> bytes | None:
            row = tx.latest_crl(fingerprint, CrlScope.ORG_PKI)
            return row.der if row is not None else None

        def registered(fingerprint: str) -> int | None:
            row = tx.organisation_certificate_by_fingerprint(fingerprint)
            return row.organisation_id if row is not None else None

        return verify_signed_document(
            der,
            expected_organisation_id=organisation_id,
            now=now,
            trust=self.trust,
            crls=crls,
            registered=registered,
            tolerance=self.tolerance,
            max_age=self.max_age,
        )

    def check_organisation_certificate(self, der: bytes, now: datetime) -> x509.Certificate:
        """A certificate to register: an end-entity, valid now, chaining to the configured root."""
        try:
            cert = x509.Certificate.load(der, strict=True)
            _ = cert.subject, cert.not_valid_after
        except ValueError as exc:
            raise InvalidInput(f"not a DER X.509 certificate: {exc}") from None
        if cert.ca:
            raise InvalidInput("a CA certificate cannot be an organisation's official-use certificate")
        if not (cert.not_valid_before <= now <= cert.not_valid_after):
            raise CertificateNotValidAtSigningTime(
                f"{cert.subject.human_friendly} is not valid now ({now.isoformat()})",
                not_before=cert.not_valid_before.isoformat(),
                not_after=cert.not_valid_after.isoformat(),
            )
        build_path(cert, self.trust, now)
        return cert

    def import_crl(self, tx: StoreTx, der: bytes, now: datetime) -> Crl:
        """Store a CRL of the government CA after checking it is signed by a configured CA certificate."""
        try:
            cert_list = asn1_crl.CertificateList.load(der, strict=True)
            tbs = cert_list["tbs_cert_list"]
            issuer_name = tbs["issuer"]
            number = cert_list.crl_number_value.native if cert_list.crl_number_value is not None else None
            this_update = tbs["this_update"].native
            next_update = tbs["next_update"].native
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"not a DER CRL: {exc}") from None
        if number is None:
            raise InvalidInput("the CRL has no CRL number")
        issuer = None
        for candidate_der in (*self.trust.roots, *self.trust.intermediates):
            candidate = x509.Certificate.load(candidate_der)
            if candidate.subject != issuer_name:
                continue
            try:
                verify_signature(
                    load_spki(candidate.public_key.dump()),
                    cert_list["signature"].native,
                    tbs.dump(),
                    HashAlgorithm(cert_list["signature_algorithm"].hash_algo),
                    ecdsa_format="der",
                )
            except (SignatureError, PublicKeyError, ValueError):
                continue
            issuer = candidate
            break
        if issuer is None:
            raise InvalidInput(f"the CRL of {issuer_name.human_friendly} is not signed by a configured CA certificate")
        if this_update > now + self.tolerance:
            raise InvalidInput(f"the CRL's thisUpdate {this_update.isoformat()} lies in the future")
        fingerprint = hashlib.sha256(issuer.dump()).hexdigest()
        latest = tx.latest_crl(fingerprint, CrlScope.ORG_PKI)
        if latest is not None and number <= latest.crl_number:
            raise Conflict(f"CRL number {number} is not newer than the stored {latest.crl_number}", crl_number=number)
        return tx.add_crl(
            scope=CrlScope.ORG_PKI,
            issuer_fingerprint_sha256=fingerprint,
            issuer_name=issuer_name.human_friendly,
            crl_number=number,
            this_update=this_update,
            next_update=next_update,
            der=der,
            now=now,
        )
