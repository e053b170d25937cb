"""A software Signer for codec tests only.

Product code has no software-key fallback: keys live in PKCS#11.  Codec tests use this
to stay fast and HSM-independent; the HSM path is proven separately with SoftHSM2.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from icao_pki.curves import Curve, curve_by_name
from icao_pki.signature import cryptography_hash
from icao_pki.signer import HashAlgorithm, KeyKind, RsaPadding


class SoftwareSigner:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls, spec: str = "secp256r1") -> SoftwareSigner:
        if spec.startswith("rsa"):
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=int(spec[3:])))
        curve = curve_by_name(spec).cryptography_curve()
        if curve is None:
            raise ValueError(f"cryptography cannot generate {spec}")
        return cls(ec.generate_private_key(curve))

    @property
    def kind(self) -> KeyKind:
        return KeyKind.RSA if isinstance(self._key, rsa.RSAPrivateKey) else KeyKind.EC

    @property
    def curve(self) -> Curve | None:
        return curve_by_name(self._key.curve.name) if isinstance(self._key, ec.EllipticCurvePrivateKey) else None

    @property
    def rsa_bits(self) -> int | None:
        return self._key.key_size if isinstance(self._key, rsa.RSAPrivateKey) else None

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """Tests only: e.g. to hand the key to OpenSSL or OpenPACE."""
        return self._key

    def public_key_info(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:
        h = cryptography_hash(HashAlgorithm(hash_algorithm))
        if isinstance(self._key, rsa.RSAPrivateKey):
            pad = (
                padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
                if rsa_padding is RsaPadding.PSS
                else padding.PKCS1v15()
            )
            return self._key.sign(data, pad, h)
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(h)))
        n = self.curve.order_bytes  # type: ignore[union-attr]
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
