"""The limits of Decree 68/2024/NĐ-CP, written down once.

Every other part of icao-pki asks this module whether a certificate, a key-usage window
or a signature count is allowed; nothing else hard-codes a month or a count.  Refusals
are `PolicyViolation`s that name the article, e.g.
``Art. 23.2c: IS certificate validity of 1 month and 1 day exceeds 1 month``.

Interpretation (REQUIREMENTS.md §2):

* "N months" is calendar-month arithmetic in UTC with end-of-month clamping
  (31 Jan + 1 month = 28/29 Feb) — `add_months`.
* X.509: ``notAfter <= add_months(notBefore, N)``; the key window is the
  PrivateKeyUsagePeriod and is enforced again at signing time.
* CV certificates carry dates only, the expiration date is valid through the whole day:
  ``expiration <= add_months(effective, N) - 1 day`` — `cv_max_expiration`.
* A certificate never outlives its issuer.
* A limit is a maximum: a deployment may configure shorter limits, never longer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from dateutil.relativedelta import relativedelta


class DocumentType(str, Enum):
    PASSPORT = "passport"
    IDCARD = "idcard"

    @property
    def label(self) -> str:
        return {"passport": "passport", "idcard": "ID card"}[self.value]


class Role(str, Enum):
    """Certificate roles the decree limits (Art. 23, 26)."""

    CSCA = "csca"
    DS = "ds"
    CVCA = "cvca"
    DVCA = "dvca"
    IS = "is"

    @property
    def label(self) -> str:
        return self.value.upper()


class CertificateFormat(str, Enum):
    X509 = "x509"
    CV = "cv"


class PolicyError(Exception):
    """Root of the policy errors."""


class PolicyViolation(PolicyError):
    """A proposed certificate, key use or signature the decree forbids."""

    def __init__(self, article: str, message: str, *, limit: str | None = None) -> None:
        self.article = article
        self.limit = limit
        self.reason = message
        super().__init__(f"{article}: {message}")


class PolicyConfigurationError(PolicyError):
    """A deployment configuration that would loosen a limit of the decree."""

    def __init__(self, article: str, message: str) -> None:
        self.article = article
        super().__init__(f"{article}: {message}")


# --- time arithmetic ----------------------------------------------------------------------

_T = TypeVar("_T", date, datetime)


def add_months(when: _T, months: int) -> _T:
    """Calendar months with end-of-month clamping: 31 Jan + 1 month = 28/29 Feb."""
    return when + relativedelta(months=months)


def cv_max_expiration(effective: date, months: int) -> date:
    """Last allowed CV expiration date: a CV expiration date is valid through the whole day."""
    return add_months(effective, months) - timedelta(days=1)


def describe_months(months: int) -> str:
    years, rest = divmod(months, 12)
    if rest == 0 and years:
        return _plural(years, "year")
    if years:
        return f"{_plural(years, 'year')} and {_plural(rest, 'month')}"
    return _plural(rest, "month")


def describe_span(start: date | datetime, end: date | datetime) -> str:
    """Human length of [start, end] in calendar units: '1 month and 1 day', '15 years'."""
    delta = relativedelta(end, start)
    parts = [
        _plural(value, unit)
        for value, unit in (
            (delta.years, "year"),
            (delta.months, "month"),
            (delta.days, "day"),
            (delta.hours, "hour"),
            (delta.minutes, "minute"),
            (delta.seconds, "second"),
        )
        if value
    ]
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _plural(value: int, unit: str) -> str:
    return f"{value} {unit}" if value == 1 else f"{value} {unit}s"


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleLimit:
    """What the decree allows one role of one document type."""

    document_type: DocumentType
    role: Role
    certificate_validity_months: int
    key_usage_months: int
    max_signatures: int | None
    article: str  # e.g. "Art. 23.1b"

    @property
    def certificate_validity(self) -> str:
        return describe_months(self.certificate_validity_months)

    @property
    def key_usage(self) -> str:
        return describe_months(self.key_usage_months)

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type.value,
            "role": self.role.value,
            "certificate_validity_months": self.certificate_validity_months,
            "certificate_validity": self.certificate_validity,
            "key_usage_months": self.key_usage_months,
            "key_usage": self.key_usage,
            "max_signatures": self.max_signatures,
            "article": self.article,
        }


def _row(doc: DocumentType, role: Role, cert: int, key: int, sigs: int | None, art: str) -> RoleLimit:
    return RoleLimit(doc, role, cert, key, sigs, f"Art. {art}")


P, ID = DocumentType.PASSPORT, DocumentType.IDCARD

#: REQUIREMENTS.md §2 — Decree 68/2024 Art. 23 (passports) and Art. 26 (chip ID cards).
DECREE_LIMITS: Mapping[tuple[DocumentType, Role], RoleLimit] = {
    (r.document_type, r.role): r
    for r in (
        _row(P, Role.CSCA, 15 * 12, 5 * 12, None, "23.1a"),
        _row(P, Role.DS, 10 * 12, 3, 100_000, "23.1b"),
        _row(P, Role.CVCA, 3 * 12, 3 * 12, None, "23.2a"),
        _row(P, Role.DVCA, 3, 3, None, "23.2b"),
        _row(P, Role.IS, 1, 1, None, "23.2c"),
        _row(ID, Role.CSCA, 27 * 12, 5 * 12, None, "26.1a"),
        _row(ID, Role.DS, 22 * 12, 3, 100_000, "26.1b"),
        _row(ID, Role.CVCA, 3 * 12, 3 * 12, None, "26.2a"),
        _row(ID, Role.DVCA, 3, 3, None, "26.2b"),
        _row(ID, Role.IS, 1, 1, None, "26.2c"),
    )
}

#: General official-use certificates (Art. 9, 12, 14).
PROVIDER_ROOT_VALIDITY_YEARS = 20  # Art. 9.1
SUBSCRIBER_NEW_MAX_YEARS = 5  # Art. 9.2
SUBSCRIBER_RENEWAL_MAX_YEARS = 3  # Art. 9.3
RENEWAL_MIN_REMAINING_DAYS = 30  # Art. 12.1
RENEWAL_MAX_COUNT = 1  # Art. 12.1
CHANGE_MIN_REMAINING_DAYS = 30  # Art. 14.1


@dataclass(frozen=True)
class Window:
    """A validity or key-usage window.  For CV certificates `end` is the last valid day."""

    start: date | datetime
    end: date | datetime


@dataclass(frozen=True)
class Policy:
    """The limits in force: the decree's, or a deployment's shorter ones."""

    limits: Mapping[tuple[DocumentType, Role], RoleLimit] = field(default_factory=lambda: dict(DECREE_LIMITS))

    @classmethod
    def with_overrides(cls, overrides: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]) -> Policy:
        """Shorter limits from configuration; a longer one is refused with the article it breaks.

        `overrides` is a list of rows ``{document_type, role, certificate_validity_months?,
        key_usage_months?, max_signatures?}`` or a mapping ``"passport.ds" -> {...}``.
        """
        rows: list[Mapping[str, Any]]
        if isinstance(overrides, Mapping):
            rows = []
            for key, values in overrides.items():
                doc, _, role = key.partition(".")
                rows.append({"document_type": doc, "role": role, **values})
        else:
            rows = list(overrides)
        limits = dict(DECREE_LIMITS)
        for row in rows:
            try:
                doc = DocumentType(row["document_type"])
                role = Role(row["role"])
            except (KeyError, ValueError) as exc:
                raise PolicyConfigurationError(
                    "policy", f"unknown document type or role in override {dict(row)}: {exc}"
                ) from None
            base = DECREE_LIMITS[(doc, role)]
            changes: dict[str, Any] = {}
            for name, unit in (
                ("certificate_validity_months", "months"),
                ("key_usage_months", "months"),
                ("max_signatures", "signatures"),
            ):
                if name not in row or row[name] is None:
                    continue
                value = row[name]
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    raise PolicyConfigurationError(
                        base.article, f"{name} for {doc.value} {role.label} must be a positive integer, got {value!r}"
                    )
                ceiling = getattr(base, name)
                what = {
                    "certificate_validity_months": f"{role.label} certificate validity",
                    "key_usage_months": f"{role.label} private-key usage",
                    "max_signatures": f"{role.label} signature count",
                }[name]
                if ceiling is None:
                    raise PolicyConfigurationError(
                        base.article, f"the decree sets no {what} limit for {doc.label} {role.label}"
                    )
                if value > ceiling:
                    raise PolicyConfigurationError(
                        base.article,
                        f"configured {doc.label} {what} of {_amount(value, unit, doc)} exceeds "
                        f"the decree's {_amount(ceiling, unit, doc)}",
                    )
                changes[name] = value
            limits[(doc, role)] = replace(base, **changes)
        return cls(limits=limits)

    def limit(self, document_type: DocumentType, role: Role) -> RoleLimit:
        return self.limits[(DocumentType(document_type), Role(role))]

    def rows(self) -> list[RoleLimit]:
        return [self.limits[k] for k in DECREE_LIMITS]

    # --- checks -----------------------------------------------------------------------

    def check_certificate(
        self,
        role: Role,
        document_type: DocumentType,
        validity: Window,
        *,
        key_usage: Window | None = None,
        issuer_validity: Window | None = None,
        certificate_format: CertificateFormat = CertificateFormat.X509,
    ) -> None:
        """Refuse a proposed certificate that breaks the decree's limits for its role.

        For CV certificates the key is used for the whole validity, so the validity is
        held to both the certificate and the key-usage limit.
        """
        rl = self.limit(document_type, role)
        fmt = CertificateFormat(certificate_format)
        _check_order(rl, "certificate validity", validity)
        cert_limit = rl.certificate_validity_months
        if fmt is CertificateFormat.CV:
            cert_limit = min(cert_limit, rl.key_usage_months)
        self._check_window(rl, f"{rl.role.label} certificate validity", validity, cert_limit, fmt)
        if key_usage is not None:
            _check_order(rl, "private-key usage period", key_usage)
            self._check_window(rl, f"{rl.role.label} private-key usage period", key_usage, rl.key_usage_months, fmt)
            if key_usage.start < validity.start or key_usage.end > validity.end:
                raise PolicyViolation(
                    rl.article,
                    f"{rl.role.label} private-key usage period {_fmt(key_usage.start)} – {_fmt(key_usage.end)} "
                    f"lies outside the certificate validity {_fmt(validity.start)} – {_fmt(validity.end)}",
                    limit="key_within_certificate",
                )
        if issuer_validity is not None:
            check_within_issuer(validity, issuer_validity, rl.article)

    def _check_window(self, rl: RoleLimit, what: str, window: Window, months: int, fmt: CertificateFormat) -> None:
        if fmt is CertificateFormat.CV:
            start, end = _as_date(window.start), _as_date(window.end)
            allowed_end = cv_max_expiration(start, months)
            shown_span = describe_span(start, end + timedelta(days=1))
        else:
            start, end = window.start, window.end
            allowed_end = add_months(start, months)
            shown_span = describe_span(start, end)
        if end > allowed_end:
            raise PolicyViolation(
                rl.article,
                f"{what} of {shown_span} exceeds {describe_months(months)}",
                limit=what,
            )

    def check_key_usage_at(self, document_type: DocumentType, role: Role, key_usage: Window, when: datetime) -> None:
        """At signing time: the key may sign only inside its usage window."""
        rl = self.limit(document_type, role)
        if when < key_usage.start:
            raise PolicyViolation(
                rl.article,
                f"{rl.role.label} private key may not be used before {_fmt(key_usage.start)}",
                limit="key_usage_window",
            )
        if when > key_usage.end:
            raise PolicyViolation(
                rl.article,
                f"{rl.role.label} private-key usage period ended {_fmt(key_usage.end)}; signing at {_fmt(when)} is forbidden",
                limit="key_usage_window",
            )
        if when > add_months(key_usage.start, rl.key_usage_months):
            raise PolicyViolation(
                rl.article, f"{rl.role.label} private key used beyond {rl.key_usage}", limit="key_usage_window"
            )

    def check_signature_count(self, document_type: DocumentType, role: Role, count_after: int) -> None:
        """`count_after` is the key's total number of signatures if this one is made."""
        rl = self.limit(document_type, role)
        if rl.max_signatures is not None and count_after > rl.max_signatures:
            raise PolicyViolation(
                rl.article,
                f"{rl.role.label} key would sign {count_after:,} {document_type_plural(rl.document_type)}; "
                f"the limit is {rl.max_signatures:,}",
                limit="max_signatures",
            )


def document_type_plural(doc: DocumentType) -> str:
    return {"passport": "passports", "idcard": "ID cards"}[doc.value]


def check_within_issuer(validity: Window, issuer_validity: Window, article: str = "Art. 7") -> None:
    """A certificate never outlives (or predates) its issuer."""
    start, end = validity.start, validity.end
    istart, iend = issuer_validity.start, issuer_validity.end
    if isinstance(start, datetime) != isinstance(istart, datetime):
        start, end, istart, iend = _as_date(start), _as_date(end), _as_date(istart), _as_date(iend)
    if start < istart or end > iend:
        raise PolicyViolation(
            article,
            f"certificate validity {_fmt(validity.start)} – {_fmt(validity.end)} is not within the issuer's "
            f"{_fmt(issuer_validity.start)} – {_fmt(issuer_validity.end)}",
            limit="within_issuer",
        )


# --- general official-use certificates (Art. 9, 12, 14) ----------------------------------------


def check_subscriber_new(validity: Window) -> None:
    if validity.end > add_months(validity.start, SUBSCRIBER_NEW_MAX_YEARS * 12):
        raise PolicyViolation(
            "Art. 9.2",
            f"new subscriber certificate validity of {describe_span(validity.start, validity.end)} exceeds {SUBSCRIBER_NEW_MAX_YEARS} years",
        )


def check_provider_root(validity: Window) -> None:
    if validity.end > add_months(validity.start, PROVIDER_ROOT_VALIDITY_YEARS * 12):
        raise PolicyViolation(
            "Art. 9.1",
            f"provider certificate validity of {describe_span(validity.start, validity.end)} exceeds {PROVIDER_ROOT_VALIDITY_YEARS} years",
        )


def check_subscriber_renewal(current: Window, renewed_end: datetime, previous_renewals: int, when: datetime) -> None:
    """Art. 12.1 (once, ≥ 30 days left) and Art. 9.3 (extended by at most 3 years)."""
    if previous_renewals >= RENEWAL_MAX_COUNT:
        raise PolicyViolation("Art. 12.1", "a certificate may be renewed only once and this one already was")
    remaining = current.end - when
    if remaining < timedelta(days=RENEWAL_MIN_REMAINING_DAYS):
        raise PolicyViolation(
            "Art. 12.1",
            f"renewal needs at least {RENEWAL_MIN_REMAINING_DAYS} days of validity left; {_remaining(remaining)} remain",
        )
    if renewed_end > add_months(current.end, SUBSCRIBER_RENEWAL_MAX_YEARS * 12):
        raise PolicyViolation(
            "Art. 9.3",
            f"renewal extends the validity by {describe_span(current.end, renewed_end)}, more than {SUBSCRIBER_RENEWAL_MAX_YEARS} years",
        )


def check_subscriber_change(current: Window, new_validity: Window, when: datetime) -> None:
    """Art. 14.1: ≥ 30 days left, and the validity stays what it was."""
    remaining = current.end - when
    if remaining < timedelta(days=CHANGE_MIN_REMAINING_DAYS):
        raise PolicyViolation(
            "Art. 14.1",
            f"a change of information needs at least {CHANGE_MIN_REMAINING_DAYS} days of validity left; {_remaining(remaining)} remain",
        )
    if (new_validity.start, new_validity.end) != (current.start, current.end):
        raise PolicyViolation("Art. 14.1", "a change of information must not change the certificate's validity")


# --- helpers ----------------------------------------------------------------------------------


def _check_order(rl: RoleLimit, what: str, window: Window) -> None:
    if window.end < window.start:
        raise PolicyViolation(
            rl.article, f"{rl.role.label} {what} ends ({_fmt(window.end)}) before it starts ({_fmt(window.start)})"
        )


def _amount(value: int, unit: str, doc: DocumentType) -> str:
    return describe_months(value) if unit == "months" else f"{value:,} {document_type_plural(doc)}"


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _fmt(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _remaining(delta: timedelta) -> str:
    if delta <= timedelta(0):
        return "none"
    days = delta.days
    return f"{days} day{'s' if days != 1 else ''}" if days else "less than a day"


#: The default policy: exactly the decree.
DEFAULT_POLICY = Policy()

POLICY_FILE_ENV = "ICAO_PKI_POLICY_FILE"


def load_policy_file(path: str | os.PathLike[str]) -> Policy:
    """A deployment's shorter limits from a JSON file: ``{"passport.ds": {"key_usage_months": 2}, ...}``
    or a list of rows.  A longer limit, or a malformed file, is refused with the reason."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyConfigurationError("policy", f"cannot read policy file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise PolicyConfigurationError("policy", f"policy file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict | list):
        raise PolicyConfigurationError("policy", f"policy file {path} must hold an object or a list of rows")
    return Policy.with_overrides(data)


def policy_from_env() -> Policy:
    """The policy in force: the decree's, narrowed by ICAO_PKI_POLICY_FILE when it is set."""
    path = os.environ.get(POLICY_FILE_ENV)
    return load_policy_file(path) if path else DEFAULT_POLICY
