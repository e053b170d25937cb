"""Object identifiers of BSI TR-03110 and their DER content encoding.

Why not asn1crypto here: a CV certificate carries bare OID content octets inside tag 06
and nothing else from ASN.1; a twenty-line codec keeps the parser fast and its errors ours.
"""

from __future__ import annotations

from functools import lru_cache

from .errors import CvcEncodeError

BSI_DE = "0.4.0.127.0.7"
ID_TA = f"{BSI_DE}.2.2.2"
ID_ROLES = f"{BSI_DE}.3.1.2"
ID_IS = f"{ID_ROLES}.1"
ID_AT = f"{ID_ROLES}.2"
ID_ST = f"{ID_ROLES}.3"
ID_EXTENSIONS = f"{BSI_DE}.3.1.3"
ID_DESCRIPTION = f"{ID_EXTENSIONS}.1"
ID_SECTOR = f"{ID_EXTENSIONS}.2"
ID_PS_SECTOR = f"{ID_EXTENSIONS}.3"


def encode_oid(dotted: str) -> bytes:
    """Content octets (no tag/length) of an OBJECT IDENTIFIER."""
    try:
        arcs = [int(part) for part in dotted.split(".")]
    except ValueError:
        raise CvcEncodeError(f"malformed OID {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or any(a < 0 for a in arcs):
        raise CvcEncodeError(f"malformed OID {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


@lru_cache(maxsize=512)
def decode_oid(content: bytes) -> str:
    """Dotted form of OID content octets; ValueError on a malformed encoding.

    Cached: the same handful of OIDs appears in every certificate."""
    if not content or content[-1] & 0x80:
        raise ValueError("OID is empty or ends inside a sub-identifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in content:
        if fresh and octet == 0x80:
            raise ValueError("OID sub-identifier has a non-minimal leading 0x80")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])
