"""Elliptic-curve domain parameters for the curves ICAO 9303 and BSI TR-03110 use.

Why this table exists: a PKCS#11 token stores only the curve OID, but ICAO 9303-12
§4.1.6 requires explicit domain parameters in every X.509 SubjectPublicKeyInfo and
TR-03110 requires them in CVCA certificates and CV requests.  Incoming explicit
parameters must also be mapped back to a named curve, because `cryptography`
refuses explicit-parameter keys.

The numbers were generated with ``openssl ecparam -name NAME -param_enc explicit``
and ``tests/test_curves.py`` re-derives every row from OpenSSL, so a typo cannot
survive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric import ec


class UnknownCurveError(ValueError):
    """Domain parameters or a curve name that matches none of the supported curves."""


@dataclass(frozen=True)
class Curve:
    """A prime-field short-Weierstrass curve with all of its domain parameters."""

    name: str
    oid: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int

    @property
    def field_bytes(self) -> int:
        """Byte length of a field element: coordinates are left-padded to this."""
        return (self.p.bit_length() + 7) // 8

    @property
    def order_bytes(self) -> int:
        """Byte length of the group order: ECDSA r and s are left-padded to this."""
        return (self.n.bit_length() + 7) // 8

    @property
    def bits(self) -> int:
        return self.p.bit_length()

    @cached_property
    def generator(self) -> bytes:
        """The base point G, uncompressed (04 || X || Y)."""
        return encode_point(self, self.gx, self.gy)

    def cryptography_curve(self) -> ec.EllipticCurve | None:
        """The `cryptography` curve object, or None where `cryptography` lacks the curve."""
        cls = _CRYPTOGRAPHY_CURVES.get(self.name)
        return cls() if cls else None


def encode_point(curve: Curve, x: int, y: int) -> bytes:
    """Uncompressed point, each coordinate left-padded to the field length.

    Padding matters: cert-cvc shipped a bug for years where |X| != |Y| broke 1 in 2^16 keys.
    """
    n = curve.field_bytes
    return b"\x04" + x.to_bytes(n, "big") + y.to_bytes(n, "big")


def decode_point(curve: Curve, point: bytes) -> tuple[int, int]:
    """Parse an uncompressed point and check it lies on the curve."""
    n = curve.field_bytes
    if len(point) != 1 + 2 * n or point[0] != 0x04:
        raise UnknownCurveError(
            f"expected an uncompressed point of {1 + 2 * n} bytes on {curve.name}, got {len(point)} bytes"
        )
    x = int.from_bytes(point[1 : 1 + n], "big")
    y = int.from_bytes(point[1 + n :], "big")
    if x >= curve.p or y >= curve.p or (y * y - (x * x * x + curve.a * x + curve.b)) % curve.p:
        raise UnknownCurveError(f"point is not on {curve.name}")
    return x, y


CURVES: tuple[Curve, ...] = (
    Curve(
        name="brainpoolP224r1",
        oid="1.3.36.3.3.2.8.1.1.5",
        p=0xD7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FF,
        a=0x68A5E62CA9CE6C1C299803A6C1530B514E182AD8B0042A59CAD29F43,
        b=0x2580F63CCFE44138870713B1A92369E33E2135D266DBB372386C400B,
        gx=0xD9029AD2C7E5CF4340823B2A87DC68C9E4CE3174C1E6EFDEE12C07D,
        gy=0x58AA56F772C0726F24C6B89E4ECDAC24354B9E99CAA3F6D3761402CD,
        n=0xD7C134AA264366862A18302575D0FB98D116BC4B6DDEBCA3A5A7939F,
        h=1,
    ),
    Curve(
        name="brainpoolP256r1",
        oid="1.3.36.3.3.2.8.1.1.7",
        p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
        a=0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
        b=0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
        gx=0x8BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262,
        gy=0x547EF835C3DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F046997,
        n=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
        h=1,
    ),
    Curve(
        name="brainpoolP320r1",
        oid="1.3.36.3.3.2.8.1.1.9",
        p=0xD35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28FCD412B1F1B32E27,
        a=0x3EE30B568FBAB0F883CCEBD46D3F3BB8A2A73513F5EB79DA66190EB085FFA9F492F375A97D860EB4,
        b=0x520883949DFDBC42D3AD198640688A6FE13F41349554B49ACC31DCCD884539816F5EB4AC8FB1F1A6,
        gx=0x43BD7E9AFB53D8B85289BCC48EE5BFE6F20137D10A087EB6E7871E2A10A599C710AF8D0D39E20611,
        gy=0x14FDD05545EC1CC8AB4093247F77275E0743FFED117182EAA9C77877AAAC6AC7D35245D1692E8EE1,
        n=0xD35E472036BC4FB7E13C785ED201E065F98FCFA5B68F12A32D482EC7EE8658E98691555B44C59311,
        h=1,
    ),
    Curve(
        name="brainpoolP384r1",
        oid="1.3.36.3.3.2.8.1.1.11",
        p=0x8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123ACD3A729901D1A71874700133107EC53,
        a=0x7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F8AA5814A503AD4EB04A8C7DD22CE2826,
        b=0x4A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D57CB4390295DBC9943AB78696FA504C11,
        gx=0x1D1C64F068CF45FFA2A63A81B7C13F6B8847A3E77EF14FE3DB7FCAFE0CBD10E8E826E03436D646AAEF87B2E247D4AF1E,
        gy=0x8ABE1D7520F9C2A45CB1EB8E95CFD55262B70B29FEEC5864E19C054FF99129280E4646217791811142820341263C5315,
        n=0x8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7CF3AB6AF6B7FC3103B883202E9046565,
        h=1,
    ),
    Curve(
        name="brainpoolP512r1",
        oid="1.3.36.3.3.2.8.1.1.13",
        p=0xAADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA703308717D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3,
        a=0x7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA,
        b=0x3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723,
        gx=0x81AEE4BDD82ED9645A21322E9C4C6A9385ED9F70B5D916C1B43B62EEF4D0098EFF3B1F78E2D0D48D50D1687B93B97D5F7C6D5047406A5E688B352209BCB9F822,
        gy=0x7DDE385D566332ECC0EABFA9CF7822FDF209F70024A57B1AA000C55B881F8111B2DCDE494A5F485E5BCA4BD88A2763AED1CA2B2FA8F0540678CD1E0F3AD80892,
        n=0xAADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069,
        h=1,
    ),
    Curve(
        name="secp224r1",
        oid="1.3.132.0.33",
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF000000000000000000000001,
        a=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFE,
        b=0xB4050A850C04B3ABF54132565044B0B7D7BFD8BA270B39432355FFB4,
        gx=0xB70E0CBD6BB4BF7F321390B94A03C1D356C21122343280D6115C1D21,
        gy=0xBD376388B5F723FB4C22DFE6CD4375A05A07476444D5819985007E34,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFF16A2E0B8F03E13DD29455C5C2A3D,
        h=1,
    ),
    Curve(
        name="secp256r1",
        oid="1.2.840.10045.3.1.7",
        p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        h=1,
    ),
    Curve(
        name="secp384r1",
        oid="1.3.132.0.34",
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
        a=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFC,
        b=0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        gx=0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        gy=0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        h=1,
    ),
    Curve(
        name="secp521r1",
        oid="1.3.132.0.35",
        p=0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
        a=0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC,
        b=0x51953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        gx=0xC6858E06B70404E9CD9E3ECB662395B4429C648139053FB521F828AF606B4D3DBAA14B5E77EFE75928FE1DC127A2FFA8DE3348B3C1856A429BF97E7E31C2E5BD66,
        gy=0x11839296A789A3BC0045C8A5FB42C7D1BD998F54449579B446817AFBD17273E662C97EE72995EF42640C550B9013FAD0761353C7086A272C24088BE94769FD16650,
        n=0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
        h=1,
    ),
)

_CRYPTOGRAPHY_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "brainpoolP256r1": ec.BrainpoolP256R1,
    "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1,
    "secp224r1": ec.SECP224R1,
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}

_BY_NAME = {c.name: c for c in CURVES}
_BY_NAME["prime256v1"] = _BY_NAME["secp256r1"]
_BY_NAME["P-256"] = _BY_NAME["secp256r1"]
_BY_NAME["P-384"] = _BY_NAME["secp384r1"]
_BY_NAME["P-521"] = _BY_NAME["secp521r1"]
_BY_OID = {c.oid: c for c in CURVES}
_BY_PARAMS = {(c.p, c.a, c.b, c.gx, c.gy, c.n): c for c in CURVES}


def curve_by_name(name: str) -> Curve:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownCurveError(f"unsupported curve {name!r}; supported: {', '.join(c.name for c in CURVES)}") from None


def curve_by_oid(oid: str) -> Curve:
    try:
        return _BY_OID[oid]
    except KeyError:
        raise UnknownCurveError(f"unsupported curve OID {oid}") from None


def curve_by_parameters(p: int, a: int, b: int, gx: int, gy: int, n: int, h: int | None = None) -> Curve:
    """Map explicit domain parameters to the named curve they describe.

    The cofactor may be absent (TR-03110 makes it optional); when present it must match.
    """
    curve = _BY_PARAMS.get((p, a, b, gx, gy, n))
    if curve is None or (h is not None and h != curve.h):
        raise UnknownCurveError("explicit domain parameters match no supported named curve")
    return curve


def curve_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> Curve:
    return curve_by_name(key.curve.name)
