"""The signer interface every codec signs through.

Codecs (`cvc/`, the encoders in `icao_pki/`) never see a PKCS#11 session or a database:
they receive a `Signer`.  The product's only implementation is the PKCS#11 key store
(`icao_pki.keystore`); tests may add software signers of their own.  A signer returns
the *raw* mechanism output (ECDSA: plain r||s; RSA: the signature block) and each format
does its own fix-up (`icao_pki.signature`: DER for X.509/CMS, plain for CVC).
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Protocol, runtime_checkable

from .curves import Curve


class HashAlgorithm(str, Enum):
    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    def digest(self, data: bytes) -> bytes:
        # hashlib's own constructor: hashlib.new by name costs a few times more, and this is on
        # the path of every signature
        return _CONSTRUCTORS[self](data).digest()

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]


_CONSTRUCTORS = {h: getattr(hashlib, h.value) for h in HashAlgorithm}
_DIGEST_SIZES = {h: hashlib.new(h.value).digest_size for h in HashAlgorithm}


class RsaPadding(str, Enum):
    PKCS1V15 = "pkcs1v15"
    #: RSASSA-PSS with MGF1 using the same hash and a salt as long as the hash (ICAO, TR-03110).
    PSS = "pss"


class KeyKind(str, Enum):
    EC = "ec"
    RSA = "rsa"


@runtime_checkable
class Signer(Protocol):
    """A private key that can sign but never be read."""

    @property
    def kind(self) -> KeyKind: ...

    @property
    def curve(self) -> Curve | None:
        """For EC keys the curve, with every explicit domain parameter; None for RSA."""
        ...

    @property
    def rsa_bits(self) -> int | None: ...

    def public_key_info(self) -> bytes:
        """SubjectPublicKeyInfo, DER, with the named-curve OID for EC keys."""
        ...

    def sign(
        self,
        data: bytes,
        hash_algorithm: HashAlgorithm,
        rsa_padding: RsaPadding = RsaPadding.PKCS1V15,
    ) -> bytes:
        """Hash `data` and sign it; ECDSA returns plain r||s padded to the order length."""
        ...
