"""CSCA Master Lists: build (strict), import (tolerant, per-entry findings), OpenSSL interop."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as a_cms

from icao_pki.masterlist import (
    MasterListBuildError,
    MasterListDecodeError,
    MasterListSignatureError,
    build_master_list,
    check_master_list,
    parse_master_list,
    verify_master_list,
)
from tests.icao.test_cms_pki import (
    T0,
    make_csca,
    make_leaf,
    make_link,
    make_self_signed_new_csca,
    pki,
)
from tests.support.softsigner import SoftwareSigner


def _foreign(entries: list[bytes]) -> bytes:
    """A Master List as a sloppy foreign producer might make it: any entries, no checks."""
    from asn1crypto import core

    from icao_pki.cms import SignerIdKind, build_signed_data
    from icao_pki.masterlist import CscaMasterList

    p = pki()
    content = CscaMasterList({"version": 0, "cert_list": [core.Any.load(e) for e in entries]}).dump(force=True)
    return build_signed_data(
        content_type="2.23.136.1.1.2",
        content=content,
        signer=p.mls.signer,
        signer_certificate=p.mls.der,
        signing_time=T0,
        sid=SignerIdKind.SUBJECT_KEY_IDENTIFIER,
        certificates=[p.mls.der, p.csca.der],
    )


def _build(cscas: list[bytes]) -> bytes:
    p = pki()
    return build_master_list(
        cscas, signer=p.mls.signer, signer_certificate=p.mls.der, signer_csca_certificate=p.csca.der, signing_time=T0
    )


def test_masterlist_build_profile() -> None:
    p = pki()
    der = _build([p.csca.der, p.foreign_csca.der])
    ml = parse_master_list(der)
    assert ml.version == 0
    assert set(ml.entries) == {p.csca.der, p.foreign_csca.der}
    assert ml.signed.content_type == "2.23.136.1.1.2"
    assert ml.signed.version == 3
    si = ml.signed.signer_infos[0]
    assert si["sid"].name == "subject_key_identifier"
    assert sorted(a["type"].native for a in si["signed_attrs"]) == ["content_type", "message_digest", "signing_time"]
    assert sorted(c.dump() for c in ml.signed.certificates) == sorted([p.mls.der, p.csca.der])  # DER SET OF order
    assert a_cms.ContentInfo.load(der)["content"]["encap_content_info"]["content_type"].native == "cscaMasterList"


def test_masterlist_import_own_list_with_anchor() -> None:
    p = pki()
    report = verify_master_list(parse_master_list(_build([p.csca.der, p.foreign_csca.der])), trust_anchors=[p.csca.der], at=T0)
    assert report.signature_valid and report.valid
    assert report.signing_time == T0
    assert report.signer_csca_subject is not None and "CSCA Viet Nam" in report.signer_csca_subject
    assert [e.kind for e in report.entries] == ["root", "root"]
    assert all(e.valid for e in report.entries)
    assert {e.country for e in report.entries} == {"VN", "DE"}
    assert [f.code for f in report.findings] == []
    assert set(report.trusted_certificates) == {p.csca.der, p.foreign_csca.der}


def test_masterlist_without_anchor_is_self_asserted_warning() -> None:
    p = pki()
    report = check_master_list(parse_master_list(_build([p.csca.der])), at=T0)
    assert report.valid
    assert "ml-signer-self-asserted" in [f.code for f in report.findings]


def test_masterlist_wrong_anchor_is_error() -> None:
    p = pki()
    report = check_master_list(parse_master_list(_build([p.csca.der])), trust_anchors=[p.foreign_csca.der])
    assert not report.valid
    assert "ml-signer-path" in [f.code for f in report.findings]
    with pytest.raises(MasterListSignatureError, match="chain"):
        verify_master_list(parse_master_list(_build([p.csca.der])), trust_anchors=[p.foreign_csca.der])


def test_masterlist_link_certificates() -> None:
    """Roots verify by self-signature, link certificates against their issuer in the list;
    a link whose issuer is absent is a warning, a forged link an error."""
    p = pki()
    old = make_csca(SoftwareSigner.generate("secp256r1"), country="FR", cn="CSCA France")
    link = make_link(old, SoftwareSigner.generate("rsa2048"), cn="CSCA France 2")  # algorithm change EC -> RSA
    new_root = make_self_signed_new_csca(link)
    orphan = make_link(make_csca(SoftwareSigner.generate("secp256r1"), country="IT", cn="CSCA Italy"), SoftwareSigner.generate("secp256r1"), cn="CSCA Italy 2")
    forged = make_link(old, SoftwareSigner.generate("secp256r1"), cn="CSCA France 3")
    forged_der = bytearray(forged.der)
    forged_der[-5] ^= 0x01  # break the signature
    report = check_master_list(
        parse_master_list(_build([old.der, link.der, new_root.der, orphan.der, bytes(forged_der)])), trust_anchors=[p.csca.der]
    )
    assert report.valid  # the list verifies; entry problems are per entry
    by_subject = {e.subject: e for e in report.entries}
    france2 = [e for e in report.entries if e.subject and "CSCA France 2" in e.subject]
    assert sorted(e.kind for e in france2) == ["link", "root"]
    assert all(e.valid for e in france2)
    italy = next(e for s, e in by_subject.items() if s and "CSCA Italy 2" in s)
    assert italy.kind == "link" and italy.valid
    assert [f.code for f in italy.findings] == ["link-issuer-absent"]
    france3 = next(e for s, e in by_subject.items() if s and "CSCA France 3" in s)
    assert not france3.valid
    assert "link-signature" in [f.code for f in france3.findings]
    assert bytes(forged_der) not in report.trusted_certificates


def test_masterlist_tolerates_missing_extensions_and_bad_entries() -> None:
    """Real-world CSCAs lacking SKI etc. are warnings; an unparsable entry is an error on that
    entry only; the import does not crash."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from tests.icao.test_cms_pki import name

    bare_key = SoftwareSigner.generate("secp256r1")
    subject = name("HU", "CSCA Hungary")
    bare = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(bare_key.private_key.public_key())
        .serial_number(7)
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=3650))
        .sign(bare_key.private_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    report = check_master_list(parse_master_list(_foreign([pki().csca.der, bare, b"\x30\x03\x02\x01\x05"])), at=T0)
    assert report.valid  # the list's own signature is fine
    hu = next(e for e in report.entries if e.country == "HU")
    codes = [f.code for f in hu.findings]
    assert "ski-missing" in codes and "basic-constraints-missing" in codes and "key-usage-missing" in codes
    assert hu.valid  # warnings only
    broken = next(e for e in report.entries if e.kind == "unparsable")
    assert not broken.valid and [f.code for f in broken.findings] == ["certificate-decode"]
    assert len(report.entries) == 3
    assert set(report.trusted_certificates) == {pki().csca.der, bare}


def test_masterlist_bad_signature_reported_not_raised() -> None:
    p = pki()
    der = _build([p.csca.der, p.foreign_csca.der])
    tampered = der.replace(p.foreign_csca.der[-40:], bytes(40))
    report = check_master_list(parse_master_list(tampered), at=T0)
    assert not report.signature_valid and not report.valid
    assert "ml-signature" in [f.code for f in report.findings]
    assert report.trusted_certificates == []
    with pytest.raises(MasterListSignatureError, match="messageDigest"):
        verify_master_list(parse_master_list(tampered))


def test_masterlist_non_der_signed_attributes_warning() -> None:
    """The ICAO PKD / German ML quirk: signed attributes transmitted in non-DER order."""
    p = pki()
    der = _build([p.csca.der])
    si = a_cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    children = [c.dump() for c in si["signed_attrs"]]
    tampered = der.replace(b"".join(children), b"".join(reversed(children)))
    report = check_master_list(parse_master_list(tampered), trust_anchors=[p.csca.der], at=T0)
    assert report.valid
    assert "signed-attrs-not-der" in [f.code for f in report.findings]


def test_masterlist_build_refuses() -> None:
    p = pki()
    with pytest.raises(MasterListBuildError, match=r"2\.23\.136\.1\.1\.3"):
        build_master_list([p.csca.der], signer=p.ds.signer, signer_certificate=p.ds.der, signer_csca_certificate=p.csca.der, signing_time=T0)
    with pytest.raises(MasterListBuildError, match="not a CA"):
        _build([p.ds.der])
    with pytest.raises(MasterListBuildError, match="not issued"):
        build_master_list([p.csca.der], signer=p.mls.signer, signer_certificate=p.mls.der, signer_csca_certificate=p.rsa_csca.der, signing_time=T0)
    other = make_leaf(p.csca, SoftwareSigner.generate("secp256r1"), cn="Other MLS", eku=None)
    with pytest.raises(MasterListBuildError):
        build_master_list([p.csca.der], signer=p.ds.signer, signer_certificate=other.der, signer_csca_certificate=p.csca.der, signing_time=T0)


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"\x30\x82\x01\x00" + b"\x00" * 10, b"not a master list"])
def test_masterlist_garbage_typed_error(garbage: bytes) -> None:
    with pytest.raises(MasterListDecodeError):
        parse_master_list(garbage)


def test_masterlist_wrong_content_type() -> None:
    from icao_pki.sod import build_sod, unwrap_sod
    from tests.icao.test_sod import DATA_GROUPS

    p = pki()
    sod = unwrap_sod(build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0))[0]
    with pytest.raises(MasterListDecodeError, match="cscaMasterList"):
        parse_master_list(sod)


@pytest.mark.openssl
def test_masterlist_openssl_cms_verify(tmp_path: Path) -> None:
    """`openssl cms -verify` accepts our Master List, including the ML signer → CSCA chain
    (`-CAfile` = our CSCA; `-purpose any` because the ML signer's critical EKU is ICAO's,
    not an S/MIME one)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("LOUD SKIP: openssl command line not installed (make test installs it)")
    p = pki()
    der = _build([p.csca.der, p.foreign_csca.der])
    (tmp_path / "ml.der").write_bytes(der)
    subprocess.run([openssl, "x509", "-inform", "DER", "-in", "/dev/stdin", "-out", str(tmp_path / "csca.pem")], input=p.csca.der, check=True)
    out = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "ml.der"), "-CAfile", str(tmp_path / "csca.pem"),
         "-purpose", "any", "-attime", str(int(T0.timestamp())), "-out", str(tmp_path / "content.der")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "content.der").read_bytes() == parse_master_list(der).signed.content
    # and refuses it against the wrong CSCA
    subprocess.run([openssl, "x509", "-inform", "DER", "-in", "/dev/stdin", "-out", str(tmp_path / "other.pem")], input=p.foreign_csca.der, check=True)
    out = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "ml.der"), "-CAfile", str(tmp_path / "other.pem"),
         "-purpose", "any", "-attime", str(int(T0.timestamp())), "-out", "/dev/null"],
        capture_output=True, text=True,
    )
    assert out.returncode != 0


def test_masterlist_same_name_link_is_a_link() -> None:
    old = make_csca(SoftwareSigner.generate("secp256r1"), country="NL", cn="CSCA NL")
    link = make_link(old, SoftwareSigner.generate("secp256r1"), cn="CSCA NL")
    new_root = make_self_signed_new_csca(link)
    report = check_master_list(parse_master_list(_foreign([old.der, link.der, new_root.der])), at=T0)
    kinds = {e.der: e.kind for e in report.entries}
    assert kinds == {old.der: "root", link.der: "link", new_root.der: "root"}
    assert all(e.valid for e in report.entries), [e.findings for e in report.entries]
