"""A plain description of a CV object: the `cvc show --json` shape, also usable by the API.

Why a fixed shape: operators compare it with `cvc-print` output and with what a foreign
SPOC sent; tests compare it field by field with OpenPACE.
"""

from __future__ import annotations

from typing import Any

from .certificate import AuthenticatedRequest, CvCertificate, CvObject, CvRequest
from .publickey import CvEcPublicKey, CvPublicKey


def describe_public_key(key: CvPublicKey) -> dict[str, Any]:
    info: dict[str, Any] = {"algorithm": key.algorithm.label}
    if isinstance(key, CvEcPublicKey):
        info["curve"] = key.curve.name if key.curve else None
    else:
        info["rsa_bits"] = key.bits
    info["has_domain_parameters"] = key.has_domain_parameters
    return info


def describe(obj: CvObject) -> dict[str, Any]:
    """kind, profile_identifier, car, chr, outer_car, role, terminal_type, chat_hex, rights,
    effective_date, expiration_date (ISO), public_key {algorithm, curve | rsa_bits,
    has_domain_parameters}, extensions (OIDs)."""
    inner: CvCertificate | CvRequest = obj.request if isinstance(obj, AuthenticatedRequest) else obj
    cert = inner if isinstance(inner, CvCertificate) else None
    return {
        "kind": obj.kind,
        "profile_identifier": inner.profile_identifier,
        "car": inner.car,
        "chr": inner.chr,
        "outer_car": obj.outer_car if isinstance(obj, AuthenticatedRequest) else None,
        "role": cert.role.value if cert else None,
        "terminal_type": cert.terminal_type.value if cert and cert.terminal_type else None,
        "chat_hex": cert.chat.hex if cert else None,
        "rights": cert.chat.rights if cert else [],
        "effective_date": cert.effective_date.isoformat() if cert else None,
        "expiration_date": cert.expiration_date.isoformat() if cert else None,
        "public_key": describe_public_key(inner.public_key),
        "extensions": [e.oid for e in inner.extensions or ()],
    }
