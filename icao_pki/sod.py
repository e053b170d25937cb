"""EF.SOD — the Document Security Object (ICAO Doc 9303-10 §4.6.2, 9303-12 profile).

    EF.SOD = [APPLICATION 23] (0x77) ContentInfo{ SignedData v3 {
                 eContentType id-icao-mrtd-security-ldsSecurityObject (2.23.136.1.1.1),
                 eContent LDSSecurityObject } }

Why it matters: the SOD is the only thing binding a chip's data groups to the issuing
state; every border verifies it.  We build strictly (v0, or v1 iff LDSVersionInfo; SHA-2
only; DG hashes over the complete DG TLV; DS certificate included; issuerAndSerialNumber;
contentType + messageDigest + signingTime) and parse tolerantly (some CN passports use
id-data as eContentType — pymrtd's `_allowedSodContentTypes`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from asn1crypto import algos, core, x509

from . import cms as _cms
from .cms import (
    ID_DATA,
    CmsBuildError,
    CmsDecodeError,
    Finding,
    SignedObject,
    SignerIdKind,
    build_signed_data,
    hash_from_name,
    parse_signed_data,
    register_content_type,
    tlv,
    warning,
)
from .signer import HashAlgorithm, RsaPadding, Signer

ID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"
ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"
ID_DEVIATION_LIST = "2.23.136.1.1.7"
SOD_TAG = 0x77

#: Data-group file tags (9303-10 Table 34): DG1 0x61, DG2 0x75, DG3 0x63, DG4 0x76, DG5..DG16 0x65..0x70.
DG_TAGS: dict[int, int] = {1: 0x61, 2: 0x75, 3: 0x63, 4: 0x76} | {n: 0x60 + n for n in range(5, 17)}
_DG_BY_TAG: dict[int, int] = {tag: number for number, tag in DG_TAGS.items()}


class SodError(_cms.CmsError):
    """Root of the EF.SOD errors."""


class SodDecodeError(SodError, CmsDecodeError):
    """Bytes that are not an EF.SOD."""


class SodBuildError(SodError, CmsBuildError):
    """Inputs from which we refuse to build an EF.SOD."""


# --- ASN.1 ---------------------------------------------------------------------------------


class LDSSecurityObjectVersion(core.Integer):
    _map = {0: "v0", 1: "v1"}  # noqa: RUF012


class DataGroupHash(core.Sequence):
    _fields = [  # noqa: RUF012
        ("data_group_number", core.Integer),
        ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):
    _child_spec = DataGroupHash


class LDSVersionInfo(core.Sequence):
    _fields = [  # noqa: RUF012
        ("lds_version", core.PrintableString),
        ("unicode_version", core.PrintableString),
    ]


class LDSSecurityObject(core.Sequence):
    _fields = [  # noqa: RUF012
        ("version", LDSSecurityObjectVersion),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LDSVersionInfo, {"optional": True}),
    ]


register_content_type(ID_LDS_SECURITY_OBJECT, "ldsSecurityObject", LDSSecurityObject)


# --- model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LdsVersion:
    """LDSVersionInfo, e.g. LdsVersion("0108", "040000") for LDS 1.8 / Unicode 4.0.0."""

    lds_version: str
    unicode_version: str


@dataclass(frozen=True)
class SecurityObject:
    """A parsed EF.SOD.  `signed` keeps the CMS structure with its original bytes."""

    raw: bytes
    signed: SignedObject
    version: int
    hash_algorithm: HashAlgorithm
    dg_hashes: dict[int, bytes]
    lds_version: LdsVersion | None
    findings: tuple[Finding, ...]

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return self.signed.certificates

    @property
    def data_groups(self) -> list[int]:
        return sorted(self.dg_hashes)


# --- TLV helpers ---------------------------------------------------------------------------


def _read_tlv(data: bytes) -> tuple[int, int, int]:
    """(tag, header length, value length) of a BER-TLV with a one-byte tag."""
    if len(data) < 2:
        raise SodDecodeError("truncated TLV")
    tag = data[0]
    first = data[1]
    if first < 0x80:
        return tag, 2, first
    count = first & 0x7F
    if count == 0 or count > 3 or len(data) < 2 + count:
        raise SodDecodeError("unsupported or truncated TLV length")
    return tag, 2 + count, int.from_bytes(data[2 : 2 + count], "big")


def data_group_number(dg: bytes) -> int:
    """The DG number from a data group file's tag (0x61 → 1, 0x75 → 2, ...)."""
    if not dg:
        raise SodBuildError("empty data group")
    number = _DG_BY_TAG.get(dg[0])
    if number is not None:
        return number
    raise SodBuildError(f"0x{dg[0]:02X} is not a data-group tag")


def wrap_sod(content_info: bytes) -> bytes:
    body = content_info
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return bytes([SOD_TAG]) + length + body


def unwrap_sod(data: bytes) -> tuple[bytes, list[Finding]]:
    """Strip the 0x77 wrapper; a bare ContentInfo is accepted with a warning."""
    if data[:1] == b"\x30":
        return data, [warning("sod-unwrapped", "EF.SOD without its [APPLICATION 23] (0x77) wrapper")]
    tag, header, length = _read_tlv(data)
    if tag != SOD_TAG:
        raise SodDecodeError(f"EF.SOD must start with tag 0x77, found 0x{tag:02X}")
    if header + length > len(data):
        raise SodDecodeError(f"EF.SOD truncated: {len(data)} bytes for a {header + length}-byte TLV")
    findings = []
    if header + length < len(data):
        trailing = data[header + length :]
        if trailing.strip(b"\x00\xff"):
            findings.append(warning("trailing-data", f"{len(trailing)} bytes after the EF.SOD TLV"))
    return data[header : header + length], findings


# --- parse ---------------------------------------------------------------------------------


def parse_sod(data: bytes) -> SecurityObject:
    """EF.SOD bytes → `SecurityObject`; raises `SodDecodeError`.  Deviations seen in the
    field (id-data eContentType, missing wrapper) are recorded as findings, not refused."""
    content_info, findings = unwrap_sod(bytes(data))
    try:
        signed = parse_signed_data(content_info)
    except CmsDecodeError as exc:
        raise SodDecodeError(f"EF.SOD: {exc}") from None
    findings += signed.findings
    if signed.content_type == ID_DATA:
        findings.append(warning("sod-content-type-id-data", "eContentType is id-data instead of ldsSecurityObject"))
    elif signed.content_type != ID_LDS_SECURITY_OBJECT:
        raise SodDecodeError(f"eContentType {signed.content_type} is not an LDSSecurityObject")
    try:
        lds = LDSSecurityObject.load(signed.content)
        version = lds["version"].native
        hash_algorithm = hash_from_name(lds["hash_algorithm"]["algorithm"].native)
        dg_hashes: dict[int, bytes] = {}
        for item in lds["data_group_hash_values"]:
            number = item["data_group_number"].native
            value = item["data_group_hash_value"].native
            if not 1 <= number <= 16:
                raise SodDecodeError(f"data group number {number} outside 1..16")
            if number in dg_hashes:
                raise SodDecodeError(f"DG{number} hashed twice")
            dg_hashes[number] = value
        info = lds["lds_version_info"]
        lds_version = None
        if not isinstance(info, core.Void):
            lds_version = LdsVersion(info["lds_version"].native, info["unicode_version"].native)
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, SodDecodeError):
            raise
        raise SodDecodeError(f"malformed LDSSecurityObject: {exc}") from None
    version_number = 0 if version == "v0" else 1 if version == "v1" else version
    if (version_number == 1) != (lds_version is not None):
        findings.append(
            warning("lds-version-mismatch", f"LDSSecurityObject {version} with{'' if lds_version else 'out'} LDSVersionInfo")
        )
    for number, value in dg_hashes.items():
        if len(value) != hash_algorithm.digest_size:
            findings.append(
                warning("dg-hash-length", f"DG{number} hash has {len(value)} bytes, {hash_algorithm.value} gives {hash_algorithm.digest_size}")
            )
    if hash_algorithm is HashAlgorithm.SHA1:
        findings.append(warning("weak-dg-hash", "data groups hashed with SHA-1"))
    return SecurityObject(
        raw=bytes(data),
        signed=signed,
        version=version_number if isinstance(version_number, int) else -1,
        hash_algorithm=hash_algorithm,
        dg_hashes=dg_hashes,
        lds_version=lds_version,
        findings=tuple(findings),
    )


# --- build ---------------------------------------------------------------------------------


_DIGEST_ALGORITHMS: dict[HashAlgorithm, tuple[bytes, int]] = {}


def _digest_algorithm(hash_algorithm: HashAlgorithm) -> tuple[bytes, int]:
    """AlgorithmIdentifier DER (parameters absent) and digest size of a hash, computed once."""
    known = _DIGEST_ALGORITHMS.get(hash_algorithm)
    if known is None:
        oid = core.ObjectIdentifier(algos.DigestAlgorithmId(hash_algorithm.value).dotted).dump()
        known = _DIGEST_ALGORITHMS[hash_algorithm] = (tlv(0x30, oid), hash_algorithm.digest_size)
    return known


def check_lds_content(
    hash_lengths: Mapping[int, int], hash_algorithm: HashAlgorithm, lds_version: LdsVersion | None = None
) -> None:
    """Refuse what cannot make an LDSSecurityObject, given each DG number's hash length.

    Separate from the builder so that a caller can refuse a whole batch before reserving or
    signing anything, while the building itself happens elsewhere (the signing service's
    worker process)."""
    if not 2 <= len(hash_lengths) <= 16:
        raise SodBuildError(f"an LDSSecurityObject holds 2..16 data-group hashes, got {len(hash_lengths)}")
    size = hash_algorithm.digest_size
    for number, length in hash_lengths.items():
        if not 1 <= number <= 16:
            raise SodBuildError(f"data group number {number} outside 1..16")
        if length != size:
            raise SodBuildError(f"DG{number} hash is {length} bytes; {hash_algorithm.value} gives {size}")
    if lds_version:
        for text in (lds_version.lds_version, lds_version.unicode_version):
            if not text.isdigit():
                raise SodBuildError(f"LDSVersionInfo fields are digit strings (e.g. 0108, 040000), got {text!r}")


def build_lds_security_object(
    dg_hashes: Mapping[int, bytes],
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    lds_version: LdsVersion | None = None,
) -> bytes:
    """LDSSecurityObject DER: v0, or v1 iff LDSVersionInfo (LDS 1.8)."""
    size = hash_algorithm.digest_size
    if any(len(value) != size for value in dg_hashes.values()):
        check_lds_content({number: len(value) for number, value in dg_hashes.items()}, hash_algorithm, lds_version)
    numbers = tuple(sorted(dg_hashes))
    head, prefixes, tail = _lds_layout(numbers, hash_algorithm, lds_version)
    return b"".join([head, *[prefix + dg_hashes[n] for prefix, n in zip(prefixes, numbers, strict=True)], tail])


def check_data_group_numbers(
    numbers: Iterable[int], hash_algorithm: HashAlgorithm, lds_version: LdsVersion | None = None
) -> None:
    """`check_lds_content` for complete data groups (each hash the algorithm's size): the
    same refusals, answered from the layout cache once a DG set has been seen (a
    personalisation line checks every document of a batch before signing any)."""
    _lds_layout(tuple(sorted(numbers)), hash_algorithm, lds_version)


@lru_cache(maxsize=256)
def _lds_layout(
    numbers: tuple[int, ...], hash_algorithm: HashAlgorithm, lds_version: LdsVersion | None
) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """An LDSSecurityObject without its hashes, for one set of DG numbers: (the bytes before
    the first DataGroupHash, the bytes before each hash, the bytes after the last one).

    Why: every hash has the algorithm's size, so every length is known before the hashes
    are, and a personalisation line issues the same DG set again and again — its hot path
    then only joins the hashes in."""
    check_lds_content(dict.fromkeys(numbers, hash_algorithm.digest_size), hash_algorithm, lds_version)
    algorithm_der, size = _digest_algorithm(hash_algorithm)
    version = b"\x02\x01\x01" if lds_version else b"\x02\x01\x00"
    # DataGroupHash ::= SEQUENCE { dataGroupNumber INTEGER (1..16), dataGroupHashValue OCTET STRING }
    octets = b"\x04" + _cms._der_length(size)
    prefixes = tuple(b"\x30" + _cms._der_length(3 + len(octets) + size) + bytes((2, 1, n)) + octets for n in numbers)
    hashes_length = sum(len(prefix) + size for prefix in prefixes)
    hashes_header = b"\x30" + _cms._der_length(hashes_length)
    tail = b""
    if lds_version:
        tail = tlv(0x30, tlv(0x13, lds_version.lds_version.encode()) + tlv(0x13, lds_version.unicode_version.encode()))
    body_length = len(version) + len(algorithm_der) + len(hashes_header) + hashes_length + len(tail)
    return b"\x30" + _cms._der_length(body_length) + version + algorithm_der + hashes_header, prefixes, tail


def check_data_group(number: int, dg: bytes) -> None:
    """A complete DG TLV whose tag is that of the DG number given, and nothing after it."""
    if data_group_number(dg) != number:
        raise SodBuildError(f"DG{number} starts with tag 0x{dg[0]:02X}, which is DG{data_group_number(dg)}")
    try:
        _, header, length = _read_tlv(dg)
    except SodDecodeError as exc:
        raise SodBuildError(f"DG{number}: {exc}") from None
    if header + length != len(dg):
        raise SodBuildError(f"DG{number} is {len(dg)} bytes but its TLV says {header + length}")


def hash_data_groups(data_groups: Mapping[int, bytes], hash_algorithm: HashAlgorithm) -> dict[int, bytes]:
    """Hash each complete DG TLV, checking that its tag is that of the DG number given."""
    hashes = {}
    hasher = hash_constructor(hash_algorithm)
    for number, dg in data_groups.items():
        check_data_group(number, dg)
        hashes[number] = hasher(dg).digest()
    return hashes


def hash_constructor(hash_algorithm: HashAlgorithm) -> Callable[[bytes], Any]:
    """hashlib's own constructor (hashlib.sha256 …): `HashAlgorithm.digest` goes through
    hashlib.new by name, a few times slower — it shows on a personalisation line's hot path."""
    return getattr(hashlib, hash_algorithm.value)  # type: ignore[no-any-return]


def build_sod(
    data_groups: Mapping[int, bytes] | None = None,
    *,
    dg_hashes: Mapping[int, bytes] | None = None,
    ds_signer: Signer,
    ds_certificate: bytes,
    signing_time: datetime,
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
    lds_version: LdsVersion | None = None,
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
) -> bytes:
    """EF.SOD (0x77-wrapped) over the data groups (complete TLVs) or their precomputed hashes.

    The same `hash_algorithm` is used for the DG hashes, the messageDigest and the signature."""
    if (data_groups is None) == (dg_hashes is None):
        raise SodBuildError("give either data_groups or dg_hashes")
    hashes = hash_data_groups(data_groups, hash_algorithm) if data_groups is not None else dict(dg_hashes or {})
    econtent = build_lds_security_object(hashes, hash_algorithm, lds_version)
    try:
        content_info = build_signed_data(
            content_type=ID_LDS_SECURITY_OBJECT,
            content=econtent,
            signer=ds_signer,
            signer_certificate=ds_certificate,
            signing_time=signing_time,
            hash_algorithm=hash_algorithm,
            rsa_padding=rsa_padding,
            sid=SignerIdKind.ISSUER_AND_SERIAL,
            certificates=[ds_certificate],
        )
    except CmsBuildError as exc:
        raise SodBuildError(str(exc)) from None
    return wrap_sod(content_info)
