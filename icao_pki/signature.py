"""Public keys and signature verification shared by the X.509 and CV codecs.

Two recurring interoperability bugs live here, once: ECDSA signatures are plain r||s in
CV certificates (TR-03111) but DER ``ECDSA-Sig-Value`` in X.509/CMS, and explicit EC
domain parameters (mandatory in ICAO 9303-12) must be mapped back to a named curve
because `cryptography` refuses them.  Curves `cryptography` lacks (brainpoolP224r1,
brainpoolP320r1) are verified with the `ecdsa` package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import core, keys
from cryptography.exceptions import InvalidSignature as _CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .curves import Curve, UnknownCurveError, curve_by_name, curve_by_oid, curve_by_parameters, decode_point
from .signer import HashAlgorithm, KeyKind, RsaPadding


class SignatureError(ValueError):
    """A signature did not verify, or could not be interpreted."""


class PublicKeyError(ValueError):
    """A public key that cannot be decoded or is not supported."""


@dataclass(frozen=True)
class EcPublicKey:
    curve: Curve
    point: bytes  # uncompressed, padded

    kind = KeyKind.EC

    def __post_init__(self) -> None:
        decode_point(self.curve, self.point)


@dataclass(frozen=True)
class RsaPublicKey:
    n: int
    e: int

    kind = KeyKind.RSA

    @property
    def bits(self) -> int:
        return self.n.bit_length()


PublicKey = EcPublicKey | RsaPublicKey


# --- ECDSA signature formats -------------------------------------------------------------


def plain_to_der(signature: bytes) -> bytes:
    """Plain r||s (both halves the same length) to DER ECDSA-Sig-Value."""
    if not signature or len(signature) % 2:
        raise SignatureError(f"plain ECDSA signature must have an even, non-zero length, got {len(signature)}")
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


def der_to_plain(signature: bytes, order_bytes: int) -> bytes:
    """DER ECDSA-Sig-Value to plain r||s, each left-padded to `order_bytes`."""
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise SignatureError(f"not a DER ECDSA-Sig-Value: {exc}") from None
    if r.bit_length() > 8 * order_bytes or s.bit_length() > 8 * order_bytes:
        raise SignatureError("ECDSA r or s longer than the group order")
    return r.to_bytes(order_bytes, "big") + s.to_bytes(order_bytes, "big")


def pad_plain(signature: bytes, order_bytes: int) -> bytes:
    """Re-pad a plain r||s whose halves may have lost leading zeros (some tokens do that)."""
    if len(signature) == 2 * order_bytes:
        return signature
    if len(signature) % 2 or len(signature) > 2 * order_bytes:
        raise SignatureError(f"plain ECDSA signature of {len(signature)} bytes for a {order_bytes}-byte order")
    half = len(signature) // 2
    return signature[:half].rjust(order_bytes, b"\x00") + signature[half:].rjust(order_bytes, b"\x00")


# --- SubjectPublicKeyInfo -----------------------------------------------------------------


def load_spki(der: bytes) -> PublicKey:
    """Decode a SubjectPublicKeyInfo with named or explicit (ICAO) EC parameters, or RSA."""
    try:
        info = keys.PublicKeyInfo.load(der, strict=True)
        algorithm = info["algorithm"]["algorithm"].native
        if algorithm == "rsa":
            rsa_key = info["public_key"].parsed
            return RsaPublicKey(n=rsa_key["modulus"].native, e=rsa_key["public_exponent"].native)
        if algorithm == "rsassa_pss":
            rsa_key = keys.RSAPublicKey.load(info["public_key"].contents[1:])
            return RsaPublicKey(n=rsa_key["modulus"].native, e=rsa_key["public_exponent"].native)
        if algorithm == "ec":
            params = info["algorithm"]["parameters"]
            curve = _curve_from_ec_parameters(params)
            return EcPublicKey(curve=curve, point=bytes(info["public_key"].native))
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, UnknownCurveError):
            raise PublicKeyError(str(exc)) from None
        raise PublicKeyError(f"malformed SubjectPublicKeyInfo: {exc}") from None
    raise PublicKeyError(f"unsupported public-key algorithm {algorithm}")


def _curve_from_ec_parameters(params: keys.ECDomainParameters) -> Curve:
    if params.name == "named":
        return curve_by_oid(params.chosen.dotted)
    if params.name == "specified":
        spec = params.chosen
        if spec["field_id"]["field_type"].native != "prime_field":
            raise UnknownCurveError("only prime-field curves are supported")
        p = spec["field_id"]["parameters"].native
        a = int.from_bytes(spec["curve"]["a"].native, "big")
        b = int.from_bytes(spec["curve"]["b"].native, "big")
        base = spec["base"].native
        size = (p.bit_length() + 7) // 8
        if len(base) != 1 + 2 * size or base[0] != 4:
            raise UnknownCurveError("explicit base point must be uncompressed")
        gx = int.from_bytes(base[1 : 1 + size], "big")
        gy = int.from_bytes(base[1 + size :], "big")
        cofactor = spec["cofactor"].native if spec["cofactor"].native is not None else None
        return curve_by_parameters(p, a, b, gx, gy, spec["order"].native, cofactor)
    raise UnknownCurveError("implicitly-CA EC parameters are not supported")


def build_spki(key: PublicKey, explicit_parameters: bool = False) -> bytes:
    """Encode a SubjectPublicKeyInfo; ICAO 9303-12 wants `explicit_parameters=True`
    (prime field, uncompressed base point, cofactor included)."""
    if isinstance(key, RsaPublicKey):
        return keys.PublicKeyInfo(
            {
                "algorithm": {"algorithm": "rsa", "parameters": core.Null()},
                "public_key": keys.RSAPublicKey({"modulus": key.n, "public_exponent": key.e}),
            }
        ).dump()
    curve = key.curve
    if explicit_parameters:
        size = curve.field_bytes
        parameters = keys.ECDomainParameters(
            name="specified",
            value=keys.SpecifiedECDomain(
                {
                    "version": "ecdpVer1",
                    "field_id": {"field_type": "prime_field", "parameters": curve.p},
                    "curve": {
                        "a": curve.a.to_bytes(size, "big"),
                        "b": curve.b.to_bytes(size, "big"),
                    },
                    "base": curve.generator,
                    "order": curve.n,
                    "cofactor": curve.h,
                }
            ),
        )
    else:
        parameters = keys.ECDomainParameters(name="named", value=curve.oid)
    return keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "ec", "parameters": parameters},
            "public_key": key.point,
        }
    ).dump()


def public_key_from_cryptography(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return RsaPublicKey(numbers.n, numbers.e)
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return EcPublicKey(curve_by_name(key.curve.name), key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


# --- verification -----------------------------------------------------------------------

_HASHES = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA224: hashes.SHA224,
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}


def cryptography_hash(algorithm: HashAlgorithm) -> hashes.HashAlgorithm:
    return _HASHES[algorithm]()


#: `pss_salt_length` value that accepts any salt length (reading what others signed).
PSS_ANY_SALT = -1


def verify_signature(
    key: PublicKey,
    signature: bytes,
    data: bytes,
    hash_algorithm: HashAlgorithm,
    *,
    ecdsa_format: str = "plain",
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
    pss_salt_length: int | None = None,
    pss_mgf_hash: HashAlgorithm | None = None,
) -> None:
    """Verify or raise `SignatureError`.  `ecdsa_format` is "plain" (CVC) or "der" (X.509/CMS).

    RSA-PSS defaults to what we write (MGF1 with the same hash, salt = hash length); foreign
    signers vary (OpenPACE uses the maximum salt, Sweden's CSCA a 20-byte salt), so readers may
    pass the salt from the parameters or `PSS_ANY_SALT`, and the MGF1 hash."""
    if isinstance(key, RsaPublicKey):
        public = _rsa_key_object(key.n, key.e)
        pad: padding.AsymmetricPadding
        if rsa_padding is RsaPadding.PSS:
            salt: int = hash_algorithm.digest_size if pss_salt_length is None else pss_salt_length
            pad = padding.PSS(
                mgf=padding.MGF1(cryptography_hash(pss_mgf_hash or hash_algorithm)),
                salt_length=padding.PSS.AUTO if salt == PSS_ANY_SALT else salt,
            )
        else:
            pad = padding.PKCS1v15()
        try:
            public.verify(signature, data, pad, cryptography_hash(hash_algorithm))
        except (_CryptographyInvalidSignature, ValueError):
            raise SignatureError("RSA signature does not verify") from None
        return

    curve = key.curve
    if ecdsa_format == "der":
        plain = der_to_plain(signature, curve.order_bytes)
    elif ecdsa_format == "plain":
        if len(signature) != 2 * curve.order_bytes:
            raise SignatureError(
                f"plain ECDSA signature must be {2 * curve.order_bytes} bytes on {curve.name}, got {len(signature)}"
            )
        plain = signature
    else:
        raise ValueError(f"unknown ECDSA signature format {ecdsa_format!r}")
    r = int.from_bytes(plain[: curve.order_bytes], "big")
    s = int.from_bytes(plain[curve.order_bytes :], "big")
    if not (0 < r < curve.n and 0 < s < curve.n):
        raise SignatureError("ECDSA r or s out of range")
    public_ec = _ec_key_object(curve.name, key.point)
    if public_ec is not None:
        try:
            public_ec.verify(encode_dss_signature(r, s), data, _ecdsa(hash_algorithm))
        except _CryptographyInvalidSignature:
            raise SignatureError("ECDSA signature does not verify") from None
        return
    _verify_with_python_ecdsa(curve, key.point, r, s, hash_algorithm.digest(data))


def der_ecdsa_checker(key: EcPublicKey, hash_algorithm: HashAlgorithm) -> Callable[[bytes, bytes], None] | None:
    """``check(der_signature, data)`` for one key, raising `SignatureError`; None where
    `cryptography` lacks the curve (use `verify_signature`).

    Why: a signing service verifies every signature it makes (STYLE.md) under one key, in
    DER it encoded itself; `verify_signature` would take the DER apart and rebuild it per call.
    OpenSSL still refuses r or s out of range and any DER that is not canonical."""
    public = _ec_key_object(key.curve.name, key.point)
    if public is None:
        return None
    algorithm = _ecdsa(hash_algorithm)
    verify = public.verify

    def check(signature: bytes, data: bytes) -> None:
        try:
            verify(signature, data, algorithm)
        except (_CryptographyInvalidSignature, ValueError):
            raise SignatureError("ECDSA signature does not verify") from None

    return check


# Building an OpenSSL key object (point decoding and validation) costs about a tenth of a
# brainpool verification, and CA keys verify many certificates: build each one once.


@lru_cache(maxsize=512)
def _ec_key_object(curve_name: str, point: bytes) -> ec.EllipticCurvePublicKey | None:
    """The `cryptography` key for (curve, point); None where `cryptography` lacks the curve."""
    crypto_curve = curve_by_name(curve_name).cryptography_curve()
    if crypto_curve is None:
        return None
    return ec.EllipticCurvePublicKey.from_encoded_point(crypto_curve, point)


@lru_cache(maxsize=512)
def _rsa_key_object(n: int, e: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


@lru_cache(maxsize=8)
def _ecdsa(hash_algorithm: HashAlgorithm) -> ec.ECDSA:
    return ec.ECDSA(cryptography_hash(hash_algorithm))


def clear_key_cache() -> None:
    """Forget the cached key objects (for benchmarks of the cold path)."""
    _ec_key_object.cache_clear()
    _rsa_key_object.cache_clear()


def _verify_with_python_ecdsa(curve: Curve, point: bytes, r: int, s: int, digest: bytes) -> None:
    import ecdsa  # curves `cryptography` does not offer
    from ecdsa.util import sigdecode_strings

    curves = {"brainpoolP224r1": ecdsa.curves.BRAINPOOLP224r1, "brainpoolP320r1": ecdsa.curves.BRAINPOOLP320r1}
    if curve.name not in curves:
        raise SignatureError(f"no verifier available for curve {curve.name}")
    vk = ecdsa.VerifyingKey.from_string(point, curve=curves[curve.name])
    n = curve.order_bytes
    try:
        vk.verify_digest(
            (r.to_bytes(n, "big"), s.to_bytes(n, "big")), digest, sigdecode=sigdecode_strings, allow_truncate=True
        )
    except ecdsa.BadSignatureError:
        raise SignatureError("ECDSA signature does not verify") from None
