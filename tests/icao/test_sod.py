"""EF.SOD build/parse, interop with OpenSSL, and the real-world reference SODs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms as a_cms

from icao_pki.cms import verify_signer
from icao_pki.signer import HashAlgorithm, RsaPadding
from icao_pki.sod import (
    ID_LDS_SECURITY_OBJECT,
    LdsVersion,
    SodBuildError,
    SodDecodeError,
    build_sod,
    parse_sod,
    unwrap_sod,
)
from tests.icao.test_cms_pki import T0, pki

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "icao"


def dg(tag: int, body: bytes) -> bytes:
    assert len(body) < 0x80
    return bytes([tag, len(body)]) + body


def mrz_dg1(state: str = "VNM") -> bytes:
    mrz = (f"P<{state}NGUYEN<<VAN<A<<<<<<<<<<<<<<<<<<<<<<<<<<" + "C123456784VNM8001014M3001012<<<<<<<<<<<<<<04").encode()
    assert len(mrz) == 88
    inner = b"\x5f\x1f" + bytes([len(mrz)]) + mrz
    return bytes([0x61, len(inner)]) + inner


DATA_GROUPS = {1: mrz_dg1(), 2: dg(0x75, b"face image"), 14: dg(0x6E, b"security infos"), 15: dg(0x6F, b"AA key")}


def test_sod_build_parse_roundtrip_ecdsa() -> None:
    p = pki()
    sod = build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)
    assert sod[0] == 0x77
    parsed = parse_sod(sod)
    assert parsed.version == 0
    assert parsed.lds_version is None
    assert parsed.data_groups == [1, 2, 14, 15]
    assert parsed.dg_hashes[1] == hashlib.sha256(DATA_GROUPS[1]).digest()  # over the complete TLV
    assert parsed.signed.content_type == ID_LDS_SECURITY_OBJECT
    assert parsed.signed.version == 3
    assert parsed.findings == ()
    si = parsed.signed.signer_infos[0]
    assert si["sid"].name == "issuer_and_serial_number"
    assert si["version"].native == "v1"
    assert sorted(a["type"].native for a in si["signed_attrs"]) == ["content_type", "message_digest", "signing_time"]
    assert [c.dump() for c in parsed.certificates] == [p.ds.der]
    result = verify_signer(parsed.signed)
    assert result.signing_time == T0
    assert result.findings == ()
    # eContentType is registered with asn1crypto
    assert a_cms.ContentInfo.load(unwrap_sod(sod)[0])["content"]["encap_content_info"]["content_type"].native == (
        "ldsSecurityObject"
    )


@pytest.mark.parametrize("hash_algorithm", [HashAlgorithm.SHA224, HashAlgorithm.SHA384, HashAlgorithm.SHA512])
def test_sod_other_hashes(hash_algorithm: HashAlgorithm) -> None:
    p = pki()
    sod = build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0, hash_algorithm=hash_algorithm)
    parsed = parse_sod(sod)
    assert parsed.hash_algorithm is hash_algorithm
    assert parsed.dg_hashes[2] == hashlib.new(hash_algorithm.value, DATA_GROUPS[2]).digest()
    verify_signer(parsed.signed)


def test_sod_v1_with_lds_version_and_rsa_pss() -> None:
    p = pki()
    sod = build_sod(
        DATA_GROUPS,
        ds_signer=p.rsa_ds.signer,
        ds_certificate=p.rsa_ds.der,
        signing_time=T0,
        lds_version=LdsVersion("0108", "040000"),
        rsa_padding=RsaPadding.PSS,
    )
    parsed = parse_sod(sod)
    assert parsed.version == 1
    assert parsed.lds_version == LdsVersion("0108", "040000")
    params = parsed.signed.signer_infos[0]["signature_algorithm"]["parameters"].native
    assert params["salt_length"] == 32
    assert params["mask_gen_algorithm"]["parameters"]["algorithm"] == "sha256"
    verify_signer(parsed.signed)


def test_sod_from_precomputed_hashes_equals_from_data_groups() -> None:
    p = pki()
    hashes = {n: hashlib.sha256(v).digest() for n, v in DATA_GROUPS.items()}
    a = parse_sod(build_sod(dg_hashes=hashes, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0))
    assert a.dg_hashes == hashes


def test_sod_build_refuses_bad_inputs() -> None:
    p = pki()
    with pytest.raises(SodBuildError, match="DG2"):
        build_sod({1: DATA_GROUPS[1], 2: DATA_GROUPS[14]}, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)
    with pytest.raises(SodBuildError, match=r"2\.\.16"):
        build_sod({1: DATA_GROUPS[1]}, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)
    with pytest.raises(SodBuildError, match="either"):
        build_sod(ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)
    with pytest.raises(SodBuildError, match="not the key"):
        build_sod(DATA_GROUPS, ds_signer=p.rsa_ds.signer, ds_certificate=p.ds.der, signing_time=T0)
    with pytest.raises(SodBuildError, match="digit"):
        build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0, lds_version=LdsVersion("1.8", "4"))
    with pytest.raises(SodBuildError, match="TLV"):
        build_sod({1: DATA_GROUPS[1] + b"x", 2: DATA_GROUPS[2]}, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)


def test_sod_signing_time_generalized_from_2050() -> None:
    p = pki()
    when = datetime(2051, 3, 4, 5, 6, 7, tzinfo=UTC)
    parsed = parse_sod(build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=when))
    attr = next(a for a in parsed.signed.signer_infos[0]["signed_attrs"] if a["type"].native == "signing_time")
    assert attr["values"][0].name == "generalized_time"
    assert verify_signer(parsed.signed).signing_time == when


@pytest.mark.parametrize("garbage", [b"", b"\x77", b"\x77\x03\x30\x01\x00", b"\x78\x00", b"\x77\x84\x00\x00\x00\x01\x00"])
def test_sod_garbage_raises_decode_error(garbage: bytes) -> None:
    with pytest.raises(SodDecodeError):
        parse_sod(garbage)


def test_sod_content_type_id_data_tolerated() -> None:
    """Some CN passports use id-data as eContentType (pymrtd `_allowedSodContentTypes`)."""
    from icao_pki.cms import build_signed_data
    from icao_pki.sod import build_lds_security_object, wrap_sod

    p = pki()
    content = build_lds_security_object({n: hashlib.sha256(v).digest() for n, v in DATA_GROUPS.items()})
    ci = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=content,
        signer=p.ds.signer,
        signer_certificate=p.ds.der,
        signing_time=T0,
        certificates=[p.ds.der],
    )
    parsed = parse_sod(wrap_sod(ci))
    assert [f.code for f in parsed.findings] == ["sod-content-type-id-data"]
    assert parsed.data_groups == [1, 2, 14, 15]


# --- OpenSSL interop ---------------------------------------------------------------------------


def _openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.skip("LOUD SKIP: openssl command line not installed (make test installs it)")
    return exe


@pytest.mark.openssl
@pytest.mark.parametrize("which", ["ec", "rsa", "rsa-pss"])
def test_sod_openssl_cms_verify(tmp_path: Path, which: str) -> None:
    """`openssl cms -verify` checks the signature and messageDigest of our SOD and returns the
    LDSSecurityObject.  The chain DS → CSCA is verified with `-CAfile` as well: OpenSSL can
    build it here because the test CSCA uses named curves.  `-purpose any` because OpenSSL's
    default S/MIME purpose wants an emailProtection-capable certificate, which a DS is not."""
    openssl = _openssl()
    p = pki()
    leaf, root = (p.ds, p.csca) if which == "ec" else (p.rsa_ds, p.rsa_csca)
    padding_ = RsaPadding.PSS if which == "rsa-pss" else RsaPadding.PKCS1V15
    sod = build_sod(DATA_GROUPS, ds_signer=leaf.signer, ds_certificate=leaf.der, signing_time=T0, rsa_padding=padding_)
    (tmp_path / "sod.der").write_bytes(unwrap_sod(sod)[0])
    (tmp_path / "csca.der").write_bytes(root.der)
    subprocess.run([openssl, "x509", "-inform", "DER", "-in", str(tmp_path / "csca.der"), "-out", str(tmp_path / "csca.pem")], check=True)
    out = subprocess.run(
        [openssl, "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-CAfile", str(tmp_path / "csca.pem"),
         "-purpose", "any", "-attime", str(int(T0.timestamp())), "-out", str(tmp_path / "content.der")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "Verification successful" in out.stderr
    assert (tmp_path / "content.der").read_bytes() == parse_sod(sod).signed.content


@pytest.mark.openssl
def test_sod_openssl_rejects_tampered(tmp_path: Path) -> None:
    openssl = _openssl()
    p = pki()
    sod = unwrap_sod(build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0))[0]
    digest = hashlib.sha256(DATA_GROUPS[2]).digest()
    tampered = sod.replace(digest, bytes(32))
    (tmp_path / "sod.der").write_bytes(tampered)
    out = subprocess.run(
        [openssl, "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-out", "/dev/null"],
        capture_output=True, text=True,
    )
    assert out.returncode != 0


# --- real-world reference SODs (tests/vectors/icao/SOURCES.md) ---------------------------------


def test_sod_bsi_tr03105_reference() -> None:
    """BSI TR-03105-5 reference EF.SOD: RSASSA-PSS, SHA-256, v0, signedAttrs without signingTime."""
    sod = parse_sod((VECTORS / "bsi_tr03105" / "EF_SOD.bin").read_bytes())
    assert sod.version == 0
    assert sod.data_groups == [1, 2, 3, 4, 14]
    si = sod.signed.signer_infos[0]
    assert si["signature_algorithm"]["algorithm"].native == "rsassa_pss"
    digest = next(a for a in si["signed_attrs"] if a["type"].native == "message_digest")["values"][0].native
    assert digest.hex().upper().startswith("B46A0D05")
    result = verify_signer(sod.signed)
    assert result.signing_time is None
    assert result.certificate.subject.native["common_name"] == "HJP PB DS"
    for number in (1, 14):
        data = (VECTORS / "bsi_tr03105" / f"Datagroup{number}.bin").read_bytes()
        assert hashlib.sha256(data).digest() == sod.dg_hashes[number]


def test_sod_gmrtd_austria_brainpool_explicit() -> None:
    """Austrian passport SOD (gmrtd fixtures): DS key brainpoolP256r1 with explicit domain
    parameters, ecdsa-with-SHA256, signingTime present."""
    sod = parse_sod((VECTORS / "gmrtd" / "AT_EF_SOD.bin").read_bytes())
    assert sod.data_groups == [1, 2, 3, 11, 12, 14]
    result = verify_signer(sod.signed)
    assert result.signing_time == datetime(2023, 3, 17, 13, 40, 18, tzinfo=UTC)
    spki = result.certificate["tbs_certificate"]["subject_public_key_info"]["algorithm"]["parameters"]
    assert spki.name == "specified"


def test_sod_gmrtd_germany_v1_sha384() -> None:
    """German passport SOD (gmrtd fixtures): LDSSecurityObject v1 with LDSVersionInfo 0108 /
    040000, SHA-384, DS key brainpoolP384r1 with explicit parameters."""
    sod = parse_sod((VECTORS / "gmrtd" / "DE_EF_SOD.bin").read_bytes())
    assert sod.version == 1
    assert sod.lds_version == LdsVersion("0108", "040000")
    assert sod.hash_algorithm is HashAlgorithm.SHA384
    assert sod.findings == ()
    result = verify_signer(sod.signed)
    assert result.certificate.subject.native["common_name"] == "Document Signer Passport"


@pytest.mark.openssl
@pytest.mark.parametrize("name", ["bsi_tr03105/EF_SOD.bin", "gmrtd/AT_EF_SOD.bin", "gmrtd/DE_EF_SOD.bin"])
def test_sod_reference_vectors_openssl_agrees(tmp_path: Path, name: str) -> None:
    """OpenSSL agrees the reference SOD signatures verify.  `-noverify`: their CSCAs are not
    public in text form (BSI's HJP test CSCA is not distributed), so no chain can be built."""
    openssl = _openssl()
    (tmp_path / "sod.der").write_bytes(unwrap_sod((VECTORS / name).read_bytes())[0])
    out = subprocess.run(
        [openssl, "cms", "-verify", "-noverify", "-inform", "DER", "-in", str(tmp_path / "sod.der"), "-out", "/dev/null"],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
