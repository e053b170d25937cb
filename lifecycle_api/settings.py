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

    @classmethod
    def from_environment(cls) -> Settings:
        """DATABASE_URL; ICAO_PKI_ORG_PKI_ROOTS / _INTERMEDIATES (certificate files, PEM or DER,
        separated by the path separator); ICAO_PKI_REVOCATION_DEADLINE ("1 working day" or "12 hours");
        ICAO_PKI_EXTRA_HOLIDAYS (comma-separated ISO dates); ICAO_PKI_AUTO_ACT (comma-separated
        request types the Provider acts on automatically) and ICAO_PKI_AUTO_ACT_OPERATOR (the
        Provider operator that acts; default: its first service account)."""
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
        )


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
