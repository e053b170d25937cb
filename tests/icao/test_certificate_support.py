"""Helpers shared by the X.509 tests (no tests here): a fixed clock-free time base and a
small CSCA → DS hierarchy built with software signers."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from icao_pki.certificate import (
    Certificate,
    build_csca_certificate,
    build_ds_certificate,
    parse_certificate,
)
from icao_pki.names import DistinguishedName
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role, Window, add_months
from icao_pki.signer import Signer

#: Every test issues "now" = this instant; nothing reads the clock.
T0 = datetime(2026, 11, 21, 8, 0, 0, tzinfo=UTC)
CRL_URL = "http://pkd.example.gov.vn/crl/csca-vn.crl"
CSCA_NAME = DistinguishedName("CSCA Viet Nam", organizational_unit="Passport")
DS_NAME = DistinguishedName("Document Signer 0001", organizational_unit="Passport")


def windows(document_type: DocumentType, role: Role, start: datetime = T0) -> tuple[Window, Window]:
    """The longest validity and private-key usage period the decree allows."""
    limit = DEFAULT_POLICY.limit(document_type, role)
    return (
        Window(start, add_months(start, limit.certificate_validity_months)),
        Window(start, add_months(start, limit.key_usage_months)),
    )


def make_csca(signer: Signer, document_type: DocumentType = DocumentType.PASSPORT, **kwargs: object) -> Certificate:
    validity, pkup = windows(document_type, Role.CSCA)
    args = {
        "validity": validity,
        "private_key_usage": pkup,
        "document_type": document_type,
        "crl_distribution_points": [CRL_URL],
    }
    args.update(kwargs)
    return parse_certificate(build_csca_certificate(signer, CSCA_NAME, **args))  # type: ignore[arg-type]


def make_ds(
    csca_signer: Signer,
    csca: Certificate,
    ds_key: Signer,
    document_type: DocumentType = DocumentType.PASSPORT,
    **kwargs: object,
) -> Certificate:
    validity, pkup = windows(document_type, Role.DS)
    args = {
        "validity": validity,
        "private_key_usage": pkup,
        "document_type": document_type,
        "crl_distribution_points": [CRL_URL],
    }
    args.update(kwargs)
    return parse_certificate(
        build_ds_certificate(csca_signer, csca, ds_key.public_key_info(), DS_NAME, **args)  # type: ignore[arg-type]
    )


def require_openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed (Debian package openssl; `make test` installs it)")
    return path


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_openssl(), *args], input=input, capture_output=True, timeout=60, check=False)


def write_pem(path: Path, cert: Certificate) -> Path:
    path.write_text(cert.to_pem())
    return path


@dataclass
class Chain:
    csca: Certificate
    ds: Certificate
