"""A plain description of a CV object: the `cvc show --json` shape, also usable by the API.

Why a fixed shape: operators compare it with `cvc-print` output and with what a foreign
SPOC sent; tests compare it field by field with OpenPACE.
"""

from __future__ import annotations

from typing import Any

from icao_pki.curves import Curve, UnknownCurveError, decode_point

from .certificate import AuthenticatedRequest, CvCertificate, CvObject, CvRequest
from .publickey import CvEcPublicKey, CvPublicKey


def describe_public_key(key: CvPublicKey, inherited: Curve | None = None) -> dict[str, Any]:
    """The key's description.  An EC key without domain parameters (DV, terminal, some
    links) inherits the CVCA's curve: `curve_inherited` is then true, and `curve` is the
    CVCA's curve when the caller supplies it (`inherited`) and the point lies on it, else
    null — never a guess."""
    info: dict[str, Any] = {"algorithm": key.algorithm.label}
    if isinstance(key, CvEcPublicKey):
        if key.curve is not None:
            info["curve"] = key.curve.name
            info["curve_inherited"] = False
        else:
            info["curve"] = inherited.name if inherited is not None and _on_curve(inherited, key.point) else None
            info["curve_inherited"] = True
    else:
        info["rsa_bits"] = key.bits
    info["has_domain_parameters"] = key.has_domain_parameters
    return info


def _on_curve(curve: Curve, point: bytes) -> bool:
    try:
        decode_point(curve, point)
    except UnknownCurveError:
        return False
    return True


def describe(obj: CvObject, *, inherited_curve: Curve | None = None) -> dict[str, Any]:
    """kind, profile_identifier, car, chr, outer_car, role, terminal_type, chat_hex, rights,
    effective_date, expiration_date (ISO), public_key {algorithm, curve | rsa_bits,
    curve_inherited (EC), has_domain_parameters}, extensions (OIDs).

    `inherited_curve`: the CVCA's curve, for EC keys that carry no domain parameters."""
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
        "public_key": describe_public_key(inner.public_key, inherited_curve),
        "extensions": [e.oid for e in inner.extensions or ()],
    }
