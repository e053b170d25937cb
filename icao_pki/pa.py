"""Passive Authentication (ICAO Doc 9303-11 §5.1, 9303-12 PKI): is this chip's data what
the issuing state signed?

Checks, in order, each producing findings rather than stopping at the first problem (an
officer wants every reason at once):

1. the EF.SOD signature and its messageDigest (signed attributes as received);
2. the DS certificate: keyUsage, validity at `at`, **private-key usage period at the SOD's
   signingTime** (a DS key used after its 3-month window is a finding, not a detail);
3. the path DS → CSCA through any CSCA link certificates, against trust anchors (CSCA
   certificates, or a verified Master List);
4. revocation of the DS (and link certificates) on the CSCA's CRLs;
5. the data-group hashes, recomputed over each complete DG TLV;
6. the issuing state in DG1's MRZ against the CSCA's country (gmrtd#1: without it a
   rogue state could sign passports "for" another state).

`mode=TOLERANT` (foreign documents) reports field deviations — id-data eContentType, plain
r||s ECDSA, missing extensions, non-DER signed attributes — as warnings; `mode=STRICT`
(our own output) makes them errors.  `check_pa` returns a `PaResult`; `verify_pa` raises
`PassiveAuthenticationError` (carrying the result) unless it is valid.

Pure: no clock (the verification time `at` is a parameter), no network, no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from asn1crypto import pem, x509

from .cms import (
    CmsDecodeError,
    CmsError,
    CmsSignatureError,
    Finding,
    Severity,
    as_utc,
    certificate_extension,
    certificate_public_key,
    error,
    has_errors,
    info,
    is_self_signed,
    load_certificate,
    load_certificate_cached,
    same_name,
    subject_text,
    validity,
    verify_certificate_signature,
    verify_signers,
    warning,
)
from .crl import Crl, CrlDecodeError, CrlVerifyError, parse_crl
from .extensions import OID_DOCUMENT_TYPE_LIST, DocumentTypeListSyntax
from .masterlist import MasterList, MasterListReport, check_master_list
from .sod import DG_TAGS, SecurityObject, parse_sod


class PaMode(str, Enum):
    STRICT = "strict"
    TOLERANT = "tolerant"


class PassiveAuthenticationError(CmsError):
    """Passive Authentication failed; `.result` holds every finding."""

    def __init__(self, result: PaResult) -> None:
        errors = [f.message for f in result.findings if f.severity is Severity.ERROR]
        super().__init__("passive authentication failed: " + "; ".join(errors))
        self.result = result


#: Deviations of the *document* that tolerant mode accepts and strict mode refuses.
DOCUMENT_DEVIATIONS = frozenset(
    {
        "sod-content-type-id-data",
        "sod-unwrapped",
        "trailing-data",
        "cms-version",
        "cms-non-x509-certificate",
        "ecdsa-plain-signature",
        "signed-attrs-not-der",
        "signature-algorithm-without-hash",
        "no-signed-attributes",
        "lds-version-mismatch",
        "dg-hash-length",
        "dg-tag-mismatch",
        "weak-dg-hash",
        "weak-digest",
        "signing-time-missing",
        "ds-pkup-missing",
        "ds-key-usage-missing",
        "ds-country-differs",
        "ds-document-types-missing",
        "ds-document-types-malformed",
    }
)


# --- country codes -------------------------------------------------------------------------

#: ICAO 9303-3 MRZ codes (ISO 3166-1 alpha-3 plus ICAO's own) → ISO 3166-1 alpha-2 as used in
#: certificate countryName.  ICAO specials: "D" is Germany; GBD/GBN/GBO/GBP/GBS are British
#: nationals of various kinds (all issued under C=GB); RKS is Kosovo (XK); EUE the EU laissez-passer.
MRZ_TO_ALPHA2: dict[str, str] = {
    "D": "DE", "GBD": "GB", "GBN": "GB", "GBO": "GB", "GBP": "GB", "GBS": "GB", "RKS": "XK", "EUE": "EU",
    "UNO": "UN", "UNA": "UN", "UNK": "UN",
    "AFG": "AF", "ALB": "AL", "DZA": "DZ", "AND": "AD", "AGO": "AO", "ATG": "AG", "ARG": "AR", "ARM": "AM",
    "AUS": "AU", "AUT": "AT", "AZE": "AZ", "BHS": "BS", "BHR": "BH", "BGD": "BD", "BRB": "BB", "BLR": "BY",
    "BEL": "BE", "BLZ": "BZ", "BEN": "BJ", "BTN": "BT", "BOL": "BO", "BIH": "BA", "BWA": "BW", "BRA": "BR",
    "BRN": "BN", "BGR": "BG", "BFA": "BF", "BDI": "BI", "CPV": "CV", "KHM": "KH", "CMR": "CM", "CAN": "CA",
    "CAF": "CF", "TCD": "TD", "CHL": "CL", "CHN": "CN", "COL": "CO", "COM": "KM", "COG": "CG", "COD": "CD",
    "CRI": "CR", "CIV": "CI", "HRV": "HR", "CUB": "CU", "CYP": "CY", "CZE": "CZ", "DNK": "DK", "DJI": "DJ",
    "DMA": "DM", "DOM": "DO", "ECU": "EC", "EGY": "EG", "SLV": "SV", "GNQ": "GQ", "ERI": "ER", "EST": "EE",
    "SWZ": "SZ", "ETH": "ET", "FJI": "FJ", "FIN": "FI", "FRA": "FR", "GAB": "GA", "GMB": "GM", "GEO": "GE",
    "DEU": "DE", "GHA": "GH", "GRC": "GR", "GRD": "GD", "GTM": "GT", "GIN": "GN", "GNB": "GW", "GUY": "GY",
    "HTI": "HT", "HND": "HN", "HKG": "HK", "HUN": "HU", "ISL": "IS", "IND": "IN", "IDN": "ID", "IRN": "IR",
    "IRQ": "IQ", "IRL": "IE", "ISR": "IL", "ITA": "IT", "JAM": "JM", "JPN": "JP", "JOR": "JO", "KAZ": "KZ",
    "KEN": "KE", "KIR": "KI", "PRK": "KP", "KOR": "KR", "KWT": "KW", "KGZ": "KG", "LAO": "LA", "LVA": "LV",
    "LBN": "LB", "LSO": "LS", "LBR": "LR", "LBY": "LY", "LIE": "LI", "LTU": "LT", "LUX": "LU", "MAC": "MO",
    "MDG": "MG", "MWI": "MW", "MYS": "MY", "MDV": "MV", "MLI": "ML", "MLT": "MT", "MHL": "MH", "MRT": "MR",
    "MUS": "MU", "MEX": "MX", "FSM": "FM", "MDA": "MD", "MCO": "MC", "MNG": "MN", "MNE": "ME", "MAR": "MA",
    "MOZ": "MZ", "MMR": "MM", "NAM": "NA", "NRU": "NR", "NPL": "NP", "NLD": "NL", "NZL": "NZ", "NIC": "NI",
    "NER": "NE", "NGA": "NG", "MKD": "MK", "NOR": "NO", "OMN": "OM", "PAK": "PK", "PLW": "PW", "PSE": "PS",
    "PAN": "PA", "PNG": "PG", "PRY": "PY", "PER": "PE", "PHL": "PH", "POL": "PL", "PRT": "PT", "QAT": "QA",
    "ROU": "RO", "RUS": "RU", "RWA": "RW", "KNA": "KN", "LCA": "LC", "VCT": "VC", "WSM": "WS", "SMR": "SM",
    "STP": "ST", "SAU": "SA", "SEN": "SN", "SRB": "RS", "SYC": "SC", "SLE": "SL", "SGP": "SG", "SVK": "SK",
    "SVN": "SI", "SLB": "SB", "SOM": "SO", "ZAF": "ZA", "SSD": "SS", "ESP": "ES", "LKA": "LK", "SDN": "SD",
    "SUR": "SR", "SWE": "SE", "CHE": "CH", "SYR": "SY", "TWN": "TW", "TJK": "TJ", "TZA": "TZ", "THA": "TH",
    "TLS": "TL", "TGO": "TG", "TON": "TO", "TTO": "TT", "TUN": "TN", "TUR": "TR", "TKM": "TM", "TUV": "TV",
    "UGA": "UG", "UKR": "UA", "ARE": "AE", "GBR": "GB", "USA": "US", "URY": "UY", "UZB": "UZ", "VUT": "VU",
    "VAT": "VA", "VEN": "VE", "VNM": "VN", "YEM": "YE", "ZMB": "ZM", "ZWE": "ZW",
}  # fmt: skip


def mrz_country_to_alpha2(code: str) -> str | None:
    """'VNM' → 'VN', 'D<<' → 'DE'; None for a code we do not know."""
    return MRZ_TO_ALPHA2.get(code.replace("<", "").strip().upper())


def dg1_mrz(dg1: bytes) -> str:
    """The MRZ text of DG1 = 61 L 5F1F L MRZ (TD1 90, TD2 72 or TD3 88 characters)."""
    if len(dg1) < 4 or dg1[0] != 0x61:
        raise CmsDecodeError("DG1 must start with tag 0x61")
    i = 2 if dg1[1] < 0x80 else 2 + (dg1[1] & 0x7F)
    if dg1[i : i + 2] != b"\x5f\x1f":
        raise CmsDecodeError("DG1 does not hold an MRZ data element (5F1F)")
    i += 2
    if i >= len(dg1):
        raise CmsDecodeError("DG1 truncated")
    length = dg1[i]
    i += 1
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(dg1[i : i + count], "big")
        i += count
    mrz = dg1[i : i + length].decode("ascii", errors="replace")
    if len(mrz) not in (72, 88, 90):
        raise CmsDecodeError(f"MRZ of {len(mrz)} characters is neither TD1 (90), TD2 (72) nor TD3 (88)")
    return mrz


def dg1_issuing_state(dg1: bytes) -> str:
    """The issuing state (MRZ characters 3-5, fillers stripped); the same position in TD1
    (ID cards), TD2 and TD3 (passports)."""
    return dg1_mrz(dg1)[2:5].replace("<", "")


def dg1_document_code(dg1: bytes) -> str:
    """The MRZ document code (characters 1-2, fillers stripped), e.g. "P", "ID", "PN"."""
    return dg1_mrz(dg1)[0:2].replace("<", "")


def document_types_of(ds: x509.Certificate) -> list[str] | None:
    """The DS certificate's DocumentTypeList (2.23.136.1.1.6.2), or None when absent."""
    for ext in ds["tbs_certificate"]["extensions"]:
        if ext["extn_id"].dotted == OID_DOCUMENT_TYPE_LIST:
            value = DocumentTypeListSyntax.load(bytes(ext["extn_value"]))
            return [str(code) for code in value["doc_type_list"].native]
    return None


def document_type_allowed(code: str, allowed: Sequence[str]) -> bool:
    """"P" allows any passport code ("P", "PN", "PD" ...); two-letter entries must match exactly."""
    return code in allowed or any(len(a) == 1 and code.startswith(a) for a in allowed)


# --- result --------------------------------------------------------------------------------


@dataclass
class PaResult:
    mode: PaMode
    at: datetime
    data_groups_checked: list[int] = field(default_factory=list)
    data_groups_in_sod: list[int] = field(default_factory=list)
    ds_subject: str | None = None
    csca_subject: str | None = None
    path: list[str] = field(default_factory=list)
    signing_time: datetime | None = None
    issuing_state: str | None = None
    csca_country: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not has_errors(self.findings)

    def as_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "mode": self.mode.value,
            "at": self.at,
            "data_groups_checked": self.data_groups_checked,
            "data_groups_in_sod": self.data_groups_in_sod,
            "ds_subject": self.ds_subject,
            "csca_subject": self.csca_subject,
            "path": self.path,
            "signing_time": self.signing_time,
            "issuing_state": self.issuing_state,
            "csca_country": self.csca_country,
            "findings": [f.as_dict() for f in self.findings],
        }


Trust = Sequence[bytes] | MasterList | MasterListReport


# --- helpers -------------------------------------------------------------------------------


def _country(cert: x509.Certificate) -> str | None:
    value = cert.subject.native.get("country_name")
    return value.upper() if isinstance(value, str) else None


def _pkup(cert: x509.Certificate) -> tuple[datetime | None, datetime | None] | None:
    value = certificate_extension(cert, "private_key_usage_period")
    if value is None:
        return None
    not_before, not_after = value["not_before"].native, value["not_after"].native
    return (as_utc(not_before) if not_before else None), (as_utc(not_after) if not_after else None)


def _valid_at(cert: x509.Certificate, at: datetime) -> bool:
    not_before, not_after = validity(cert)
    return not_before <= at <= not_after


def _issuer_candidates(cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    aki = cert.authority_key_identifier
    matches = [c for c in pool if same_name(c.subject, cert.issuer) and c.dump() != cert.dump()]
    if aki is not None:
        matches.sort(key=lambda c: c.key_identifier != aki)
    return matches


def _trust_pool(trust: Trust, at: datetime, findings: list[Finding]) -> list[x509.Certificate]:
    if isinstance(trust, MasterList):
        trust = check_master_list(trust, at=at)
    if isinstance(trust, MasterListReport):
        if not trust.valid:
            findings.append(error("master-list-invalid", "the Master List given as trust does not verify"))
            return []
        findings += [f for f in trust.findings if f.code == "ml-signer-self-asserted"]
        ders: Sequence[bytes] = trust.trusted_certificates
    else:
        # DER or PEM bytes, or parsed certificates carrying `.der` (icao_pki.certificate.Certificate)
        ders = []
        for item in trust:
            data = getattr(item, "der", item)
            if isinstance(data, bytes | bytearray) and pem.detect(data):
                try:
                    ders += [der for kind, _, der in pem.unarmor(bytes(data), multiple=True) if kind == "CERTIFICATE"]
                except ValueError as exc:
                    findings.append(warning("trust-anchor-unusable", f"ignored a trust PEM block: {exc}"))
                continue
            ders.append(data)
    pool = []
    for der in ders:
        try:
            pool.append(load_certificate_cached(der))
        except CmsDecodeError as exc:
            findings.append(warning("trust-anchor-unusable", f"ignored a trust certificate: {exc}"))
    return pool


# --- the check -----------------------------------------------------------------------------


def check_pa(
    sod: bytes | SecurityObject,
    data_groups: Mapping[int, bytes],
    *,
    trust: Trust,
    at: datetime,
    crls: Sequence[bytes | Crl] = (),
    mode: PaMode = PaMode.TOLERANT,
    extra_certificates: Sequence[bytes] = (),
) -> PaResult:
    """Run Passive Authentication and report every finding.  Raises only for input that is
    not an EF.SOD at all (`SodDecodeError`); an invalid document gives an invalid result.

    `extra_certificates`: DS certificates obtained elsewhere (PKD) for SODs that omit theirs."""
    if at.tzinfo is None:
        raise ValueError("the verification time must be timezone-aware")
    at = at.astimezone(UTC)
    mode = PaMode(mode)
    tolerant = mode is PaMode.TOLERANT
    result = PaResult(mode=mode, at=at)
    findings: list[Finding] = []
    security_object = sod if isinstance(sod, SecurityObject) else parse_sod(sod)
    findings += security_object.findings
    result.data_groups_in_sod = security_object.data_groups

    # 1. SOD signature
    ds: x509.Certificate | None = None
    other_signers: list[tuple[x509.Certificate, datetime | None]] = []
    try:
        extras = [load_certificate(der) for der in extra_certificates]
        verifications = verify_signers(security_object.signed, extra_certificates=extras, tolerant=tolerant)
        for verification in verifications:
            findings += [f for f in verification.findings if f not in findings]
        ds = verifications[0].certificate
        result.signing_time = verifications[0].signing_time
        other_signers = [(v.certificate, v.signing_time) for v in verifications[1:]]
    except CmsSignatureError as exc:
        findings.append(error(f"sod-{exc.code}", f"EF.SOD: {exc}"))
    except CmsDecodeError as exc:
        findings.append(error("sod-malformed", f"EF.SOD: {exc}"))

    # 2. DS certificate
    if ds is not None:
        result.ds_subject = subject_text(ds)
        findings += _check_ds(ds, result.signing_time, at)

    # 3. path to a CSCA
    pool = _trust_pool(trust, at, findings)
    path: list[x509.Certificate] = []
    anchor: x509.Certificate | None = None
    if ds is not None:
        path, anchor, path_findings = _build_path(ds, pool, at, tolerant)
        findings += path_findings
        result.path = [subject_text(c) for c in [ds, *path]]
        if anchor is not None:
            result.csca_subject = subject_text(anchor)
            result.csca_country = _country(anchor)
            ds_country = _country(ds)
            if ds_country and result.csca_country and ds_country != result.csca_country:
                findings.append(
                    warning("ds-country-differs", f"DS country {ds_country} differs from the CSCA's {result.csca_country}")
                )

    # 4. revocation
    parsed_crls = _parse_crls(crls, findings)
    if ds is not None and path:
        findings += _check_revocation([ds, *path[:-1]], path, parsed_crls, at)

    # 2–4 again for further signers (9303-12 recommends one SignerInfo; each one present
    # must verify and chain to a trusted CSCA)
    for other, other_time in other_signers:
        prefix = f"additional signer {subject_text(other)}: "
        other_findings = _check_ds(other, other_time, at)
        other_path, other_anchor, path_findings = _build_path(other, pool, at, tolerant)
        other_findings += path_findings
        if other_anchor is not None and other_path:
            other_findings += _check_revocation([other, *other_path[:-1]], other_path, parsed_crls, at)
        findings += [Finding(f.severity, f.code, prefix + f.message, f.citation, subject=f.subject) for f in other_findings]

    # 5. data-group hashes
    findings += _check_data_groups(security_object, data_groups, result)

    # 6. issuing state
    dg1 = data_groups.get(1)
    if dg1 is None:
        findings.append(info("issuing-state-not-checked", "DG1 not supplied: MRZ issuing state not compared"))
    else:
        try:
            result.issuing_state = dg1_issuing_state(dg1)
        except CmsDecodeError as exc:
            findings.append(error("dg1-malformed", str(exc)))
        else:
            findings += _check_document_type(ds, dg1)
            alpha2 = mrz_country_to_alpha2(result.issuing_state)
            country = result.csca_country
            if alpha2 is None:
                findings.append(warning("issuing-state-unknown", f"MRZ issuing state {result.issuing_state!r} not in our table"))
            elif country is not None and alpha2 != country:
                findings.append(
                    error(
                        "issuing-state-mismatch",
                        f"MRZ issuing state {result.issuing_state} ({alpha2}) but the document chains to a CSCA of {country}",
                    )
                )

    if mode is PaMode.STRICT:
        findings = [
            Finding(Severity.ERROR, f.code, f.message, f.citation, subject=f.subject)
            if f.severity is Severity.WARNING and f.code in DOCUMENT_DEVIATIONS
            else f
            for f in findings
        ]
    result.findings = findings
    return result


def verify_pa(
    sod: bytes | SecurityObject,
    data_groups: Mapping[int, bytes],
    *,
    trust: Trust,
    at: datetime,
    crls: Sequence[bytes | Crl] = (),
    mode: PaMode = PaMode.TOLERANT,
    extra_certificates: Sequence[bytes] = (),
) -> PaResult:
    """`check_pa`, raising `PassiveAuthenticationError` unless the document passes."""
    result = check_pa(
        sod, data_groups, trust=trust, at=at, crls=crls, mode=mode, extra_certificates=extra_certificates
    )
    if not result.valid:
        raise PassiveAuthenticationError(result)
    return result


def _check_document_type(ds: x509.Certificate | None, dg1: bytes) -> list[Finding]:
    """9303-12: the DS certificate's DocumentTypeList names the document types it may sign."""
    if ds is None:
        return []
    code = dg1_document_code(dg1)
    try:
        allowed = document_types_of(ds)
    except (ValueError, TypeError) as exc:
        return [warning("ds-document-types-malformed", f"DocumentTypeList cannot be decoded: {exc}", subject_text(ds))]
    if allowed is None:
        return [warning("ds-document-types-missing", "DS certificate has no DocumentTypeList", subject_text(ds))]
    if not document_type_allowed(code, allowed):
        return [
            error(
                "document-type-not-allowed",
                f"MRZ document code {code!r} is not in the DS DocumentTypeList {sorted(allowed)}",
                subject_text(ds),
            )
        ]
    return []


def _check_ds(ds: x509.Certificate, signing_time: datetime | None, at: datetime) -> list[Finding]:
    findings: list[Finding] = []
    subject = subject_text(ds)
    if not _valid_at(ds, at):
        findings.append(
            error("ds-validity", f"DS certificate not valid at {at.isoformat()} ({ds.not_valid_before} → {ds.not_valid_after})", subject)
        )
    key_usage = certificate_extension(ds, "key_usage")
    if key_usage is None:
        findings.append(warning("ds-key-usage-missing", "DS certificate has no keyUsage", subject))
    elif "digital_signature" not in key_usage.native:
        findings.append(error("ds-key-usage", f"DS keyUsage {sorted(key_usage.native)} lacks digitalSignature", subject))
    pkup = _pkup(ds)
    if pkup is None:
        findings.append(warning("ds-pkup-missing", "DS certificate has no PrivateKeyUsagePeriod", subject))
    elif signing_time is None:
        findings.append(warning("signing-time-missing", "SOD has no signingTime: DS private-key usage period not checked"))
    else:
        not_before, not_after = pkup
        if (not_before and signing_time < not_before) or (not_after and signing_time > not_after):
            findings.append(
                error(
                    "ds-pkup",
                    f"SOD signed {signing_time.isoformat()} outside the DS private-key usage period "
                    f"{not_before.isoformat() if not_before else '…'} → {not_after.isoformat() if not_after else '…'}",
                    subject,
                )
            )
    if signing_time is not None and not _valid_at(ds, signing_time):
        findings.append(error("ds-validity-at-signing", f"SOD signed {signing_time.isoformat()} outside the DS validity", subject))
    return findings


def _build_path(
    ds: x509.Certificate, pool: Sequence[x509.Certificate], at: datetime, tolerant: bool
) -> tuple[list[x509.Certificate], x509.Certificate | None, list[Finding]]:
    """DS → (link certificates …) → self-signed CSCA, all from `pool` (the trusted CSCAs).

    Returns (issuers in order, the anchor or None, findings)."""
    findings: list[Finding] = []
    path: list[x509.Certificate] = []
    current = ds
    seen = {ds.dump()}
    for _ in range(8):
        candidates = [c for c in _issuer_candidates(current, pool) if c.dump() not in seen]
        if not candidates:
            what = "DS" if current is ds else "link certificate"
            findings.append(
                error("csca-not-found", f"no trusted CSCA {current.issuer.human_friendly} for the {what}", subject_text(current))
            )
            return path, None, findings
        issuer = None
        problems = []
        for candidate in candidates:
            try:
                findings += verify_certificate_signature(current, certificate_public_key(candidate), tolerant=tolerant)
                issuer = candidate
                break
            except (CmsSignatureError, CmsDecodeError) as exc:
                problems.append(f"{subject_text(candidate)}: {exc}")
        if issuer is None:
            findings.append(
                error("certificate-signature", f"{subject_text(current)} does not verify with any trusted CSCA ({problems[0]})")
            )
            return path, None, findings
        path.append(issuer)
        seen.add(issuer.dump())
        if not _valid_at(issuer, at):
            findings.append(
                error("csca-validity", f"CSCA certificate not valid at {at.isoformat()} ({issuer.not_valid_before} → {issuer.not_valid_after})", subject_text(issuer))
            )
        basic = certificate_extension(issuer, "basic_constraints")
        if basic is not None and not basic["ca"].native:
            findings.append(error("csca-not-ca", "issuer certificate is not a CA (basicConstraints cA FALSE)", subject_text(issuer)))
        if is_self_signed(issuer):
            return path, issuer, findings
        # a link certificate: continue to its issuer, if we hold it
        if not _issuer_candidates(issuer, [c for c in pool if c.dump() not in seen]):
            if tolerant:
                findings.append(
                    warning("link-as-anchor", "CSCA link certificate used as trust anchor: its issuer is not in the trust store", subject_text(issuer))
                )
            else:
                findings.append(error("link-as-anchor", "CSCA link certificate whose issuer is not trusted", subject_text(issuer)))
            return path, issuer, findings
        current = issuer
    findings.append(error("path-too-long", "certificate path longer than 8"))
    return path, None, findings


def _parse_crls(crls: Sequence[bytes | Crl], findings: list[Finding]) -> list[Crl]:
    """The CRLs through the one CRL reader (`icao_pki.crl`); unreadable ones become findings."""
    parsed: list[Crl] = []
    for item in crls:
        if isinstance(item, Crl):
            parsed.append(item)
            continue
        try:
            parsed.append(parse_crl(item))
        except CrlDecodeError as exc:
            findings.append(error("crl-malformed", f"unreadable CRL: {exc}"))
    return parsed


def _check_revocation(
    subjects: Sequence[x509.Certificate], issuers: Sequence[x509.Certificate], crls: Sequence[Crl], at: datetime
) -> list[Finding]:
    """Each certificate in `subjects` is checked on a CRL of `issuers[i]`."""
    findings: list[Finding] = []
    for cert, issuer in zip(subjects, issuers, strict=True):
        matching = [c for c in crls if same_name(c.issuer, issuer.subject)]
        if not matching:
            findings.append(
                warning("revocation-not-checked", f"no CRL from {subject_text(issuer)}", subject_text(cert))
            )
            continue
        for crl in matching:
            try:
                crl.verify_signed_by(certificate_public_key(issuer))
            except (CrlVerifyError, CmsSignatureError, CmsDecodeError) as exc:
                findings.append(error("crl-signature", f"CRL of {subject_text(issuer)} does not verify: {exc}"))
                continue
            next_update = crl.next_update
            if next_update is not None and at > as_utc(next_update):
                findings.append(warning("crl-stale", f"CRL of {subject_text(issuer)} expired {next_update.isoformat()}"))
            entry = crl.is_revoked(cert.serial_number)
            if entry is not None:
                findings.append(
                    error(
                        "revoked",
                        f"certificate serial {cert.serial_number:x} revoked {entry.revocation_date.isoformat()}"
                        + (f" ({entry.reason})" if entry.reason else ""),
                        subject_text(cert),
                    )
                )
    return findings


def _check_data_groups(sod: SecurityObject, data_groups: Mapping[int, bytes], result: PaResult) -> list[Finding]:
    findings: list[Finding] = []
    if not data_groups:
        findings.append(warning("no-data-groups", "no data groups supplied: only the SOD was checked"))
    for number in sorted(data_groups):
        dg = data_groups[number]
        expected = sod.dg_hashes.get(number)
        if expected is None:
            findings.append(error("dg-not-in-sod", f"DG{number} is not covered by the SOD"))
            continue
        if sod.hash_algorithm.digest(dg) != expected:
            findings.append(error("dg-hash-mismatch", f"DG{number} hash does not match the SOD"))
            continue
        if not dg or dg[0] != DG_TAGS.get(number):
            findings.append(warning("dg-tag-mismatch", f"DG{number} starts with tag 0x{dg[:1].hex() or '--'}"))
        result.data_groups_checked.append(number)
    return findings
