"""CV public keys, tag 7F49 (TR-03110-3 D.3).

Why the tags are decoded keyed on the OID: 81/82 mean modulus/exponent for RSA but
prime/a for EC.  EC domain parameters are "all present (except the cofactor) or all
absent": a self-signed CVCA SHALL carry them, a link MAY, DV and terminal certificates
MUST NOT, requests MUST.  A key without parameters inherits the CVCA's curve, so
`CvEcPublicKey.curve` may be None until a chain supplies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from icao_pki.curves import Curve, UnknownCurveError, curve_by_parameters, decode_point
from icao_pki.signature import EcPublicKey, PublicKey, RsaPublicKey, load_spki
from icao_pki.signer import KeyKind

from . import tlv
from .algorithms import TaAlgorithm
from .errors import CvcDecodeError, CvcEncodeError, CvcValidationError
from .oid import decode_oid, encode_oid

TAG_PUBLIC_KEY = 0x7F49
TAG_OID = 0x06

#: TR-03110-3 A.7.3.2: the RSA modulus sizes a terminal key may have, in bits
RSA_MODULUS_BITS = frozenset({1024, 1280, 1536, 2048, 3072})
#: TR-03110-3 A.7.3.2: the public exponent is at most 32 bits long
RSA_MAX_EXPONENT_BITS = 32
#: TR-03110-3 A.7.4.2: ECDSA curve sizes (bit length of the prime p), inclusive
EC_BITS_RANGE = (160, 512)


@dataclass(frozen=True)
class CvEcPublicKey:
    algorithm: TaAlgorithm
    point: bytes
    #: the curve named by explicit domain parameters in this key, or None when absent
    curve: Curve | None = None
    #: whether the optional cofactor (87) was present
    cofactor_present: bool = True

    kind = KeyKind.EC

    @property
    def has_domain_parameters(self) -> bool:
        return self.curve is not None

    def public_key(self, inherited: Curve | None = None) -> EcPublicKey:
        """The verification key: own parameters if present, else the CVCA's."""
        curve = self.curve or inherited
        if curve is None:
            raise CvcValidationError("domain_parameters", "EC key has no domain parameters and none were inherited")
        try:
            return EcPublicKey(curve, self.point)
        except UnknownCurveError as exc:
            raise CvcValidationError("public_key", f"public point is not valid on {curve.name}: {exc}") from None


@dataclass(frozen=True)
class CvRsaPublicKey:
    algorithm: TaAlgorithm
    n: int
    e: int

    kind = KeyKind.RSA
    curve = None
    has_domain_parameters = False

    @property
    def bits(self) -> int:
        return self.n.bit_length()

    def public_key(self, inherited: Curve | None = None) -> RsaPublicKey:
        return RsaPublicKey(self.n, self.e)


CvPublicKey = CvEcPublicKey | CvRsaPublicKey


def key_size_problem(key: PublicKey) -> str | None:
    """Why `key` is outside TR-03110-3's key sizes (A.7.3.2 RSA, A.7.4.2 ECDSA), or None.

    Why a separate check and not a decode error: parsing stays tolerant (a foreign
    certificate with an odd size must still be shown), builders refuse such a key and
    validators report it, because a chip is only required to handle these sizes.
    """
    if isinstance(key, RsaPublicKey):
        bits = key.n.bit_length()
        if bits not in RSA_MODULUS_BITS:
            allowed = "/".join(str(b) for b in sorted(RSA_MODULUS_BITS))
            return f"RSA modulus of {bits} bits is not one of {allowed} bits (TR-03110-3 A.7.3.2)"
        if key.e.bit_length() > RSA_MAX_EXPONENT_BITS:
            return (
                f"RSA public exponent of {key.e.bit_length()} bits exceeds {RSA_MAX_EXPONENT_BITS} bits (TR-03110-3 A.7.3.2)"
            )
        return None
    low, high = EC_BITS_RANGE
    if not low <= key.curve.bits <= high:
        return f"EC key on {key.curve.name} ({key.curve.bits} bits) is outside {low}…{high} bits (TR-03110-3 A.7.4.2)"
    return None


def from_public_key(
    key: PublicKey, algorithm: TaAlgorithm, *, domain_parameters: bool
) -> CvPublicKey:
    if algorithm.kind is not key.kind:
        raise CvcEncodeError(f"{algorithm.label} does not fit a {key.kind.value.upper()} key")
    if isinstance(key, RsaPublicKey):
        return CvRsaPublicKey(algorithm, key.n, key.e)
    return CvEcPublicKey(algorithm, key.point, key.curve if domain_parameters else None, cofactor_present=True)


def from_spki(spki: bytes, algorithm: TaAlgorithm, *, domain_parameters: bool) -> CvPublicKey:
    return from_public_key(load_spki(spki), algorithm, domain_parameters=domain_parameters)


def encode_public_key(key: CvPublicKey) -> bytes:
    """The 7F49 TLV; integers minimal, points uncompressed and padded to the field length."""
    parts = [tlv.encode(TAG_OID, encode_oid(key.algorithm.oid))]
    if isinstance(key, CvRsaPublicKey):
        parts += [tlv.encode(0x81, tlv.encode_unsigned(key.n)), tlv.encode(0x82, tlv.encode_unsigned(key.e))]
    else:
        c = key.curve
        if c is not None:
            parts += [
                tlv.encode(0x81, tlv.encode_unsigned(c.p)),
                tlv.encode(0x82, tlv.encode_unsigned(c.a)),
                tlv.encode(0x83, tlv.encode_unsigned(c.b)),
                tlv.encode(0x84, c.generator),
                tlv.encode(0x85, tlv.encode_unsigned(c.n)),
            ]
        parts.append(tlv.encode(0x86, key.point))
        if c is not None and key.cofactor_present:
            parts.append(tlv.encode(0x87, tlv.encode_unsigned(c.h)))
    return tlv.encode_constructed(TAG_PUBLIC_KEY, parts)


def _uint(item: tlv.Tlv) -> int:
    if not item.value:
        raise CvcDecodeError("empty unsigned integer", offset=item.offset, tag=item.tag)
    return int.from_bytes(item.value, "big")


def parse_public_key(element: tlv.Tlv) -> CvPublicKey:
    """Decode a 7F49 element (tolerant about domain-parameter *presence*; the chain checks it)."""
    if element.tag != TAG_PUBLIC_KEY:
        raise CvcDecodeError("public key (7F49) expected", offset=element.offset, tag=element.tag)
    children = element.children()
    if not children or children[0].tag != TAG_OID:
        raise CvcDecodeError("public key must start with an algorithm OID (06)", offset=element.offset, tag=element.tag)
    oid_item = children[0]
    try:
        algorithm = TaAlgorithm(decode_oid(oid_item.value))
    except ValueError as exc:
        raise CvcDecodeError(f"unsupported or malformed TA algorithm OID: {exc}", offset=oid_item.offset, tag=0x06) from None
    fields: dict[int, tlv.Tlv] = {}
    last = 0
    for item in children[1:]:
        if not 0x81 <= item.tag <= 0x87 or item.tag <= last:
            raise CvcDecodeError("unexpected or out-of-order public key element", offset=item.offset, tag=item.tag)
        last = item.tag
        fields[item.tag] = item
    if algorithm.kind is KeyKind.RSA:
        if set(fields) != {0x81, 0x82}:
            raise CvcDecodeError("RSA public key needs exactly modulus (81) and exponent (82)", offset=element.offset, tag=element.tag)
        n, e = _uint(fields[0x81]), _uint(fields[0x82])
        if n < 3 or e < 3 or not n & 1:
            raise CvcDecodeError("implausible RSA modulus or exponent", offset=fields[0x81].offset, tag=0x81)
        return CvRsaPublicKey(algorithm, n, e)
    if 0x86 not in fields:
        raise CvcDecodeError("EC public key lacks the public point (86)", offset=element.offset, tag=element.tag)
    point_item = fields[0x86]
    point = point_item.value
    dp_tags = {0x81, 0x82, 0x83, 0x84, 0x85}
    present = dp_tags & set(fields)
    if not present:
        if 0x87 in fields:
            raise CvcDecodeError("cofactor (87) without the other domain parameters", offset=fields[0x87].offset, tag=0x87)
        if len(point) < 3 or point[0] != 0x04 or len(point) % 2 == 0:
            raise CvcDecodeError("public point must be uncompressed (04 || X || Y)", offset=point_item.offset, tag=0x86)
        return CvEcPublicKey(algorithm, point, None, cofactor_present=False)
    if present != dp_tags:
        missing = ", ".join(f"{t:02X}" for t in sorted(dp_tags - present))
        raise CvcDecodeError(f"domain parameters must be all present or all absent; missing {missing}", offset=element.offset, tag=element.tag)
    p, a, b, order = (_uint(fields[t]) for t in (0x81, 0x82, 0x83, 0x85))
    g = fields[0x84].value
    size = (p.bit_length() + 7) // 8
    if len(g) != 1 + 2 * size or g[0] != 0x04:
        raise CvcDecodeError("base point G must be uncompressed and padded to the field length", offset=fields[0x84].offset, tag=0x84)
    cofactor = _uint(fields[0x87]) if 0x87 in fields else None
    gx, gy = int.from_bytes(g[1 : 1 + size], "big"), int.from_bytes(g[1 + size :], "big")
    try:
        curve = curve_by_parameters(p, a, b, gx, gy, order, cofactor)
    except UnknownCurveError as exc:
        raise CvcDecodeError(str(exc), offset=fields[0x81].offset, tag=0x81) from None
    try:
        decode_point(curve, point)
    except UnknownCurveError as exc:
        raise CvcDecodeError(str(exc), offset=point_item.offset, tag=0x86) from None
    return CvEcPublicKey(algorithm, point, curve, cofactor_present=cofactor is not None)
