"""Deviation Lists (9303-12 §10): build, parse back, verify, tagging per the IMPLICIT TAGS module."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import core

from icao_pki.deviationlist import (
    Deviation,
    DeviationDescriptionItem,
    DeviationListBuildError,
    DeviationListDecodeError,
    DeviationListSignatureError,
    DeviationType,
    DocumentSelector,
    build_deviation_list,
    parse_deviation_list,
    verify_deviation_list,
)
from icao_pki.signer import HashAlgorithm
from tests.icao.test_cms_pki import T0, pki


def _deviations() -> list[Deviation]:
    p = pki()
    return [
        Deviation(
            documents=DocumentSelector.for_ds_certificate(
                p.ds.der,
                by="ski",
                document_type="P",
                issued_from=datetime(2026, 1, 5, tzinfo=UTC),
                issued_until=datetime(2026, 2, 5, tzinfo=UTC),
            ),
            descriptions=(
                DeviationDescriptionItem(
                    DeviationType.LDS_DG_HASH_WRONG.value,
                    description="DG11 hash computed over the value only",
                    parameters=core.Integer(11).dump(),
                ),
            ),
        ),
        Deviation(
            documents=DocumentSelector.for_ds_certificate(p.ds.der, by="issuer_serial", document_numbers=("C1234567", "C7654321")),
            descriptions=(DeviationDescriptionItem(DeviationType.MRZ_WRONG_CHECK_DIGIT.value),),
        ),
        Deviation(
            documents=DocumentSelector.for_ds_certificate(p.rsa_ds.der, by="digest"),
            descriptions=(
                DeviationDescriptionItem(DeviationType.CERT_OR_KEY_DS_ENCODING.value, national_use=core.UTF8String("VN-2026-01").dump()),
            ),
        ),
    ]


def _build(deviations: list[Deviation], **kwargs) -> bytes:
    p = pki()
    return build_deviation_list(
        deviations, signer=p.dls.signer, signer_certificate=p.dls.der, signer_csca_certificate=p.csca.der,
        signing_time=T0, **kwargs,
    )


def test_deviationlist_roundtrip() -> None:
    p = pki()
    deviations = _deviations()
    der = _build(deviations, digest_algorithm=HashAlgorithm.SHA256)
    dl = parse_deviation_list(der)
    assert dl.version == 0
    assert dl.digest_algorithm is HashAlgorithm.SHA256
    assert dl.signed.content_type == "2.23.136.1.1.7"
    assert sorted(dl.deviations, key=repr) == sorted(deviations, key=repr)
    result = verify_deviation_list(dl, trust_anchors=[p.csca.der])
    assert result.signing_time == T0
    assert result.certificate.dump() == p.dls.der


def test_deviationlist_implicit_tags() -> None:
    """documentType [0] → 0x80, SKI [2] → 0x82, issuingDate [4] → 0xA4, documentNumbers [5] → 0xA5,
    issuerAndSerialNumber [1] → 0xA1, certificateDigest [3] → 0x83, parameters [0] ANY → explicit 0xA0."""
    dl = parse_deviation_list(_build(_deviations(), digest_algorithm=HashAlgorithm.SHA256))
    content = dl.signed.content
    from icao_pki.deviationlist import DeviationListAsn1

    tags = set()
    for deviation in DeviationListAsn1.load(content)["deviations"]:
        tags.update(_child_tags(deviation["documents"].dump()))
        for desc in deviation["descriptions"]:
            tags.update(_child_tags(desc.dump()))
    assert {0x80, 0x82, 0xA4, 0xA5, 0xA1, 0x83, 0xA0, 0x06, 0x13}.issubset(tags)


def _child_tags(tlv: bytes) -> list[int]:
    """Tags of the direct children of a constructed DER TLV."""
    seq = core.Asn1Value.load(tlv, strict=True)
    body = seq.contents
    out, i = [], 0
    while i < len(body):
        tag = body[i]
        length = body[i + 1]
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(body[i + 2 : i + 2 + n], "big")
            i += 2 + n
        else:
            i += 2
        out.append(tag)
        i += length
    return out


def test_deviationlist_empty_is_allowed() -> None:
    dl = parse_deviation_list(_build([]))
    assert dl.deviations == ()
    assert dl.digest_algorithm is None


def test_deviationlist_build_refuses() -> None:
    p = pki()
    with pytest.raises(DeviationListBuildError, match="digestAlgorithm"):
        _build(_deviations())  # certificateDigest without the list's digestAlgorithm
    with pytest.raises(DeviationListBuildError, match="at least one criterion"):
        _build([Deviation(DocumentSelector(), (DeviationDescriptionItem(DeviationType.CHIP.value),))])
    with pytest.raises(DeviationListBuildError, match="description"):
        _build([Deviation(DocumentSelector(document_type="P"), ())])
    with pytest.raises(DeviationListBuildError, match="lastIssued"):
        _build([Deviation(DocumentSelector(issued_from=T0, issued_until=datetime(2020, 1, 1, tzinfo=UTC)), (DeviationDescriptionItem(DeviationType.CHIP.value),))])
    with pytest.raises(DeviationListBuildError, match=r"2\.23\.136\.1\.1\.8"):
        build_deviation_list([], signer=p.mls.signer, signer_certificate=p.mls.der, signer_csca_certificate=p.csca.der, signing_time=T0)


def test_deviationlist_untrusted_signer_refused() -> None:
    p = pki()
    dl = parse_deviation_list(_build([]))
    with pytest.raises(DeviationListSignatureError, match="trusted CSCA"):
        verify_deviation_list(dl, trust_anchors=[p.foreign_csca.der])


@pytest.mark.parametrize("garbage", [b"", b"\x30\x00", b"junk"])
def test_deviationlist_garbage(garbage: bytes) -> None:
    with pytest.raises(DeviationListDecodeError):
        parse_deviation_list(garbage)


@pytest.mark.openssl
def test_deviationlist_openssl_cms_verify(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("LOUD SKIP: openssl command line not installed (make test installs it)")
    p = pki()
    (tmp_path / "dl.der").write_bytes(_build(_deviations(), digest_algorithm=HashAlgorithm.SHA256))
    subprocess.run([openssl, "x509", "-inform", "DER", "-in", "/dev/stdin", "-out", str(tmp_path / "csca.pem")], input=p.csca.der, check=True)
    out = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "dl.der"), "-CAfile", str(tmp_path / "csca.pem"),
         "-purpose", "any", "-attime", str(int(T0.timestamp())), "-out", "/dev/null"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
