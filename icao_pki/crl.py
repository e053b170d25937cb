"""CSCA certificate revocation lists (ICAO 9303-12 §4.1.5 and Table 7/8; RFC 5280 §5).

Why: every receiving state checks our DS certificates against the CSCA's CRL, which
9303-12 requires at least every 90 days and on every revocation.  Revocations are
decided under Decree 68/2024 Art. 17, whose reasons are not RFC 5280's: `RevocationReason`
names the decree's cases and maps each to the RFC 5280 reason code a foreign verifier
understands.

`build_crl` takes the CSCA's `Signer` and its certificate; the caller (the service) owns
the monotonic cRLNumber and passes it in, together with the times (no clock here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from asn1crypto import core, pem, x509
from asn1crypto import crl as asn1_crl

from .certificate import (
    Certificate,
    X509Error,
    encode_time,
    issuer_from_certificate,
    parse_certificate,
    sign_tbs,
    signature_algorithm_for,
    verify_x509_signature,
)
from .lint import Finding, Severity
from .names import format_name
from .signature import PublicKey, PublicKeyError, SignatureError
from .signer import HashAlgorithm, RsaPadding, Signer

#: 9303-12 §4.1.5: a CSCA issues a CRL at least every 90 days.
MAX_CRL_INTERVAL = timedelta(days=90)
CRL_INTERVAL_CITATION = "9303-12 §4.1.5"

_UTC_LIMIT = datetime(2050, 1, 1, tzinfo=UTC)


class CrlError(X509Error):
    """Root of CRL errors (under the X.509 root)."""


class CrlDecodeError(CrlError, ValueError):
    """Bytes that are not a CRL we can read."""


class CrlBuildError(CrlError, ValueError):
    """A CRL we refuse to issue; `citation` names the rule."""

    def __init__(self, message: str, citation: str) -> None:
        self.citation = citation
        super().__init__(f"{citation}: {message}")


class CrlVerifyError(CrlError):
    """A CRL signature that does not verify, or a CRL from another issuer."""


class RevocationReason(str, Enum):
    """The revocation cases of Decree 68/2024 Art. 17, each with its RFC 5280 reason code."""

    EXPIRED = "expired"
    KEY_COMPROMISE = "key-compromise"
    KEY_DEVICE_DAMAGED = "key-device-damaged"
    KEY_DEVICE_LOST = "key-device-lost"
    OTHER_INSECURITY = "other-insecurity"
    LAW_ENFORCEMENT_REQUEST = "law-enforcement-request"
    MANAGING_ORGANISATION_REQUEST = "managing-organisation-request"
    POSITION_CHANGED = "position-changed"
    RETIRED_OR_DECEASED = "retired-or-deceased"
    ORGANISATION_DISSOLVED = "organisation-dissolved"
    SERVICE_STOPPED = "service-stopped"

    @property
    def article(self) -> str:
        return _REASONS[self][0]

    @property
    def description(self) -> str:
        return _REASONS[self][1]

    def rfc5280(self, revoked_is_ca: bool = False) -> str | None:
        """RFC 5280 CRLReason name, or None where RFC 5280 says to omit the code
        (unspecified).  A compromised CA key (CSCA link certificate) is cACompromise."""
        code = _REASONS[self][2]
        if code == "key_compromise" and revoked_is_ca:
            return "ca_compromise"
        return code


_REASONS: dict[RevocationReason, tuple[str, str, str | None]] = {
    RevocationReason.EXPIRED: ("Art. 17.1a", "certificate expired", "cessation_of_operation"),
    RevocationReason.KEY_COMPROMISE: ("Art. 17.1b", "private key disclosed or suspected disclosed", "key_compromise"),
    RevocationReason.KEY_DEVICE_DAMAGED: ("Art. 17.1b", "key storage device damaged", "cessation_of_operation"),
    RevocationReason.KEY_DEVICE_LOST: ("Art. 17.1b", "key storage device lost", "key_compromise"),
    RevocationReason.OTHER_INSECURITY: ("Art. 17.1b", "other loss of security of the key", "key_compromise"),
    RevocationReason.LAW_ENFORCEMENT_REQUEST: (
        "Art. 17.1c", "written request of a prosecuting body or the police", "privilege_withdrawn",
    ),
    RevocationReason.MANAGING_ORGANISATION_REQUEST: (
        "Art. 17.1d", "written request of the directly managing organisation", None,
    ),
    RevocationReason.POSITION_CHANGED: ("Art. 17.2b", "holder changed position", "affiliation_changed"),
    RevocationReason.RETIRED_OR_DECEASED: ("Art. 17.2c", "holder retired, resigned or died", "cessation_of_operation"),
    RevocationReason.ORGANISATION_DISSOLVED: (
        "Art. 17.3b", "organisation dissolved, split or merged", "cessation_of_operation",
    ),
    RevocationReason.SERVICE_STOPPED: ("Art. 17.4b", "device, service or software stopped", "cessation_of_operation"),
}  # fmt: skip


@dataclass(frozen=True)
class RevokedEntry:
    """One revocation to publish."""

    serial_number: int
    revocation_date: datetime
    reason: RevocationReason | None = None
    revoked_is_ca: bool = False
    invalidity_date: datetime | None = None


@dataclass(frozen=True)
class RevokedCertificateInfo:
    """One revocation as read from a CRL."""

    serial_number: int
    revocation_date: datetime
    reason: str | None
    invalidity_date: datetime | None


# --- building ----------------------------------------------------------------------------------


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None:
        raise CrlBuildError(f"{what} has no time zone", "RFC 5280 §5.1.2.4")
    when = when.astimezone(UTC)
    if when.microsecond:
        raise CrlBuildError(f"{what} has fractions of a second", "RFC 5280 §5.1.2.4")
    return when


def build_crl(
    csca_signer: Signer,
    csca: Certificate,
    *,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
    revoked: Sequence[RevokedEntry] = (),
    previous_crl_number: int | None = None,
    hash_algorithm: HashAlgorithm | None = None,
    rsa_padding: RsaPadding = RsaPadding.PSS,
) -> bytes:
    """A v2 CRL signed by the CSCA, DER.

    Refuses (`CrlBuildError`) a nextUpdate more than 90 days after thisUpdate
    (9303-12 §4.1.5), a cRLNumber that is not positive, longer than 20 octets or not
    above `previous_crl_number`, a signer that does not hold the CSCA key, and a CSCA not
    valid at thisUpdate or without cRLSign."""
    this_update = _utc(this_update, "thisUpdate")
    next_update = _utc(next_update, "nextUpdate")
    if next_update <= this_update:
        raise CrlBuildError("nextUpdate must be after thisUpdate", "RFC 5280 §5.1.2.5")
    if next_update - this_update > MAX_CRL_INTERVAL:
        raise CrlBuildError(
            f"nextUpdate {next_update:%Y-%m-%dT%H:%M:%SZ} is {(next_update - this_update).days} days after thisUpdate; "
            f"a CSCA CRL must be reissued within 90 days",
            CRL_INTERVAL_CITATION,
        )
    if not isinstance(crl_number, int) or crl_number <= 0 or len(core.Integer(crl_number).contents) > 20:
        raise CrlBuildError(f"cRLNumber must be a positive integer of at most 20 octets, got {crl_number!r}", "RFC 5280 §5.2.3")
    if previous_crl_number is not None and crl_number <= previous_crl_number:
        raise CrlBuildError(
            f"cRLNumber {crl_number} does not increase on the previous {previous_crl_number}", "RFC 5280 §5.2.3"
        )
    if "crl_sign" not in csca.key_usage:
        raise CrlBuildError(f"{csca.subject_str!r} has no cRLSign key usage", "9303-12 Table 6 keyUsage")
    if not (csca.not_before <= this_update <= csca.not_after):
        raise CrlBuildError("the CSCA certificate is not valid at thisUpdate", "RFC 5280 §6.3.3")
    try:
        issuer = issuer_from_certificate(csca_signer, csca)
    except X509Error as exc:
        raise CrlBuildError(str(exc), "RFC 5280 §5.1.2.3") from None

    seen: set[int] = set()
    entries = []
    for entry in revoked:
        if entry.serial_number in seen:
            raise CrlBuildError(f"serial {entry.serial_number:x} listed twice", "RFC 5280 §5.1.2.6")
        seen.add(entry.serial_number)
        when = _utc(entry.revocation_date, "revocationDate")
        entry_extensions = []
        code = entry.reason.rfc5280(entry.revoked_is_ca) if entry.reason is not None else None
        if code is not None:
            entry_extensions.append({"extn_id": "crl_reason", "extn_value": asn1_crl.CRLReason(code)})
        if entry.invalidity_date is not None:
            entry_extensions.append(
                {"extn_id": "invalidity_date", "extn_value": core.GeneralizedTime(_utc(entry.invalidity_date, "invalidityDate"))}
            )
        fields: dict[str, Any] = {"user_certificate": entry.serial_number, "revocation_date": encode_time(when)}
        if entry_extensions:
            fields["crl_entry_extensions"] = entry_extensions
        entries.append(asn1_crl.RevokedCertificate(fields))

    algorithm, hash_algorithm = signature_algorithm_for(csca_signer, hash_algorithm, rsa_padding)
    tbs_fields: dict[str, Any] = {
        "version": "v2",
        "signature": algorithm,
        "issuer": issuer.name,
        "this_update": encode_time(this_update),
        "next_update": encode_time(next_update),
        "crl_extensions": [
            {"extn_id": "authority_key_identifier", "extn_value": {"key_identifier": issuer.key_identifier}},
            {"extn_id": "crl_number", "extn_value": crl_number},
        ],
    }
    if entries:  # RFC 5280 §5.1.2.6: absent, never an empty SEQUENCE
        tbs_fields["revoked_certificates"] = entries
    tbs_der = asn1_crl.TbsCertList(tbs_fields).dump(force=True)
    tbs = asn1_crl.TbsCertList.load(tbs_der)
    findings = _check_tbs_crl(tbs)
    errors = [f for f in findings if f.is_error]
    if errors:
        raise CrlBuildError("; ".join(f.message for f in errors), errors[0].citation)

    signature = sign_tbs(csca_signer, tbs_der, hash_algorithm, rsa_padding)
    der = asn1_crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": signature}).dump()
    parsed = parse_crl(der)
    try:
        parsed.verify_signed_by(csca)
    except CrlVerifyError as exc:
        raise CrlBuildError(f"the signer produced a signature that does not verify: {exc}", "RFC 5280 §5.1.1.3") from None
    return der


# --- reading ----------------------------------------------------------------------------------


class Crl:
    """A CRL as received: original bytes plus decoded views."""

    def __init__(self, der: bytes, asn1: asn1_crl.CertificateList) -> None:
        self.der = der
        self.asn1 = asn1

    @property
    def tbs(self) -> asn1_crl.TbsCertList:
        return self.asn1["tbs_cert_list"]

    @property
    def version(self) -> int:
        version = self.tbs["version"].native
        return 1 if version is None else int(version[1:])

    @property
    def issuer(self) -> x509.Name:
        return self.tbs["issuer"]

    @property
    def issuer_str(self) -> str:
        return format_name(self.issuer)

    @property
    def this_update(self) -> datetime:
        return self.tbs["this_update"].native

    @property
    def next_update(self) -> datetime | None:
        return self.tbs["next_update"].native

    def _extension(self, name: str) -> Any:
        for item in self.tbs["crl_extensions"] or []:
            if item["extn_id"].native == name:
                return item["extn_value"].parsed
        return None

    @property
    def crl_number(self) -> int | None:
        value = self._extension("crl_number")
        return None if value is None else value.native

    @property
    def authority_key_identifier(self) -> bytes | None:
        value = self._extension("authority_key_identifier")
        return None if value is None else value["key_identifier"].native

    @property
    def entries(self) -> list[RevokedCertificateInfo]:
        result = []
        for item in self.tbs["revoked_certificates"] or []:
            reason = invalidity = None
            for extension in item["crl_entry_extensions"] or []:
                name = extension["extn_id"].native
                if name == "crl_reason":
                    reason = extension["extn_value"].parsed.native
                elif name == "invalidity_date":
                    invalidity = extension["extn_value"].parsed.native
            result.append(
                RevokedCertificateInfo(item["user_certificate"].native, item["revocation_date"].native, reason, invalidity)
            )
        return result

    def is_revoked(self, serial_number: int) -> RevokedCertificateInfo | None:
        for entry in self.entries:
            if entry.serial_number == serial_number:
                return entry
        return None

    @property
    def signature_algorithm_name(self) -> str:
        algorithm = self.asn1["signature_algorithm"]
        try:
            return f"{algorithm.hash_algo}-{algorithm.signature_algo}"
        except (ValueError, KeyError):
            return algorithm["algorithm"].dotted

    def verify_signed_by(self, issuer: Certificate | PublicKey) -> None:
        """Verify over the original TBSCertList bytes; raises `CrlVerifyError`.  Tolerant of
        ECDSA signatures in plain r||s form (seen in the wild)."""
        if isinstance(issuer, Certificate):
            if issuer.subject != self.issuer:
                raise CrlVerifyError(f"CRL issuer {self.issuer_str!r} is not {issuer.subject_str!r}")
            try:
                key = issuer.public_key
            except PublicKeyError as exc:
                raise CrlVerifyError(f"issuer public key: {exc}") from None
        else:
            key = issuer
        try:
            verify_x509_signature(key, self.asn1["signature_algorithm"], self.asn1["signature"].native, self.tbs.dump())
        except SignatureError as exc:
            raise CrlVerifyError(f"CRL signature does not verify: {exc}") from None

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "issuer": self.issuer_str,
            "this_update": self.this_update,
            "next_update": self.next_update,
            "crl_number": self.crl_number,
            "authority_key_identifier": self.authority_key_identifier,
            "signature_algorithm": self.signature_algorithm_name,
            "revoked": [
                {
                    "serial_number": f"{e.serial_number:x}",
                    "revocation_date": e.revocation_date,
                    "reason": e.reason,
                    "invalidity_date": e.invalidity_date,
                }
                for e in self.entries
            ],
        }


def parse_crl(data: bytes) -> Crl:
    """DER or PEM ("X509 CRL") to a `Crl`; raises `CrlDecodeError`."""
    data = bytes(data)
    if pem.detect(data):
        try:
            blocks = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind in ("X509 CRL", "CRL")]
        except ValueError as exc:
            raise CrlDecodeError(f"malformed PEM: {exc}") from None
        if not blocks:
            raise CrlDecodeError("no X509 CRL PEM block found")
        data = blocks[0]
    try:
        asn1 = asn1_crl.CertificateList.load(data, strict=True)
        tbs = asn1["tbs_cert_list"]
        _ = (tbs["issuer"].native, tbs["this_update"].native, tbs["next_update"].native)
        _ = [item.native for item in tbs["revoked_certificates"] or []]
        _ = asn1["signature_algorithm"]["algorithm"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CrlDecodeError(f"not an X.509 CRL: {exc}") from None
    return Crl(data, asn1)


def verify_crl(crl: Crl | bytes, csca: Certificate | bytes) -> Crl:
    """Parse if needed and verify the CRL's signature with the CSCA; returns the CRL."""
    crl = crl if isinstance(crl, Crl) else parse_crl(crl)
    csca = csca if isinstance(csca, Certificate) else parse_certificate(csca)
    crl.verify_signed_by(csca)
    return crl


# --- lint ---------------------------------------------------------------------------------------


def check_crl(data: bytes | Crl, *, issuer: Certificate | None = None) -> list[Finding]:
    """Lint a CRL against 9303-12 / RFC 5280 (strict: what we issue must pass)."""
    try:
        crl = data if isinstance(data, Crl) else parse_crl(data)
    except CrlDecodeError as exc:
        return [Finding(Severity.ERROR, "decode", str(exc), "RFC 5280 §5.1")]
    findings = _check_tbs_crl(crl.tbs)
    if crl.tbs["signature"].dump() != crl.asn1["signature_algorithm"].dump():
        findings.append(Finding(Severity.ERROR, "signature-algorithm-mismatch", "TBS and outer signature algorithms differ", "RFC 5280 §5.1.2.2"))
    if issuer is not None:
        try:
            crl.verify_signed_by(issuer)
        except CrlVerifyError as exc:
            findings.append(Finding(Severity.ERROR, "signature", str(exc), "RFC 5280 §6.3.3"))
        ski = issuer.subject_key_identifier
        if ski is not None and crl.authority_key_identifier not in (None, ski):
            findings.append(Finding(Severity.ERROR, "aki", "CRL AKI differs from the CSCA's SKI", "9303-12 Table 8"))
    return findings


def _check_tbs_crl(tbs: asn1_crl.TbsCertList) -> list[Finding]:
    findings: list[Finding] = []

    def error(code: str, message: str, citation: str) -> None:
        findings.append(Finding(Severity.ERROR, code, message, citation))

    try:
        if tbs["version"].native != "v2":
            error("version", "CRL version must be v2", "9303-12 Table 7 version")
        for field in ("this_update", "next_update"):
            value = tbs[field]
            if value.native is None:
                error("next-update", "nextUpdate is mandatory", "9303-12 Table 7 nextUpdate")
                continue
            if value.name == "utc_time" and value.native >= _UTC_LIMIT:
                error("time-encoding", f"{field} from 2050 encoded as UTCTime", "RFC 5280 §5.1.2.4")
            if value.name == "general_time" and value.native < _UTC_LIMIT:
                error("time-encoding", f"{field} before 2050 must be UTCTime", "RFC 5280 §5.1.2.4")
        this_update, next_update = tbs["this_update"].native, tbs["next_update"].native
        if next_update is not None and next_update - this_update > MAX_CRL_INTERVAL:
            error("crl-interval", f"nextUpdate is {(next_update - this_update).days} days after thisUpdate (max 90)", CRL_INTERVAL_CITATION)
        revoked = tbs["revoked_certificates"]
        if revoked.native is not None and len(revoked) == 0:
            error("revoked-empty", "revokedCertificates present but empty; omit it", "RFC 5280 §5.1.2.6")
        names = [item["extn_id"].native for item in tbs["crl_extensions"] or []]
        if "authority_key_identifier" not in names:
            error("aki", "authorityKeyIdentifier missing", "9303-12 Table 8 authorityKeyIdentifier")
        if "crl_number" not in names:
            error("crl-number", "cRLNumber missing", "9303-12 Table 8 cRLNumber")
        for item in tbs["crl_extensions"] or []:
            if item["critical"].native and item["extn_id"].native in ("authority_key_identifier", "crl_number"):
                error("criticality", f"{item['extn_id'].native} must be non-critical", "RFC 5280 §5.2")
        for item in revoked or []:
            when = item["revocation_date"]
            if (when.name == "utc_time") != (when.native < _UTC_LIMIT):
                error("time-encoding", "revocationDate encoded with the wrong time type", "RFC 5280 §5.1.2.6")
            for extension in item["crl_entry_extensions"] or []:
                if extension["extn_id"].native == "crl_reason" and extension["extn_value"].parsed.native == "unspecified":
                    findings.append(
                        Finding(Severity.WARNING, "reason-unspecified", "reasonCode unspecified should be omitted", "RFC 5280 §5.3.1")
                    )
    except (ValueError, TypeError, KeyError) as exc:
        error("malformed", f"cannot decode the CRL body: {exc}", "RFC 5280 §5.1")
    return findings


__all__ = [
    "CRL_INTERVAL_CITATION",
    "MAX_CRL_INTERVAL",
    "Crl",
    "CrlBuildError",
    "CrlDecodeError",
    "CrlError",
    "CrlVerifyError",
    "RevocationReason",
    "RevokedCertificateInfo",
    "RevokedEntry",
    "build_crl",
    "check_crl",
    "parse_crl",
    "verify_crl",
]
