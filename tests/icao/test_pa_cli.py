"""`icao-pki pa verify` and `icao-pki ml show|verify`: exit codes 0 / 1 / 2, JSON, DER and PEM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icao_pki.cli import app
from icao_pki.masterlist import build_master_list
from icao_pki.sod import build_sod
from tests.icao.test_cms_pki import T0, make_crl, pki, to_pem
from tests.icao.test_sod import DATA_GROUPS

runner = CliRunner()
AT = "2026-01-11T00:00:00Z"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    p = pki()
    paths = {
        "sod": tmp_path / "EF.SOD",
        "csca": tmp_path / "csca.der",
        "csca_pem": tmp_path / "csca.pem",
        "crl": tmp_path / "csca.crl",
        "revoking_crl": tmp_path / "revoking.crl",
        "ml": tmp_path / "vn.ml",
        "ml_pem": tmp_path / "vn.ml.pem",
        "garbage": tmp_path / "garbage.bin",
    }
    paths["sod"].write_bytes(build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0))
    paths["csca"].write_bytes(p.csca.der)
    paths["csca_pem"].write_bytes(to_pem(p.csca.der))
    paths["crl"].write_bytes(make_crl(p.csca))
    paths["revoking_crl"].write_bytes(to_pem(make_crl(p.csca, [p.ds.cert.serial_number]), "X509 CRL"))
    ml = build_master_list(
        [p.csca.der, p.foreign_csca.der], signer=p.mls.signer, signer_certificate=p.mls.der,
        signer_csca_certificate=p.csca.der, signing_time=T0,
    )  # fmt: skip
    paths["ml"].write_bytes(ml)
    paths["ml_pem"].write_bytes(to_pem(ml, "CMS"))
    paths["garbage"].write_bytes(b"\x01\x02garbage")
    for n, dg in DATA_GROUPS.items():
        paths[f"dg{n}"] = tmp_path / f"DG{n}.bin"
        paths[f"dg{n}"].write_bytes(dg)
    return paths


def _dgs(files: dict[str, Path]) -> list[str]:
    return [arg for n in DATA_GROUPS for arg in ("--dg", f"{n}={files[f'dg{n}']}")]


def test_pa_cli_valid_json(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        ["pa", "verify", "--sod", str(files["sod"]), *_dgs(files), "--csca", str(files["csca_pem"]),
         "--crl", str(files["crl"]), "--at", AT, "--strict", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["data_groups_checked"] == [1, 2, 14, 15]
    assert "Document Signer" in data["ds_subject"]
    assert "CSCA Viet Nam" in data["csca_subject"]
    assert data["findings"] == []


def test_pa_cli_trust_from_master_list(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["pa", "verify", "--sod", str(files["sod"]), *_dgs(files), "--ml", str(files["ml_pem"]), "--csca", str(files["csca"]), "--at", AT, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["csca_country"] == "VN"


def test_pa_cli_invalid_exit_1(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "bad_dg2.bin").write_bytes(DATA_GROUPS[2][:-1] + b"Z")
    args = ["pa", "verify", "--sod", str(files["sod"]), "--dg", f"1={files['dg1']}", "--dg", f"2={tmp_path / 'bad_dg2.bin'}",
            "--csca", str(files["csca"]), "--at", AT]  # fmt: skip
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert "dg-hash-mismatch" in [f["code"] for f in data["findings"]]
    # table output names the reason too
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "dg-hash-mismatch" in result.stdout
    # revoked DS
    result = runner.invoke(app, ["pa", "verify", "--sod", str(files["sod"]), "--csca", str(files["csca"]), "--crl", str(files["revoking_crl"]), "--at", AT, "--json"])
    assert result.exit_code == 1 and "revoked" in [f["code"] for f in json.loads(result.stdout)["findings"]]


@pytest.mark.parametrize(
    "args",
    [
        ["--sod", "{garbage}", "--csca", "{csca}"],
        ["--sod", "{sod}", "--csca", "{garbage}"],
        ["--sod", "{sod}"],
        ["--sod", "{sod}", "--csca", "{csca}", "--dg", "17={dg1}"],
        ["--sod", "{sod}", "--csca", "{csca}", "--dg", "1"],
        ["--sod", "{sod}", "--csca", "{csca}", "--at", "yesterday"],
        ["--sod", "{sod}", "--csca", "{csca}", "--at", "2026-01-01T00:00:00"],
        ["--sod", "/nonexistent/EF.SOD", "--csca", "{csca}"],
        ["--sod", "{sod}", "--ml", "{garbage}"],
    ],
)
def test_pa_cli_bad_input_exit_2(files: dict[str, Path], args: list[str]) -> None:
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    result = runner.invoke(app, ["pa", "verify", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error:") or "Usage" in result.output


def test_ml_cli_show_and_verify(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["ml", "show", str(files["ml"]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["entry_count"] == 2 and {e["country"] for e in data["entries"]} == {"VN", "DE"}
    result = runner.invoke(app, ["ml", "show", str(files["ml_pem"])])
    assert result.exit_code == 0 and "CSCA Viet Nam" in result.stdout
    result = runner.invoke(app, ["ml", "verify", str(files["ml"]), "--csca", str(files["csca"]), "--at", AT, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] is True
    result = runner.invoke(app, ["ml", "verify", str(files["ml"]), "--at", AT])
    assert result.exit_code == 0 and "valid" in result.stdout


def test_ml_cli_invalid_and_bad_input(files: dict[str, Path], tmp_path: Path) -> None:
    p = pki()
    ml = files["ml"].read_bytes()
    tampered = tmp_path / "tampered.ml"
    tampered.write_bytes(ml.replace(p.foreign_csca.der[-40:], bytes(40)))
    result = runner.invoke(app, ["ml", "verify", str(tampered), "--at", AT, "--json"])
    assert result.exit_code == 1
    assert "ml-signature" in [f["code"] for f in json.loads(result.stdout)["findings"]]
    result = runner.invoke(app, ["ml", "verify", str(files["ml"]), "--csca", str(files["garbage"])])
    assert result.exit_code == 2
    for command in ("show", "verify"):
        result = runner.invoke(app, ["ml", command, str(files["garbage"])])
        assert result.exit_code == 2 and result.stderr.startswith("error:")
