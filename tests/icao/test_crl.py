"""CSCA CRLs: profile, the 90-day rule, Art. 17 reasons, parsing, and OpenSSL interop."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl

from icao_pki.certificate import Certificate
from icao_pki.crl import (
    CrlBuildError,
    CrlDecodeError,
    CrlVerifyError,
    RevocationReason,
    RevokedEntry,
    build_crl,
    check_crl,
    parse_crl,
    verify_crl,
)
from icao_pki.policy import DocumentType
from icao_pki.signer import RsaPadding
from tests.icao.test_certificate_support import T0, make_csca, make_ds, openssl, write_pem
from tests.support.softsigner import SoftwareSigner


@pytest.fixture(scope="module")
def pki(soft_p256: SoftwareSigner) -> tuple[SoftwareSigner, Certificate, Certificate]:
    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, SoftwareSigner.generate("secp256r1"))
    return soft_p256, csca, ds


def _crl(pki, **kwargs) -> bytes:
    signer, csca, _ = pki
    args = {"this_update": T0, "next_update": T0 + timedelta(days=90), "crl_number": 1}
    args.update(kwargs)
    return build_crl(signer, csca, **args)


def test_crl_empty_profile(pki) -> None:
    _, csca, _ = pki
    crl = parse_crl(_crl(pki))
    assert crl.version == 2
    assert crl.issuer.dump() == csca.subject.dump()
    assert crl.authority_key_identifier == csca.subject_key_identifier
    assert crl.crl_number == 1
    assert crl.this_update == T0 and crl.next_update == T0 + timedelta(days=90)
    assert crl.tbs["revoked_certificates"].native is None  # omitted, not an empty SEQUENCE
    assert crl.entries == []
    assert crl.tbs["this_update"].name == "utc_time"
    assert check_crl(crl, issuer=csca) == []
    crl.verify_signed_by(csca)
    for item in crl.tbs["crl_extensions"]:
        assert item["critical"].native is False and len(item.contents) == len(item["extn_id"].dump()) + len(item["extn_value"].dump())


def test_crl_with_revocations_and_reasons(pki) -> None:
    _, csca, ds = pki
    der = _crl(
        pki,
        crl_number=7,
        revoked=[
            RevokedEntry(ds.serial_number, T0 - timedelta(hours=2), RevocationReason.KEY_COMPROMISE),
            RevokedEntry(0x55, T0 - timedelta(days=1), RevocationReason.KEY_COMPROMISE, revoked_is_ca=True),
            RevokedEntry(0x56, T0 - timedelta(days=1), RevocationReason.MANAGING_ORGANISATION_REQUEST),
            RevokedEntry(0x57, T0 - timedelta(days=1), RevocationReason.SERVICE_STOPPED, invalidity_date=T0 - timedelta(days=3)),
        ],
    )
    crl = verify_crl(der, csca)
    assert crl.crl_number == 7
    entry = crl.is_revoked(ds.serial_number)
    assert entry is not None and entry.reason == "key_compromise" and entry.revocation_date == T0 - timedelta(hours=2)
    assert crl.is_revoked(0x55).reason == "ca_compromise"
    assert crl.is_revoked(0x56).reason is None  # "unspecified" is omitted (RFC 5280 §5.3.1)
    assert crl.is_revoked(0x57).reason == "cessation_of_operation"
    assert crl.is_revoked(0x57).invalidity_date == T0 - timedelta(days=3)
    assert crl.is_revoked(0x58) is None
    assert check_crl(crl, issuer=csca) == []


def test_crl_reasons_cite_article_17_and_map_to_rfc5280() -> None:
    valid = {None, "key_compromise", "ca_compromise", "affiliation_changed", "superseded", "cessation_of_operation", "privilege_withdrawn"}
    for reason in RevocationReason:
        assert re.fullmatch(r"Art\. 17\.[1-4][a-d]", reason.article), reason
        assert reason.rfc5280() in valid and reason.description
    assert RevocationReason.KEY_COMPROMISE.rfc5280() == "key_compromise"
    assert RevocationReason.KEY_DEVICE_LOST.rfc5280() == "key_compromise"
    assert RevocationReason.LAW_ENFORCEMENT_REQUEST.rfc5280() == "privilege_withdrawn"
    assert RevocationReason.POSITION_CHANGED.rfc5280() == "affiliation_changed"


def test_crl_next_update_at_most_90_days(pki) -> None:
    _crl(pki, next_update=T0 + timedelta(days=90))
    with pytest.raises(CrlBuildError, match=r"9303-12 §4.1.5") as info:
        _crl(pki, next_update=T0 + timedelta(days=90, seconds=1))
    assert info.value.citation == "9303-12 §4.1.5"
    with pytest.raises(CrlBuildError):
        _crl(pki, next_update=T0)


def test_crl_number_positive_and_monotonic(pki) -> None:
    _crl(pki, crl_number=5, previous_crl_number=4)
    for kwargs in ({"crl_number": 4, "previous_crl_number": 4}, {"crl_number": 0}, {"crl_number": 2**160}):
        with pytest.raises(CrlBuildError, match="cRLNumber"):
            _crl(pki, **kwargs)


def test_crl_refusals(pki, soft_bp256: SoftwareSigner) -> None:
    _, csca, ds = pki
    with pytest.raises(CrlBuildError, match="not the key"):
        build_crl(soft_bp256, csca, this_update=T0, next_update=T0 + timedelta(days=1), crl_number=1)
    with pytest.raises(CrlBuildError, match="cRLSign"):
        _crl((pki[0], ds, ds))
    with pytest.raises(CrlBuildError, match="twice"):
        _crl(pki, revoked=[RevokedEntry(1, T0), RevokedEntry(1, T0)])
    with pytest.raises(CrlBuildError, match="not valid at thisUpdate"):
        _crl(pki, this_update=csca.not_after + timedelta(days=1), next_update=csca.not_after + timedelta(days=2))


def test_crl_generalized_time_from_2050(soft_p256: SoftwareSigner) -> None:
    csca = make_csca(soft_p256, DocumentType.IDCARD)
    when = datetime(2050, 3, 1, tzinfo=UTC)
    crl = parse_crl(
        build_crl(soft_p256, csca, this_update=when, next_update=when + timedelta(days=30), crl_number=100,
                  revoked=[RevokedEntry(9, when)])
    )  # fmt: skip
    assert crl.tbs["this_update"].name == "general_time" and crl.tbs["next_update"].name == "general_time"
    assert crl.tbs["revoked_certificates"][0]["revocation_date"].name == "general_time"
    crl.verify_signed_by(csca)


def test_crl_parse_pem_and_errors(pki, soft_bp256: SoftwareSigner) -> None:
    from asn1crypto import pem

    der = _crl(pki)
    assert parse_crl(pem.armor("X509 CRL", der)).der == der
    with pytest.raises(CrlDecodeError):
        parse_crl(b"\x30\x00")
    tampered = bytearray(der)
    tampered[-1] ^= 1
    with pytest.raises(CrlVerifyError):
        parse_crl(bytes(tampered)).verify_signed_by(pki[1])
    other = make_csca(soft_bp256)
    with pytest.raises(CrlVerifyError):
        parse_crl(der).verify_signed_by(other.public_key)


def test_crl_lint_flags_foreign_mistakes(pki) -> None:
    signer, csca, _ = pki
    from icao_pki.certificate import sign_tbs, signature_algorithm_for

    algorithm, hash_algorithm = signature_algorithm_for(signer)
    tbs = asn1_crl.TbsCertList(
        {
            "version": "v1",
            "signature": algorithm,
            "issuer": csca.subject,
            "this_update": {"general_time": T0},
            "next_update": {"utc_time": T0 + timedelta(days=120)},
            "revoked_certificates": [],
        }
    )
    tbs_der = tbs.dump()
    signature = sign_tbs(signer, tbs_der, hash_algorithm, RsaPadding.PSS)
    der = asn1_crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": signature}).dump()
    codes = {f.code for f in check_crl(der, issuer=csca)}
    assert {"version", "time-encoding", "crl-interval", "revoked-empty", "aki", "crl-number"} <= codes
    assert "signature" not in codes  # signed correctly, only badly formed
    parse_crl(der).verify_signed_by(csca)  # the verifier tolerates it


@pytest.mark.parametrize("key_spec", ["rsa2048", "brainpoolP256r1"])
def test_crl_openssl_parses_and_verifies(tmp_path: Path, key_spec: str) -> None:
    signer = SoftwareSigner.generate(key_spec)
    csca = make_csca(signer)
    der = build_crl(signer, csca, this_update=T0, next_update=T0 + timedelta(days=90), crl_number=42,
                    revoked=[RevokedEntry(0xABCDEF, T0, RevocationReason.KEY_COMPROMISE)])  # fmt: skip
    path = tmp_path / "csca.crl"
    path.write_bytes(der)
    result = openssl("crl", "-inform", "DER", "-in", str(path), "-text", "-noout")
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert "Version 2 (0x1)" in text
    assert re.search(r"CRL Number:\s+42", text)
    assert "Serial Number: ABCDEF" in text and "Key Compromise" in text
    assert "Next Update: Feb 19 08:00:00 2027 GMT" in text
    ca = write_pem(tmp_path / "csca.pem", csca)
    verified = openssl("crl", "-inform", "DER", "-in", str(path), "-CAfile", str(ca), "-noout")
    if key_spec.startswith("rsa"):
        assert verified.returncode == 0 and b"verify OK" in verified.stdout + verified.stderr
    else:  # OpenSSL loads the explicit brainpool key for a single signature check
        assert b"verify OK" in verified.stdout + verified.stderr, verified.stderr.decode()
    empty = tmp_path / "empty.crl"
    empty.write_bytes(build_crl(signer, csca, this_update=T0, next_update=T0 + timedelta(days=1), crl_number=43))
    text = openssl("crl", "-inform", "DER", "-in", str(empty), "-text", "-noout").stdout.decode()
    assert "No Revoked Certificates." in text


@pytest.mark.hsm
def test_crl_signed_in_the_hsm_verifies_with_openssl(tmp_path: Path, keystore) -> None:
    signer = keystore.generate_key(keystore.next_label("passport", "csca"), "rsa2048")
    csca = make_csca(signer)
    der = build_crl(signer, csca, this_update=T0, next_update=T0 + timedelta(days=90), crl_number=1,
                    revoked=[RevokedEntry(0x1234, T0, RevocationReason.LAW_ENFORCEMENT_REQUEST)])  # fmt: skip
    path = tmp_path / "hsm.crl"
    path.write_bytes(der)
    ca = write_pem(tmp_path / "csca.pem", csca)
    result = openssl("crl", "-inform", "DER", "-in", str(path), "-CAfile", str(ca), "-noout", "-text")
    assert b"verify OK" in result.stdout + result.stderr and b"Privilege Withdrawn" in result.stdout
