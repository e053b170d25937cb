"""Terminal Authentication algorithm identifiers (TR-03110-3 Tables 17/18, A.7).

The OID in a certificate's public key names the algorithm the *holder* signs with; an
issuer always signs with the algorithm of its *own* key.  That distinction is the
EJBCA link-certificate bug (STANDARDS.md §2.1), so it lives in one table.
"""

from __future__ import annotations

from enum import Enum

from icao_pki.curves import Curve
from icao_pki.signer import HashAlgorithm, KeyKind, RsaPadding, Signer

from .errors import CvcBuildError
from .oid import ID_TA


class TaAlgorithm(str, Enum):
    """id-TA-* algorithms; the value is the dotted OID."""

    RSA_V1_5_SHA_1 = f"{ID_TA}.1.1"
    RSA_V1_5_SHA_256 = f"{ID_TA}.1.2"
    RSA_PSS_SHA_1 = f"{ID_TA}.1.3"
    RSA_PSS_SHA_256 = f"{ID_TA}.1.4"
    RSA_V1_5_SHA_512 = f"{ID_TA}.1.5"
    RSA_PSS_SHA_512 = f"{ID_TA}.1.6"
    ECDSA_SHA_1 = f"{ID_TA}.2.1"
    ECDSA_SHA_224 = f"{ID_TA}.2.2"
    ECDSA_SHA_256 = f"{ID_TA}.2.3"
    ECDSA_SHA_384 = f"{ID_TA}.2.4"
    ECDSA_SHA_512 = f"{ID_TA}.2.5"

    @property
    def oid(self) -> str:
        return self.value

    @property
    def kind(self) -> KeyKind:
        return KeyKind.EC if ".2.2.2.2." in self.value else KeyKind.RSA

    @property
    def hash(self) -> HashAlgorithm:
        return HashAlgorithm("sha" + self.name.rsplit("_", 1)[1].replace("SHA", ""))

    @property
    def rsa_padding(self) -> RsaPadding:
        return RsaPadding.PSS if "PSS" in self.name else RsaPadding.PKCS1V15

    @property
    def label(self) -> str:
        """Spec name, e.g. ``id-TA-ECDSA-SHA-256``."""
        return "id-TA-" + self.name.replace("_", "-").replace("V1-5", "v1-5")

    @classmethod
    def from_oid(cls, dotted: str) -> TaAlgorithm:
        return cls(dotted)

    @classmethod
    def from_label(cls, label: str) -> TaAlgorithm:
        for member in cls:
            if label in (member.label, member.name):
                return member
        raise ValueError(f"unknown TA algorithm {label!r}")


def default_algorithm(kind: KeyKind, curve: Curve | None = None) -> TaAlgorithm:
    """A hash matched to the key: SHA-256 up to 256-bit curves, then SHA-384 / SHA-512."""
    if kind is KeyKind.RSA:
        return TaAlgorithm.RSA_V1_5_SHA_256
    bits = curve.bits if curve else 256
    if bits <= 224:
        return TaAlgorithm.ECDSA_SHA_224
    if bits <= 256:
        return TaAlgorithm.ECDSA_SHA_256
    if bits <= 384:
        return TaAlgorithm.ECDSA_SHA_384
    return TaAlgorithm.ECDSA_SHA_512


def algorithm_for_signer(signer: Signer, algorithm: TaAlgorithm | None) -> TaAlgorithm:
    """The algorithm a signer's certificate will carry; refuses a kind mismatch."""
    chosen = algorithm or default_algorithm(signer.kind, signer.curve)
    if chosen.kind is not signer.kind:
        raise CvcBuildError(f"{chosen.label} needs an {chosen.kind.value.upper()} key, the signer holds {signer.kind.value.upper()}")
    return chosen
