"""End to end with the product's own certificate builders (`icao_pki.certificate`: explicit EC
parameters, decree limits, lint) — CSCA → DS → EF.SOD → Passive Authentication, in software
and on SoftHSM2 keys through the key store."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from icao_pki.masterlist import build_master_list, check_master_list, parse_master_list
from icao_pki.pa import PaMode, check_pa, verify_pa
from icao_pki.policy import DocumentType
from icao_pki.signer import RsaPadding
from icao_pki.sod import LdsVersion, build_sod, unwrap_sod
from tests.icao.test_certificate_support import T0, make_csca, make_ds
from tests.icao.test_sod import DATA_GROUPS
from tests.support.softsigner import SoftwareSigner

SIGNED = T0 + timedelta(days=1)
AT = T0 + timedelta(days=30)


def id_card_dg1() -> bytes:
    """TD1 MRZ (3 x 30) of a chip ID card: document code "ID", issuing state VNM."""
    mrz = (
        b"IDVNM0123456789001234567890<<<"
        b"8001014M3001012VNM<<<<<<<<<<<6"
        b"NGUYEN<<VAN<A<<<<<<<<<<<<<<<<<"
    )
    assert len(mrz) == 90
    inner = b"\x5f\x1f" + bytes([len(mrz)]) + mrz
    return bytes([0x61, len(inner)]) + inner


def _roundtrip(csca_signer, ds_signer, document_type=DocumentType.PASSPORT, rsa_padding=RsaPadding.PKCS1V15):
    csca = make_csca(csca_signer, document_type)
    ds = make_ds(csca_signer, csca, ds_signer, document_type)
    dgs = DATA_GROUPS if document_type is DocumentType.PASSPORT else {**DATA_GROUPS, 1: id_card_dg1()}
    sod = build_sod(
        dgs, ds_signer=ds_signer, ds_certificate=ds.der, signing_time=SIGNED,
        lds_version=LdsVersion("0108", "040000"), rsa_padding=rsa_padding,
    )  # fmt: skip
    result = verify_pa(sod, dgs, trust=[csca.der], at=AT, mode=PaMode.STRICT)
    return csca, ds, sod, result


@pytest.mark.parametrize("curve", ["brainpoolP256r1", "secp256r1", "brainpoolP384r1"])
def test_e2e_product_certificates_explicit_parameters(curve: str) -> None:
    csca_signer, ds_signer = SoftwareSigner.generate(curve), SoftwareSigner.generate(curve)
    csca, ds, _sod, result = _roundtrip(csca_signer, ds_signer)
    assert ds.has_explicit_ec_parameters
    assert result.data_groups_checked == [1, 2, 14, 15]
    assert result.csca_country == "VN" and result.issuing_state == "VNM"
    assert [f.code for f in result.findings] == ["revocation-not-checked"]
    # after the DS key's 3-month private-key usage period, signing is a PA error
    late = build_sod(DATA_GROUPS, ds_signer=ds_signer, ds_certificate=ds.der, signing_time=T0 + timedelta(days=100))
    assert "ds-pkup" in [f.code for f in check_pa(late, DATA_GROUPS, trust=[csca.der], at=AT).findings]


def test_e2e_rsa_pss_idcard() -> None:
    """ID-card hierarchy, RSASSA-PSS; the DS's DocumentTypeList ["ID"] lets it sign the TD1
    ID card but not a passport (MRZ code "P")."""
    ds_signer = SoftwareSigner.generate("rsa2048")
    csca, ds, _, result = _roundtrip(SoftwareSigner.generate("rsa2048"), ds_signer, DocumentType.IDCARD, RsaPadding.PSS)
    assert result.valid and result.issuing_state == "VNM"
    passport = build_sod(DATA_GROUPS, ds_signer=ds_signer, ds_certificate=ds.der, signing_time=SIGNED)
    wrong = check_pa(passport, DATA_GROUPS, trust=[csca.der], at=AT)
    assert "document-type-not-allowed" in [f.code for f in wrong.findings]


@pytest.mark.openssl
def test_e2e_openssl_accepts_sod_with_explicit_parameter_chain(tmp_path: Path) -> None:
    """OpenSSL 3 verifies the SOD's signature and messageDigest with our explicit-parameter
    brainpool DS key.  The chain part needs `-noverify`: OpenSSL 3.0's certificate verifier
    refuses any certificate whose key has explicit EC parameters ("Certificate public key has
    explicit ECC parameters", X509_V_ERR_EC_KEY_EXPLICIT_PARAMS) — which ICAO 9303-12 §4.1.6
    mandates.  We prove that refusal here too, so the `-noverify` stays honest."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("LOUD SKIP: openssl command line not installed (make test installs it)")
    csca, _, sod, _ = _roundtrip(SoftwareSigner.generate("brainpoolP256r1"), SoftwareSigner.generate("brainpoolP256r1"))
    (tmp_path / "sod.der").write_bytes(unwrap_sod(sod)[0])
    (tmp_path / "csca.pem").write_text(csca.to_pem())
    chain = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-CAfile", str(tmp_path / "csca.pem"),
         "-purpose", "any", "-attime", str(int(AT.timestamp())), "-out", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert chain.returncode != 0 and "explicit ECC parameters" in chain.stderr
    out = subprocess.run(
        [openssl, "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-out", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    tampered = bytearray(unwrap_sod(sod)[0])
    tampered[-5] ^= 1
    (tmp_path / "bad.der").write_bytes(bytes(tampered))
    bad = subprocess.run(
        [openssl, "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "bad.der"), "-out", "/dev/null"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0


@pytest.mark.hsm
def test_e2e_hsm_keys_csca_ds_sod_pa_and_master_list(keystore) -> None:
    """CSCA, DS and ML-signer keys generated in SoftHSM2 (brainpoolP256r1), certificates from
    the product builders, SOD and Master List signed through PKCS#11, then PA with the ML as trust."""
    from icao_pki.certificate import build_master_list_signer_certificate, parse_certificate
    from icao_pki.names import DistinguishedName
    from icao_pki.policy import Window, add_months

    csca_signer = keystore.generate_key(keystore.next_label("passport", "csca"), "brainpoolP256r1")
    ds_signer = keystore.generate_key(keystore.next_label("passport", "ds"), "brainpoolP256r1")
    mls_signer = keystore.generate_key(keystore.next_label("passport", "mls"), "brainpoolP256r1")
    csca, _ds, sod, result = _roundtrip(csca_signer, ds_signer)
    assert result.valid and result.csca_subject and "CSCA Viet Nam" in result.csca_subject
    mls = parse_certificate(
        build_master_list_signer_certificate(
            csca_signer, csca, mls_signer.public_key_info(), DistinguishedName("Master List Signer", organizational_unit="Passport"),
            validity=Window(T0, add_months(T0, 12)), document_type=DocumentType.PASSPORT,
        )
    )  # fmt: skip
    ml = build_master_list([csca.der], signer=mls_signer, signer_certificate=mls.der, signer_csca_certificate=csca.der, signing_time=SIGNED)
    report = check_master_list(parse_master_list(ml), trust_anchors=[csca.der], at=AT)
    assert report.valid, report.findings
    assert report.entries[0].valid, report.entries[0].findings
    assert verify_pa(sod, DATA_GROUPS, trust=report, at=AT, mode=PaMode.STRICT).valid


def test_e2e_link_certificate_across_algorithm_change() -> None:
    """Product builders: RSA CSCA rolls over to a brainpool key; the link certificate (signed
    with the old RSA key) carries the new key; a DS under the new key passes PA through the
    link, and a Master List holding root + link validates the link against the root."""
    from icao_pki.certificate import build_csca_link_certificate, parse_certificate
    from icao_pki.policy import Window, add_months

    old_signer, new_signer = SoftwareSigner.generate("rsa2048"), SoftwareSigner.generate("brainpoolP256r1")
    old = make_csca(old_signer)
    link = parse_certificate(
        build_csca_link_certificate(
            old_signer, old, new_signer.public_key_info(), validity=Window(T0, add_months(T0, 12 * 15)),
            private_key_usage=Window(T0, add_months(T0, 12 * 5)), document_type=DocumentType.PASSPORT,
            crl_distribution_points=["http://pkd.example.gov.vn/crl/csca-vn.crl"],
        )
    )  # fmt: skip
    ds_signer = SoftwareSigner.generate("brainpoolP256r1")
    ds = make_ds(new_signer, link, ds_signer)
    sod = build_sod(DATA_GROUPS, ds_signer=ds_signer, ds_certificate=ds.der, signing_time=SIGNED)
    result = verify_pa(sod, DATA_GROUPS, trust=[old.der, link.der], at=AT, mode=PaMode.STRICT)
    assert len(result.path) == 3
    from tests.icao.test_cms_pki import pki

    p = pki()
    ml = build_master_list(
        [old.der, link.der], signer=p.mls.signer, signer_certificate=p.mls.der, signer_csca_certificate=p.csca.der,
        signing_time=SIGNED,
    )  # fmt: skip
    report = check_master_list(parse_master_list(ml), trust_anchors=[p.csca.der], at=AT)
    assert {e.der: e.kind for e in report.entries} == {old.der: "root", link.der: "link"}
    assert all(e.valid for e in report.entries), [e.findings for e in report.entries]
