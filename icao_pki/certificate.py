"""X.509 certificates of the ICAO 9303-12 PKI: builders for what we issue, a model for
what we read.

Why we build the TBSCertificate ourselves (asn1crypto) instead of using `cryptography`'s
builder: 9303-12 §4.1.6 requires explicit EC domain parameters in every
SubjectPublicKeyInfo and our keys live in an HSM; `cryptography` can emit neither.
The builders therefore

1. assemble the TBSCertificate for one of the profiles of 9303-12 Tables 5-6
   (`Profile`), with the decree's limits checked first (`Policy.check_certificate`),
2. lint it (`icao_pki.lint.check_tbs`) and refuse on any error finding,
3. sign it exactly once through the issuer's `Signer` (ECDSA r||s → DER), and
4. verify the fresh signature against the issuer key before returning the DER
   (boulder: don't trust the HSM).

The model (`Certificate`, from `parse_certificate`) keeps the bytes it was given and
verifies signatures over the original TBS bytes, tolerating what foreign issuers send
(explicit or named parameters, PKCS#1 v1.5 or PSS, ECDSA signatures in plain format).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import cached_property
from typing import Any

from asn1crypto import core, keys, pem, x509

from . import extensions as ext
from .names import (
    MRZ_COUNTRY,
    DistinguishedName,
    X509Error,
    alt_names,
    as_name,
    country_of,
    directory_localities,
    format_name,
)
from .policy import DEFAULT_POLICY, DocumentType, Policy, Role, Window
from .signature import (
    EcPublicKey,
    PublicKey,
    PublicKeyError,
    RsaPublicKey,
    SignatureError,
    build_spki,
    load_spki,
    plain_to_der,
    verify_signature,
)
from .signer import HashAlgorithm, KeyKind, RsaPadding, Signer

__all__ = [
    "Certificate",
    "CertificateBuildError",
    "CertificateDecodeError",
    "CertificateVerifyError",
    "LintRefusal",
    "Profile",
    "X509Error",
    "build_csca_certificate",
    "build_csca_link_certificate",
    "build_deviation_list_signer_certificate",
    "build_ds_certificate",
    "build_master_list_signer_certificate",
    "document_type_code",
    "encode_time",
    "key_identifier",
    "parse_certificate",
    "parse_certificates",
    "random_serial",
    "sign_tbs",
    "signature_algorithm_for",
    "signature_parameters",
    "verify_x509_signature",
]


# --- errors ---------------------------------------------------------------------------------


class CertificateDecodeError(X509Error, ValueError):
    """Bytes that are not a certificate we can read."""


class CertificateVerifyError(X509Error):
    """A certificate signature that does not verify, or a key that does not match."""


class CertificateBuildError(X509Error, ValueError):
    """Inputs from which we refuse to build a certificate (not a decree limit: those raise
    `icao_pki.policy.PolicyViolation`)."""


class LintRefusal(CertificateBuildError):
    """The TBS we were about to sign fails lint; nothing was signed."""

    def __init__(self, findings: list[Any]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.is_error]
        super().__init__("refusing to sign: " + "; ".join(str(f) for f in errors))


# --- profiles -------------------------------------------------------------------------------


class Profile(str, Enum):
    """The certificate profiles of 9303-12 Tables 5-6 that Vietnam issues."""

    CSCA = "csca"
    CSCA_LINK = "csca-link"
    DS = "ds"
    MLS = "mls"  # Master List signer
    DLS = "dls"  # Deviation List signer

    @property
    def decree_role(self) -> Role | None:
        """The decree limits CSCA and DS certificates (Art. 23.1, 26.1); list signers have none."""
        return {
            Profile.CSCA: Role.CSCA,
            Profile.CSCA_LINK: Role.CSCA,
            Profile.DS: Role.DS,
        }.get(self)

    @property
    def label(self) -> str:
        return {
            "csca": "CSCA",
            "csca-link": "CSCA link",
            "ds": "DS",
            "mls": "Master List signer",
            "dls": "Deviation List signer",
        }[self.value]


_DOCUMENT_TYPE_CODES = {DocumentType.PASSPORT: "P", DocumentType.IDCARD: "ID"}


def document_type_code(document_type: DocumentType) -> str:
    """The DocumentTypeList code: MRZ document code of the documents the DS signs."""
    return _DOCUMENT_TYPE_CODES[DocumentType(document_type)]


# --- small encoders ---------------------------------------------------------------------------

_UTC_LIMIT = datetime(2050, 1, 1, tzinfo=UTC)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise CertificateBuildError(f"time {when.isoformat()} has no time zone; pass aware UTC times")
    when = when.astimezone(UTC)
    if when.microsecond:
        raise CertificateBuildError(f"time {when.isoformat()} has fractions of a second; DER times are whole seconds")
    return when


def encode_time(when: datetime) -> x509.Time:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    when = _utc(when)
    if when < _UTC_LIMIT:
        return x509.Time(name="utc_time", value=when)
    return x509.Time(name="general_time", value=when)


def random_serial() -> int:
    """Positive random serial of at most 20 octets (159 random bits, never zero)."""
    while True:
        value = secrets.randbits(159)
        if value:
            return value


def _check_serial(serial: int) -> int:
    if not isinstance(serial, int) or serial <= 0:
        raise CertificateBuildError(f"serial number must be a positive integer, got {serial!r}")
    if len(core.Integer(serial).contents) > 20:
        raise CertificateBuildError("serial number longer than 20 octets (RFC 5280 §4.1.2.2)")
    return serial


def key_identifier(public_key: PublicKey) -> bytes:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.

    Independent of how the EC parameters are encoded, so a link certificate and the new
    self-signed CSCA carry the same SKI."""
    info = keys.PublicKeyInfo.load(build_spki(public_key, explicit_parameters=False))
    return hashlib.sha1(info["public_key"].contents[1:]).digest()


def _default_hash(kind: KeyKind, curve_bits: int | None) -> HashAlgorithm:
    if kind is KeyKind.EC and curve_bits is not None:
        if curve_bits > 384:
            return HashAlgorithm.SHA512
        if curve_bits > 256:
            return HashAlgorithm.SHA384
    return HashAlgorithm.SHA256


_ECDSA_ALGS = {
    HashAlgorithm.SHA224: "sha224_ecdsa",
    HashAlgorithm.SHA256: "sha256_ecdsa",
    HashAlgorithm.SHA384: "sha384_ecdsa",
    HashAlgorithm.SHA512: "sha512_ecdsa",
}
_RSA_ALGS = {
    HashAlgorithm.SHA224: "sha224_rsa",
    HashAlgorithm.SHA256: "sha256_rsa",
    HashAlgorithm.SHA384: "sha384_rsa",
    HashAlgorithm.SHA512: "sha512_rsa",
}


def signature_algorithm_for(
    signer: Signer, hash_algorithm: HashAlgorithm | None = None, rsa_padding: RsaPadding = RsaPadding.PSS
) -> tuple[x509.SignedDigestAlgorithm, HashAlgorithm]:
    """The AlgorithmIdentifier a signer produces: ecdsa-with-SHA*, RSASSA-PSS (SHA-x, MGF1-SHA-x,
    salt = hash length) or sha*WithRSAEncryption.  SHA-1 is never used to issue."""
    curve = signer.curve
    hash_algorithm = HashAlgorithm(hash_algorithm) if hash_algorithm else _default_hash(signer.kind, curve.bits if curve else None)
    if hash_algorithm is HashAlgorithm.SHA1:
        raise CertificateBuildError("SHA-1 is not allowed for new signatures (9303-12 §4.1.6.1)")
    if signer.kind is KeyKind.EC:
        return x509.SignedDigestAlgorithm({"algorithm": _ECDSA_ALGS[hash_algorithm]}), hash_algorithm
    if RsaPadding(rsa_padding) is RsaPadding.PSS:
        digest = {"algorithm": hash_algorithm.value}
        params = {
            "hash_algorithm": digest,
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": digest},
            "salt_length": hash_algorithm.digest_size,
        }
        return x509.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params}), hash_algorithm
    return x509.SignedDigestAlgorithm({"algorithm": _RSA_ALGS[hash_algorithm], "parameters": core.Null()}), hash_algorithm


def signature_parameters(algorithm: x509.SignedDigestAlgorithm) -> tuple[KeyKind, HashAlgorithm, RsaPadding]:
    """Decode an AlgorithmIdentifier into what `verify_signature` needs (tolerant)."""
    try:
        sig_algo = algorithm.signature_algo
        hash_name = algorithm.hash_algo
    except (ValueError, KeyError) as exc:
        raise SignatureError(f"unsupported signature algorithm {algorithm['algorithm'].dotted}: {exc}") from None
    try:
        hash_algorithm = HashAlgorithm(hash_name)
    except ValueError:
        raise SignatureError(f"unsupported hash {hash_name}") from None
    if sig_algo == "ecdsa":
        return KeyKind.EC, hash_algorithm, RsaPadding.PKCS1V15
    if sig_algo == "rsassa_pkcs1v15":
        return KeyKind.RSA, hash_algorithm, RsaPadding.PKCS1V15
    if sig_algo == "rsassa_pss":
        params = algorithm["parameters"]
        salt = params["salt_length"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if salt != hash_algorithm.digest_size or mgf_hash != hash_algorithm.value:
            raise SignatureError(
                f"RSASSA-PSS with salt {salt} and MGF1-{mgf_hash} is not supported (expected salt "
                f"{hash_algorithm.digest_size}, MGF1-{hash_algorithm.value})"
            )
        return KeyKind.RSA, hash_algorithm, RsaPadding.PSS
    raise SignatureError(f"unsupported signature algorithm {sig_algo}")


def verify_x509_signature(key: PublicKey, algorithm: x509.SignedDigestAlgorithm, signature: bytes, data: bytes) -> None:
    """Verify an X.509/CMS signature as foreign issuers make them; raises `SignatureError`.

    Beyond `icao_pki.signature.verify_signature`: RSASSA-PSS with any salt length and MGF1
    hash named in the parameters (Sweden's CSCA uses SHA-256 with a 20-byte salt), and an
    ECDSA signature found in plain r||s form where DER was due (LTU/HUN documents)."""
    try:
        sig_algo = algorithm.signature_algo
    except (ValueError, KeyError):
        raise SignatureError(f"unsupported signature algorithm {algorithm['algorithm'].dotted}") from None
    if sig_algo == "rsassa_pss" and isinstance(key, RsaPublicKey):
        _verify_pss_as_parameterised(key, algorithm, signature, data)
        return
    kind, hash_algorithm, padding = signature_parameters(algorithm)
    if kind is not key.kind:
        raise SignatureError(f"signature algorithm {sig_algo} does not fit a {key.kind.value} key")
    try:
        verify_signature(key, signature, data, hash_algorithm, ecdsa_format="der", rsa_padding=padding)
        return
    except SignatureError as exc:
        first = exc
    if isinstance(key, EcPublicKey) and len(signature) == 2 * key.curve.order_bytes:
        try:
            verify_signature(key, signature, data, hash_algorithm, ecdsa_format="plain")
            return
        except SignatureError:
            pass
    raise first


def _verify_pss_as_parameterised(key: RsaPublicKey, algorithm: x509.SignedDigestAlgorithm, signature: bytes, data: bytes) -> None:
    params = algorithm["parameters"]
    try:
        hash_algorithm = HashAlgorithm(params["hash_algorithm"]["algorithm"].native)
        mgf_hash = HashAlgorithm(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
    except ValueError as exc:
        raise SignatureError(f"unsupported RSASSA-PSS parameters: {exc}") from None
    if params["mask_gen_algorithm"]["algorithm"].native != "mgf1":
        raise SignatureError("RSASSA-PSS mask generation other than MGF1 is not supported")
    verify_signature(
        key,
        signature,
        data,
        hash_algorithm,
        rsa_padding=RsaPadding.PSS,
        pss_salt_length=params["salt_length"].native,
        pss_mgf_hash=mgf_hash,
    )


def sign_tbs(signer: Signer, tbs_der: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding) -> bytes:
    """One signature through the Signer, in X.509/CMS form (ECDSA: DER ECDSA-Sig-Value)."""
    raw = signer.sign(tbs_der, hash_algorithm, rsa_padding if signer.kind is KeyKind.RSA else RsaPadding.PKCS1V15)
    return plain_to_der(raw) if signer.kind is KeyKind.EC else raw


def _subject_key(public_key: bytes | PublicKey) -> PublicKey:
    if isinstance(public_key, bytes | bytearray):
        try:
            return load_spki(bytes(public_key))
        except PublicKeyError as exc:
            raise CertificateBuildError(f"subject public key: {exc}") from None
    return public_key


def _signer_key(signer: Signer) -> PublicKey:
    return load_spki(signer.public_key_info())


# --- the parsed model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtensionInfo:
    oid: str
    name: str
    critical: bool
    value: Any


class Certificate:
    """A certificate as received: the original bytes plus decoded views.

    Nothing here re-encodes: `tbs_der` is the slice that was signed."""

    def __init__(self, der: bytes, asn1: x509.Certificate) -> None:
        self.der = der
        self.asn1 = asn1

    # identity
    @cached_property
    def tbs(self) -> x509.TbsCertificate:
        return self.asn1["tbs_certificate"]

    @cached_property
    def tbs_der(self) -> bytes:
        return self.tbs.dump()

    @property
    def version(self) -> int:
        return int(self.tbs["version"].native[1:])

    @property
    def serial_number(self) -> int:
        return self.tbs["serial_number"].native

    @property
    def subject(self) -> x509.Name:
        return self.tbs["subject"]

    @property
    def issuer(self) -> x509.Name:
        return self.tbs["issuer"]

    @cached_property
    def subject_str(self) -> str:
        return format_name(self.subject)

    @cached_property
    def issuer_str(self) -> str:
        return format_name(self.issuer)

    @property
    def country(self) -> str | None:
        return country_of(self.subject)

    # times
    @property
    def not_before(self) -> datetime:
        return self.tbs["validity"]["not_before"].native

    @property
    def not_after(self) -> datetime:
        return self.tbs["validity"]["not_after"].native

    @property
    def validity(self) -> Window:
        return Window(self.not_before, self.not_after)

    @cached_property
    def private_key_usage_period(self) -> Window | None:
        """PKUP with open ends filled from the validity (RFC 5280 §4.2.1.?: either may be absent)."""
        value = self.extension_value("private_key_usage_period")
        if value is None:
            return None
        start = value["not_before"].native if value["not_before"].native is not None else self.not_before
        end = value["not_after"].native if value["not_after"].native is not None else self.not_after
        return Window(start, end)

    # key
    @cached_property
    def spki_der(self) -> bytes:
        return self.tbs["subject_public_key_info"].dump()

    @cached_property
    def public_key(self) -> PublicKey:
        """The subject key; explicit EC parameters are mapped back to the named curve.

        Raises `icao_pki.signature.PublicKeyError` for keys we cannot use (unknown curve)."""
        return load_spki(self.spki_der)

    @property
    def has_explicit_ec_parameters(self) -> bool:
        algorithm = self.tbs["subject_public_key_info"]["algorithm"]
        return algorithm["algorithm"].native == "ec" and algorithm["parameters"].name == "specified"

    # signature
    @property
    def signature_algorithm(self) -> x509.SignedDigestAlgorithm:
        return self.asn1["signature_algorithm"]

    @property
    def signature_algorithm_name(self) -> str:
        try:
            return f"{self.signature_algorithm.hash_algo}-{self.signature_algorithm.signature_algo}"
        except (ValueError, KeyError):
            return self.signature_algorithm["algorithm"].dotted

    @property
    def signature(self) -> bytes:
        return self.asn1["signature_value"].native

    # extensions
    @cached_property
    def extensions(self) -> list[ExtensionInfo]:
        found = []
        for item in self.tbs["extensions"] or []:
            try:
                value = item["extn_value"].parsed
            except (ValueError, TypeError):
                value = None
            found.append(ExtensionInfo(item["extn_id"].dotted, item["extn_id"].native, bool(item["critical"].native), value))
        return found

    def extension(self, name: str) -> ExtensionInfo | None:
        for item in self.extensions:
            if item.name == name or item.oid == name:
                return item
        return None

    def extension_value(self, name: str) -> Any:
        item = self.extension(name)
        return None if item is None else item.value

    @property
    def subject_key_identifier(self) -> bytes | None:
        value = self.extension_value("key_identifier")
        return None if value is None else value.native

    @property
    def authority_key_identifier(self) -> bytes | None:
        value = self.extension_value("authority_key_identifier")
        return None if value is None else value["key_identifier"].native

    @property
    def key_usage(self) -> set[str]:
        value = self.extension_value("key_usage")
        return set() if value is None else set(value.native)

    @property
    def extended_key_usage(self) -> list[str]:
        value = self.extension_value("extended_key_usage")
        return [] if value is None else [item.dotted for item in value]

    @property
    def is_ca(self) -> bool:
        value = self.extension_value("basic_constraints")
        return bool(value is not None and value["ca"].native)

    @property
    def document_types(self) -> list[str] | None:
        value = self.extension_value("icao_document_type_list")
        if value is None:
            return None
        return list(value["doc_type_list"].native)

    @property
    def crl_distribution_points(self) -> list[str]:
        value = self.extension_value("crl_distribution_points")
        urls: list[str] = []
        for point in value or []:
            name = point["distribution_point"]
            if name.name == "full_name":
                urls.extend(general.native for general in name.chosen if general.name == "uniform_resource_identifier")
        return urls

    @property
    def subject_alt_localities(self) -> list[str]:
        return directory_localities(self.extension_value("subject_alt_name"))

    @property
    def issuer_alt_localities(self) -> list[str]:
        return directory_localities(self.extension_value("issuer_alt_name"))

    @property
    def is_self_issued(self) -> bool:
        return self.subject == self.issuer

    @property
    def role_hints(self) -> set[Profile]:
        """What this certificate looks like, judged from its extensions (foreign certificates
        are often sloppy, so this is a hint, never a decision)."""
        hints: set[Profile] = set()
        ekus = set(self.extended_key_usage)
        if ext.OID_EKU_MASTER_LIST_SIGNER in ekus:
            hints.add(Profile.MLS)
        if ext.OID_EKU_DEVIATION_LIST_SIGNER in ekus:
            hints.add(Profile.DLS)
        if self.is_ca or "key_cert_sign" in self.key_usage:
            self_signed = self.is_self_issued and (
                self.authority_key_identifier is None or self.authority_key_identifier == self.subject_key_identifier
            )
            hints.add(Profile.CSCA if self_signed else Profile.CSCA_LINK)
        elif not hints and ("digital_signature" in self.key_usage or self.document_types is not None):
            hints.add(Profile.DS)
        return hints

    # verification
    def verify_issued_by(self, issuer: Certificate | PublicKey) -> None:
        """Verify this certificate's signature with the issuer's key, over the original TBS bytes.

        Tolerant of what real issuers do: explicit or named EC parameters, RSA PKCS#1 v1.5 or
        PSS, ECDSA-with-SHA-x; an ECDSA signature found in plain r||s form instead of DER is
        accepted too.  Raises `CertificateVerifyError`."""
        if isinstance(issuer, Certificate):
            if issuer.subject != self.issuer:
                raise CertificateVerifyError(
                    f"issuer name {self.issuer_str!r} does not match the candidate issuer's subject {issuer.subject_str!r}"
                )
            try:
                key = issuer.public_key
            except PublicKeyError as exc:
                raise CertificateVerifyError(f"issuer public key: {exc}") from None
        else:
            key = issuer
        try:
            verify_x509_signature(key, self.signature_algorithm, self.signature, self.tbs_der)
        except SignatureError as exc:
            raise CertificateVerifyError(f"signature of {self.subject_str!r} does not verify: {exc}") from None

    def to_pem(self) -> str:
        return pem.armor("CERTIFICATE", self.der).decode("ascii")

    def describe(self) -> dict[str, Any]:
        """Everything `icao-pki x509 show` prints, JSON-friendly."""
        try:
            key = self.public_key
            key_text = (
                {"algorithm": "rsa", "bits": key.bits, "e": key.e}
                if isinstance(key, RsaPublicKey)
                else {"algorithm": "ec", "curve": key.curve.name, "point": key.point.hex()}
            )
        except PublicKeyError as exc:
            key_text = {"error": str(exc)}
        key_text["explicit_parameters"] = self.has_explicit_ec_parameters
        pkup = self.private_key_usage_period
        return {
            "version": self.version,
            "serial_number": f"{self.serial_number:x}",
            "subject": self.subject_str,
            "issuer": self.issuer_str,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "private_key_usage_period": None if pkup is None else {"not_before": pkup.start, "not_after": pkup.end},
            "public_key": key_text,
            "signature_algorithm": self.signature_algorithm_name,
            "subject_key_identifier": self.subject_key_identifier,
            "authority_key_identifier": self.authority_key_identifier,
            "key_usage": sorted(self.key_usage),
            "extended_key_usage": self.extended_key_usage,
            "basic_constraints_ca": self.is_ca,
            "document_types": self.document_types,
            "crl_distribution_points": self.crl_distribution_points,
            "subject_alt_localities": self.subject_alt_localities,
            "issuer_alt_localities": self.issuer_alt_localities,
            "role_hints": sorted(h.value for h in self.role_hints),
            "extensions": [{"oid": e.oid, "name": e.name, "critical": e.critical} for e in self.extensions],
            "sha256_fingerprint": hashlib.sha256(self.der).hexdigest(),
        }

    def __repr__(self) -> str:
        return f"Certificate(subject={self.subject_str!r}, serial={self.serial_number:x})"


def _unarmor_all(data: bytes, kind: str) -> list[bytes]:
    if pem.detect(data):
        blocks = [der for type_name, _, der in pem.unarmor(data, multiple=True) if type_name in (kind, f"X509 {kind}", f"TRUSTED {kind}")]
        if not blocks:
            raise CertificateDecodeError(f"no {kind} PEM block found")
        return blocks
    return [data]


def parse_certificate(data: bytes) -> Certificate:
    """DER or PEM (first CERTIFICATE block) to a `Certificate`; raises `CertificateDecodeError`."""
    return parse_certificates(data)[0]


def parse_certificates(data: bytes) -> list[Certificate]:
    """Every certificate of a PEM bundle (or the one DER certificate)."""
    try:
        blocks = _unarmor_all(bytes(data), "CERTIFICATE")
    except ValueError as exc:
        raise CertificateDecodeError(f"malformed PEM: {exc}") from None
    result = []
    for der in blocks:
        try:
            asn1 = x509.Certificate.load(der, strict=True)
            # Touch the fields every user needs so a broken certificate fails here, not later.
            tbs = asn1["tbs_certificate"]
            _ = (tbs["serial_number"].native, tbs["validity"].native, tbs["subject"].native, tbs["issuer"].native)
            _ = asn1["signature_algorithm"]["algorithm"].native
        except (ValueError, TypeError, KeyError) as exc:
            raise CertificateDecodeError(f"not an X.509 certificate: {exc}") from None
        result.append(Certificate(der, asn1))
    return result


# --- builders -------------------------------------------------------------------------------------


def _key_usage(*bits: str) -> x509.KeyUsage:
    return x509.KeyUsage(set(bits))


def _crl_dp(urls: Sequence[str]) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [
            {
                "distribution_point": x509.DistributionPointName(
                    name="full_name",
                    value=[x509.GeneralName(name="uniform_resource_identifier", value=url)],
                )
            }
            for url in urls
        ]
    )


def _pkup(window: Window) -> x509.PrivateKeyUsagePeriod:
    return x509.PrivateKeyUsagePeriod({"not_before": _utc(window.start), "not_after": _utc(window.end)})


def _window(window: Window, what: str) -> Window:
    if not isinstance(window.start, datetime) or not isinstance(window.end, datetime):
        raise CertificateBuildError(f"{what} must be given as aware datetimes")
    return Window(_utc(window.start), _utc(window.end))


@dataclass(frozen=True)
class IssuingKey:
    signer: Signer
    name: x509.Name
    key_identifier: bytes
    validity: Window | None  # None: self-signed


def issuer_from_certificate(signer: Signer, issuer: Certificate) -> IssuingKey:
    """Check the signer holds the key of the issuer certificate before anything is signed."""
    try:
        held = _signer_key(signer)
        certified = issuer.public_key
    except PublicKeyError as exc:
        raise CertificateBuildError(f"issuer key: {exc}") from None
    if held != certified:
        raise CertificateBuildError(
            f"the signer's key is not the key of the issuer certificate {issuer.subject_str!r}"
        )
    ski = issuer.subject_key_identifier or key_identifier(certified)
    return IssuingKey(signer, issuer.subject, ski, issuer.validity)


def _build(
    profile: Profile,
    issuer: IssuingKey,
    subject: x509.Name,
    subject_key: PublicKey,
    validity: Window,
    private_key_usage: Window | None,
    document_type: DocumentType,
    crl_distribution_points: Sequence[str],
    *,
    mrz_country: str,
    serial_source: Callable[[], int],
    hash_algorithm: HashAlgorithm | None,
    rsa_padding: RsaPadding,
    policy: Policy,
    name_change: bool = False,
) -> bytes:
    from .lint import check_tbs  # lint imports this module; import late to avoid a cycle

    document_type = DocumentType(document_type)
    validity = _window(validity, "validity")
    if private_key_usage is not None:
        private_key_usage = _window(private_key_usage, "private-key usage period")

    # 1. decree limits, before anything else
    role = profile.decree_role
    if role is not None:
        policy.check_certificate(
            role, document_type, validity, key_usage=private_key_usage, issuer_validity=issuer.validity
        )
    elif issuer.validity is not None:
        from .policy import check_within_issuer

        check_within_issuer(validity, issuer.validity)

    # 2. the TBSCertificate
    ski = key_identifier(subject_key)
    extensions: list[x509.Extension] = []
    if profile is not Profile.CSCA:
        extensions.append(ext.extension("authority_key_identifier", {"key_identifier": issuer.key_identifier}))
    else:
        extensions.append(ext.extension("authority_key_identifier", {"key_identifier": ski}))
    extensions.append(ext.extension("key_identifier", core.OctetString(ski)))
    if profile in (Profile.CSCA, Profile.CSCA_LINK):
        extensions.append(ext.extension("key_usage", _key_usage("key_cert_sign", "crl_sign"), critical=True))
    else:
        extensions.append(ext.extension("key_usage", _key_usage("digital_signature"), critical=True))
    if private_key_usage is not None:
        extensions.append(ext.extension("private_key_usage_period", _pkup(private_key_usage)))
    extensions.append(ext.extension("subject_alt_name", alt_names(mrz_country)))
    extensions.append(ext.extension("issuer_alt_name", alt_names(mrz_country)))
    if profile in (Profile.CSCA, Profile.CSCA_LINK):
        extensions.append(ext.extension("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True))
    if crl_distribution_points:
        extensions.append(ext.extension("crl_distribution_points", _crl_dp(crl_distribution_points)))
    if profile is Profile.MLS:
        extensions.append(ext.extension("extended_key_usage", [ext.EKU_MASTER_LIST_SIGNER], critical=True))
    if profile is Profile.DLS:
        extensions.append(ext.extension("extended_key_usage", [ext.EKU_DEVIATION_LIST_SIGNER], critical=True))
    if profile is Profile.DS:
        extensions.append(
            ext.extension("icao_document_type_list", ext.document_type_list([document_type_code(document_type)]))
        )
    if name_change:
        extensions.append(ext.extension("icao_name_change", core.Null()))

    algorithm, hash_algorithm = signature_algorithm_for(issuer.signer, hash_algorithm, rsa_padding)
    spki = keys.PublicKeyInfo.load(build_spki(subject_key, explicit_parameters=True))
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": _check_serial(serial_source()),
            "signature": algorithm,
            "issuer": issuer.name,
            "validity": {"not_before": encode_time(validity.start), "not_after": encode_time(validity.end)},
            "subject": subject,
            "subject_public_key_info": spki,
            "extensions": extensions,
        }
    )
    # Re-load from DER so that lint and signature see exactly the bytes that go out.
    tbs_der = tbs.dump(force=True)
    tbs = x509.TbsCertificate.load(tbs_der)

    # 3. lint, then sign exactly once
    findings = check_tbs(tbs, profile, document_type, policy=policy, issuer_validity=issuer.validity)
    if any(f.is_error for f in findings):
        raise LintRefusal(findings)
    signature = sign_tbs(issuer.signer, tbs_der, hash_algorithm, rsa_padding)
    cert = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature})
    der = cert.dump()

    # 4. never hand out a signature we have not checked
    parsed = parse_certificate(der)
    try:
        parsed.verify_issued_by(_signer_key(issuer.signer))
    except CertificateVerifyError as exc:
        raise CertificateBuildError(f"the signer produced a signature that does not verify: {exc}") from None
    return der


def build_csca_certificate(
    signer: Signer,
    subject: DistinguishedName | x509.Name,
    *,
    validity: Window,
    private_key_usage: Window,
    document_type: DocumentType,
    crl_distribution_points: Sequence[str],
    mrz_country: str = MRZ_COUNTRY,
    serial_source: Callable[[], int] = random_serial,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """Self-signed CSCA certificate (9303-12 Table 6, CSCA column), DER.

    Refused with `PolicyViolation` beyond the decree's CSCA limits (Art. 23.1a / 26.1a)."""
    name = as_name(subject)
    key = _signer_key(signer)
    issuer = IssuingKey(signer, name, key_identifier(key), None)
    return _build(
        Profile.CSCA, issuer, name, key, validity, private_key_usage, document_type, crl_distribution_points,
        mrz_country=mrz_country, serial_source=serial_source, hash_algorithm=hash_algorithm,
        rsa_padding=rsa_padding, policy=policy,
    )  # fmt: skip


def build_csca_link_certificate(
    old_signer: Signer,
    old_csca: Certificate,
    new_public_key: bytes | PublicKey,
    *,
    validity: Window,
    private_key_usage: Window,
    document_type: DocumentType,
    crl_distribution_points: Sequence[str],
    subject: DistinguishedName | x509.Name | None = None,
    mrz_country: str = MRZ_COUNTRY,
    serial_source: Callable[[], int] = random_serial,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """CSCA link certificate for a key rollover (9303-12 §4.1.4, §5.1.2): issuer = the old
    CSCA, AKI = old SKI, subject key = the NEW key, PKUP = the new key's usage period.

    Signed with the OLD key and therefore the old key's algorithm, also when the new key
    uses another one (RSA → ECDSA; EJBCA PR 500 got this wrong).  `subject` defaults to the
    old CSCA's subject; a different name adds the NameChange extension."""
    issuer = issuer_from_certificate(old_signer, old_csca)
    name = old_csca.subject if subject is None else as_name(subject)
    return _build(
        Profile.CSCA_LINK, issuer, name, _subject_key(new_public_key), validity, private_key_usage, document_type,
        crl_distribution_points, mrz_country=mrz_country, serial_source=serial_source,
        hash_algorithm=hash_algorithm, rsa_padding=rsa_padding, policy=policy,
        name_change=name != old_csca.subject,
    )  # fmt: skip


def build_ds_certificate(
    csca_signer: Signer,
    csca: Certificate,
    subject_public_key: bytes | PublicKey,
    subject: DistinguishedName | x509.Name,
    *,
    validity: Window,
    private_key_usage: Window,
    document_type: DocumentType,
    crl_distribution_points: Sequence[str],
    mrz_country: str = MRZ_COUNTRY,
    serial_source: Callable[[], int] = random_serial,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """Document Signer certificate (9303-12 Table 6, DS column), DER.

    Refused with `PolicyViolation` beyond Art. 23.1b / 26.1b (validity 10 / 22 years, key 3
    months) or outside the CSCA's validity."""
    return _build(
        Profile.DS, issuer_from_certificate(csca_signer, csca), as_name(subject), _subject_key(subject_public_key),
        validity, private_key_usage, document_type, crl_distribution_points, mrz_country=mrz_country,
        serial_source=serial_source, hash_algorithm=hash_algorithm, rsa_padding=rsa_padding, policy=policy,
    )  # fmt: skip


def build_master_list_signer_certificate(
    csca_signer: Signer,
    csca: Certificate,
    subject_public_key: bytes | PublicKey,
    subject: DistinguishedName | x509.Name,
    *,
    validity: Window,
    document_type: DocumentType,
    private_key_usage: Window | None = None,
    crl_distribution_points: Sequence[str] = (),
    mrz_country: str = MRZ_COUNTRY,
    serial_source: Callable[[], int] = random_serial,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """Master List signer (extKeyUsage 2.23.136.1.1.3, critical).  The decree sets no limit;
    the certificate must still lie within the CSCA's validity."""
    return _build(
        Profile.MLS, issuer_from_certificate(csca_signer, csca), as_name(subject), _subject_key(subject_public_key),
        validity, private_key_usage, document_type, crl_distribution_points, mrz_country=mrz_country,
        serial_source=serial_source, hash_algorithm=hash_algorithm, rsa_padding=rsa_padding, policy=policy,
    )  # fmt: skip


def build_deviation_list_signer_certificate(
    csca_signer: Signer,
    csca: Certificate,
    subject_public_key: bytes | PublicKey,
    subject: DistinguishedName | x509.Name,
    *,
    validity: Window,
    document_type: DocumentType,
    private_key_usage: Window | None = None,
    crl_distribution_points: Sequence[str] = (),
    mrz_country: str = MRZ_COUNTRY,
    serial_source: Callable[[], int] = random_serial,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """Deviation List signer (extKeyUsage 2.23.136.1.1.8, critical)."""
    return _build(
        Profile.DLS, issuer_from_certificate(csca_signer, csca), as_name(subject), _subject_key(subject_public_key),
        validity, private_key_usage, document_type, crl_distribution_points, mrz_country=mrz_country,
        serial_source=serial_source, hash_algorithm=hash_algorithm, rsa_padding=rsa_padding, policy=policy,
    )  # fmt: skip
