"""Terminal Authentication version 2 signatures (TR-03110-2 §3.3, TR-03110-3 B.11).

The terminal proves possession of the key in its certificate by signing
``ID_ICC || r_ICC || Comp(ephemeral PK_PCD) [|| A_PCD]``: ID_ICC is Comp of the chip's
ephemeral PACE key, r_ICC the chip's 8-byte challenge, Comp of an EC point its
x-coordinate, A_PCD the optional auxiliary-data template (tag 67).  The chip verifies
with the terminal key it imported through `verify_chain_as_chip`.  ECDSA is plain r||s.
"""

from __future__ import annotations

import hashlib

from icao_pki.signature import SignatureError, pad_plain
from icao_pki.signer import KeyKind, Signer

from .algorithms import TaAlgorithm
from .certificate import verify_ta_signature
from .errors import CvcBuildError, CvcValidationError
from .validation import ImportedKey


def compress(ephemeral_public_key: bytes) -> bytes:
    """Comp(): the x-coordinate of an uncompressed EC point (04 || X || Y); for a DH public
    value (no 04 prefix of odd length) the SHA-1 of it, as TR-03110-3 A.2.2.3 defines."""
    if ephemeral_public_key[:1] == b"\x04" and len(ephemeral_public_key) % 2 == 1 and len(ephemeral_public_key) >= 3:
        size = (len(ephemeral_public_key) - 1) // 2
        return ephemeral_public_key[1 : 1 + size]
    if not ephemeral_public_key:
        raise ValueError("empty ephemeral public key")
    return hashlib.sha1(ephemeral_public_key).digest()


def ta_signature_input(id_icc: bytes, r_icc: bytes, ephemeral_pcd_public_key: bytes, auxiliary_data: bytes = b"") -> bytes:
    if len(r_icc) != 8:
        raise ValueError(f"r_ICC must be 8 bytes, got {len(r_icc)}")
    return id_icc + r_icc + compress(ephemeral_pcd_public_key) + auxiliary_data


def ta_sign(
    signer: Signer,
    algorithm: TaAlgorithm,
    *,
    id_icc: bytes,
    r_icc: bytes,
    ephemeral_pcd_public_key: bytes,
    auxiliary_data: bytes = b"",
) -> bytes:
    """Sign as a terminal does, with the algorithm of the terminal's certificate."""
    if algorithm.kind is not signer.kind:
        raise CvcBuildError(f"{algorithm.label} does not fit the terminal's {signer.kind.value.upper()} key")
    data = ta_signature_input(id_icc, r_icc, ephemeral_pcd_public_key, auxiliary_data)
    raw = signer.sign(data, algorithm.hash, algorithm.rsa_padding)
    if signer.kind is KeyKind.EC:
        raw = pad_plain(raw, signer.curve.order_bytes)  # type: ignore[union-attr]
    return raw


def ta_verify(
    terminal: ImportedKey,
    signature: bytes,
    *,
    id_icc: bytes,
    r_icc: bytes,
    ephemeral_pcd_public_key: bytes,
    auxiliary_data: bytes = b"",
) -> None:
    """Verify as a chip does, against the terminal key of a validated chain; raises
    `CvcValidationError` (reason ``ta_signature``)."""
    data = ta_signature_input(id_icc, r_icc, ephemeral_pcd_public_key, auxiliary_data)
    alg = terminal.algorithm
    try:
        verify_ta_signature(terminal.public_key, alg, signature, data)
    except SignatureError as exc:
        raise CvcValidationError("ta_signature", f"Terminal Authentication signature does not verify: {exc}", chr=terminal.chr) from None
