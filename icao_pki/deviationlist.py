"""Deviation Lists (ICAO Doc 9303-12 §10, id-icao-DeviationList 2.23.136.1.1.7).

A Deviation List tells receiving states which of our documents deviate from Doc 9303 (a
wrong DG hash, a mis-encoded DS certificate, a bad MRZ check digit ...) so that their
inspection systems do not reject genuine travellers.  Same SignedData profile as the
Master List, signed by a Deviation List signer (extKeyUsage 2.23.136.1.1.8).

ASN.1 module DeviationList (IMPLICIT TAGS)::

    DeviationList ::= SEQUENCE { version INTEGER {v0(0)}, digestAlgorithm AlgorithmIdentifier OPTIONAL,
                                 deviations SET OF Deviation }
    Deviation ::= SEQUENCE { documents DeviationDocuments, descriptions SET OF DeviationDescription }
    DeviationDocuments ::= SEQUENCE { documentType [0] PrintableString OPTIONAL,
        dscIdentifier DocumentSignerIdentifier OPTIONAL, issuingDate [4] IssuancePeriod OPTIONAL,
        documentNumbers [5] SET OF PrintableString OPTIONAL }
    DocumentSignerIdentifier ::= CHOICE { issuerAndSerialNumber [1] IssuerAndSerialNumber,
        subjectKeyIdentifier [2] SubjectKeyIdentifier, certificateDigest [3] Digest }
    IssuancePeriod ::= SEQUENCE { firstIssued GeneralizedTime, lastIssued GeneralizedTime }
    DeviationDescription ::= SEQUENCE { description PrintableString OPTIONAL, deviationType OBJECT IDENTIFIER,
        parameters [0] ANY DEFINED BY deviationType OPTIONAL, nationalUse [1] ANY OPTIONAL }
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from asn1crypto import algos, core, x509
from asn1crypto import cms as a_cms

from .cms import (
    CmsBuildError,
    CmsDecodeError,
    CmsError,
    CmsSignatureError,
    Finding,
    SignedObject,
    SignerIdKind,
    SignerVerification,
    build_signed_data,
    certificate_extension,
    certificate_public_key,
    hash_from_name,
    load_certificate,
    parse_signed_data,
    register_content_type,
    same_name,
    subject_text,
    verify_certificate_signature,
    verify_signer,
    warning,
)
from .signer import HashAlgorithm, RsaPadding, Signer
from .sod import ID_DEVIATION_LIST

ID_DL_SIGNER_EKU = "2.23.136.1.1.8"


class DeviationType(str, Enum):
    """Deviation OIDs under 2.23.136.1.1.7 (9303-12 §10.2)."""

    CERT_OR_KEY = "2.23.136.1.1.7.1"
    CERT_OR_KEY_DS_SIGNATURE = "2.23.136.1.1.7.1.1"
    CERT_OR_KEY_DS_ENCODING = "2.23.136.1.1.7.1.2"
    CERT_OR_KEY_CSCA_ENCODING = "2.23.136.1.1.7.1.3"
    CERT_OR_KEY_AA_KEY_COMPROMISED = "2.23.136.1.1.7.1.4"
    LDS = "2.23.136.1.1.7.2"
    LDS_DG_MALFORMED = "2.23.136.1.1.7.2.1"
    LDS_DG_HASH_WRONG = "2.23.136.1.1.7.2.2"
    LDS_SOD_SIGNATURE_WRONG = "2.23.136.1.1.7.2.3"
    LDS_COM_INCONSISTENT = "2.23.136.1.1.7.2.4"
    MRZ = "2.23.136.1.1.7.3"
    MRZ_WRONG_DATA = "2.23.136.1.1.7.3.1"
    MRZ_WRONG_CHECK_DIGIT = "2.23.136.1.1.7.3.2"
    CHIP = "2.23.136.1.1.7.4"
    NATIONAL_USE = "2.23.136.1.1.7.5"


class DeviationListError(CmsError):
    """Root of the Deviation List errors."""


class DeviationListDecodeError(DeviationListError, CmsDecodeError):
    """Bytes that are not a Deviation List."""


class DeviationListBuildError(DeviationListError, CmsBuildError):
    """Inputs from which we refuse to build a Deviation List."""


class DeviationListSignatureError(DeviationListError, CmsSignatureError):
    """The Deviation List signature or its signer's path does not verify."""


# --- ASN.1 ---------------------------------------------------------------------------------


class IssuancePeriod(core.Sequence):
    _fields = [  # noqa: RUF012
        ("first_issued", core.GeneralizedTime),
        ("last_issued", core.GeneralizedTime),
    ]


class DocumentSignerIdentifier(core.Choice):
    _alternatives = [  # noqa: RUF012
        ("issuer_and_serial_number", a_cms.IssuerAndSerialNumber, {"implicit": 1}),
        ("subject_key_identifier", core.OctetString, {"implicit": 2}),
        ("certificate_digest", core.OctetString, {"implicit": 3}),
    ]


class SetOfPrintableString(core.SetOf):
    _child_spec = core.PrintableString


class DeviationDocuments(core.Sequence):
    _fields = [  # noqa: RUF012
        ("document_type", core.PrintableString, {"implicit": 0, "optional": True}),
        ("dsc_identifier", DocumentSignerIdentifier, {"optional": True}),
        ("issuing_date", IssuancePeriod, {"implicit": 4, "optional": True}),
        ("document_numbers", SetOfPrintableString, {"implicit": 5, "optional": True}),
    ]


class DeviationDescription(core.Sequence):
    """description and deviationType; the optional `parameters [0] ANY` and `nationalUse [1] ANY`
    are encoded and decoded by hand (asn1crypto mis-handles two optional explicitly tagged
    ANY fields: it neither adds the explicit tag nor skips an absent [0] before a [1])."""

    _fields = [  # noqa: RUF012
        ("description", core.PrintableString, {"optional": True}),
        ("deviation_type", core.ObjectIdentifier),
    ]


class SetOfDeviationDescription(core.SetOf):
    _child_spec = core.Any


class DeviationAsn1(core.Sequence):
    _fields = [  # noqa: RUF012
        ("documents", DeviationDocuments),
        ("descriptions", SetOfDeviationDescription),
    ]


class SetOfDeviation(core.SetOf):
    _child_spec = DeviationAsn1


class DeviationListAsn1(core.Sequence):
    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("digest_algorithm", algos.DigestAlgorithm, {"optional": True}),
        ("deviations", SetOfDeviation),
    ]


register_content_type(ID_DEVIATION_LIST, "deviationList", DeviationListAsn1)


# --- model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviationDescriptionItem:
    deviation_type: str  # dotted OID, see DeviationType
    description: str | None = None
    parameters: bytes | None = None  # DER of the [0] value
    national_use: bytes | None = None  # DER of the [1] value


@dataclass(frozen=True)
class DocumentSelector:
    """Which documents a deviation concerns.  Several criteria narrow the selection."""

    document_type: str | None = None  # MRZ document code, e.g. "P", "ID"
    dsc_issuer: bytes | None = None  # DER Name (with dsc_serial: issuerAndSerialNumber)
    dsc_serial: int | None = None
    dsc_ski: bytes | None = None
    dsc_certificate_digest: bytes | None = None
    issued_from: datetime | None = None
    issued_until: datetime | None = None
    document_numbers: tuple[str, ...] | None = None

    @classmethod
    def for_ds_certificate(cls, certificate: bytes, by: str = "ski", **kwargs: object) -> DocumentSelector:
        """Select documents signed with a DS certificate, identified by "ski", "issuer_serial" or "digest"
        (the digest uses the list's digestAlgorithm, SHA-256 by default)."""
        cert = load_certificate(certificate)
        if by == "ski":
            if cert.key_identifier is None:
                raise DeviationListBuildError(f"{subject_text(cert)} has no SubjectKeyIdentifier")
            return cls(dsc_ski=cert.key_identifier, **kwargs)  # type: ignore[arg-type]
        if by == "issuer_serial":
            return cls(dsc_issuer=cert.issuer.dump(), dsc_serial=cert.serial_number, **kwargs)  # type: ignore[arg-type]
        if by == "digest":
            digest = HashAlgorithm(kwargs.pop("digest_algorithm", HashAlgorithm.SHA256)).digest(certificate)  # type: ignore[arg-type]
            return cls(dsc_certificate_digest=digest, **kwargs)  # type: ignore[arg-type]
        raise DeviationListBuildError(f"unknown DS identifier kind {by!r}")


@dataclass(frozen=True)
class Deviation:
    documents: DocumentSelector
    descriptions: tuple[DeviationDescriptionItem, ...]


@dataclass(frozen=True)
class DeviationList:
    signed: SignedObject
    version: int
    digest_algorithm: HashAlgorithm | None
    deviations: tuple[Deviation, ...]
    findings: tuple[Finding, ...]


# --- encode / decode -----------------------------------------------------------------------


def _generalized(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise DeviationListBuildError("issuance dates must be timezone-aware")
    return value.astimezone(UTC).replace(microsecond=0)


def _encode_documents(selector: DocumentSelector) -> dict[str, object]:
    out: dict[str, object] = {}
    if selector.document_type is not None:
        if not 1 <= len(selector.document_type) <= 2:
            raise DeviationListBuildError(f"documentType is 1-2 MRZ characters, got {selector.document_type!r}")
        out["document_type"] = selector.document_type
    ids = [
        selector.dsc_serial is not None or selector.dsc_issuer is not None,
        selector.dsc_ski is not None,
        selector.dsc_certificate_digest is not None,
    ]
    if sum(ids) > 1:
        raise DeviationListBuildError("a DS identifier is one of issuerAndSerialNumber, SKI or certificate digest")
    if ids[0]:
        if selector.dsc_issuer is None or selector.dsc_serial is None:
            raise DeviationListBuildError("issuerAndSerialNumber needs both issuer and serial")
        out["dsc_identifier"] = DocumentSignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": x509.Name.load(selector.dsc_issuer), "serial_number": selector.dsc_serial},
        )
    elif ids[1]:
        out["dsc_identifier"] = DocumentSignerIdentifier(name="subject_key_identifier", value=selector.dsc_ski)
    elif ids[2]:
        out["dsc_identifier"] = DocumentSignerIdentifier(name="certificate_digest", value=selector.dsc_certificate_digest)
    if (selector.issued_from is None) != (selector.issued_until is None):
        raise DeviationListBuildError("an IssuancePeriod needs both firstIssued and lastIssued")
    if selector.issued_from is not None and selector.issued_until is not None:
        if selector.issued_until < selector.issued_from:
            raise DeviationListBuildError("lastIssued is before firstIssued")
        out["issuing_date"] = {
            "first_issued": _generalized(selector.issued_from),
            "last_issued": _generalized(selector.issued_until),
        }
    if selector.document_numbers is not None:
        out["document_numbers"] = list(selector.document_numbers)
    if not out:
        raise DeviationListBuildError("a deviation must select documents by at least one criterion")
    return out


def _encode_description(item: DeviationDescriptionItem) -> core.Any:
    """asn1crypto does not add an explicit [0]/[1] wrapper to an `Any` value it is given, so the
    optional parameters / nationalUse are appended by hand (the round-trip test proves that
    they parse back as [0] / [1] EXPLICIT)."""
    value: dict[str, object] = {"deviation_type": item.deviation_type}
    if item.description is not None:
        value["description"] = item.description
    body = DeviationDescription(value).dump(force=True)
    extra = b""
    for tag, der in ((0xA0, item.parameters), (0xA1, item.national_use)):
        if der is None:
            continue
        try:
            core.Asn1Value.load(der, strict=True)
        except ValueError as exc:
            raise DeviationListBuildError(f"deviation parameters must be one DER value: {exc}") from None
        extra += bytes([tag]) + _der_length(len(der)) + der
    if extra:
        contents = DeviationDescription.load(body).contents + extra
        body = b"\x30" + _der_length(len(contents)) + contents
    return core.Any.load(body)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _decode_documents(value: DeviationDocuments) -> DocumentSelector:
    kwargs: dict[str, object] = {}
    if not isinstance(value["document_type"], core.Void):
        kwargs["document_type"] = value["document_type"].native
    dsc = value["dsc_identifier"]
    if not isinstance(dsc, core.Void):
        if dsc.name == "issuer_and_serial_number":
            kwargs["dsc_issuer"] = dsc.chosen["issuer"].dump()
            kwargs["dsc_serial"] = dsc.chosen["serial_number"].native
        elif dsc.name == "subject_key_identifier":
            kwargs["dsc_ski"] = dsc.chosen.native
        else:
            kwargs["dsc_certificate_digest"] = dsc.chosen.native
    period = value["issuing_date"]
    if not isinstance(period, core.Void):
        kwargs["issued_from"] = period["first_issued"].native
        kwargs["issued_until"] = period["last_issued"].native
    if not isinstance(value["document_numbers"], core.Void):
        kwargs["document_numbers"] = tuple(value["document_numbers"].native)
    return DocumentSelector(**kwargs)  # type: ignore[arg-type]


def _split_tlvs(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, whole TLV, value) of each child in a DER body (one-byte tags)."""
    out = []
    i = 0
    while i < len(body):
        if i + 2 > len(body):
            raise DeviationListDecodeError("truncated DeviationDescription")
        tag, first = body[i], body[i + 1]
        start = i + 2
        length = first
        if first & 0x80:
            count = first & 0x7F
            if count == 0 or count > 3:
                raise DeviationListDecodeError("unsupported length in DeviationDescription")
            length = int.from_bytes(body[start : start + count], "big")
            start += count
        end = start + length
        if end > len(body):
            raise DeviationListDecodeError("truncated DeviationDescription")
        out.append((tag, body[i:end], body[start:end]))
        i = end
    return out


def _decode_description(value: core.Any) -> DeviationDescriptionItem:
    raw = value.dump()
    if raw[:1] != b"\x30":
        raise DeviationListDecodeError("DeviationDescription is not a SEQUENCE")
    description = deviation_type = parameters = national_use = None
    for tag, tlv, inner in _split_tlvs(core.Asn1Value.load(raw).contents):
        if tag == 0x13 and deviation_type is None:
            description = core.PrintableString.load(tlv).native
        elif tag == 0x06 and deviation_type is None:
            deviation_type = core.ObjectIdentifier.load(tlv).dotted
        elif tag == 0xA0 and deviation_type is not None:
            parameters = inner
        elif tag == 0xA1 and deviation_type is not None:
            national_use = inner
        else:
            raise DeviationListDecodeError(f"unexpected tag 0x{tag:02X} in DeviationDescription")
    if deviation_type is None:
        raise DeviationListDecodeError("DeviationDescription without deviationType")
    return DeviationDescriptionItem(deviation_type, description, parameters, national_use)


def build_deviation_list(
    deviations: Sequence[Deviation],
    *,
    signer: Signer,
    signer_certificate: bytes,
    signer_csca_certificate: bytes,
    signing_time: datetime,
    digest_algorithm: HashAlgorithm | None = None,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
) -> bytes:
    """Our Deviation List (an empty list is allowed: "no known deviations").

    `digest_algorithm` is the DeviationList's own digestAlgorithm, needed when a deviation
    identifies a DS certificate by digest."""
    try:
        signer_cert = load_certificate(signer_certificate)
        csca = load_certificate(signer_csca_certificate)
    except CmsDecodeError as exc:
        raise DeviationListBuildError(str(exc)) from None
    eku = certificate_extension(signer_cert, "extended_key_usage")
    if eku is None or ID_DL_SIGNER_EKU not in [p.dotted for p in eku]:
        raise DeviationListBuildError(f"{subject_text(signer_cert)} lacks extKeyUsage {ID_DL_SIGNER_EKU} (DL signer)")
    if not same_name(signer_cert.issuer, csca.subject):
        raise DeviationListBuildError("the DL signer certificate was not issued by the given CSCA")
    try:
        verify_certificate_signature(signer_cert, certificate_public_key(csca))
    except (CmsSignatureError, CmsDecodeError) as exc:
        raise DeviationListBuildError(f"the DL signer certificate does not verify with the CSCA: {exc}") from None
    uses_digest = any(d.documents.dsc_certificate_digest is not None for d in deviations)
    if uses_digest and digest_algorithm is None:
        raise DeviationListBuildError("certificateDigest identifiers need the list's digestAlgorithm")
    for deviation in deviations:
        if not deviation.descriptions:
            raise DeviationListBuildError("every deviation needs at least one description")
        digest = deviation.documents.dsc_certificate_digest
        if digest is not None and digest_algorithm is not None and len(digest) != digest_algorithm.digest_size:
            raise DeviationListBuildError(f"certificateDigest of {len(digest)} bytes for {digest_algorithm.value}")
    value: dict[str, object] = {
        "version": 0,
        "deviations": [
            {
                "documents": _encode_documents(d.documents),
                "descriptions": [_encode_description(item) for item in d.descriptions],
            }
            for d in deviations
        ],
    }
    if digest_algorithm is not None:
        value["digest_algorithm"] = {"algorithm": digest_algorithm.value}
    econtent = DeviationListAsn1(value).dump(force=True)
    try:
        return build_signed_data(
            content_type=ID_DEVIATION_LIST,
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
        raise DeviationListBuildError(str(exc)) from None


def parse_deviation_list(data: bytes) -> DeviationList:
    """Deviation List bytes → `DeviationList`, or `DeviationListDecodeError`."""
    try:
        signed = parse_signed_data(data)
    except CmsDecodeError as exc:
        raise DeviationListDecodeError(f"Deviation List: {exc}") from None
    if signed.content_type != ID_DEVIATION_LIST:
        raise DeviationListDecodeError(f"eContentType {signed.content_type} is not id-icao-DeviationList")
    findings = list(signed.findings)
    try:
        dl = DeviationListAsn1.load(signed.content)
        version = dl["version"].native
        algorithm = dl["digest_algorithm"]
        digest_algorithm = None if isinstance(algorithm, core.Void) else hash_from_name(algorithm["algorithm"].native)
        deviations = tuple(
            Deviation(
                documents=_decode_documents(item["documents"]),
                descriptions=tuple(_decode_description(d) for d in item["descriptions"]),
            )
            for item in dl["deviations"]
        )
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, CmsError):
            raise DeviationListDecodeError(str(exc)) from None
        raise DeviationListDecodeError(f"malformed DeviationList: {exc}") from None
    if version != 0:
        findings.append(warning("dl-version", f"DeviationList version {version}, expected v0"))
    return DeviationList(
        signed=signed, version=version, digest_algorithm=digest_algorithm, deviations=deviations, findings=tuple(findings)
    )


def verify_deviation_list(
    dl: DeviationList, *, trust_anchors: Sequence[bytes], tolerant: bool = True
) -> SignerVerification:
    """Verify the list's signature and that its signer was issued by one of `trust_anchors`
    (the issuing state's CSCA).  Raises `DeviationListSignatureError`."""
    try:
        result = verify_signer(dl.signed, tolerant=tolerant)
    except (CmsSignatureError, CmsDecodeError) as exc:
        raise DeviationListSignatureError(f"Deviation List signature: {exc}") from None
    signer = result.certificate
    findings = list(result.findings)
    eku = certificate_extension(signer, "extended_key_usage")
    if eku is None or ID_DL_SIGNER_EKU not in [p.dotted for p in eku]:
        findings.append(warning("dl-signer-eku", f"DL signer lacks extKeyUsage {ID_DL_SIGNER_EKU}", subject_text(signer)))
    for der in trust_anchors:
        csca = load_certificate(der)
        if not same_name(csca.subject, signer.issuer):
            continue
        try:
            findings += verify_certificate_signature(signer, certificate_public_key(csca), tolerant=tolerant)
        except (CmsSignatureError, CmsDecodeError):
            continue
        return SignerVerification(signer, result.signing_time, result.digest_algorithm, tuple(findings))
    raise DeviationListSignatureError(f"DL signer {subject_text(signer)} is not issued by a trusted CSCA")
