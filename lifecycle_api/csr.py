"""PKCS#10 certification requests (RFC 2986): the DS request an Agency hands to the Provider.

A CSR proves possession of the DS key: it is signed by that key, in the HSM.  The Provider
takes only the public key from it; the subject, validity and extensions of the DS
certificate are the Provider's decision (9303-12 profile, decree limits).
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import csr as asn1_csr
from asn1crypto import keys, x509

from icao_pki.certificate import sign_tbs, signature_algorithm_for, verify_x509_signature
from icao_pki.signature import PublicKey, PublicKeyError, SignatureError, load_spki
from icao_pki.signer import RsaPadding, Signer

from .errors import InvalidInput


@dataclass(frozen=True)
class ParsedCsr:
    subject: x509.Name
    public_key: PublicKey
    spki_der: bytes


def build_csr(signer: Signer, subject: x509.Name) -> bytes:
    """A CSR for the signer's key, signed once by that key (proof of possession)."""
    algorithm, hash_algorithm = signature_algorithm_for(signer, None, RsaPadding.PSS)
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1",
        "subject": subject,
        "subject_pk_info": keys.PublicKeyInfo.load(signer.public_key_info()),
        "attributes": [],
    })
    info_der = info.dump(force=True)
    signature = sign_tbs(signer, info_der, hash_algorithm, RsaPadding.PSS)
    return asn1_csr.CertificationRequest({
        "certification_request_info": asn1_csr.CertificationRequestInfo.load(info_der),
        "signature_algorithm": algorithm,
        "signature": signature,
    }).dump()


def parse_and_verify_csr(der: bytes) -> ParsedCsr:
    """Parse the CSR and check its self-signature; raises InvalidInput (422) otherwise."""
    try:
        req = asn1_csr.CertificationRequest.load(der, strict=True)
        info = req["certification_request_info"]
        info_der = info.dump()
        spki_der = info["subject_pk_info"].dump()
        key = load_spki(spki_der)
        algorithm = x509.SignedDigestAlgorithm.load(req["signature_algorithm"].dump())
        verify_x509_signature(key, algorithm, req["signature"].native, info_der)
        subject = info["subject"]
    except (ValueError, TypeError, PublicKeyError) as exc:
        raise InvalidInput(f"the DS request is not a PKCS#10 CSR: {exc}") from None
    except SignatureError as exc:
        raise InvalidInput(f"the DS request's signature does not verify (no proof of possession): {exc}") from None
    return ParsedCsr(subject=subject, public_key=key, spki_der=spki_der)
