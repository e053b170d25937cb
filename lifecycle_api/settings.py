"""The service's configuration, one frozen object handed to `create_app`.

Nothing in lifecycle_api reads the environment except `Settings.from_environment` and
`database_url_from_environment`; the clock is injected next to the settings.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from icao_pki.policy import DEFAULT_POLICY, Policy

DEFAULT_DATABASE_URL = "sqlite:///var/icao-pki.db"

#: how long a DS / IS key generated in the HSM may wait for its certificate request before the
#: ``unused-key-destruction`` schedule retires it (`lifecycle_api.signing.unused_keys`)
DEFAULT_UNUSED_KEY_MAX_AGE = timedelta(days=30)
#: the shortest wait a deployment may configure: an Agency generates a key and then has its
#: request signed and countersigned, which may take a working day; less would destroy keys
#: whose request is merely on its way
MIN_UNUSED_KEY_MAX_AGE = timedelta(days=1)
UNUSED_KEY_MAX_AGE_ENV = "ICAO_PKI_UNUSED_KEY_MAX_AGE"
_DAYS = re.compile(r"([0-9]+)d?")


def database_url_from_environment() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


@dataclass(frozen=True)
class ScryptParameters:
    """Cost of hashing operator credentials (RFC 7914).  Tests lower `n`; deployments should not."""

    n: int = 2**14
    r: int = 8
    p: int = 1


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    policy: Policy = DEFAULT_POLICY
    #: Art. 19.2b: one working day; letter 293 (centralised signing): 12 hours
    revocation_deadline: str = "1 working day"
    #: ISO 3166 code of the holiday calendar deadlines count on
    holiday_country: str = "VN"
    #: extra non-working days a deployment declares (ISO dates), e.g. a bridge day
    extra_holidays: tuple[str, ...] = ()
    scrypt: ScryptParameters = field(default_factory=ScryptParameters)
    #: allowed difference between a document's signingTime and the service clock
    signing_time_tolerance: timedelta = timedelta(minutes=5)
    #: oldest signingTime accepted on a submitted document (replays are refused regardless)
    signed_document_max_age: timedelta | None = timedelta(days=1)
    #: notification delivery: attempts before a message is marked dead, first retry delay
    notification_max_attempts: int = 8
    notification_first_retry: timedelta = timedelta(seconds=30)
    #: the government CA (Ban Cơ yếu Chính phủ) roots and intermediates signers must chain to (DER)
    org_pki_roots: tuple[bytes, ...] = ()
    org_pki_intermediates: tuple[bytes, ...] = ()
    #: where the public, read-only publication is served (CRL distribution points name it)
    publication_base_url: str = "http://127.0.0.1:8000/v1/pub"
    #: CSCA CRLs are reissued at least this often (9303-12 §4.1.5 allows at most 90 days)
    crl_next_update: timedelta = timedelta(days=30)
    #: the Provider's policy (issue 6 §3): request types it acts on as soon as they are
    #: countersigned; every other type waits in its queue for POST /v1/requests/{id}/act
    auto_act_request_types: tuple[str, ...] = ()
    #: the Provider operator (by name) that acts automatically; None: its first active service account
    auto_act_operator: str | None = None
    #: a DS / IS key generated in the HSM and still uncertified this long after, with no request in
    #: progress naming it, is retired and then destroyed by the schedules (at least a day)
    unused_key_max_age: timedelta = DEFAULT_UNUSED_KEY_MAX_AGE

    def __post_init__(self) -> None:
        """Refuse, when the settings are made, a wait the unused-key schedule must not run with."""
        if self.unused_key_max_age < MIN_UNUSED_KEY_MAX_AGE:
            raise ValueError(f"unused_key_max_age must be at least {MIN_UNUSED_KEY_MAX_AGE.days} day, "
                             f"got {self.unused_key_max_age}")

    @classmethod
    def from_environment(cls) -> Settings:
        """DATABASE_URL; ICAO_PKI_ORG_PKI_ROOTS / _INTERMEDIATES (certificate files, PEM or DER,
        separated by the path separator); ICAO_PKI_REVOCATION_DEADLINE ("1 working day" or "12 hours");
        ICAO_PKI_EXTRA_HOLIDAYS (comma-separated ISO dates); ICAO_PKI_AUTO_ACT (comma-separated
        request types the Provider acts on automatically) and ICAO_PKI_AUTO_ACT_OPERATOR (the
        Provider operator that acts; default: its first service account); ICAO_PKI_UNUSED_KEY_MAX_AGE
        (whole days, "30" or "30d", at least 1: how long a generated key may wait for its
        certificate request; `parse_unused_key_max_age`)."""
        env = os.environ
        extra = tuple(d.strip() for d in env.get("ICAO_PKI_EXTRA_HOLIDAYS", "").split(",") if d.strip())
        return cls(
            database_url=database_url_from_environment(),
            revocation_deadline=env.get("ICAO_PKI_REVOCATION_DEADLINE", "1 working day"),
            extra_holidays=extra,
            org_pki_roots=_certificates_from(env.get("ICAO_PKI_ORG_PKI_ROOTS", "")),
            org_pki_intermediates=_certificates_from(env.get("ICAO_PKI_ORG_PKI_INTERMEDIATES", "")),
            publication_base_url=env.get("ICAO_PKI_PUBLICATION_URL", "http://127.0.0.1:8000/v1/pub"),
            auto_act_request_types=tuple(t.strip() for t in env.get("ICAO_PKI_AUTO_ACT", "").split(",") if t.strip()),
            auto_act_operator=env.get("ICAO_PKI_AUTO_ACT_OPERATOR") or None,
            unused_key_max_age=parse_unused_key_max_age(env.get(UNUSED_KEY_MAX_AGE_ENV)),
        )


def parse_unused_key_max_age(value: str | None) -> timedelta:
    """``ICAO_PKI_UNUSED_KEY_MAX_AGE``: a whole number of days, bare or with a ``d`` ("30", "30d");
    unset or empty: `DEFAULT_UNUSED_KEY_MAX_AGE`.

    Anything else (hours, fractions, signs, words) is refused rather than guessed at: a wrong unit
    here destroys keys an Agency still means to certify.  Below `MIN_UNUSED_KEY_MAX_AGE` is
    refused too.  The error names the variable, so `icao-pki serve` says which setting to fix."""
    if value is None or not value.strip():
        return DEFAULT_UNUSED_KEY_MAX_AGE
    match = _DAYS.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{UNUSED_KEY_MAX_AGE_ENV} must be a whole number of days such as 30 or 30d, got {value!r}")
    try:
        days = timedelta(days=int(match[1]))
    except OverflowError:
        raise ValueError(f"{UNUSED_KEY_MAX_AGE_ENV} is too large a number of days: {value!r}") from None
    if days < MIN_UNUSED_KEY_MAX_AGE:
        raise ValueError(f"{UNUSED_KEY_MAX_AGE_ENV} must be at least {MIN_UNUSED_KEY_MAX_AGE.days} day, "
                         f"got {value!r}")
    return days


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def load_certificate_file(path: Path) -> list[bytes]:
    """Every certificate in a PEM bundle, or the one DER certificate of a binary file."""
    data = path.read_bytes()
    blocks = _PEM.findall(data)
    if blocks:
        return [base64.b64decode(b"".join(block.split())) for block in blocks]
    return [data]


def _certificates_from(value: str) -> tuple[bytes, ...]:
    return tuple(der for part in value.split(os.pathsep) if part.strip() for der in load_certificate_file(Path(part)))
