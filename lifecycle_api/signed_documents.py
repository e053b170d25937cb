"""Signed documents under Decree 68/2024 Art. 30–32.

Every state-changing document — a request, a countersignature, a rejection, a revocation
request — is a CMS SignedData (RFC 5652, DER) made with an organisation's official-use
X.509 certificate.  A signature counts only if:

1. it verifies over the content (message-digest attribute, then the signature over the
   signed attributes exactly as received — never over a re-encoding);
2. the signer is the organisation that claims to act: the certificate is one registered
   for that organisation;
3. the certificate was valid **at signing time** (the signingTime signed attribute, which
   must not lie in the future of the service clock);
4. it was not revoked at signing time per its issuing CA's CRL (a revocation dated after
   the signing time does not invalidate the earlier signature);
5. the path up to a configured root is valid at signing time.

Each failure is a `SignedDocumentError` subclass with a stable `reason` code.  Building is
pure (a `Signer` and a time in, DER out); verification takes the trust anchors, a CRL
lookup and the registered-certificate lookup as parameters, never a database session.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, core, crl, x509

from icao_pki.signature import PublicKeyError, SignatureError, load_spki, verify_signature
from icao_pki.signer import HashAlgorithm, KeyKind, Signer

from .errors import LifecycleError

# --- errors ---------------------------------------------------------------------------------


class SignedDocumentError(LifecycleError):
    """A signed document that does not count as a valid official-use signature (Art. 30–32)."""

    kind = "signed-document"
    reason = "invalid-signed-document"
    article = "Art. 30–32"


class MalformedDocument(SignedDocumentError):
    reason = "malformed"


class SignatureInvalid(SignedDocumentError):
    reason = "bad-signature"
    article = "Art. 31"


class SignerNotRegistered(SignedDocumentError):
    reason = "signer-not-registered"
    article = "Art. 31"


class WrongParty(SignedDocumentError):
    reason = "wrong-party"
    article = "Art. 31"


class SigningTimeInvalid(SignedDocumentError):
    reason = "signing-time"
    article = "Art. 31"


class CertificateNotValidAtSigningTime(SignedDocumentError):
    reason = "certificate-not-valid-at-signing-time"
    article = "Art. 31"


class CertificateNotForSigning(SignedDocumentError):
    """The certificate's keyUsage does not allow document signatures (digitalSignature / nonRepudiation)."""

    reason = "key-usage"
    article = "Art. 31"


class CertificateRevoked(SignedDocumentError):
    reason = "certificate-revoked"
    article = "Art. 31"


class RevocationStatusUnknown(SignedDocumentError):
    reason = "revocation-status-unknown"
    article = "Art. 31"


class UntrustedPath(SignedDocumentError):
    reason = "untrusted-path"
    article = "Art. 31"


# --- building -------------------------------------------------------------------------------

_HASH_NAMES = {h.value: h for h in HashAlgorithm}


def _hash_for(signer: Signer) -> HashAlgorithm:
    if signer.kind is KeyKind.EC and signer.curve is not None and signer.curve.order_bytes > 32:
        return HashAlgorithm.SHA384 if signer.curve.order_bytes <= 48 else HashAlgorithm.SHA512
    return HashAlgorithm.SHA256


def _time(when: datetime) -> cms.Time:
    when = when.astimezone(UTC)
    return cms.Time(name="utc_time" if when.year < 2050 else "generalized_time", value=when)


def build_signed_document(
    content: bytes,
    signer: Signer,
    certificate_der: bytes,
    signing_time: datetime,
    *,
    detached: bool = False,
    extra_certificates: Sequence[bytes] = (),
) -> bytes:
    """CMS SignedData over `content`, signed through `signer` whose certificate is `certificate_der`.

    Signed attributes: contentType (id-data), messageDigest, signingTime.  With
    `detached=True` the content is left out (used for webhook payloads sent alongside).
    """
    from icao_pki.signature import plain_to_der

    certificate = x509.Certificate.load(certificate_der)
    hash_algorithm = _hash_for(signer)
    digest = hash_algorithm.digest(content)
    signed_attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["data"]},
            {"type": "message_digest", "values": [digest]},
            {"type": "signing_time", "values": [_time(signing_time)]},
        ]
    )
    to_sign = signed_attrs.dump()  # the SET OF encoding (tag 0x31), as RFC 5652 §5.4 requires
    raw = signer.sign(to_sign, hash_algorithm)
    if signer.kind is KeyKind.EC:
        signature = plain_to_der(raw)
        sig_algorithm = f"{hash_algorithm.value}_ecdsa"
    else:
        signature = raw
        sig_algorithm = "rsassa_pkcs1v15"
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": certificate.issuer, "serial_number": certificate.serial_number},
            ),
            "digest_algorithm": {"algorithm": hash_algorithm.value},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {"algorithm": sig_algorithm},
            "signature": signature,
        }
    )
    encap: dict[str, object] = {"content_type": "data"}
    if not detached:
        encap["content"] = core.OctetString(content)
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": hash_algorithm.value}],
            "encap_content_info": encap,
            "certificates": [certificate, *(x509.Certificate.load(c) for c in extra_certificates)],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSignedDocument:
    """What a SignedData claims, before any of it is trusted."""

    content: bytes
    signing_time: datetime
    signer_certificate: x509.Certificate
    signer_certificate_der: bytes
    hash_algorithm: HashAlgorithm
    message_digest: bytes
    signed_attrs_der: bytes  # SET OF encoding of the attributes as received
    signature: bytes
    signature_algorithm: str
    cms_der: bytes

    @property
    def signer_fingerprint_sha256(self) -> str:
        return hashlib.sha256(self.signer_certificate_der).hexdigest()

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def parse_signed_document(der: bytes, *, detached_content: bytes | None = None) -> ParsedSignedDocument:
    """Decode a CMS SignedData with exactly one signer; raises `MalformedDocument`."""
    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise MalformedDocument(f"content type is {info['content_type'].native}, not signed_data")
        signed = info["content"]
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise MalformedDocument(f"expected exactly one signer, found {len(signer_infos)}")
        si = signer_infos[0]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise MalformedDocument("encapsulated content type must be id-data")
        if detached_content is not None:
            if encap["content"].native is not None:
                raise MalformedDocument("detached content given but the document carries its own")
            content = detached_content
        else:
            if encap["content"].native is None:
                raise MalformedDocument("the document carries no content")
            content = encap["content"].native
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            raise MalformedDocument("signer must be identified by issuer and serial number")
        issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
        certificate = None
        for choice in signed["certificates"] or []:
            if choice.name == "certificate":
                cand = choice.chosen
                if cand.issuer == issuer and cand.serial_number == serial:
                    certificate = cand
                    break
        if certificate is None:
            raise MalformedDocument("the signer's certificate is not included in the document")
        attrs = si["signed_attrs"]
        if not attrs:
            raise MalformedDocument("signed attributes are required (content type, message digest, signing time)")
        values: dict[str, list[object]] = {}
        for attr in attrs:
            values.setdefault(attr["type"].native, []).extend(attr["values"])
        for required in ("content_type", "message_digest", "signing_time"):
            if len(values.get(required, [])) != 1:
                raise MalformedDocument(f"signed attribute {required} must appear exactly once")
        if values["content_type"][0].native != "data":  # type: ignore[attr-defined]
            raise MalformedDocument("contentType attribute does not match the content")
        hash_name = si["digest_algorithm"]["algorithm"].native
        if hash_name not in _HASH_NAMES or hash_name == "sha1":
            raise MalformedDocument(f"digest algorithm {hash_name} is not accepted")
        signing_time = values["signing_time"][0].native  # type: ignore[attr-defined]
        attrs_der = b"\x31" + attrs.dump()[1:]  # [0] IMPLICIT back to SET OF, original bytes
        return ParsedSignedDocument(
            content=content,
            signing_time=signing_time.astimezone(UTC),
            signer_certificate=certificate,
            signer_certificate_der=certificate.dump(),
            hash_algorithm=_HASH_NAMES[hash_name],
            message_digest=values["message_digest"][0].native,  # type: ignore[attr-defined]
            signed_attrs_der=attrs_der,
            signature=si["signature"].native,
            signature_algorithm=si["signature_algorithm"].signature_algo,
            cms_der=der,
        )
    except SignedDocumentError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise MalformedDocument(f"not a valid CMS SignedData: {exc}") from None


# --- trust ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgPkiTrust:
    """The configured root(s) of the government CA and the intermediates a path may use."""

    roots: tuple[bytes, ...]
    intermediates: tuple[bytes, ...] = ()

    def _certs(self) -> list[tuple[x509.Certificate, bool]]:
        return [(x509.Certificate.load(d), True) for d in self.roots] + [
            (x509.Certificate.load(d), False) for d in self.intermediates
        ]


#: issuer certificate SHA-256 fingerprint -> newest CRL (DER) of that issuer, or None
CrlLookup = Callable[[str], bytes | None]
#: signer certificate SHA-256 fingerprint -> id of the organisation it is registered to, or None
RegistrationLookup = Callable[[str], int | None]


@dataclass(frozen=True)
class VerifiedSignature:
    organisation_id: int
    signing_time: datetime
    signer_fingerprint_sha256: str
    content: bytes
    content_sha256: str
    cms_der: bytes
    path: tuple[str, ...]  # subjects, signer first


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.dump()).hexdigest()


def _verify_issued_by(child_tbs: bytes, child: x509.Certificate | crl.CertificateList, issuer: x509.Certificate) -> None:
    algo = child["signature_algorithm"]
    key = load_spki(issuer.public_key.dump())
    hash_algorithm = HashAlgorithm(algo.hash_algo)
    value = child["signature_value"].native if isinstance(child, x509.Certificate) else child["signature"].native
    verify_signature(key, value, child_tbs, hash_algorithm, ecdsa_format="der")


def _check_validity(cert: x509.Certificate, when: datetime, what: str) -> None:
    if not (cert.not_valid_before <= when <= cert.not_valid_after):
        raise CertificateNotValidAtSigningTime(
            f"{what} {cert.subject.human_friendly} was not valid at signing time {when.isoformat()} "
            f"(valid {cert.not_valid_before.isoformat()} – {cert.not_valid_after.isoformat()})",
            subject=cert.subject.human_friendly,
            signing_time=when.isoformat(),
            not_before=cert.not_valid_before.isoformat(),
            not_after=cert.not_valid_after.isoformat(),
        )


def build_path(leaf: x509.Certificate, trust: OrgPkiTrust, when: datetime) -> list[x509.Certificate]:
    """Signer → … → configured root, each link's signature checked and each CA valid at `when`."""
    pool = trust._certs()
    root_fps = {_fingerprint(c) for c, is_root in pool if is_root}
    path = [leaf]
    current = leaf
    for _ in range(8):
        if _fingerprint(current) in root_fps:
            return path
        candidates = [c for c, _ in pool if c.subject == current.issuer and _fingerprint(c) != _fingerprint(current)]
        issuer = None
        for cand in candidates:
            try:
                _verify_issued_by(current["tbs_certificate"].dump(), current, cand)
            except (SignatureError, PublicKeyError, ValueError):
                continue
            issuer = cand
            break
        if issuer is None:
            raise UntrustedPath(
                f"no configured root or intermediate issued {current.subject.human_friendly}",
                subject=current.subject.human_friendly,
                issuer=current.issuer.human_friendly,
            )
        if not issuer.ca:
            raise UntrustedPath(f"{issuer.subject.human_friendly} is not a CA certificate")
        if issuer.key_usage_value is not None and "key_cert_sign" not in issuer.key_usage_value.native:
            raise UntrustedPath(f"{issuer.subject.human_friendly} may not sign certificates (keyUsage)")
        _check_validity(issuer, when, "issuing CA")
        path.append(issuer)
        current = issuer
    raise UntrustedPath("certificate path too long")


def check_not_revoked(cert: x509.Certificate, issuer: x509.Certificate, when: datetime, crls: CrlLookup) -> None:
    """Art. 31: not revoked at signing time, per the issuer's CRL (signature-checked)."""
    der = crls(_fingerprint(issuer))
    subject = cert.subject.human_friendly
    if der is None:
        raise RevocationStatusUnknown(f"no CRL of {issuer.subject.human_friendly} is available", subject=subject)
    try:
        cert_list = crl.CertificateList.load(der, strict=True)
        tbs = cert_list["tbs_cert_list"]
        _verify_issued_by(tbs.dump(), cert_list, issuer)
    except (SignatureError, PublicKeyError, ValueError, KeyError) as exc:
        raise RevocationStatusUnknown(f"the CRL of {issuer.subject.human_friendly} does not verify: {exc}") from None
    if tbs["issuer"] != issuer.subject:
        raise RevocationStatusUnknown("the CRL's issuer is not the certificate's issuer")
    this_update = tbs["this_update"].native
    next_update = tbs["next_update"].native
    if this_update < when and (next_update is None or next_update < when):
        raise RevocationStatusUnknown(
            f"the newest CRL of {issuer.subject.human_friendly} (next update {next_update}) does not cover "
            f"the signing time {when.isoformat()}",
            subject=subject,
        )
    for entry in tbs["revoked_certificates"] or []:
        if entry["user_certificate"].native != cert.serial_number:
            continue
        revoked_at = entry["revocation_date"].native
        if revoked_at <= when:
            raise CertificateRevoked(
                f"{subject} was revoked at {revoked_at.isoformat()}, before the signing time {when.isoformat()}",
                subject=subject,
                revoked_at=revoked_at.isoformat(),
                signing_time=when.isoformat(),
            )


def verify_signed_document(
    der: bytes,
    *,
    expected_organisation_id: int,
    now: datetime,
    trust: OrgPkiTrust,
    crls: CrlLookup,
    registered: RegistrationLookup,
    tolerance: timedelta = timedelta(minutes=5),
    max_age: timedelta | None = None,
    detached_content: bytes | None = None,
) -> VerifiedSignature:
    """Check every Art. 30–32 condition; return what was verified, or raise a `SignedDocumentError`."""
    doc = parse_signed_document(der, detached_content=detached_content)
    # 1. the signature over the content
    if doc.hash_algorithm.digest(doc.content) != doc.message_digest:
        raise SignatureInvalid("the message digest does not match the content (tampered content)")
    try:
        key = load_spki(doc.signer_certificate.public_key.dump())
        verify_signature(key, doc.signature, doc.signed_attrs_der, doc.hash_algorithm, ecdsa_format="der")
    except (SignatureError, PublicKeyError) as exc:
        raise SignatureInvalid(f"the signature does not verify with the signer's certificate: {exc}") from None
    # 2. the signer is the registered organisation
    fingerprint = doc.signer_fingerprint_sha256
    subject = doc.signer_certificate.subject.human_friendly
    owner = registered(fingerprint)
    if owner is None:
        raise SignerNotRegistered(
            f"the certificate of {subject} is not registered for any organisation", subject=subject, fingerprint=fingerprint
        )
    if owner != expected_organisation_id:
        raise WrongParty(
            f"the document is signed with a certificate of organisation {owner}, not of the acting organisation "
            f"{expected_organisation_id}",
            signer_organisation_id=owner,
            expected_organisation_id=expected_organisation_id,
        )
    # 3. the signing time, and the certificate at that time
    when = doc.signing_time
    if when > now + tolerance:
        raise SigningTimeInvalid(
            f"signing time {when.isoformat()} lies in the future of the service clock {now.isoformat()}",
            signing_time=when.isoformat(),
        )
    if max_age is not None and when < now - max_age:
        raise SigningTimeInvalid(
            f"signing time {when.isoformat()} is older than the accepted {max_age}", signing_time=when.isoformat()
        )
    _check_validity(doc.signer_certificate, when, "signer certificate")
    usage = doc.signer_certificate.key_usage_value
    if usage is not None and not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise CertificateNotForSigning(
            f"the keyUsage of {subject} ({', '.join(sorted(usage.native))}) does not allow signing documents"
        )
    # 5. the path to the configured root, valid at signing time
    path = build_path(doc.signer_certificate, trust, when)
    # 4. not revoked at signing time, for every non-root link
    for child, issuer in itertools.pairwise(path):
        check_not_revoked(child, issuer, when, crls)
    return VerifiedSignature(
        organisation_id=owner,
        signing_time=when,
        signer_fingerprint_sha256=fingerprint,
        content=doc.content,
        content_sha256=doc.content_sha256,
        cms_der=der,
        path=tuple(c.subject.human_friendly for c in path),
    )
