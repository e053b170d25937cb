"""Published third-party CV certificates (Governikus AusweisApp test PKI, see tests/vectors/cvc/SOURCES.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cvc.certificate import CvCertificate, encode_certificate, parse_certificate, read_cv_bytes
from cvc.chat import ChatRole
from cvc.errors import CvcValidationError
from cvc.validation import ChipState, check_chain_at, trust_point, verify_chain_as_chip, verify_chain_at
from icao_pki.cli import app

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "cvc"


def load(name: str) -> CvCertificate:
    return parse_certificate(read_cv_bytes((VECTORS / f"{name}.hex").read_bytes()))


ALL = sorted(p.stem for p in VECTORS.glob("*.hex"))


def test_vectors_present_and_documented() -> None:
    assert len(ALL) == 14
    sources = (VECTORS / "SOURCES.md").read_text()
    for name in ALL:
        assert f"{name}.hex" in sources


@pytest.mark.parametrize("name", ALL)
def test_vector_parses_and_reencodes_identically(name: str) -> None:
    cert = load(name)
    assert encode_certificate(cert) == cert.encoded
    assert cert.public_key.algorithm.label == "id-TA-ECDSA-SHA-256"


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("cvca-") and "_" not in n])
def test_vector_self_signed_cvca_verifies(name: str) -> None:
    cert = load(name)
    assert cert.is_self_signed and cert.role is ChatRole.CVCA
    point = trust_point(cert)  # verifies the self-signature
    assert point.curve is not None and point.curve.name == "brainpoolP256r1"


def test_vector_signatures_fail_when_body_changes() -> None:
    cert = load("cvca-DECVCAeID00102")
    tampered = bytearray(cert.encoded)
    tampered[cert.encoded.index(b"\x5f\x25\x06") + 4] ^= 0x01  # effective year 2010 -> 2011
    with pytest.raises(CvcValidationError) as info:
        trust_point(parse_certificate(bytes(tampered)))
    assert info.value.reason == "signature"
    tampered = bytearray(cert.encoded)
    tampered[cert.encoded.index(b"DECVCAeID00102") + 13] ^= 0x01  # CAR no longer equals CHR
    with pytest.raises(CvcValidationError) as info:
        trust_point(parse_certificate(bytes(tampered)))
    assert info.value.reason == "not_self_signed"


def test_vector_decvca_link_and_foreign_dv() -> None:
    cvca102, link, dv = load("cvca-DECVCAeID00102"), load("cvca-DECVCAeID00102_DECVCAeID00103"), load("cvdv-DEDVeIDDTR101415")
    assert (link.car, link.chr, link.is_link) == ("DECVCAeID00102", "DECVCAeID00103", True)
    assert dv.role is ChatRole.DV_FOREIGN and not dv.public_key.has_domain_parameters
    assert verify_chain_at(cvca102, [link, dv], date(2014, 11, 1)).valid
    chip = ChipState.personalised([cvca102], date(2011, 1, 1), foreign_dv_moves_date=True)
    result = verify_chain_as_chip(chip, [link, dv])
    assert result.state.trust_points[0].chr == "DECVCAeID00103"
    assert result.state.current_date == date(2014, 10, 23)  # link, then the (foreign) DV move the date
    strict = ChipState.personalised([cvca102], date(2011, 1, 1))
    assert verify_chain_as_chip(strict, [link, dv]).state.current_date == date(2012, 12, 3)


def test_vector_detest_rollover_chain_to_terminal_with_extensions() -> None:
    cvca1 = load("cvca-DETESTeID00001")
    link2, link4 = load("cvca-DETESTeID00002_DETESTeID00001"), load("cvca-DETESTeID00004_DETESTeID00002")
    dv, term = load("cvdv-DEDVeIDDPST00035"), load("cvat-DEDEMODEV00038")
    assert [e.oid for e in term.extensions or ()] == ["0.4.0.127.0.7.3.1.3.1", "0.4.0.127.0.7.3.1.3.2"]
    report = verify_chain_at(cvca1, [link2, link4, dv, term], date(2014, 3, 20))
    assert report.terminal is not None and report.terminal.chr == "DEDEMODEV00038"
    assert report.effective_authorization is not None and report.effective_authorization.hex == "000513FF87"
    chip = ChipState.personalised([cvca1], date(2010, 8, 13))
    result = verify_chain_as_chip(chip, [link2, link4, dv, term])
    assert [p.chr for p in result.state.trust_points] == ["DETESTeID00004", "DETESTeID00002"]
    assert result.effective_authorization is not None and result.effective_authorization.hex == "000513FF87"
    assert "read_dg1" in result.effective_authorization.rights


def test_vector_chip_accepts_expired_links_rejects_expired_dv() -> None:
    cvca1 = load("cvca-DETESTeID00001")
    links = [load("cvca-DETESTeID00002_DETESTeID00001"), load("cvca-DETESTeID00004_DETESTeID00002")]
    late_chip = ChipState.personalised([cvca1], date(2015, 1, 1))
    assert verify_chain_as_chip(late_chip, links).state.trust_points[0].chr == "DETESTeID00004"
    with pytest.raises(CvcValidationError) as info:
        verify_chain_as_chip(late_chip, [*links, load("cvdv-DEDVeIDDPST00035")])
    assert info.value.reason == "expired" and info.value.chr == "DEDVeIDDPST00035"
    findings = check_chain_at(cvca1, [*links, load("cvdv-DEDVeIDDPST00035")], date(2015, 1, 1)).findings
    assert {f.reason for f in findings} == {"expired"}


def test_vector_detest5_link_and_dv() -> None:
    cvca4 = load("cvca-DETESTeID00004")
    link5, dv = load("cvca-DETESTeID00005_DETESTeID00004"), load("cvdv-DEDVtIDGVNK00005")
    assert verify_chain_at(cvca4, [link5, dv], date(2015, 6, 1)).valid
    assert load("cvca-DETESTeID00005").public_key == link5.public_key


def test_vector_cli_show_hex_file() -> None:
    res = CliRunner().invoke(app, ["cvc", "show", str(VECTORS / "cvat-DEDEMODEV00038.hex"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert (info["role"], info["terminal_type"], info["chat_hex"]) == ("terminal", "at", "000513FF87")
    assert info["extensions"] == ["0.4.0.127.0.7.3.1.3.1", "0.4.0.127.0.7.3.1.3.2"]
    res = CliRunner().invoke(app, [
        "cvc", "verify", str(VECTORS / "cvdv-DEDVeIDDPST00035.hex"), str(VECTORS / "cvat-DEDEMODEV00038.hex"),
        str(VECTORS / "cvca-DETESTeID00004_DETESTeID00002.hex"), str(VECTORS / "cvca-DETESTeID00002_DETESTeID00001.hex"),
        "--trust", str(VECTORS / "cvca-DETESTeID00001.hex"), "--at", "2014-03-20",
    ])
    assert res.exit_code == 0, res.output
