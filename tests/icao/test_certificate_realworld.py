"""Real CSCA / DS certificates and a real CSCA CRL (tests/vectors/x509/SOURCES.md).

The verifier must read and verify what other states publish; the linter — which is what
our issuer obeys — must report how they depart from 9303-12 and the decree.  The CSCAs'
self-signatures verifying proves the files were transcribed byte for byte.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from icao_pki.certificate import CertificateVerifyError, Profile, parse_certificate
from icao_pki.crl import check_crl, parse_crl
from icao_pki.lint import check_certificate
from icao_pki.signature import EcPublicKey, RsaPublicKey
from tests.icao.test_certificate_support import openssl

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "x509"

# file, key, signature algorithm, explicit EC parameters, error codes our strict lint must report
CSCAS = [
    ("fr_csca_2006.pem", "rsa4096", "sha1-rsassa_pkcs1v15", False,
     {"signature-algorithm", "extension-missing", "decree-csca-certificate-validity"}),
    ("se_csca_2005_rsapss.pem", "rsa2048", "sha256-rsassa_pss", False,
     {"extension-missing", "decree-csca-certificate-validity", "rsassa-pss-parameters"}),
    ("at_csca_2014_bp384.pem", "brainpoolP384r1", "sha384-ecdsa", True,
     {"pkup-bounds", "decree-csca-certificate-validity"}),
    ("de_csca_100_2011_bp384.pem", "brainpoolP384r1", "sha384-ecdsa", True, {"alt-name-locality"}),
    ("be_cscaec_2014_p256.pem", "secp256r1", "sha256-ecdsa", True, {"extension-missing"}),
    ("lt_csca_2007_bp256_sha1.pem", "brainpoolP256r1", "sha1-ecdsa", True,
     {"signature-algorithm", "extension-missing", "ecdsa-parameters"}),
    ("ch_csca_1_2006_p384_sha1.pem", "secp384r1", "sha1-ecdsa", True, {"signature-algorithm", "extension-missing"}),
]  # fmt: skip


def _key_name(key) -> str:
    return f"rsa{key.bits}" if isinstance(key, RsaPublicKey) else key.curve.name


@pytest.mark.parametrize(("name", "key", "algorithm", "explicit", "expected"), CSCAS, ids=[c[0] for c in CSCAS])
def test_certificate_realworld_csca_parses_verifies_and_lints(name, key, algorithm, explicit, expected) -> None:
    data = (VECTORS / name).read_bytes()
    csca = parse_certificate(data)
    assert _key_name(csca.public_key) == key
    assert csca.signature_algorithm_name == algorithm
    assert csca.has_explicit_ec_parameters is explicit
    assert csca.role_hints == {Profile.CSCA}
    assert csca.is_ca and {"key_cert_sign", "crl_sign"} <= csca.key_usage
    csca.verify_issued_by(csca)  # tolerant verifier: SHA-1, PSS salt 20, NULL ECDSA params, explicit curves

    errors = {f.code for f in check_certificate(csca, "csca", "passport") if f.is_error}
    assert expected <= errors, errors

    # One changed byte of the signed part and the signature no longer verifies.
    tampered = bytearray(csca.der)
    offset = len(csca.der) - len(csca.asn1["signature_value"].dump()) - len(csca.asn1["signature_algorithm"].dump()) - 5
    tampered[offset] ^= 0x01
    with pytest.raises(CertificateVerifyError):
        parse_certificate(bytes(tampered)).verify_issued_by(csca)


def test_certificate_realworld_austrian_alt_names_use_the_icao_locality() -> None:
    csca = parse_certificate((VECTORS / "at_csca_2014_bp384.pem").read_bytes())
    assert csca.subject_alt_localities == ["AUT"] and csca.issuer_alt_localities == ["AUT"]
    assert csca.crl_distribution_points == ["http://www.bmi.gv.at/csca/crl/CSCAAUSTRIA.crl"]
    pkup = csca.private_key_usage_period  # only notAfter given: notBefore taken from the validity
    assert pkup.start == csca.not_before and pkup.end.year == 2020


def test_certificate_realworld_austrian_ds() -> None:
    ds = parse_certificate((VECTORS / "at_ds_2023_bp256.der").read_bytes())
    assert ds.subject_str == "C=AT, O=GV, OU=BMI, serialNumber=004015, CN=DS-AUSTRIA-eMRTD"
    assert ds.document_types == ["P", "AR", "ID"]
    assert ds.role_hints == {Profile.DS}
    assert isinstance(ds.public_key, EcPublicKey) and ds.public_key.curve.name == "brainpoolP256r1"
    assert ds.authority_key_identifier.hex() == "2692c7e398abfbe35192d3f26e9a317d1fed53bd"
    findings = check_certificate(ds, "ds", "passport")
    codes = {f.code for f in findings if f.is_error}
    assert {"pkup-bounds", "decree-ds-certificate-validity"} <= codes
    assert "document-type-list" not in codes  # 'P' is listed
    assert next(f for f in findings if f.code == "decree-ds-certificate-validity").citation == "Art. 23.1b"
    # issued by a newer CSCA-AUSTRIA key than the 2014 one: the name matches, the key does not
    old = parse_certificate((VECTORS / "at_csca_2014_bp384.pem").read_bytes())
    with pytest.raises(CertificateVerifyError):
        ds.verify_issued_by(old)
    sod = VECTORS.parent / "icao" / "gmrtd" / "AT_EF_SOD.bin"
    if sod.exists():
        assert ds.der in sod.read_bytes()


def test_crl_realworld_netherlands() -> None:
    data = (VECTORS / "nl_csca_crl_2025.der").read_bytes()
    crl = parse_crl(data)
    assert crl.version == 2 and crl.crl_number == 7 and crl.entries == []
    assert crl.issuer_str.startswith("serialNumber=7, CN=CSCA NL")
    assert crl.authority_key_identifier.hex() == "f2423ba9c13c6815d65081792bf7307129046f336c2389950b82e998ac3bbca4"
    assert crl.signature_algorithm_name == "sha256-rsassa_pkcs1v15"
    findings = check_crl(crl)
    assert [(f.code, f.citation) for f in findings if f.is_error] == [("crl-interval", "9303-12 §4.1.5")]
    text = openssl("crl", "-inform", "DER", "-in", str(VECTORS / "nl_csca_crl_2025.der"), "-noout", "-text")
    assert text.returncode == 0 and re.search(r"CRL Number:\s+7\s", text.stdout.decode())


def test_x509_cli_on_realworld_files() -> None:
    from typer.testing import CliRunner

    from icao_pki.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["x509", "show", str(VECTORS / "se_csca_2005_rsapss.pem"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["signature_algorithm"] == "sha256-rsassa_pss"
    result = runner.invoke(app, ["x509", "lint", str(VECTORS / "fr_csca_2006.pem"), "--role", "csca", "--doc", "passport"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["crl", "show", str(VECTORS / "nl_csca_crl_2025.der"), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["crl_number"] == 7
