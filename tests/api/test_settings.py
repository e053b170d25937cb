from __future__ import annotations

import base64
import os
from datetime import timedelta
from pathlib import Path

import pytest

from lifecycle_api.settings import Settings, load_certificate_file, parse_unused_key_max_age
from lifecycle_api.signing import unused_keys
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


# --- ICAO_PKI_UNUSED_KEY_MAX_AGE -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "days"), [("30", 30), ("30d", 30), ("7d", 7), (" 1 ", 1), ("1d", 1), ("400", 400)])
def test_unused_key_max_age_from_environment_in_days(monkeypatch: pytest.MonkeyPatch, value: str, days: int) -> None:
    monkeypatch.setenv("ICAO_PKI_UNUSED_KEY_MAX_AGE", value)
    assert Settings.from_environment().unused_key_max_age == timedelta(days=days)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unused_key_max_age_defaults_to_30_days(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("ICAO_PKI_UNUSED_KEY_MAX_AGE", raising=False)
    else:
        monkeypatch.setenv("ICAO_PKI_UNUSED_KEY_MAX_AGE", value)
    assert Settings.from_environment().unused_key_max_age == timedelta(days=30) == unused_keys.DEFAULT_MAX_AGE
    assert Settings().unused_key_max_age == timedelta(days=30)


@pytest.mark.parametrize("value", ["12h", "1.5", "1.5d", "-3", "+3", "30 days", "30D", "d", "thirty", "3w", "1e3",
                                   "٣٠", "99999999999999"])
def test_unused_key_max_age_refuses_anything_but_whole_days(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ICAO_PKI_UNUSED_KEY_MAX_AGE", value)
    with pytest.raises(ValueError, match=r"^ICAO_PKI_UNUSED_KEY_MAX_AGE ") as refused:
        Settings.from_environment()
    assert repr(value) in str(refused.value)


@pytest.mark.parametrize("value", ["0", "0d", "00"])
def test_unused_key_max_age_refuses_less_than_a_day(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ICAO_PKI_UNUSED_KEY_MAX_AGE", value)
    with pytest.raises(ValueError, match=r"^ICAO_PKI_UNUSED_KEY_MAX_AGE must be at least 1 day, got "):
        Settings.from_environment()
    assert parse_unused_key_max_age("1") == timedelta(days=1)
    with pytest.raises(ValueError, match="unused_key_max_age must be at least 1 day"):
        Settings(unused_key_max_age=timedelta(hours=23))  # set in code: refused all the same
