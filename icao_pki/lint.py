"""Lint X.509 certificates against ICAO 9303-12 Tables 5-6 and Decree 68/2024.

Why: the issuer must be strict (whatever we publish is checked by 190 states), while the
verifier must tolerate what others publish.  This module is the strict half.  Every
certificate the product issues passes `check_tbs` before it is signed (see
`icao_pki.certificate`), and `icao-pki x509 lint` runs the same checks on any file.

Each `Finding` carries a severity and a citation: the 9303-12 table row or section, the
RFC 5280 section, or the decree article that the rule comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asn1crypto import core, x509

from . import extensions as ext
from .certificate import (
    Certificate,
    CertificateDecodeError,
    Profile,
    document_type_code,
    parse_certificate,
)
from .findings import Finding, Severity
from .names import attributes
from .policy import DEFAULT_POLICY, DocumentType, Policy, PolicyViolation, Window
from .signature import PublicKeyError, RsaPublicKey, load_spki

T5 = "9303-12 Table 5"
T6 = "9303-12 Table 6"
RFC = "RFC 5280"

# requirement: "m" mandatory, "o" optional, "x" must not be present; criticality: True/False
_M, _O, _X = "m", "o", "x"
_EXTENSION_TABLE: dict[str, dict[Profile, tuple[str, bool | None]]] = {
    "authority_key_identifier": {
        Profile.CSCA: (_O, False), Profile.CSCA_LINK: (_M, False), Profile.DS: (_M, False),
        Profile.MLS: (_M, False), Profile.DLS: (_M, False),
    },
    "key_identifier": {
        Profile.CSCA: (_M, False), Profile.CSCA_LINK: (_M, False), Profile.DS: (_O, False),
        Profile.MLS: (_M, False), Profile.DLS: (_M, False),
    },
    "key_usage": {p: (_M, True) for p in Profile},
    "private_key_usage_period": {
        Profile.CSCA: (_M, False), Profile.CSCA_LINK: (_M, False), Profile.DS: (_M, False),
        Profile.MLS: (_O, False), Profile.DLS: (_O, False),
    },
    "subject_alt_name": {p: (_M, False) for p in Profile},
    "issuer_alt_name": {p: (_M, False) for p in Profile},
    "basic_constraints": {
        Profile.CSCA: (_M, True), Profile.CSCA_LINK: (_M, True), Profile.DS: (_X, None),
        Profile.MLS: (_X, None), Profile.DLS: (_X, None),
    },
    "crl_distribution_points": {
        Profile.CSCA: (_M, False), Profile.CSCA_LINK: (_M, False), Profile.DS: (_M, False),
        Profile.MLS: (_O, False), Profile.DLS: (_O, False),
    },
    "extended_key_usage": {
        Profile.CSCA: (_X, None), Profile.CSCA_LINK: (_X, None), Profile.DS: (_X, None),
        Profile.MLS: (_M, True), Profile.DLS: (_M, True),
    },
    "icao_document_type_list": {
        Profile.CSCA: (_X, None), Profile.CSCA_LINK: (_X, None), Profile.DS: (_M, False),
        Profile.MLS: (_X, None), Profile.DLS: (_X, None),
    },
    "icao_name_change": {
        Profile.CSCA: (_X, None), Profile.CSCA_LINK: (_O, False), Profile.DS: (_X, None),
        Profile.MLS: (_X, None), Profile.DLS: (_X, None),
    },
    "name_constraints": {p: (_X, None) for p in Profile},
    "policy_mappings": {p: (_X, None) for p in Profile},
    "policy_constraints": {p: (_X, None) for p in Profile},
    "inhibit_any_policy": {p: (_X, None) for p in Profile},
    "certificate_policies": {p: (_O, None) for p in Profile},
    "authority_information_access": {p: (_O, False) for p in Profile},
}  # fmt: skip

_EXPECTED_KEY_USAGE = {
    Profile.CSCA: {"key_cert_sign", "crl_sign"},
    Profile.CSCA_LINK: {"key_cert_sign", "crl_sign"},
    Profile.DS: {"digital_signature"},
    Profile.MLS: {"digital_signature"},
    Profile.DLS: {"digital_signature"},
}

_EXPECTED_EKU = {Profile.MLS: ext.OID_EKU_MASTER_LIST_SIGNER, Profile.DLS: ext.OID_EKU_DEVIATION_LIST_SIGNER}

_ALLOWED_SIGNATURE_ALGORITHMS = {
    "sha224_ecdsa", "sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa",
    "rsassa_pss", "sha224_rsa", "sha256_rsa", "sha384_rsa", "sha512_rsa",
}  # fmt: skip

_UTC_LIMIT = datetime(2050, 1, 1, tzinfo=UTC)


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, code: str, message: str, citation: str) -> None:
        self.findings.append(Finding(Severity.ERROR, code, message, citation))

    def warning(self, code: str, message: str, citation: str) -> None:
        self.findings.append(Finding(Severity.WARNING, code, message, citation))

    def info(self, code: str, message: str, citation: str) -> None:
        self.findings.append(Finding(Severity.INFO, code, message, citation))


class _AnySequence(core.SequenceOf):
    _child_spec = core.Any


def check_certificate(
    data: bytes | Certificate,
    role: Profile | str,
    document_type: DocumentType | str,
    *,
    policy: Policy = DEFAULT_POLICY,
    issuer: Certificate | None = None,
) -> list[Finding]:
    """Lint a whole certificate (DER, PEM or parsed) for `role` ∈ csca|csca-link|ds|mls|dls.

    Adds to `check_tbs` what only the signed certificate has: the outer signature
    algorithm, and — given the issuer — the signature itself."""
    out = _Collector()
    try:
        cert = data if isinstance(data, Certificate) else parse_certificate(data)
    except CertificateDecodeError as exc:
        out.error("decode", str(exc), f"{RFC} §4.1")
        return out.findings
    inner = cert.tbs["signature"].dump()
    outer = cert.asn1["signature_algorithm"].dump()
    if inner != outer:
        out.error("signature-algorithm-mismatch", "TBS signature algorithm differs from the outer signatureAlgorithm", f"{RFC} §4.1.1.2")
    if not _is_der(x509.Certificate, cert.der):
        out.error("not-der", "certificate is not DER-encoded", f"{T5} (DER), 9303-12 §4.1")
    issuer_validity = issuer.validity if issuer is not None else None
    out.findings.extend(check_tbs(cert.tbs, role, document_type, policy=policy, issuer_validity=issuer_validity))
    if issuer is not None:
        from .certificate import CertificateVerifyError

        try:
            cert.verify_issued_by(issuer)
        except CertificateVerifyError as exc:
            out.error("signature", str(exc), f"{RFC} §6.1.3")
    return out.findings


def _is_der(spec: type[core.Asn1Value], der: bytes) -> bool:
    try:
        return spec.load(der).dump(force=True) == der
    except (ValueError, TypeError):
        return False


def check_tbs(
    tbs: x509.TbsCertificate,
    role: Profile | str,
    document_type: DocumentType | str,
    *,
    policy: Policy = DEFAULT_POLICY,
    issuer_validity: Window | None = None,
) -> list[Finding]:
    """Every rule that applies to a TBSCertificate of the given profile."""
    profile = Profile(role)
    doc = DocumentType(document_type)
    out = _Collector()

    def guarded(step: Callable[[], Any], what: str) -> Any:
        # Malformed foreign input: report the part that cannot be read, keep checking the rest.
        try:
            return step()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            out.error("malformed", f"cannot decode the {what}: {exc}", f"{RFC} §4.1")
            return None

    guarded(lambda: _check_basics(tbs, out), "certificate body")
    guarded(lambda: _check_names(tbs, profile, out), "names")
    validity = guarded(lambda: _check_times(tbs, out), "validity")
    guarded(lambda: _check_key(tbs, out), "public key")
    pkup = guarded(lambda: _check_extensions(tbs, profile, doc, out), "extensions")
    if validity is not None:
        guarded(lambda: _check_policy(profile, doc, validity, pkup, issuer_validity, policy, out), "validity")
    return out.findings


def _check_basics(tbs: x509.TbsCertificate, out: _Collector) -> None:
    if tbs["version"].native != "v3":
        out.error("version", f"version is {tbs['version'].native}, must be v3", f"{T5} version")
    serial = tbs["serial_number"].native
    if serial <= 0:
        out.error("serial-positive", f"serial number {serial} is not positive", f"{T5} serialNumber; {RFC} §4.1.2.2")
    if len(tbs["serial_number"].contents) > 20:
        out.error("serial-length", "serial number longer than 20 octets", f"{T5} serialNumber; {RFC} §4.1.2.2")
    algorithm = tbs["signature"]["algorithm"].native
    if algorithm not in _ALLOWED_SIGNATURE_ALGORITHMS:
        out.error("signature-algorithm", f"signature algorithm {algorithm} is not allowed", f"{T5} signature; 9303-12 §4.1.6.1")
    signature = tbs["signature"]
    if algorithm.endswith("_ecdsa") and signature["parameters"].dump():
        out.error("ecdsa-parameters", "ecdsa-with-SHA* AlgorithmIdentifier must omit the parameters", "RFC 5758 §3.2")
    if algorithm == "rsassa_pss":
        params = signature["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        salt = params["salt_length"].native
        expected_salt = {"sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}.get(hash_name)
        if hash_name == "sha1" or mgf_hash != hash_name or salt != expected_salt:
            out.error(
                "rsassa-pss-parameters",
                f"RSASSA-PSS with {hash_name}, MGF1-{mgf_hash}, salt {salt}: use SHA-2, the same hash for MGF1 "
                "and a salt as long as the hash",
                "9303-12 §4.1.6.1; RFC 4055 §3.1",
            )
    for field in ("issuer_unique_id", "subject_unique_id"):
        if tbs[field].native is not None:
            out.error("unique-id", f"{field} must not be present", f"{T5} {field}")
    extensions = tbs["extensions"]
    if isinstance(extensions, core.Void) or len(extensions) == 0:
        out.error("no-extensions", "no extensions", T6)


def _check_names(tbs: x509.TbsCertificate, profile: Profile, out: _Collector) -> None:
    countries: dict[str, str | None] = {}
    for field in ("issuer", "subject"):
        attrs = attributes(tbs[field])
        if not attrs:
            out.error(f"{field}-empty", f"{field} name is empty", f"{T5} {field}")
        found = [(kind, value) for attr, kind, value in attrs if attr == "country_name"]
        if len(found) != 1:
            out.error(f"{field}-country", f"{field} must contain exactly one countryName, found {len(found)}", f"{T5} {field}")
            countries[field] = None
            continue
        kind, value = found[0]
        countries[field] = value
        if kind != "printable_string":
            out.error(f"{field}-country-type", f"{field} countryName is {kind}, must be PrintableString", f"{T5} {field}")
        if len(value) != 2 or not value.isalpha() or value != value.upper():
            out.error(f"{field}-country-value", f"{field} countryName {value!r} is not two upper-case letters", f"{T5} {field}")
        for attr, string_kind, _ in attrs:
            if attr != "country_name" and string_kind not in ("printable_string", "utf8_string"):
                out.error(
                    f"{field}-string-type",
                    f"{field} {attr} is {string_kind}; use PrintableString or UTF8String",
                    f"{T5} {field}; {RFC} §4.1.2.6",
                )
        if not any(attr == "common_name" for attr, _, _ in attrs):
            out.warning(f"{field}-common-name", f"{field} has no commonName", f"{T5} {field}")
    if countries.get("issuer") and countries.get("subject") and countries["issuer"] != countries["subject"]:
        out.error(
            "country-mismatch",
            f"issuer countryName {countries['issuer']!r} differs from subject countryName {countries['subject']!r}",
            f"{T5} subject",
        )
    if profile is Profile.CSCA and tbs["issuer"] != tbs["subject"]:
        out.error("csca-self-issued", "a self-signed CSCA must have issuer = subject", f"{T5} issuer")


def _check_times(tbs: x509.TbsCertificate, out: _Collector) -> Window | None:
    times = {}
    for field in ("not_before", "not_after"):
        value = tbs["validity"][field]
        when = value.native
        times[field] = when
        if value.name == "utc_time" and when >= _UTC_LIMIT:
            out.error("time-encoding", f"{field} {when:%Y} encoded as UTCTime", f"{RFC} §4.1.2.5; {T5} validity")
        if value.name == "general_time" and when < _UTC_LIMIT:
            out.error("time-encoding", f"{field} before 2050 must be UTCTime, not GeneralizedTime", f"{RFC} §4.1.2.5; {T5} validity")
    if times["not_after"] <= times["not_before"]:
        out.error("validity-order", "notAfter is not after notBefore", f"{T5} validity")
        return None
    return Window(times["not_before"], times["not_after"])


def _check_key(tbs: x509.TbsCertificate, out: _Collector) -> None:
    spki = tbs["subject_public_key_info"]
    algorithm = spki["algorithm"]["algorithm"].native
    try:
        key = load_spki(spki.dump())
    except PublicKeyError as exc:
        out.error("public-key", str(exc), "9303-12 §4.1.6")
        return
    if isinstance(key, RsaPublicKey):
        if key.bits < 2048:
            out.error("rsa-size", f"RSA key of {key.bits} bits; at least 2048 required", "9303-12 §4.1.6.1")
        return
    if algorithm != "ec":
        return
    params = spki["algorithm"]["parameters"]
    if params.name != "specified":
        out.error(
            "ec-explicit-parameters",
            f"EC parameters are {params.name} ({key.curve.name}); 9303-12 requires explicit domain parameters",
            "9303-12 §4.1.6.2",
        )
    else:
        spec = params.chosen
        if spec["cofactor"].native is None:
            out.error("ec-cofactor", "explicit EC parameters without the cofactor", "9303-12 §4.1.6.2")
        if spec["base"].native[:1] != b"\x04":
            out.error("ec-base-compressed", "base point is not uncompressed", "9303-12 §4.1.6.2")
    if spki["public_key"].native[:1] != b"\x04":
        out.error("ec-point-compressed", "public point is not uncompressed", "9303-12 §4.1.6.2")


def _check_extensions(tbs: x509.TbsCertificate, profile: Profile, doc: DocumentType, out: _Collector) -> Window | None:
    present: dict[str, Any] = {}
    for item in tbs["extensions"] or []:
        name = item["extn_id"].native
        oid = item["extn_id"].dotted
        if name in present:
            out.error("extension-duplicate", f"extension {name} appears twice", f"{RFC} §4.2")
        present[name] = item
        raw = _AnySequence.load(item.dump())
        if len(raw) == 3 and not item["critical"].native:
            out.error("default-encoded", f"extension {name} encodes critical FALSE (a DEFAULT value)", f"{T6}; X.690 §11.5 (DER)")
        if oid == ext.OID_DOCUMENT_TYPE_LIST_DRAFT:
            out.error(
                "document-type-list-draft-oid",
                f"DocumentTypeList under the draft OID {oid}; use 2.23.136.1.1.6.2",
                f"{T6} documentTypeList",
            )
            continue
        if name not in _EXTENSION_TABLE:
            if item["critical"].native:
                out.error("unknown-critical", f"unknown critical extension {oid}", f"{RFC} §4.2")
            else:
                out.info("unknown-extension", f"extension {oid} is not in the 9303-12 profile", T6)
    for name, rows in _EXTENSION_TABLE.items():
        requirement, critical = rows[profile]
        item = present.get(name)
        cite = f"{T6} {name}, {profile.label}"
        if item is None:
            if requirement == _M:
                out.error("extension-missing", f"{profile.label} certificate lacks {name}", cite)
            continue
        if requirement == _X:
            out.error("extension-forbidden", f"{name} must not be present in a {profile.label} certificate", cite)
            continue
        if critical is not None and bool(item["critical"].native) != critical:
            out.error(
                "extension-criticality",
                f"{name} must be {'critical' if critical else 'non-critical'}",
                cite,
            )

    def value(name: str) -> Any:
        item = present.get(name)
        if item is None:
            return None
        try:
            return item["extn_value"].parsed
        except (ValueError, TypeError) as exc:
            out.error("extension-decode", f"{name} cannot be decoded: {exc}", cite_for(name))
            return None

    def cite_for(name: str) -> str:
        return f"{T6} {name}, {profile.label}"

    ku = value("key_usage")
    if ku is not None and set(ku.native) != _EXPECTED_KEY_USAGE[profile]:
        out.error(
            "key-usage",
            f"keyUsage is {sorted(ku.native)}, must be exactly {sorted(_EXPECTED_KEY_USAGE[profile])}",
            cite_for("key_usage"),
        )
    bc = value("basic_constraints")
    if bc is not None and profile in (Profile.CSCA, Profile.CSCA_LINK):
        if not bc["ca"].native:
            out.error("basic-constraints-ca", "basicConstraints cA must be TRUE", cite_for("basic_constraints"))
        if bc["path_len_constraint"].native != 0:
            out.error(
                "basic-constraints-path-len",
                f"pathLenConstraint is {bc['path_len_constraint'].native}, must be 0",
                cite_for("basic_constraints"),
            )
    eku = value("extended_key_usage")
    if eku is not None and profile in _EXPECTED_EKU:
        oids = [item.dotted for item in eku]
        if oids != [_EXPECTED_EKU[profile]]:
            out.error("extended-key-usage", f"extKeyUsage is {oids}, must be [{_EXPECTED_EKU[profile]}]", cite_for("extended_key_usage"))
    ski = value("key_identifier")
    aki = value("authority_key_identifier")
    if aki is not None:
        if aki["key_identifier"].native is None:
            out.error("aki-key-identifier", "authorityKeyIdentifier lacks keyIdentifier", cite_for("authority_key_identifier"))
        elif profile is Profile.CSCA and ski is not None and aki["key_identifier"].native != ski.native:
            out.error("aki-self", "self-signed CSCA: AKI differs from its own SKI", cite_for("authority_key_identifier"))
    for name in ("subject_alt_name", "issuer_alt_name"):
        names = value(name)
        if names is None:
            continue
        from .names import directory_localities

        localities = directory_localities(names)
        if not localities:
            out.error("alt-name-locality", f"{name} has no directoryName with localityName (MRZ country code)", cite_for(name))
        for loc in localities:
            if len(loc) != 3 or loc != loc.upper():
                out.error("alt-name-locality", f"{name} localityName {loc!r} is not a three-letter MRZ code", cite_for(name))
    dtl = value("icao_document_type_list")
    if dtl is not None:
        if dtl["version"].native != "v0":
            out.error("document-type-list-version", "DocumentTypeList version must be v0", cite_for("icao_document_type_list"))
        codes = list(dtl["doc_type_list"].native)
        wanted = document_type_code(doc)
        if wanted not in codes:
            out.error(
                "document-type-list",
                f"DocumentTypeList {codes} does not list {wanted!r} for {doc.label}s",
                cite_for("icao_document_type_list"),
            )
    crldp = value("crl_distribution_points")
    if crldp is not None and not any(point["distribution_point"].name == "full_name" for point in crldp):
        out.error("crl-distribution-points", "cRLDistributionPoints without a full name", cite_for("crl_distribution_points"))
    pkup = value("private_key_usage_period")
    if pkup is None:
        return None
    start, end = pkup["not_before"].native, pkup["not_after"].native
    if start is None or end is None:
        out.error("pkup-bounds", "PrivateKeyUsagePeriod must give notBefore and notAfter", cite_for("private_key_usage_period"))
        return None
    return Window(start, end)


def _check_policy(
    profile: Profile,
    doc: DocumentType,
    validity: Window,
    pkup: Window | None,
    issuer_validity: Window | None,
    policy: Policy,
    out: _Collector,
) -> None:
    role = profile.decree_role
    try:
        if role is not None:
            policy.check_certificate(role, doc, validity, key_usage=pkup, issuer_validity=issuer_validity)
        elif issuer_validity is not None:
            from .policy import check_within_issuer

            check_within_issuer(validity, issuer_validity)
    except PolicyViolation as exc:
        out.error(f"decree-{exc.limit or 'limit'}".replace(" ", "-").lower(), exc.reason, exc.article)


def summarize(findings: list[Finding]) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for finding in findings:
        counts[finding.severity.value] += 1
    return counts


__all__ = ["Finding", "Severity", "check_certificate", "check_tbs", "summarize"]
