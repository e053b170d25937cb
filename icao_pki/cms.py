"""CMS SignedData for the ICAO signed objects: EF.SOD, CSCA Master Lists, Deviation Lists.

Why a module of our own instead of a generic CMS library:

* **Verify what was received.**  Signatures are checked over the bytes as they arrived
  (asn1crypto keeps every parsed element's original encoding), never over a re-encoding.
  Real Master Lists carry signed attributes whose transmitted encoding is not DER (ICAO
  PKD and German Master Lists examined by ZeroPass: "signedAttrs encoding != signed
  encoding"), so the received SET is tried first and its DER re-encoding second, the
  latter reported as a warning.
* **One signer interface.**  Objects are signed through `icao_pki.signer.Signer` (an HSM
  key in production); ECDSA output is converted once, in `icao_pki.signature`.
* **Tolerance is explicit.**  Foreign documents get `tolerant=True`: plain r||s ECDSA
  signatures where DER is required, a signature-algorithm hash that differs from the
  digest algorithm, ... become warnings.  Our own output is checked with `tolerant=False`.

Errors: every error of the CMS-based modules (`sod`, `masterlist`, `deviationlist`,
`pa`) derives from `CmsError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache

from asn1crypto import algos, cms, core, x509

from .findings import Finding, Severity
from .names import X509Error
from .signature import (
    PublicKey,
    PublicKeyError,
    RsaPublicKey,
    SignatureError,
    load_spki,
    plain_to_der,
    verify_signature,
)
from .signer import HashAlgorithm, KeyKind, RsaPadding, Signer

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"


# --- errors and findings -------------------------------------------------------------------


class CmsError(X509Error, ValueError):
    """Root of the errors raised by the CMS-based ICAO modules (SOD, Master List, DL, PA).

    A subclass of `icao_pki.names.X509Error`, the root of every icao_pki error."""


class CmsDecodeError(CmsError):
    """Bytes that are not the CMS object they claim to be."""


class CmsBuildError(CmsError):
    """Inputs from which we refuse to build a signed object (e.g. key does not match certificate)."""


class CmsSignatureError(CmsError):
    """A CMS signature (or a message digest bound by it) does not verify."""

    def __init__(self, message: str, *, code: str = "signature") -> None:
        super().__init__(message)
        self.code = code


def error(code: str, message: str, subject: str | None = None) -> Finding:
    return Finding(Severity.ERROR, code, message, subject=subject)


def warning(code: str, message: str, subject: str | None = None) -> Finding:
    return Finding(Severity.WARNING, code, message, subject=subject)


def info(code: str, message: str, subject: str | None = None) -> Finding:
    return Finding(Severity.INFO, code, message, subject=subject)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


# --- content-type registry -----------------------------------------------------------------


def register_content_type(oid: str, name: str, spec: type[core.Asn1Value]) -> None:
    """Teach asn1crypto an eContentType so `.native` shows its name and `.parsed` decodes it."""
    cms.ContentType._map[oid] = name
    if cms.ContentType._reverse_map is not None:
        cms.ContentType._reverse_map[name] = oid
    cms.EncapsulatedContentInfo._oid_specs[name] = spec


# --- algorithms ----------------------------------------------------------------------------

_HASH_BY_NAME = {h.value: h for h in HashAlgorithm}
#: Hashes ICAO 9303-12 §4.1.6 allows for new signatures; SHA-1 is accepted on input only.
SIGNING_HASHES = (HashAlgorithm.SHA224, HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512)


def hash_from_name(name: str) -> HashAlgorithm:
    try:
        return _HASH_BY_NAME[name]
    except KeyError:
        raise CmsDecodeError(f"unsupported digest algorithm {name}") from None


def digest_algorithm(hash_algorithm: HashAlgorithm) -> algos.DigestAlgorithm:
    """DigestAlgorithmIdentifier without parameters (9303-12: omit NULL)."""
    return algos.DigestAlgorithm({"algorithm": hash_algorithm.value})


def signature_algorithm(kind: KeyKind, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding) -> algos.SignedDigestAlgorithm:
    """SignatureAlgorithmIdentifier: ecdsa-with-SHAx (no parameters), shaxWithRSAEncryption (NULL),
    or RSASSA-PSS with hash = MGF1 hash and salt = hash length (9303-12, RFC 4055)."""
    name = hash_algorithm.value
    if kind is KeyKind.EC:
        return algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"})
    if rsa_padding is RsaPadding.PSS:
        params = algos.RSASSAPSSParams(
            {
                "hash_algorithm": {"algorithm": name},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": name}},
                "salt_length": hash_algorithm.digest_size,
            }
        )
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
    return algos.SignedDigestAlgorithm({"algorithm": f"{name}_rsa", "parameters": core.Null()})


@dataclass(frozen=True)
class _SignatureScheme:
    kind: KeyKind
    hash_algorithm: HashAlgorithm
    rsa_padding: RsaPadding
    pss_salt_length: int | None = None
    pss_mgf_hash: HashAlgorithm | None = None


def _scheme(algorithm: algos.SignedDigestAlgorithm, fallback_hash: HashAlgorithm | None) -> tuple[_SignatureScheme, list[Finding]]:
    """Interpret a SignatureAlgorithmIdentifier; `fallback_hash` is the SignerInfo digest
    algorithm, used where the identifier names no hash (rsaEncryption, id-ecPublicKey)."""
    findings: list[Finding] = []
    try:
        family = algorithm.signature_algo
    except ValueError as exc:
        raise CmsSignatureError(f"unsupported signature algorithm: {exc}", code="algorithm") from None
    if family == "rsassa_pss":
        params = algorithm["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf = params["mask_gen_algorithm"]
        if mgf["algorithm"].native != "mgf1":
            raise CmsSignatureError(f"RSASSA-PSS mask generation {mgf['algorithm'].native} is not supported", code="algorithm")
        hash_algorithm = hash_from_name(hash_name)
        mgf_hash = hash_from_name(mgf["parameters"]["algorithm"].native)
        salt = params["salt_length"].native
        if mgf_hash is not hash_algorithm or salt != hash_algorithm.digest_size:
            # RFC 4055 allows it and foreign signers do it (e.g. 20-byte salts); we never write it
            findings.append(
                info(
                    "pss-parameters",
                    f"RSASSA-PSS with MGF1-{mgf_hash.value} and salt {salt} (we write MGF1-{hash_name}, salt {hash_algorithm.digest_size})",
                )
            )
        return _SignatureScheme(KeyKind.RSA, hash_algorithm, RsaPadding.PSS, salt, mgf_hash), findings
    if family not in ("rsassa_pkcs1v15", "ecdsa"):
        raise CmsSignatureError(f"unsupported signature algorithm {family}", code="algorithm")
    kind = KeyKind.RSA if family == "rsassa_pkcs1v15" else KeyKind.EC
    try:
        hash_algorithm = hash_from_name(algorithm.hash_algo)
    except ValueError:
        if fallback_hash is None:
            raise CmsSignatureError(
                f"signature algorithm {algorithm['algorithm'].native} names no hash", code="algorithm"
            ) from None
        hash_algorithm = fallback_hash
        findings.append(
            warning(
                "signature-algorithm-without-hash",
                f"signature algorithm {algorithm['algorithm'].dotted} names no hash; used the digest algorithm {fallback_hash.value}",
            )
        )
    return _SignatureScheme(kind, hash_algorithm, RsaPadding.PKCS1V15), findings


def verify_algorithm_signature(
    key: PublicKey,
    algorithm: algos.SignedDigestAlgorithm,
    signature: bytes,
    data: bytes,
    *,
    fallback_hash: HashAlgorithm | None = None,
    tolerant: bool = False,
) -> list[Finding]:
    """Verify `signature` over `data` as described by an X.509/CMS AlgorithmIdentifier.

    Raises `CmsSignatureError`; returns warnings for tolerated deviations (tolerant mode:
    a plain r||s ECDSA signature where DER ECDSA-Sig-Value is required)."""
    scheme, findings = _scheme(algorithm, fallback_hash)
    if (scheme.kind is KeyKind.RSA) != isinstance(key, RsaPublicKey):
        raise CmsSignatureError(
            f"signature algorithm {algorithm['algorithm'].native} does not match the {key.kind.value.upper()} key",
            code="algorithm",
        )
    try:
        verify_signature(
            key,
            signature,
            data,
            scheme.hash_algorithm,
            ecdsa_format="der",
            rsa_padding=scheme.rsa_padding,
            pss_salt_length=scheme.pss_salt_length,
            pss_mgf_hash=scheme.pss_mgf_hash,
        )
        return findings
    except SignatureError as exc:
        first = str(exc)
    if scheme.kind is KeyKind.EC and tolerant and len(signature) == 2 * key.curve.order_bytes:  # type: ignore[union-attr]
        try:
            verify_signature(key, signature, data, scheme.hash_algorithm, ecdsa_format="plain")
        except SignatureError:
            pass
        else:
            findings.append(
                warning("ecdsa-plain-signature", "ECDSA signature is plain r||s where DER ECDSA-Sig-Value is required")
            )
            return findings
    raise CmsSignatureError(first)


# --- certificates --------------------------------------------------------------------------


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse an X.509 certificate (keeps its original bytes) or raise `CmsDecodeError`."""
    try:
        cert = x509.Certificate.load(der)
        # Parse everything now: asn1crypto parses lazily, and a malformed certificate must
        # fail here with a typed error, not deep inside a path-building loop.
        _ = cert.native
        _ = cert.key_identifier, cert.authority_key_identifier, cert.not_valid_before, cert.not_valid_after
        return cert
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise CmsDecodeError(f"not an X.509 certificate: {exc}") from None


def certificate_public_key(cert: x509.Certificate) -> PublicKey:
    """The certificate's key, with explicit EC parameters mapped to a named curve."""
    try:
        return _spki(cert["tbs_certificate"]["subject_public_key_info"].dump())
    except PublicKeyError as exc:
        raise CmsDecodeError(f"{subject_text(cert)}: {exc}") from None


@lru_cache(maxsize=4096)
def _spki(der: bytes) -> PublicKey:
    """`load_spki` is pure and (for explicit parameters) not cheap: a border verifier sees the
    same CSCA and DS keys over and over."""
    return load_spki(der)


@lru_cache(maxsize=8192)
def _name_key(der: bytes) -> str:
    return x509.Name.load(der).hashable


def same_name(a: x509.Name, b: x509.Name) -> bool:
    """RFC 5280 name equality (asn1crypto's normalisation: case, whitespace, string types),
    with a byte-equality fast path and a cache, because it sits in every path-building loop."""
    da, db = a.dump(), b.dump()
    return da == db or _name_key(da) == _name_key(db)


def subject_text(cert: x509.Certificate) -> str:
    return _human_name(cert.subject.dump())


@lru_cache(maxsize=4096)
def _human_name(der: bytes) -> str:
    return x509.Name.load(der).human_friendly


def certificate_extension(cert: x509.Certificate, name: str) -> core.Asn1Value | None:
    """The parsed value of a certificate extension by asn1crypto name or dotted OID, or None."""
    extensions = cert["tbs_certificate"]["extensions"]
    if isinstance(extensions, core.Void):
        return None
    for extension in extensions:
        if extension["extn_id"].native == name or extension["extn_id"].dotted == name:
            return extension["extn_value"].parsed
    return None


def is_self_issued(cert: x509.Certificate) -> bool:
    return same_name(cert.subject, cert.issuer)


def is_self_signed(cert: x509.Certificate) -> bool:
    """A CSCA root, as opposed to a link certificate.  Subject = issuer is not enough: a CSCA
    link certificate keeps the CSCA's name when only the key rolls over (9303-12 §5.1.2), so
    its issuer equals its subject while the OLD key signed it.  Key identifiers decide when
    both are present; otherwise the certificate's own key must verify its signature."""
    if not is_self_issued(cert):
        return False
    aki, ski = cert.authority_key_identifier, cert.key_identifier
    if aki is not None and ski is not None:
        return aki == ski
    return _verifies_with_own_key(cert.dump())


@lru_cache(maxsize=4096)
def _verifies_with_own_key(der: bytes) -> bool:
    cert = _cached_certificate(der)
    try:
        verify_certificate_signature(cert, certificate_public_key(cert), tolerant=True)
    except CmsError:
        return False
    return True


def certificate_digest(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.dump()).digest()


def verify_certificate_signature(
    cert: x509.Certificate, issuer_key: PublicKey, *, tolerant: bool = False
) -> list[Finding]:
    """Check that `issuer_key` signed `cert` (over the TBSCertificate as received)."""
    return verify_algorithm_signature(
        issuer_key,
        cert["signature_algorithm"],
        cert["signature_value"].native,
        cert["tbs_certificate"].dump(),
        tolerant=tolerant,
    )


def certificate_matches_key(cert: x509.Certificate, key: PublicKey) -> bool:
    try:
        return certificate_public_key(cert) == key
    except CmsDecodeError:
        return False


@lru_cache(maxsize=1024)
def _cached_certificate(der: bytes) -> x509.Certificate:
    return load_certificate(der)


def load_certificate_cached(der: bytes) -> x509.Certificate:
    """`load_certificate` for certificates seen repeatedly (signer certificates, trust anchors).
    The returned object is shared: callers must not modify it."""
    return _cached_certificate(bytes(der))


# --- parsed SignedData ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignedObject:
    """A parsed ContentInfo{SignedData}; every part keeps its original encoding."""

    raw: bytes
    signed_data: cms.SignedData
    content_type: str  # dotted eContentType
    content: bytes  # eContent octets as received
    certificates: tuple[x509.Certificate, ...]
    signer_infos: tuple[cms.SignerInfo, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def version(self) -> int:
        return int(self.signed_data["version"].native[1:])


def parse_signed_data(data: bytes) -> SignedObject:
    """ContentInfo{id-signedData} → `SignedObject`, or `CmsDecodeError`.  BER is accepted."""
    findings: list[Finding] = []
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].dotted != ID_SIGNED_DATA:
            raise CmsDecodeError(f"ContentInfo holds {info['content_type'].dotted}, not id-signedData")
        signed = info["content"]
        if not isinstance(signed, cms.SignedData):
            raise CmsDecodeError("ContentInfo content is not SignedData")
        encap = signed["encap_content_info"]
        content_type = encap["content_type"].dotted
        content_value = encap["content"]
        if isinstance(content_value, core.Void):
            raise CmsDecodeError("detached SignedData: the ICAO objects carry their content")
        content = _octets(content_value)
        certificates: list[x509.Certificate] = []
        if not isinstance(signed["certificates"], core.Void):
            for choice in signed["certificates"]:
                if choice.name != "certificate":
                    findings.append(warning("cms-non-x509-certificate", f"ignored a {choice.name} in certificates"))
                    continue
                certificates.append(load_certificate_cached(choice.chosen.dump()))
        signer_infos = tuple(signed["signer_infos"])
        for signer_info in signer_infos:
            _ = signer_info.native  # parse it all now (small), so later access cannot fail
        _ = signed["digest_algorithms"].native
        version = signed["version"].native
        if len(data) > len(info.dump()):
            findings.append(warning("trailing-data", f"{len(data) - len(info.dump())} bytes after the ContentInfo"))
    except CmsDecodeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise CmsDecodeError(f"malformed CMS SignedData: {exc}") from None
    if not signer_infos:
        raise CmsDecodeError("SignedData without SignerInfo")
    if version != "v3":
        findings.append(warning("cms-version", f"SignedData {version}; ICAO 9303-12 specifies v3"))
    return SignedObject(
        raw=bytes(data),
        signed_data=signed,
        content_type=content_type,
        content=content,
        certificates=tuple(certificates),
        signer_infos=signer_infos,
        findings=tuple(findings),
    )


def _octets(value: core.Asn1Value) -> bytes:
    """eContent bytes; handles the constructed (BER) OCTET STRING some producers emit."""
    if isinstance(value, core.ParsableOctetString | core.OctetString):
        return bytes(value)
    return bytes(value.contents)


# --- signer verification -------------------------------------------------------------------


@dataclass(frozen=True)
class SignerVerification:
    """The outcome of a SignerInfo check that did not raise."""

    certificate: x509.Certificate
    signing_time: datetime | None
    digest_algorithm: HashAlgorithm
    findings: tuple[Finding, ...]


def find_signer_certificate(
    signer_info: cms.SignerInfo, certificates: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    for cert in certificates:
        if sid.name == "issuer_and_serial_number":
            if cert.serial_number == sid.chosen["serial_number"].native and same_name(cert.issuer, sid.chosen["issuer"]):
                return cert
        elif sid.chosen.native in (cert.key_identifier, _method1_key_id(cert)):
            return cert
    return None


def _method1_key_id(cert: x509.Certificate) -> bytes:
    return hashlib.sha1(cert["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:]).digest()


def signed_attribute(signer_info: cms.SignerInfo, name: str) -> list[core.Asn1Value]:
    """The values of a signed attribute (by asn1crypto name or dotted OID), or []."""
    attrs = signer_info["signed_attrs"]
    if isinstance(attrs, core.Void):
        return []
    for attr in attrs:
        if attr["type"].native == name or attr["type"].dotted == name:
            return list(attr["values"])
    return []


def signing_time_of(signer_info: cms.SignerInfo) -> datetime | None:
    values = signed_attribute(signer_info, "signing_time")
    if not values:
        return None
    value = values[0].native
    if not isinstance(value, datetime):
        raise CmsDecodeError("signingTime is not a Time")
    return as_utc(value)


def as_utc(value: datetime) -> datetime:
    """Aware UTC.  A GeneralizedTime without "Z" decodes naive; 9303-12 times are Zulu, so a
    naive value is read as UTC (never as the verifier's local time)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    """(notBefore, notAfter), aware UTC."""
    return as_utc(cert.not_valid_before), as_utc(cert.not_valid_after)


def _signed_attrs_encodings(signer_info: cms.SignerInfo) -> Iterator[tuple[bytes, bool]]:
    """(bytes to verify, is-as-received) candidates for the signed attributes: the received
    SET first; its DER re-encoding only if that differs (computed lazily: rarely needed)."""
    attrs = signer_info["signed_attrs"]
    received = attrs.dump()
    as_received = b"\x31" + received[1:]
    yield as_received, True
    body = b"".join(sorted(child.dump(force=True) for child in attrs))
    der = b"\x31" + _der_length(len(body)) + body
    if der != as_received:
        yield der, False


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def verify_signers(
    obj: SignedObject,
    *,
    extra_certificates: Sequence[x509.Certificate] = (),
    tolerant: bool = False,
) -> tuple[SignerVerification, ...]:
    """Verify every SignerInfo of `obj`; all must verify.

    Why all: 9303-12 recommends a single signer but does not forbid several, and a
    SignedData whose second SignerInfo fails is not what its producer signed — accepting
    it because the first one verifies would let anyone append a signer.  Raises
    `CmsSignatureError`/`CmsDecodeError` for the first SignerInfo that fails (the message
    names its position when there are several); returns one verification per SignerInfo,
    in order.  Several signers are reported as an info finding on the first."""
    count = len(obj.signer_infos)
    results: list[SignerVerification] = []
    for index in range(count):
        try:
            results.append(
                verify_signer(obj, extra_certificates=extra_certificates, tolerant=tolerant, index=index)
            )
        except CmsSignatureError as exc:
            if count == 1:
                raise
            raise CmsSignatureError(f"SignerInfo #{index + 1} of {count}: {exc}", code=exc.code) from None
        except CmsDecodeError as exc:
            if count == 1:
                raise
            raise CmsDecodeError(f"SignerInfo #{index + 1} of {count}: {exc}") from None
    if count > 1:
        first = results[0]
        note = info(
            "cms-several-signers",
            f"{count} SignerInfos, all verified (9303-12 recommends one): "
            + "; ".join(subject_text(r.certificate) for r in results),
        )
        results[0] = SignerVerification(first.certificate, first.signing_time, first.digest_algorithm, (*first.findings, note))
    return tuple(results)


def verify_signer(
    obj: SignedObject,
    *,
    extra_certificates: Sequence[x509.Certificate] = (),
    signer_certificate: x509.Certificate | None = None,
    tolerant: bool = False,
    index: int | None = None,
) -> SignerVerification:
    """Verify the SignerInfos of `obj` (signature, messageDigest, contentType attribute).

    With `index` None (the default) every SignerInfo must verify (`verify_signers`) and the
    first one's result is returned; with an `index`, only that SignerInfo is checked.
    Raises `CmsSignatureError` (or `CmsDecodeError`); returns the signer certificate,
    signing time and the warnings collected."""
    if index is None:
        if signer_certificate is None or len(obj.signer_infos) > 1:
            if signer_certificate is not None:
                raise ValueError("signer_certificate needs an index when there are several SignerInfos")
            return verify_signers(obj, extra_certificates=extra_certificates, tolerant=tolerant)[0]
        index = 0
    try:
        return _verify_signer(
            obj,
            extra_certificates=extra_certificates,
            signer_certificate=signer_certificate,
            tolerant=tolerant,
            index=index,
        )
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise CmsDecodeError(f"malformed SignerInfo: {exc}") from None


def _verify_signer(
    obj: SignedObject,
    *,
    extra_certificates: Sequence[x509.Certificate] = (),
    signer_certificate: x509.Certificate | None = None,
    tolerant: bool = False,
    index: int = 0,
) -> SignerVerification:
    findings: list[Finding] = list(obj.findings)
    try:
        signer_info = obj.signer_infos[index]
    except IndexError:
        raise CmsDecodeError(f"no SignerInfo #{index}") from None
    cert = signer_certificate or find_signer_certificate(signer_info, (*obj.certificates, *extra_certificates))
    if cert is None:
        raise CmsSignatureError("the signer's certificate is neither in the SignedData nor supplied", code="signer-certificate")
    try:
        digest_hash = hash_from_name(signer_info["digest_algorithm"]["algorithm"].native)
        key = certificate_public_key(cert)
        signature = signer_info["signature"].native
        has_attrs = not isinstance(signer_info["signed_attrs"], core.Void)
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, CmsError):
            raise
        raise CmsDecodeError(f"malformed SignerInfo: {exc}") from None
    if digest_hash is HashAlgorithm.SHA1:
        findings.append(warning("weak-digest", "SHA-1 digest algorithm (not allowed by 9303-12 for new objects)"))

    signing_time: datetime | None = None
    if has_attrs:
        try:
            content_types = signed_attribute(signer_info, "content_type")
            digests = signed_attribute(signer_info, "message_digest")
            signing_time = signing_time_of(signer_info)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, CmsError):
                raise
            raise CmsDecodeError(f"malformed signed attributes: {exc}") from None
        if len(content_types) != 1 or content_types[0].dotted != obj.content_type:
            seen = [c.dotted for c in content_types]
            raise CmsSignatureError(
                f"contentType attribute {seen} does not match eContentType {obj.content_type}", code="content-type"
            )
        if len(digests) != 1:
            raise CmsSignatureError("signed attributes need exactly one messageDigest", code="message-digest")
        expected = digest_hash.digest(obj.content)
        if digests[0].native != expected:
            raise CmsSignatureError(
                f"messageDigest {digests[0].native.hex()} != {digest_hash.value}(eContent) {expected.hex()}",
                code="message-digest",
            )
        last: CmsSignatureError | None = None
        for data, as_received in _signed_attrs_encodings(signer_info):
            try:
                findings += verify_algorithm_signature(
                    key,
                    signer_info["signature_algorithm"],
                    signature,
                    data,
                    fallback_hash=digest_hash,
                    tolerant=tolerant,
                )
            except CmsSignatureError as exc:
                last = exc
                continue
            if not as_received:
                if not tolerant:
                    raise CmsSignatureError(
                        "signature covers the DER re-encoding of the signed attributes, not the received bytes",
                        code="signed-attrs-encoding",
                    )
                findings.append(
                    warning(
                        "signed-attrs-not-der",
                        "signed attributes were transmitted in a non-DER encoding; the signature covers their DER form",
                    )
                )
            break
        else:
            assert last is not None
            raise last
    else:
        findings.append(warning("no-signed-attributes", "SignerInfo without signed attributes (9303-12 requires them)"))
        findings += verify_algorithm_signature(
            key, signer_info["signature_algorithm"], signature, obj.content, fallback_hash=digest_hash, tolerant=tolerant
        )
    return SignerVerification(
        certificate=cert, signing_time=signing_time, digest_algorithm=digest_hash, findings=tuple(findings)
    )


# --- building ------------------------------------------------------------------------------


class SignerIdKind(str, Enum):
    ISSUER_AND_SERIAL = "issuer_and_serial_number"  # EF.SOD (9303-12 profile)
    SUBJECT_KEY_IDENTIFIER = "subject_key_identifier"  # Master / Deviation Lists (recommended)


def cms_time(value: datetime) -> cms.Time:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5652 §11.3)."""
    if value.tzinfo is None:
        raise CmsBuildError("signing time must be timezone-aware")
    value = value.astimezone(UTC).replace(microsecond=0)
    return cms.Time({"utc_time" if value.year < 2050 else "generalized_time": value})


def build_signed_data(
    *,
    content_type: str,
    content: bytes,
    signer: Signer,
    signer_certificate: bytes,
    signing_time: datetime | None,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
    sid: SignerIdKind = SignerIdKind.ISSUER_AND_SERIAL,
    certificates: Sequence[bytes] = (),
) -> bytes:
    """ContentInfo{SignedData v3} over `content`, signed through `signer`.

    The signer's key must be the certificate's key (checked first), and the signature is
    verified after signing: a token returning garbage must not leave the building."""
    if hash_algorithm not in SIGNING_HASHES:
        raise CmsBuildError(f"{hash_algorithm.value} is not allowed by 9303-12 §4.1.6")
    cert = load_certificate_cached(signer_certificate)
    cert_key = certificate_public_key(cert)
    try:
        signer_key = _spki(signer.public_key_info())
    except PublicKeyError as exc:
        raise CmsBuildError(f"signer public key: {exc}") from None
    if signer_key != cert_key:
        raise CmsBuildError(f"the signer's key is not the key of {subject_text(cert)}")

    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": [cms.ContentType(content_type)]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hash_algorithm.digest(content)]}),
    ]
    if signing_time is not None:
        attributes.append(cms.CMSAttribute({"type": "signing_time", "values": [cms_time(signing_time)]}))
    signed_attrs = cms.CMSAttributes(attributes)
    to_sign = signed_attrs.dump(force=True)  # SET OF, DER-sorted, tag 0x31
    raw = signer.sign(to_sign, hash_algorithm, rsa_padding)
    signature = plain_to_der(raw) if signer.kind is KeyKind.EC else raw
    algorithm = signature_algorithm(signer.kind, hash_algorithm, rsa_padding)
    try:
        verify_algorithm_signature(cert_key, algorithm, signature, to_sign)
    except CmsSignatureError as exc:
        raise CmsBuildError(f"the signer produced a signature that does not verify: {exc}") from None

    if sid is SignerIdKind.ISSUER_AND_SERIAL:
        signer_id = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": cert.issuer, "serial_number": cert.serial_number},
        )
        version = "v1"
    else:
        key_id = cert.key_identifier
        if key_id is None:
            raise CmsBuildError(f"{subject_text(cert)} has no SubjectKeyIdentifier to identify the signer by")
        signer_id = cms.SignerIdentifier(name="subject_key_identifier", value=key_id)
        version = "v3"

    signer_info = cms.SignerInfo(
        {
            "version": version,
            "sid": signer_id,
            "digest_algorithm": digest_algorithm(hash_algorithm),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algorithm,
            "signature": signature,
        }
    )
    # Assembled from DER parts: handing whole certificates to asn1crypto makes it re-walk them
    # on every dump (its mutation check parses every child), which cost more than the signature.
    for der in certificates:
        load_certificate_cached(der)  # each must at least be a certificate
    digest_algorithms = tlv(0x31, digest_algorithm(hash_algorithm).dump())
    encap = tlv(0x30, cms.ContentType(content_type).dump() + tlv(0xA0, tlv(0x04, content)))
    certs = tlv(0xA0, b"".join(sorted(bytes(c) for c in certificates))) if certificates else b""
    signer_infos = tlv(0x31, signer_info.dump())
    signed_data = tlv(0x30, b"\x02\x01\x03" + digest_algorithms + encap + certs + signer_infos)
    return tlv(0x30, cms.ContentType("signed_data").dump() + tlv(0xA0, signed_data))


def tlv(tag: int, value: bytes) -> bytes:
    """A DER TLV with a one-byte tag."""
    return bytes([tag]) + _der_length(len(value)) + value
