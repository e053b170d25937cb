"""The check every SOD signature passes before it leaves (STYLE.md: verify every signature).

Why: a token returning garbage must not put an EF.SOD on a chip that fails Passive
Authentication at every border.  The check runs in the signing thread (inline mode) or in the
SOD worker process (`worker`), the same function in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def signature_checker(key: Any, signature_algorithm: Any) -> Callable[[bytes, bytes], None]:
    """A verifier for (signature, data) under `key` for one AlgorithmIdentifier, with the
    identifier interpreted once rather than per signature (it costs a fifth of an ECDSA
    verification).  ECDSA on a curve `cryptography` has goes straight to OpenSSL with the DER as
    made (`der_ecdsa_checker`), other ECDSA and RSA PKCS#1 v1.5 to `verify_signature`; anything
    else (RSASSA-PSS with its parameters) through the full `verify_algorithm_signature`.
    Raises `CmsSignatureError` like the latter."""
    from icao_pki.cms import CmsSignatureError, hash_from_name, verify_algorithm_signature
    from icao_pki.signature import RsaPublicKey, SignatureError, der_ecdsa_checker, verify_signature
    from icao_pki.signer import RsaPadding

    family = signature_algorithm.signature_algo
    if family not in ("ecdsa", "rsassa_pkcs1v15") or (family == "ecdsa") == isinstance(key, RsaPublicKey):
        return lambda signature, data: _ignore(verify_algorithm_signature(key, signature_algorithm, signature, data))
    hash_algorithm = hash_from_name(signature_algorithm.hash_algo)
    direct = None if isinstance(key, RsaPublicKey) else der_ecdsa_checker(key, hash_algorithm)
    if direct is not None:

        def check_ec(signature: bytes, data: bytes) -> None:
            try:
                direct(signature, data)
            except SignatureError as exc:
                raise CmsSignatureError(str(exc), code="signature") from None

        return check_ec

    def check(signature: bytes, data: bytes) -> None:
        try:
            verify_signature(key, signature, data, hash_algorithm, ecdsa_format="der", rsa_padding=RsaPadding.PKCS1V15)
        except SignatureError as exc:
            raise CmsSignatureError(str(exc), code="signature") from None

    return check


def _ignore(_: object) -> None:
    return None
