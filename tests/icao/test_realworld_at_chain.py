"""A real Austrian EF.SOD (2016) whose DS was issued by the real CSCA-AUSTRIA 2014 we hold.

`tests/vectors/icao/androidpassportreader/AT_EF_SOD_2016.bin` carries the DS certificate
"DS-AUSTRIA-ePass" (brainpoolP256r1, explicit parameters); its AKI is the SKI of
`tests/vectors/x509/at_csca_2014_bp384.pem` (brainpoolP384r1, explicit parameters).  So this is
a real DS → CSCA pair of one state: the SOD signature proves the SOD bytes (and the DS key),
the CSCA's signature over the DS proves the DS certificate, the CSCA's self-signature proves
the CSCA file.  The data groups are not public, so PA stops at the SOD.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from icao_pki.certificate import CertificateVerifyError, parse_certificate
from icao_pki.cms import CmsSignatureError, Severity, verify_signer
from icao_pki.pa import PaMode, check_pa
from icao_pki.signature import EcPublicKey
from icao_pki.sod import parse_sod

ROOT = Path(__file__).resolve().parents[1] / "vectors"
SOD = ROOT / "icao" / "androidpassportreader" / "AT_EF_SOD_2016.bin"
CSCA = ROOT / "x509" / "at_csca_2014_bp384.pem"
SIGNED_AT = datetime(2016, 8, 3, 6, 35, 51, tzinfo=UTC)


@pytest.fixture(scope="module")
def sod_bytes() -> bytes:
    return SOD.read_bytes()


def test_sod_signature_and_content(sod_bytes: bytes) -> None:
    sod = parse_sod(sod_bytes)
    assert sod.data_groups == [1, 2, 3, 11, 12, 14]
    result = verify_signer(sod.signed)  # strict: the Austrian SOD needs no tolerance
    assert result.signing_time == SIGNED_AT
    assert [f for f in result.findings if f.severity is Severity.ERROR] == []
    tampered = bytearray(sod_bytes)
    tampered[-5] ^= 1  # inside the ECDSA signature value
    with pytest.raises(CmsSignatureError):
        verify_signer(parse_sod(bytes(tampered)).signed)


def test_real_ds_issued_by_real_csca(sod_bytes: bytes) -> None:
    ds_der = parse_sod(sod_bytes).signed.certificates[0].dump()
    ds = parse_certificate(ds_der)
    csca = parse_certificate(CSCA.read_bytes())
    assert ds.subject_str.endswith("CN=DS-AUSTRIA-ePass") or "DS-AUSTRIA-ePass" in ds.subject_str
    assert ds.authority_key_identifier == csca.subject_key_identifier == bytes.fromhex(
        "ff8dea86af18eee58ba2d6ba8cfaab39a169af5b"
    )
    assert isinstance(ds.public_key, EcPublicKey) and ds.public_key.curve.name == "brainpoolP256r1"
    assert isinstance(csca.public_key, EcPublicKey) and csca.public_key.curve.name == "brainpoolP384r1"
    assert ds.document_types == ["P"]
    ds.verify_issued_by(csca)  # ecdsa-with-SHA384 by the CSCA's brainpoolP384r1 key
    csca.verify_issued_by(csca)
    # a single changed byte in the DS (its serialNumber attribute "003009") breaks the chain
    index = ds_der.index(b"003009")
    forged = ds_der[:index] + b"003010" + ds_der[index + 6 :]
    with pytest.raises(CertificateVerifyError):
        parse_certificate(forged).verify_issued_by(csca)


def test_passive_authentication_up_to_the_sod(sod_bytes: bytes) -> None:
    csca = CSCA.read_bytes()
    # the day after signing: DS valid, its private-key usage period (to 2021-05-03) covers signingTime
    result = check_pa(sod_bytes, {}, trust=[csca], at=datetime(2016, 8, 4, tzinfo=UTC), mode=PaMode.TOLERANT)
    assert result.valid, result.findings
    assert len(result.path) == 2 and "CSCA-AUSTRIA" in (result.csca_subject or "")
    assert result.csca_country == "AT" and result.signing_time == SIGNED_AT
    codes = {f.code for f in result.findings}
    assert "no-data-groups" in codes and "revocation-not-checked" in codes
    # today the DS certificate (valid to 2026-08-07) has expired
    later = check_pa(sod_bytes, {}, trust=[csca], at=datetime(2026, 11, 21, tzinfo=UTC))
    assert not later.valid and "ds-validity" in {f.code for f in later.findings if f.severity is Severity.ERROR}
    # a CSCA that did not issue it is no trust anchor for it
    other = (ROOT / "x509" / "de_csca_100_2011_bp384.pem").read_bytes()
    assert not check_pa(sod_bytes, {}, trust=[other], at=datetime(2016, 8, 4, tzinfo=UTC)).valid


@pytest.mark.openssl
def test_openssl_verifies_the_sod_signature_and_refuses_the_explicit_parameter_chain(sod_bytes: bytes, tmp_path: Path) -> None:
    """OpenSSL (nobody here wrote it) agrees on the SOD signature; its certificate verifier
    refuses explicit EC parameters, which is why the DS → CSCA signature is ours alone."""
    from asn1crypto import pem

    from icao_pki.sod import unwrap_sod
    from tests.icao.test_certificate_support import openssl

    content_info = unwrap_sod(sod_bytes)[0]
    (tmp_path / "sod.der").write_bytes(content_info)
    ok = openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-out", str(tmp_path / "c"))
    assert ok.returncode == 0 and b"Verification successful" in ok.stderr
    assert (tmp_path / "c").read_bytes() == parse_sod(sod_bytes).signed.content
    (tmp_path / "ds.pem").write_bytes(pem.armor("CERTIFICATE", parse_sod(sod_bytes).signed.certificates[0].dump()))
    chain = openssl(
        "verify", "-partial_chain", "-attime", str(int(datetime(2016, 8, 4, tzinfo=UTC).timestamp())),
        "-CAfile", str(CSCA), str(tmp_path / "ds.pem"),
    )  # fmt: skip
    if chain.returncode == 0:
        return  # a newer OpenSSL accepting explicit parameters agrees with us
    assert b"explicit" in chain.stdout + chain.stderr
