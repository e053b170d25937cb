"""The demo government CA follows Circular 04/2019 Appendix II and Decree 68 Art. 9."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import x509

from fixtures.orgpki import (
    GOVERNMENT_CA_ORGANISATION,
    OrgPkiError,
    build_organisation_certificate,
    build_root,
)
from icao_pki.policy import PolicyViolation, add_months
from tests.api.orgpki_support import PKI_START, OrgPkiForTests
from tests.support.softsigner import SoftwareSigner


def test_orgpki_root_is_20_years_and_named_for_ban_co_yeu(org_pki: OrgPkiForTests) -> None:
    root = org_pki.pki.root.asn1
    assert root.not_valid_after == add_months(PKI_START, 240)
    assert root.subject.native["organization_name"] == "Ban Cơ yếu Chính phủ" == GOVERNMENT_CA_ORGANISATION
    assert root.subject.native["country_name"] == "VN"
    assert root.ca and root.self_signed == "maybe"


def test_orgpki_root_over_20_years_refused_by_art_9_1() -> None:
    with pytest.raises(PolicyViolation) as info:
        build_root(SoftwareSigner.generate("secp256r1"), not_before=PKI_START, years=21)
    assert info.value.article == "Art. 9.1"


def test_orgpki_organisation_certificate_profile(org_pki: OrgPkiForTests) -> None:
    ident = org_pki.identity("Cục Quản lý xuất nhập cảnh", "MNS:G01")
    cert = ident.certificate.asn1
    assert cert["tbs_certificate"]["version"].native == "v3"
    serial_octets = cert["tbs_certificate"]["serial_number"].contents
    assert 0 < cert.serial_number and len(serial_octets) <= 20 and serial_octets[0] < 0x80
    assert cert.issuer.native["organization_name"] == "Ban Cơ yếu Chính phủ"
    assert cert.issuer.native["country_name"] == "VN"
    subject = cert.subject.native
    assert subject["country_name"] == "VN"
    assert subject["state_or_province_name"] == "Hà Nội"
    assert subject["user_id"].startswith("MNS:")
    assert cert["tbs_certificate"]["validity"]["not_after"].name == "utc_time"
    assert not cert.ca


def test_orgpki_generalized_time_from_2050(org_pki: OrgPkiForTests) -> None:
    late = build_root(SoftwareSigner.generate("secp256r1"), not_before=datetime(2040, 1, 1, tzinfo=UTC))
    validity = late.asn1["tbs_certificate"]["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"


def test_orgpki_subscriber_over_5_years_refused_by_art_9_2(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(PolicyViolation) as info:
        build_organisation_certificate(
            SoftwareSigner.generate("secp256r1").public_key_info(), issuer=org_pki.pki.sub_ca,
            issuer_signer=org_pki.pki.sub_ca_signer, common_name="X", province="Hà Nội", uid="MST:1",
            not_before=PKI_START, not_after=add_months(PKI_START, 61),
        )
    assert info.value.article == "Art. 9.2"


def test_orgpki_uid_prefix_enforced(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(OrgPkiError, match="MST:"):
        org_pki.pki.issue(SoftwareSigner.generate("secp256r1"), common_name="X", uid="ABC:1", not_before=PKI_START)


@pytest.mark.openssl
def test_orgpki_openssl_verifies_chain_and_crl(org_pki: OrgPkiForTests, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line not installed (make test installs it)")
    ident = org_pki.identity("Cục Cơ yếu Bộ Công an", "MNS:C01")
    crl = org_pki.pki.sub_ca_crl(this_update=datetime(2026, 1, 1, tzinfo=UTC), number=1)
    files = {"root": org_pki.pki.root.der, "sub": org_pki.pki.sub_ca.der, "org": ident.certificate.der}
    for name, der in files.items():
        (tmp_path / f"{name}.der").write_bytes(der)
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", tmp_path / f"{name}.der", "-out", tmp_path / f"{name}.pem"], check=True)
    (tmp_path / "crl.der").write_bytes(crl)
    subprocess.run(["openssl", "crl", "-inform", "DER", "-in", tmp_path / "crl.der", "-out", tmp_path / "crl.pem"], check=True)
    at = str(int(datetime(2026, 1, 2, tzinfo=UTC).timestamp()))
    chain = subprocess.run(
        ["openssl", "verify", "-attime", at, "-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "sub.pem",
         tmp_path / "org.pem"], capture_output=True, text=True,
    )
    assert chain.returncode == 0, chain.stderr
    bad = subprocess.run(["openssl", "verify", "-attime", at, "-CAfile", tmp_path / "sub.pem", tmp_path / "org.pem"],
                         capture_output=True, text=True)
    assert bad.returncode != 0  # a partial chain is not accepted: the test can fail
    crl_check = subprocess.run(["openssl", "crl", "-in", tmp_path / "crl.pem", "-CAfile", tmp_path / "sub.pem", "-noout"],
                               capture_output=True, text=True)
    assert crl_check.returncode == 0 and "verify OK" in (crl_check.stderr + crl_check.stdout)
    assert x509.Certificate.load(ident.certificate.der).issuer == org_pki.pki.sub_ca.asn1.subject
