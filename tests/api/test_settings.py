from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from lifecycle_api.settings import Settings, load_certificate_file
from tests.api.orgpki_support import OrgPkiForTests


def _pem(der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def test_settings_trust_from_environment(org_pki: OrgPkiForTests, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "root.der").write_bytes(org_pki.pki.root.der)
    (tmp_path / "bundle.pem").write_bytes(_pem(org_pki.pki.sub_ca.der) + _pem(org_pki.pki.root.der))
    monkeypatch.setenv("ICAO_PKI_ORG_PKI_ROOTS", str(tmp_path / "root.der"))
    monkeypatch.setenv("ICAO_PKI_ORG_PKI_INTERMEDIATES", str(tmp_path / "bundle.pem"))
    monkeypatch.setenv("ICAO_PKI_REVOCATION_DEADLINE", "12 hours")
    monkeypatch.setenv("ICAO_PKI_EXTRA_HOLIDAYS", "2026-04-29, 2026-05-04")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/x")
    settings = Settings.from_environment()
    assert settings.org_pki_roots == (org_pki.pki.root.der,)
    assert settings.org_pki_intermediates == (org_pki.pki.sub_ca.der, org_pki.pki.root.der)
    assert settings.revocation_deadline == "12 hours"
    assert settings.extra_holidays == ("2026-04-29", "2026-05-04")
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_settings_defaults_to_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for key in [k for k in os.environ if k.startswith("ICAO_PKI_ORG_PKI")]:
        monkeypatch.delenv(key)
    settings = Settings.from_environment()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.org_pki_roots == ()


def test_settings_der_file_is_one_certificate(org_pki: OrgPkiForTests, tmp_path: Path) -> None:
    (tmp_path / "c.der").write_bytes(org_pki.pki.sub_ca.der)
    assert load_certificate_file(tmp_path / "c.der") == [org_pki.pki.sub_ca.der]
