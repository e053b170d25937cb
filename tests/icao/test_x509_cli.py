"""`icao-pki x509 show|lint` and `icao-pki crl show`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icao_pki.cli import app
from icao_pki.crl import RevocationReason, RevokedEntry, build_crl
from tests.icao.test_certificate_support import T0, make_csca, make_ds
from tests.support.softsigner import SoftwareSigner

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, soft_bp256: SoftwareSigner) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("x509cli")
    csca = make_csca(soft_bp256)
    ds = make_ds(soft_bp256, csca, SoftwareSigner.generate("brainpoolP256r1"))
    crl = build_crl(soft_bp256, csca, this_update=T0, next_update=T0 + timedelta(days=30), crl_number=3,
                    revoked=[RevokedEntry(ds.serial_number, T0, RevocationReason.KEY_DEVICE_LOST)])  # fmt: skip
    paths = {
        "csca.der": csca.der,
        "csca.pem": csca.to_pem().encode(),
        "ds.der": ds.der,
        "crl.der": crl,
        "garbage.bin": b"\x00\x01garbage",
    }
    for name, data in paths.items():
        (base / name).write_bytes(data)
    return {name: base / name for name in paths}


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_x509_cli_show_table_and_json(files) -> None:
    result = _run("x509", "show", files["csca.pem"])
    assert result.exit_code == 0, result.output
    assert "CSCA Viet Nam" in result.output and "brainpoolP256r1" in result.output
    result = _run("x509", "show", files["ds.der"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["document_types"] == ["P"]
    assert data["public_key"]["curve"] == "brainpoolP256r1" and data["public_key"]["explicit_parameters"] is True
    assert data["role_hints"] == ["ds"]
    assert data["private_key_usage_period"]["not_before"] == "2026-11-21T08:00:00Z"


def test_x509_cli_lint_ok_and_fail(files) -> None:
    result = _run("x509", "lint", files["csca.der"], "--role", "csca", "--doc", "passport")
    assert result.exit_code == 0, result.output
    assert "OK: 0 error(s)" in result.output
    result = _run("x509", "lint", files["ds.der"], "--role", "ds", "--doc", "idcard", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert any(f["code"] == "document-type-list" and f["citation"].startswith("9303-12 Table 6") for f in data["findings"])
    result = _run("x509", "lint", files["ds.der"], "--role", "csca-link", "--doc", "passport")
    assert result.exit_code == 1 and "FAIL" in result.output


def test_x509_cli_bad_input(files, tmp_path: Path) -> None:
    result = _run("x509", "show", files["garbage.bin"])
    assert result.exit_code == 2 and "error:" in result.output and len(result.output.strip().splitlines()) == 1
    result = _run("x509", "show", tmp_path / "missing.der")
    assert result.exit_code == 2 and "no such file" in result.output
    result = _run("x509", "lint", files["csca.der"], "--role", "root", "--doc", "passport")
    assert result.exit_code == 2
    result = _run("crl", "show", files["csca.der"])
    assert result.exit_code == 2 and "not an X.509 CRL" in result.output


def test_x509_cli_crl_show(files) -> None:
    result = _run("crl", "show", files["crl.der"])
    assert result.exit_code == 0, result.output
    assert "key_compromise" in result.output and "1 revoked" in result.output
    data = json.loads(_run("crl", "show", files["crl.der"], "--json").output)
    assert data["crl_number"] == 3 and data["version"] == 2
    assert data["revoked"][0]["reason"] == "key_compromise"
    assert data["next_update"] == "2026-12-21T08:00:00Z"


def test_x509_cli_help() -> None:
    for args in (("x509", "--help"), ("x509", "lint", "--help"), ("crl", "show", "--help")):
        result = _run(*args)
        assert result.exit_code == 0 and "Usage" in result.output
