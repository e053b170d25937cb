"""Several SignerInfos (all must verify, each signer chains) and CRLs read through `icao_pki.crl`."""

from __future__ import annotations

import pytest
from asn1crypto import cms, pem

from icao_pki.cms import CmsSignatureError, Severity, parse_signed_data, verify_signer, verify_signers
from icao_pki.crl import parse_crl
from icao_pki.pa import check_pa, verify_pa
from icao_pki.sod import parse_sod, unwrap_sod, wrap_sod
from tests.icao.test_cms_pki import make_crl, pki
from tests.icao.test_pa import AT, _sod, codes
from tests.icao.test_sod import DATA_GROUPS


def _two_signer_sod(tamper_second: bool = False) -> bytes:
    """One LDSSecurityObject signed by the EC DS and by the RSA DS (two SignerInfos)."""
    p = pki()
    infos = [cms.ContentInfo.load(unwrap_sod(_sod(ds))[0]) for ds in (p.ds, p.rsa_ds)]
    first, second = (info["content"] for info in infos)
    assert first["encap_content_info"].dump() == second["encap_content_info"].dump()
    second_info = cms.SignerInfo.load(second["signer_infos"][0].dump())
    if tamper_second:
        sig = bytearray(second_info["signature"].native)
        sig[-1] ^= 1
        second_info["signature"] = bytes(sig)
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": cms.DigestAlgorithms.load(first["digest_algorithms"].dump()),
            "encap_content_info": cms.EncapsulatedContentInfo.load(first["encap_content_info"].dump()),
            "certificates": [cms.CertificateChoices.load(c.dump()) for c in (*first["certificates"], *second["certificates"])],
            "signer_infos": [cms.SignerInfo.load(first["signer_infos"][0].dump()), second_info],
        }
    )
    return wrap_sod(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def test_all_signer_infos_verified() -> None:
    signed = parse_sod(_two_signer_sod()).signed
    results = verify_signers(signed)
    assert [r.certificate.dump() for r in results] == [pki().ds.der, pki().rsa_ds.der]
    assert "cms-several-signers" in [f.code for f in results[0].findings]
    assert verify_signer(signed).certificate.dump() == pki().ds.der


def test_one_bad_signer_info_fails_the_whole_signed_data() -> None:
    signed = parse_sod(_two_signer_sod(tamper_second=True)).signed
    assert verify_signer(signed, index=0).certificate.dump() == pki().ds.der  # the first alone is fine
    with pytest.raises(CmsSignatureError, match=r"SignerInfo #2 of 2"):
        verify_signer(signed)
    with pytest.raises(CmsSignatureError, match=r"SignerInfo #2 of 2"):
        verify_signers(signed)
    result = check_pa(_two_signer_sod(tamper_second=True), DATA_GROUPS, trust=[pki().csca.der, pki().rsa_csca.der], at=AT)
    assert not result.valid
    assert any("SignerInfo #2 of 2" in f.message for f in result.findings if f.severity is Severity.ERROR)


def test_pa_with_two_signers_checks_each_path() -> None:
    p = pki()
    sod = _two_signer_sod()
    result = verify_pa(sod, DATA_GROUPS, trust=[p.csca.der, p.rsa_csca.der], at=AT)
    assert "cms-several-signers" in codes(result, Severity.INFO)
    # the second signer's CSCA is not trusted: reported against it, the document is invalid
    partial = check_pa(sod, DATA_GROUPS, trust=[p.csca.der], at=AT)
    errors = [f for f in partial.findings if f.severity is Severity.ERROR]
    assert errors and all(f.message.startswith("additional signer ") and "Document Signer RSA" in f.message for f in errors)
    # revocation of the second DS is found too
    crls = [make_crl(p.csca), make_crl(p.rsa_csca, [p.rsa_ds.cert.serial_number])]
    revoked = check_pa(sod, DATA_GROUPS, trust=[p.csca.der, p.rsa_csca.der], crls=crls, at=AT)
    revocations = [f for f in revoked.findings if f.code == "revoked"]
    assert len(revocations) == 1
    assert revocations[0].message.startswith("additional signer ") and "Document Signer RSA" in revocations[0].message
    assert not revoked.valid


def test_pa_reads_crls_through_icao_pki_crl() -> None:
    p = pki()
    der = make_crl(p.csca, [p.ds.cert.serial_number])
    as_pem = pem.armor("X509 CRL", der)
    for crl in (der, as_pem, parse_crl(der)):
        result = check_pa(_sod(), DATA_GROUPS, trust=[p.csca.der], crls=[crl], at=AT)
        assert "revoked" in codes(result, Severity.ERROR), type(crl)
    junk = check_pa(_sod(), DATA_GROUPS, trust=[p.csca.der], crls=[b"\x30\x03\x02\x01\x00"], at=AT)
    assert "crl-malformed" in codes(junk, Severity.ERROR)
    assert "revocation-not-checked" in codes(junk, Severity.WARNING)


def test_single_signer_objects_unchanged() -> None:
    signed = parse_signed_data(unwrap_sod(_sod())[0])
    results = verify_signers(signed)
    assert len(results) == 1 and "cms-several-signers" not in [f.code for f in results[0].findings]
