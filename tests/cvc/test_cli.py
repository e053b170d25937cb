"""`icao-pki cvc show` and `icao-pki cvc verify`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvc.builders import build_cvca_certificate
from icao_pki.cli import app
from tests.cvc.conftest import Chain
from tests.support.softsigner import SoftwareSigner

runner = CliRunner()

SHOW_KEYS = {
    "kind", "profile_identifier", "car", "chr", "outer_car", "role", "terminal_type", "chat_hex", "rights",
    "effective_date", "expiration_date", "public_key", "extensions",
}


@pytest.fixture()
def files(tmp_path: Path, bp_chain: Chain) -> dict[str, Path]:
    paths = {"cvca": tmp_path / "cvca.cvcert", "dv": tmp_path / "dv.hex", "is": tmp_path / "is.cvcert"}
    paths["cvca"].write_bytes(bp_chain.cvca.encoded)
    paths["dv"].write_text(bp_chain.dv.encoded.hex() + "\n")
    paths["is"].write_bytes(bp_chain.terminal.encoded)
    return paths


def test_cli_show_json_has_exactly_the_documented_keys(files: dict[str, Path], bp_chain: Chain) -> None:
    result = runner.invoke(app, ["cvc", "show", str(files["dv"]), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert set(info) == SHOW_KEYS
    assert info["kind"] == "certificate" and info["role"] == "dv_domestic" and info["terminal_type"] == "is"
    assert info["car"] == bp_chain.cvca.chr and info["chr"] == bp_chain.dv.chr and info["chat_hex"] == "83"
    assert info["rights"] == ["read_dg3", "read_dg4"]
    assert info["effective_date"] == "2026-01-05" and info["expiration_date"] == "2026-04-04"
    assert info["public_key"] == {
        "algorithm": "id-TA-ECDSA-SHA-256",
        "curve": None,
        "curve_inherited": True,
        "has_domain_parameters": False,
    }
    cvca = json.loads(runner.invoke(app, ["cvc", "show", str(files["cvca"]), "--json"]).stdout)
    assert cvca["public_key"]["curve"] == "brainpoolP256r1" and cvca["role"] == "cvca"
    assert cvca["public_key"]["curve_inherited"] is False


def test_cli_show_infers_the_curve_from_trust(files: dict[str, Path], tmp_path: Path) -> None:
    for name in ("dv", "is"):
        result = runner.invoke(app, ["cvc", "show", str(files[name]), "--trust", str(files["cvca"]), "--json"])
        assert result.exit_code == 0, result.output
        key = json.loads(result.stdout)["public_key"]
        assert (key["curve"], key["curve_inherited"], key["has_domain_parameters"]) == ("brainpoolP256r1", True, False)
    # a CVCA on another curve: the point is not on it, so nothing is inferred
    other = SoftwareSigner.generate("secp256r1")
    p256 = build_cvca_certificate(
        other, chr="VNCVCAQ00001", effective_date=date(2026, 1, 5), expiration_date=date(2029, 1, 4), document_type="passport"
    )
    (tmp_path / "p256.cvcert").write_bytes(p256)
    result = runner.invoke(app, ["cvc", "show", str(files["dv"]), "--trust", str(tmp_path / "p256.cvcert"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["public_key"]["curve"] is None
    # --trust must be a CVCA
    bad = runner.invoke(app, ["cvc", "show", str(files["is"]), "--trust", str(files["dv"])])
    assert bad.exit_code == 2 and "must be a CVCA" in bad.output


def test_cli_show_authenticated_request(tmp_path: Path, bp_chain: Chain) -> None:
    from cvc.builders import build_authenticated_request, build_request

    req = build_authenticated_request(build_request(bp_chain.is_signer, chr="VNISP00077", car=bp_chain.dv.chr),
                                      bp_chain.is_signer.__class__.generate("rsa2048"), outer_car="VNISP00001")
    path = tmp_path / "req.cvreq"
    path.write_bytes(req)
    info = json.loads(runner.invoke(app, ["cvc", "show", str(path), "--json"]).stdout)
    assert set(info) == SHOW_KEYS
    assert (info["kind"], info["car"], info["chr"], info["outer_car"]) == ("authenticated_request", bp_chain.dv.chr, "VNISP00077", "VNISP00001")
    assert info["role"] is None and info["chat_hex"] is None and info["public_key"]["has_domain_parameters"] is True
    table = runner.invoke(app, ["cvc", "show", str(path)])
    assert table.exit_code == 0 and "VNISP00077" in table.stdout


def test_cli_verify_valid_invalid_and_bad_input(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["cvc", "verify", str(files["is"]), str(files["dv"]), "--trust", str(files["cvca"])]
    ok = runner.invoke(app, [*base, "--at", "2026-02-04", "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["valid"] is True and report["chain"] == ["VNDVP00001", "VNISP00001"]
    assert report["effective_authorization"] == {"chat_hex": "01", "rights": ["read_dg3"]}
    late = runner.invoke(app, [*base, "--at", "2026-02-05"])
    assert late.exit_code == 1 and "not valid on 2026-02-05" in late.output
    late_json = runner.invoke(app, [*base, "--at", "2026-02-05", "--json"])
    assert late_json.exit_code == 1 and json.loads(late_json.stdout)["findings"][0]["reason"] == "expired"
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x7f\x21\x83\x00\x00\x01")
    bad = runner.invoke(app, ["cvc", "verify", str(garbage), "--trust", str(files["cvca"])])
    assert bad.exit_code == 2 and "garbage.bin" in bad.output and "offset" in bad.output
    assert runner.invoke(app, [*base, "--at", "2026-13-01"]).exit_code == 2
    missing = runner.invoke(app, ["cvc", "show", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    broken_chain = runner.invoke(app, ["cvc", "verify", str(files["is"]), "--trust", str(files["cvca"]), "--at", "2026-01-06"])
    assert broken_chain.exit_code == 1 and "no certificate continues" in broken_chain.output


def test_cli_help() -> None:
    for cmd in (["cvc", "--help"], ["cvc", "show", "--help"], ["cvc", "verify", "--help"]):
        assert runner.invoke(app, cmd).exit_code == 0
