"""Art. 30–32 checks on CMS SignedData documents, each failure with its reason."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509

from fixtures.orgpki import RevokedEntry, build_demo_org_pki
from lifecycle_api.signed_documents import (
    CertificateNotForSigning,
    CertificateNotValidAtSigningTime,
    CertificateRevoked,
    MalformedDocument,
    OrgPkiTrust,
    RevocationStatusUnknown,
    SignatureInvalid,
    SignerNotRegistered,
    SigningTimeInvalid,
    UntrustedPath,
    WrongParty,
    build_signed_document,
    parse_signed_document,
    verify_signed_document,
)
from tests.api.orgpki_support import OrgPkiForTests
from tests.support.softsigner import SoftwareSigner

SIGNED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONTENT = '{"request":"ds","ministry":"Bộ Công an"}'.encode()


def _trust(org_pki: OrgPkiForTests) -> OrgPkiTrust:
    return OrgPkiTrust(roots=(org_pki.pki.root.der,), intermediates=(org_pki.pki.sub_ca.der,))


def _crls(org_pki: OrgPkiForTests, revoked: list[RevokedEntry] | None = None, this_update: datetime = SIGNED_AT):
    sub = org_pki.pki.sub_ca_crl(this_update=this_update - timedelta(hours=1), number=7, revoked=revoked or [])
    root = org_pki.pki.root_crl(this_update=this_update - timedelta(days=1), number=3)
    table = {org_pki.pki.sub_ca.fingerprint_sha256: sub, org_pki.pki.root.fingerprint_sha256: root}
    return table.get


def _verify(org_pki: OrgPkiForTests, der: bytes, *, org: str = "agency", now: datetime = SIGNED_AT, crls=None,
            registered: dict[str, int] | None = None, expected: int = 1, trust: OrgPkiTrust | None = None, **kw):
    ident = org_pki.identity(org)
    table = registered if registered is not None else {ident.certificate.fingerprint_sha256: 1}
    return verify_signed_document(
        der, expected_organisation_id=expected, now=now, trust=trust or _trust(org_pki),
        crls=crls or _crls(org_pki), registered=table.get, **kw,
    )


def _sign(org_pki: OrgPkiForTests, *, org: str = "agency", at: datetime = SIGNED_AT, content: bytes = CONTENT, **kw) -> bytes:
    ident = org_pki.identity(org)
    return build_signed_document(content, ident.signer, ident.certificate.der, at, **kw)


def test_signed_document_valid_returns_organisation_and_path(org_pki: OrgPkiForTests) -> None:
    result = _verify(org_pki, _sign(org_pki))
    assert result.organisation_id == 1
    assert result.content == CONTENT
    assert result.signing_time == SIGNED_AT
    assert len(result.path) == 3 and "Ban Cơ yếu Chính phủ" in result.path[2]


def test_signed_document_rsa_signer(org_pki: OrgPkiForTests) -> None:
    org_pki.identity("rsa-agency", spec="rsa2048")
    assert _verify(org_pki, _sign(org_pki, org="rsa-agency"), org="rsa-agency").organisation_id == 1


def test_signed_document_tampered_content_is_bad_signature(org_pki: OrgPkiForTests) -> None:
    der = _sign(org_pki)
    tampered = der.replace(b'"ds"', b'"is"')
    assert tampered != der
    with pytest.raises(SignatureInvalid) as info:
        _verify(org_pki, tampered)
    assert info.value.reason == "bad-signature"


def test_signed_document_tampered_signed_attributes_is_bad_signature(org_pki: OrgPkiForTests) -> None:
    der = _sign(org_pki)
    stamp = SIGNED_AT.strftime("%y%m%d%H%M%SZ").encode()
    assert der.count(stamp) == 1
    with pytest.raises(SignatureInvalid):
        _verify(org_pki, der.replace(stamp, (SIGNED_AT - timedelta(hours=1)).strftime("%y%m%d%H%M%SZ").encode()))


def test_signed_document_not_registered(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(SignerNotRegistered):
        _verify(org_pki, _sign(org_pki), registered={})


def test_signed_document_wrong_party(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(WrongParty) as info:
        _verify(org_pki, _sign(org_pki), expected=2)
    assert info.value.data["signer_organisation_id"] == 1


def test_signed_document_signing_time_in_future(org_pki: OrgPkiForTests) -> None:
    der = _sign(org_pki, at=SIGNED_AT + timedelta(hours=1))
    with pytest.raises(SigningTimeInvalid):
        _verify(org_pki, der, now=SIGNED_AT)


def test_signed_document_too_old_when_max_age_set(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(SigningTimeInvalid):
        _verify(org_pki, _sign(org_pki), now=SIGNED_AT + timedelta(days=2), max_age=timedelta(days=1))


def test_signed_document_expired_signer(org_pki: OrgPkiForTests) -> None:
    ident = org_pki.identity("agency")
    after_expiry = ident.certificate.asn1.not_valid_after + timedelta(days=1)
    der = _sign(org_pki, at=after_expiry)
    with pytest.raises(CertificateNotValidAtSigningTime) as info:
        _verify(org_pki, der, now=after_expiry, crls=_crls(org_pki, this_update=after_expiry))
    assert info.value.reason == "certificate-not-valid-at-signing-time"


def test_signed_document_signed_while_valid_still_verifies_after_expiry(org_pki: OrgPkiForTests) -> None:
    ident = org_pki.identity("agency")
    later = ident.certificate.asn1.not_valid_after + timedelta(days=30)
    assert _verify(org_pki, _sign(org_pki), now=later).signing_time == SIGNED_AT


def test_signed_document_revoked_before_signing(org_pki: OrgPkiForTests) -> None:
    serial = org_pki.identity("agency").certificate.serial
    crls = _crls(org_pki, revoked=[RevokedEntry(serial, SIGNED_AT - timedelta(days=1))], this_update=SIGNED_AT + timedelta(hours=2))
    with pytest.raises(CertificateRevoked) as info:
        _verify(org_pki, _sign(org_pki), crls=crls, now=SIGNED_AT + timedelta(hours=2))
    assert info.value.reason == "certificate-revoked"


def test_signed_document_revoked_after_signing_still_valid(org_pki: OrgPkiForTests) -> None:
    serial = org_pki.identity("agency").certificate.serial
    crls = _crls(org_pki, revoked=[RevokedEntry(serial, SIGNED_AT + timedelta(minutes=30))], this_update=SIGNED_AT + timedelta(hours=2))
    assert _verify(org_pki, _sign(org_pki), crls=crls, now=SIGNED_AT + timedelta(hours=2)).organisation_id == 1


def test_signed_document_no_crl_is_unknown_status(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(RevocationStatusUnknown):
        _verify(org_pki, _sign(org_pki), crls=lambda fp: None)


def test_signed_document_crl_forged_by_other_key_is_unknown_status(org_pki: OrgPkiForTests) -> None:
    other = build_demo_org_pki(SoftwareSigner.generate("secp256r1"), SoftwareSigner.generate("secp256r1"),
                               not_before=datetime(2025, 1, 1, tzinfo=UTC))
    forged = other.sub_ca_crl(this_update=SIGNED_AT, number=99)
    good = _crls(org_pki)
    sub_fp = org_pki.pki.sub_ca.fingerprint_sha256
    with pytest.raises(RevocationStatusUnknown, match="does not verify"):
        _verify(org_pki, _sign(org_pki), crls=lambda fp: forged if fp == sub_fp else good(fp))


def test_signed_document_stale_crl_is_unknown_status(org_pki: OrgPkiForTests) -> None:
    old = _crls(org_pki, this_update=SIGNED_AT - timedelta(days=30))
    with pytest.raises(RevocationStatusUnknown, match="does not cover"):
        _verify(org_pki, _sign(org_pki), crls=old)


def test_signed_document_wrong_root(org_pki: OrgPkiForTests) -> None:
    other = build_demo_org_pki(SoftwareSigner.generate("secp256r1"), SoftwareSigner.generate("secp256r1"),
                               not_before=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(UntrustedPath) as info:
        _verify(org_pki, _sign(org_pki), trust=OrgPkiTrust(roots=(other.root.der,), intermediates=(other.sub_ca.der,)))
    assert info.value.reason == "untrusted-path"


def test_signed_document_certificate_from_lookalike_ca_is_untrusted(org_pki: OrgPkiForTests) -> None:
    """Same names as the real sub-CA, different key: the path check must verify signatures, not names."""
    other = build_demo_org_pki(SoftwareSigner.generate("secp256r1"), SoftwareSigner.generate("secp256r1"),
                               not_before=datetime(2025, 1, 1, tzinfo=UTC))
    signer = SoftwareSigner.generate("secp256r1")
    cert = other.issue(signer, common_name="Kẻ mạo danh", uid="MST:0000000001", not_before=datetime(2025, 6, 1, tzinfo=UTC))
    assert x509.Certificate.load(cert.der).issuer == org_pki.pki.sub_ca.asn1.subject
    der = build_signed_document(CONTENT, signer, cert.der, SIGNED_AT)
    with pytest.raises(UntrustedPath):
        _verify(org_pki, der, registered={cert.fingerprint_sha256: 1})


def test_signed_document_ca_key_usage_cannot_sign_documents(org_pki: OrgPkiForTests) -> None:
    from fixtures.orgpki import build_certificate, organisation_name

    signer = SoftwareSigner.generate("secp256r1")
    sub = org_pki.pki.sub_ca.asn1
    cert = build_certificate(
        issuer_signer=org_pki.pki.sub_ca_signer, issuer_name=sub.subject, issuer_spki=sub.public_key.dump(),
        subject_name=organisation_name(common_name="Chỉ ký chứng thư", province="Hà Nội", uid="MST:7"),
        subject_spki=signer.public_key_info(), not_before=datetime(2025, 6, 1, tzinfo=UTC),
        not_after=datetime(2027, 6, 1, tzinfo=UTC), ca=True,
    )
    der = build_signed_document(CONTENT, signer, cert.der, SIGNED_AT)
    with pytest.raises(CertificateNotForSigning) as info:
        _verify(org_pki, der, registered={cert.fingerprint_sha256: 1})
    assert info.value.reason == "key-usage"


def test_signed_document_detached_round_trip(org_pki: OrgPkiForTests) -> None:
    der = _sign(org_pki, detached=True)
    assert CONTENT not in der
    assert _verify(org_pki, der, detached_content=CONTENT).content == CONTENT
    with pytest.raises(SignatureInvalid):
        _verify(org_pki, der, detached_content=CONTENT + b" ")


def test_signed_document_garbage_is_malformed(org_pki: OrgPkiForTests) -> None:
    with pytest.raises(MalformedDocument):
        parse_signed_document(b"\x30\x03\x02\x01\x01")
    with pytest.raises(MalformedDocument):
        parse_signed_document(b"not der at all")


@pytest.mark.openssl
def test_signed_document_openssl_cms_verify_accepts_it(org_pki: OrgPkiForTests, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command line not installed (make test installs it)")
    # the intermediate travels in the document, as a client would send it
    (tmp_path / "doc.der").write_bytes(_sign(org_pki, extra_certificates=(org_pki.pki.sub_ca.der,)))
    (tmp_path / "root.der").write_bytes(org_pki.pki.root.der)
    (tmp_path / "sub.der").write_bytes(org_pki.pki.sub_ca.der)
    for name in ("root", "sub"):
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", tmp_path / f"{name}.der", "-out", tmp_path / f"{name}.pem"], check=True)
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", tmp_path / "doc.der", "-CAfile", tmp_path / "root.pem",
         "-purpose", "any", "-attime", str(int(SIGNED_AT.timestamp()))],
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == CONTENT
