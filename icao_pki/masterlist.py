"""CSCA Master Lists (ICAO Doc 9303-12 §9): build ours, import everybody else's.

    ContentInfo{ SignedData v3 { eContentType id-icao-cscaMasterList (2.23.136.1.1.2),
        eContent CscaMasterList ::= SEQUENCE { version INTEGER {v0(0)}, certList SET OF Certificate },
        certificates { ML signer certificate, the CSCA that issued it },
        SignerInfo { sid subjectKeyIdentifier, signedAttrs { contentType, messageDigest, signingTime } } } }

Import is where the world is sloppy (ZeroPass's survey of ICAO PKD v127 and the German ML:
signed attributes not in DER, CSCAs without SKI / basicConstraints / proper keyUsage), so
import never raises on a bad *entry*: every entry gets its own findings, and only bytes
that are not a Master List at all raise `MasterListDecodeError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import core, x509

from .cms import (
    CmsBuildError,
    CmsDecodeError,
    CmsError,
    CmsSignatureError,
    Finding,
    Severity,
    SignedObject,
    SignerIdKind,
    build_signed_data,
    certificate_extension,
    certificate_public_key,
    error,
    has_errors,
    info,
    is_self_issued,
    is_self_signed,
    load_certificate,
    parse_signed_data,
    register_content_type,
    same_name,
    subject_text,
    validity,
    verify_certificate_signature,
    verify_signer,
    warning,
)
from .signer import HashAlgorithm, RsaPadding, Signer
from .sod import ID_CSCA_MASTER_LIST

ID_ML_SIGNER_EKU = "2.23.136.1.1.3"


class MasterListError(CmsError):
    """Root of the Master List errors."""


class MasterListDecodeError(MasterListError, CmsDecodeError):
    """Bytes that are not a CSCA Master List."""


class MasterListBuildError(MasterListError, CmsBuildError):
    """Inputs from which we refuse to build a Master List."""


class MasterListSignatureError(MasterListError, CmsSignatureError):
    """The Master List signature, or its signer's certificate path, does not verify."""


# --- ASN.1 ---------------------------------------------------------------------------------


class _CertList(core.SetOf):
    """SET OF Certificate, kept as Any so one malformed entry cannot sink the whole list."""

    _child_spec = core.Any


class CscaMasterList(core.Sequence):
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("cert_list", _CertList),
    ]


register_content_type(ID_CSCA_MASTER_LIST, "cscaMasterList", CscaMasterList)


# --- model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterList:
    """A parsed Master List: the CMS wrapper and the raw certList entries (DER each)."""

    signed: SignedObject
    version: int
    entries: tuple[bytes, ...]
    findings: tuple[Finding, ...]


@dataclass
class MasterListEntry:
    """One certList entry and what we found about it."""

    index: int
    der: bytes
    certificate: x509.Certificate | None
    kind: str  # "root" (self-signed), "link", or "unparsable"
    subject: str | None
    country: str | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.certificate is not None and not has_errors(self.findings)

    def as_dict(self) -> dict[str, object]:
        cert = self.certificate
        return {
            "index": self.index,
            "kind": self.kind,
            "subject": self.subject,
            "country": self.country,
            "serial": format(cert.serial_number, "x") if cert is not None else None,
            "not_after": cert.not_valid_after if cert is not None else None,
            "valid": self.valid,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass
class MasterListReport:
    """The result of importing a Master List: the signature verdict and per-entry findings."""

    signature_valid: bool
    signer_subject: str | None
    signer_csca_subject: str | None
    signing_time: datetime | None
    entries: list[MasterListEntry]
    findings: list[Finding]

    @property
    def valid(self) -> bool:
        """The list itself verifies (entries may still carry their own errors)."""
        return self.signature_valid and not has_errors(self.findings)

    @property
    def trusted_certificates(self) -> list[bytes]:
        """CSCA certificates usable as trust anchors: entries without errors, when the list verifies."""
        if not self.valid:
            return []
        return [e.der for e in self.entries if e.valid]

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "signature_valid": self.signature_valid,
            "signer": self.signer_subject,
            "signer_csca": self.signer_csca_subject,
            "signing_time": self.signing_time,
            "entries": [e.as_dict() for e in self.entries],
            "entry_count": len(self.entries),
            "entries_with_errors": sum(1 for e in self.entries if not e.valid),
            "findings": [f.as_dict() for f in self.findings],
        }


# --- parse ---------------------------------------------------------------------------------


def parse_master_list(data: bytes) -> MasterList:
    """Master List bytes (DER/BER ContentInfo) → `MasterList`, or `MasterListDecodeError`."""
    try:
        signed = parse_signed_data(data)
    except CmsDecodeError as exc:
        raise MasterListDecodeError(f"Master List: {exc}") from None
    findings = list(signed.findings)
    if signed.content_type != ID_CSCA_MASTER_LIST:
        raise MasterListDecodeError(f"eContentType {signed.content_type} is not id-icao-cscaMasterList")
    try:
        ml = CscaMasterList.load(signed.content)
        version = ml["version"].native
        entries = tuple(entry.dump() for entry in ml["cert_list"])
    except (ValueError, TypeError, KeyError) as exc:
        raise MasterListDecodeError(f"malformed CscaMasterList: {exc}") from None
    if version != 0:
        findings.append(warning("ml-version", f"CscaMasterList version {version}, expected v0"))
    if not isinstance(signed.signed_data["crls"], core.Void):
        findings.append(warning("ml-crls", "Master List SignedData carries CRLs (9303-12: crls x)"))
    return MasterList(signed=signed, version=version, entries=entries, findings=tuple(findings))


# --- build ---------------------------------------------------------------------------------


def _has_eku(cert: x509.Certificate, oid: str) -> bool:
    eku = certificate_extension(cert, "extended_key_usage")
    return eku is not None and any(purpose.dotted == oid for purpose in eku)


def build_master_list(
    csca_certificates: Sequence[bytes],
    *,
    signer: Signer,
    signer_certificate: bytes,
    signer_csca_certificate: bytes,
    signing_time: datetime,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
) -> bytes:
    """Our Master List: strict 9303-12 §9 profile (v0, SKI signer id, signingTime, the ML
    signer certificate and its CSCA in `certificates`)."""
    if not csca_certificates:
        raise MasterListBuildError("a Master List needs at least one CSCA certificate")
    try:
        signer_cert = load_certificate(signer_certificate)
        csca = load_certificate(signer_csca_certificate)
        entries = [load_certificate(der) for der in csca_certificates]
    except CmsDecodeError as exc:
        raise MasterListBuildError(str(exc)) from None
    if not _has_eku(signer_cert, ID_ML_SIGNER_EKU):
        raise MasterListBuildError(f"{subject_text(signer_cert)} lacks extKeyUsage {ID_ML_SIGNER_EKU} (ML signer)")
    if not same_name(signer_cert.issuer, csca.subject):
        raise MasterListBuildError("the ML signer certificate was not issued by the given CSCA")
    try:
        verify_certificate_signature(signer_cert, certificate_public_key(csca))
    except (CmsSignatureError, CmsDecodeError) as exc:
        raise MasterListBuildError(f"the ML signer certificate does not verify with the CSCA: {exc}") from None
    for cert in entries:
        basic = certificate_extension(cert, "basic_constraints")
        if basic is None or not basic["ca"].native:
            raise MasterListBuildError(f"{subject_text(cert)} is not a CA certificate")
    econtent = CscaMasterList({"version": 0, "cert_list": [core.Any.load(der) for der in csca_certificates]}).dump(
        force=True
    )
    try:
        return build_signed_data(
            content_type=ID_CSCA_MASTER_LIST,
            content=econtent,
            signer=signer,
            signer_certificate=signer_certificate,
            signing_time=signing_time,
            hash_algorithm=hash_algorithm,
            rsa_padding=rsa_padding,
            sid=SignerIdKind.SUBJECT_KEY_IDENTIFIER,
            certificates=[signer_certificate, signer_csca_certificate],
        )
    except CmsBuildError as exc:
        raise MasterListBuildError(str(exc)) from None


# --- import / verify -----------------------------------------------------------------------


def _country(cert: x509.Certificate) -> str | None:
    try:
        value = cert.subject.native.get("country_name")
    except (ValueError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _find_issuers(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Candidates whose subject is `cert`'s issuer, best key-identifier match first."""
    aki = cert.authority_key_identifier
    matches = [c for c in candidates if same_name(c.subject, cert.issuer) and c.dump() != cert.dump()]
    if aki is not None:
        matches.sort(key=lambda c: c.key_identifier != aki)
    return matches


def check_csca_entry(
    cert: x509.Certificate, issuers: Sequence[x509.Certificate], *, at: datetime | None = None
) -> tuple[str, list[Finding]]:
    """Validate one CSCA (root or link) certificate; return its kind and findings."""
    findings: list[Finding] = []
    subject = subject_text(cert)
    try:
        key = certificate_public_key(cert)
    except CmsDecodeError as exc:
        return ("root" if is_self_issued(cert) else "link"), [error("public-key", str(exc), subject)]
    same_name_link = is_self_issued(cert) and not is_self_signed(cert) and any(
        c.dump() != cert.dump() and same_name(c.subject, cert.issuer) for c in issuers
    )
    if is_self_issued(cert) and not same_name_link:
        kind = "root"
        try:
            findings += verify_certificate_signature(cert, key, tolerant=True)
        except (CmsSignatureError, CmsDecodeError) as exc:
            findings.append(error("self-signature", f"self-signature does not verify: {exc}", subject))
    else:
        kind = "link"
        candidates = _find_issuers(cert, issuers)
        if not candidates:
            findings.append(
                warning("link-issuer-absent", f"issuer {cert.issuer.human_friendly} is not in the list", subject)
            )
        else:
            problems = []
            for issuer in candidates:
                try:
                    findings += verify_certificate_signature(cert, certificate_public_key(issuer), tolerant=True)
                    break
                except (CmsSignatureError, CmsDecodeError) as exc:
                    problems.append(str(exc))
            else:
                findings.append(error("link-signature", f"link certificate does not verify with its issuer: {problems[0]}", subject))
    findings += _profile_findings(cert, subject)
    if at is not None:
        not_before, not_after = validity(cert)
        if at < not_before or at > not_after:
            findings.append(
                warning("csca-validity", f"not valid at {at.isoformat()} ({cert.not_valid_before} → {cert.not_valid_after})", subject)
            )
    return kind, findings


def _profile_findings(cert: x509.Certificate, subject: str) -> list[Finding]:
    """Missing or wrong 9303-12 Table 6 extensions: real-world CSCAs often lack them, so warnings."""
    findings: list[Finding] = []
    try:
        basic = certificate_extension(cert, "basic_constraints")
        key_usage = certificate_extension(cert, "key_usage")
        ski = cert.key_identifier
    except (ValueError, TypeError) as exc:
        return [warning("extensions-malformed", f"extensions cannot be decoded: {exc}", subject)]
    if basic is None:
        findings.append(warning("basic-constraints-missing", "no basicConstraints", subject))
    elif not basic["ca"].native:
        findings.append(error("not-ca", "basicConstraints cA is FALSE", subject))
    if key_usage is None:
        findings.append(warning("key-usage-missing", "no keyUsage", subject))
    elif "key_cert_sign" not in key_usage.native:
        findings.append(error("key-usage", f"keyUsage {sorted(key_usage.native)} lacks keyCertSign", subject))
    if ski is None:
        findings.append(warning("ski-missing", "no subjectKeyIdentifier", subject))
    if _country(cert) is None:
        findings.append(warning("country-missing", "subject has no countryName", subject))
    return findings


def check_master_list(
    ml: MasterList,
    *,
    trust_anchors: Sequence[bytes] = (),
    at: datetime | None = None,
) -> MasterListReport:
    """Import a (foreign) Master List: verify its signature and the ML signer's path, then
    validate every CSCA entry.  Never raises for a bad signature or entry: see the report.

    `trust_anchors`: CSCA certificates trusted independently (e.g. the issuing state's CSCA
    received bilaterally).  Without them the ML signer can only be checked against the CSCA
    the list itself carries, which is reported as a warning."""
    if at is not None and at.tzinfo is None:
        raise ValueError("the verification time must be timezone-aware")
    findings: list[Finding] = list(ml.findings)
    anchors = []
    for der in trust_anchors:
        try:
            anchors.append(load_certificate(der))
        except CmsDecodeError as exc:
            findings.append(error("trust-anchor", f"unusable trust anchor: {exc}"))

    entries: list[MasterListEntry] = []
    parsed: list[x509.Certificate] = []
    for index, der in enumerate(ml.entries):
        try:
            cert = load_certificate(der)
            _ = cert.not_valid_after, cert.key_identifier, cert.authority_key_identifier
        except (CmsDecodeError, ValueError, TypeError) as exc:
            entries.append(
                MasterListEntry(index, der, None, "unparsable", None, None, [error("certificate-decode", str(exc))])
            )
            continue
        parsed.append(cert)
        entries.append(MasterListEntry(index, der, cert, "", subject_text(cert), _country(cert)))
    for entry in entries:
        if entry.certificate is None:
            continue
        entry.kind, entry.findings = check_csca_entry(entry.certificate, parsed, at=at)

    signature_valid = False
    signer_subject = signer_csca_subject = None
    signing_time = None
    try:
        result = verify_signer(ml.signed, tolerant=True)
        signature_valid = True
        findings += [f for f in result.findings if f not in findings]
        signer = result.certificate
        signer_subject = subject_text(signer)
        signing_time = result.signing_time
        if signing_time is None:
            findings.append(warning("signing-time-missing", "signedAttrs lack signingTime (9303-12 §9: mandatory)"))
        if not _has_eku(signer, ID_ML_SIGNER_EKU):
            findings.append(warning("ml-signer-eku", f"ML signer lacks extKeyUsage {ID_ML_SIGNER_EKU}", signer_subject))
        if ml.signed.signer_infos[0]["sid"].name != "subject_key_identifier":
            findings.append(info("ml-sid", "signer identified by issuerAndSerialNumber (SKI recommended)"))
        when = signing_time or at
        if when is not None and not (validity(signer)[0] <= when <= validity(signer)[1]):
            findings.append(warning("ml-signer-validity", f"ML signer certificate not valid at {when.isoformat()}", signer_subject))
        # the ML signer's path: to a trust anchor if given, else to a CSCA in the list/SignedData
        pool = anchors if anchors else [*ml.signed.certificates, *parsed]
        csca = None
        for candidate in _find_issuers(signer, pool):
            if candidate.dump() == signer.dump():
                continue
            try:
                findings += verify_certificate_signature(signer, certificate_public_key(candidate), tolerant=True)
                csca = candidate
                break
            except (CmsSignatureError, CmsDecodeError):
                continue
        if csca is None:
            findings.append(
                error(
                    "ml-signer-path",
                    f"ML signer certificate does not chain to {'a trusted' if anchors else 'any'} CSCA "
                    f"({signer.issuer.human_friendly})",
                    signer_subject,
                )
            )
        else:
            signer_csca_subject = subject_text(csca)
            if not anchors:
                findings.append(
                    warning(
                        "ml-signer-self-asserted",
                        "ML signer checked against a CSCA carried by the list itself; supply the issuer's CSCA as trust anchor",
                        signer_subject,
                    )
                )
    except (CmsSignatureError, CmsDecodeError) as exc:
        findings.append(error("ml-signature", f"Master List signature: {exc}"))

    return MasterListReport(
        signature_valid=signature_valid,
        signer_subject=signer_subject,
        signer_csca_subject=signer_csca_subject,
        signing_time=signing_time,
        entries=entries,
        findings=findings,
    )


def verify_master_list(
    ml: MasterList, *, trust_anchors: Sequence[bytes] = (), at: datetime | None = None
) -> MasterListReport:
    """Like `check_master_list`, but raise `MasterListSignatureError` unless the list verifies."""
    report = check_master_list(ml, trust_anchors=trust_anchors, at=at)
    if not report.valid:
        errors = [f.message for f in report.findings if f.severity is Severity.ERROR]
        raise MasterListSignatureError("; ".join(errors) or "Master List does not verify")
    return report
