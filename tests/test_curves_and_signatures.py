"""Curve table re-derived from OpenSSL; ECDSA signature formats; SPKI with explicit parameters."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from asn1crypto import keys
from hypothesis import given
from hypothesis import strategies as st

from icao_pki.curves import CURVES, UnknownCurveError, curve_by_name, curve_by_parameters, decode_point, encode_point
from icao_pki.signature import (
    EcPublicKey,
    PublicKeyError,
    SignatureError,
    build_spki,
    der_to_plain,
    load_spki,
    pad_plain,
    plain_to_der,
    verify_signature,
)
from icao_pki.signer import HashAlgorithm, RsaPadding
from tests.support.softsigner import SoftwareSigner

OPENSSL_NAMES = {"secp256r1": "prime256v1"}


@pytest.mark.openssl
@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.name)
def test_curve_table_matches_openssl(curve) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed")
    name = OPENSSL_NAMES.get(curve.name, curve.name)
    der = subprocess.run(
        ["openssl", "ecparam", "-name", name, "-param_enc", "explicit", "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    spec = keys.ECDomainParameters.load(der).chosen
    assert spec["field_id"]["parameters"].native == curve.p
    assert int.from_bytes(spec["curve"]["a"].native, "big") == curve.a
    assert int.from_bytes(spec["curve"]["b"].native, "big") == curve.b
    assert spec["base"].native == curve.generator
    assert spec["order"].native == curve.n
    assert spec["cofactor"].native == curve.h
    named = subprocess.run(["openssl", "ecparam", "-name", name, "-outform", "DER"], capture_output=True, check=True)
    assert keys.ECDomainParameters.load(named.stdout).chosen.dotted == curve.oid


def test_curve_lookup_by_parameters_and_errors() -> None:
    c = curve_by_name("brainpoolP384r1")
    assert curve_by_parameters(c.p, c.a, c.b, c.gx, c.gy, c.n, c.h) is c
    assert curve_by_parameters(c.p, c.a, c.b, c.gx, c.gy, c.n) is c  # cofactor optional (TR-03110)
    with pytest.raises(UnknownCurveError):
        curve_by_parameters(c.p, c.a, c.b, c.gx, c.gy, c.n, 2)
    with pytest.raises(UnknownCurveError):
        curve_by_name("sect163k1")
    with pytest.raises(UnknownCurveError, match="not on"):
        decode_point(c, encode_point(c, c.gx, c.gy + 1))


@pytest.mark.parametrize("spec", ["secp256r1", "brainpoolP256r1", "brainpoolP512r1", "secp521r1"])
def test_spki_explicit_parameters_round_trip(spec: str) -> None:
    signer = SoftwareSigner.generate(spec)
    named = load_spki(signer.public_key_info())
    explicit = build_spki(named, explicit_parameters=True)
    info = keys.PublicKeyInfo.load(explicit)
    params = info["algorithm"]["parameters"]
    assert params.name == "specified"
    assert params.chosen["cofactor"].native == 1
    assert params.chosen["base"].native[0] == 4  # uncompressed base point
    assert load_spki(explicit) == named
    # Verification works through the explicit form, including curves `cryptography` refuses explicitly.
    sig = signer.sign(b"data", HashAlgorithm.SHA256)
    verify_signature(load_spki(explicit), sig, b"data", HashAlgorithm.SHA256)
    with pytest.raises(SignatureError):
        verify_signature(load_spki(explicit), sig, b"other", HashAlgorithm.SHA256)


@pytest.mark.openssl
def test_spki_explicit_parameters_read_by_openssl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed")
    key = load_spki(SoftwareSigner.generate("brainpoolP256r1").public_key_info())
    path = tmp_path / "pub.der"
    path.write_bytes(build_spki(key, explicit_parameters=True))
    text = subprocess.run(
        ["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(path), "-text", "-noout"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Explicit parameters are printed in full (a named key prints only "ASN1 OID: ...").
    assert re.search(r"Prime:\s", text) and re.search(r"Cofactor:\s+1\b", text) and "ASN1 OID" not in text


def test_ecdsa_format_conversion_and_padding() -> None:
    c = curve_by_name("secp256r1")
    plain = (1).to_bytes(32, "big") + (2**255 + 5).to_bytes(32, "big")
    der = plain_to_der(plain)
    assert der_to_plain(der, c.order_bytes) == plain
    # A token that returns r and s at their minimal common length is re-padded to the order length.
    short = (0x1234).to_bytes(2, "big") + (0x5678).to_bytes(2, "big")
    assert pad_plain(short, c.order_bytes) == (0x1234).to_bytes(32, "big") + (0x5678).to_bytes(32, "big")
    with pytest.raises(SignatureError):
        pad_plain(b"\x01\x02\x03", c.order_bytes)  # odd length is not silently "fixed"
    with pytest.raises(SignatureError):
        der_to_plain(b"\x30\x02\x01", c.order_bytes)
    with pytest.raises(SignatureError):
        plain_to_der(b"\x01\x02\x03")


@given(st.integers(min_value=1, max_value=2**256 - 1), st.integers(min_value=1, max_value=2**256 - 1))
def test_plain_der_round_trip(r: int, s: int) -> None:
    plain = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert der_to_plain(plain_to_der(plain), 32) == plain


def test_verify_rejects_wrong_lengths_and_der_confusion(soft_p256: SoftwareSigner) -> None:
    key = load_spki(soft_p256.public_key_info())
    sig = soft_p256.sign(b"m", HashAlgorithm.SHA256)
    verify_signature(key, plain_to_der(sig), b"m", HashAlgorithm.SHA256, ecdsa_format="der")
    with pytest.raises(SignatureError, match="must be 64 bytes"):
        verify_signature(key, plain_to_der(sig), b"m", HashAlgorithm.SHA256, ecdsa_format="plain")
    with pytest.raises(SignatureError):
        verify_signature(key, sig, b"m", HashAlgorithm.SHA256, ecdsa_format="der")


def test_rsa_pss_and_pkcs1(soft_rsa2048: SoftwareSigner) -> None:
    key = load_spki(soft_rsa2048.public_key_info())
    for pad in RsaPadding:
        sig = soft_rsa2048.sign(b"m", HashAlgorithm.SHA256, pad)
        verify_signature(key, sig, b"m", HashAlgorithm.SHA256, rsa_padding=pad)
        other = RsaPadding.PSS if pad is RsaPadding.PKCS1V15 else RsaPadding.PKCS1V15
        with pytest.raises(SignatureError):
            verify_signature(key, sig, b"m", HashAlgorithm.SHA256, rsa_padding=other)


def test_brainpool_curves_cryptography_lacks_verify_with_ecdsa_package() -> None:
    import ecdsa
    from ecdsa.util import sigencode_strings_canonize

    for name, ecdsa_curve in (("brainpoolP224r1", ecdsa.curves.BRAINPOOLP224r1), ("brainpoolP320r1", ecdsa.curves.BRAINPOOLP320r1)):
        sk = ecdsa.SigningKey.generate(curve=ecdsa_curve)
        curve = curve_by_name(name)
        key = EcPublicKey(curve, b"\x04" + sk.get_verifying_key().to_string())
        r, s = sk.sign_digest(HashAlgorithm.SHA256.digest(b"m"), sigencode=sigencode_strings_canonize, allow_truncate=True)
        verify_signature(key, r + s, b"m", HashAlgorithm.SHA256)
        with pytest.raises(SignatureError):
            verify_signature(key, r + s, b"n", HashAlgorithm.SHA256)


def test_load_spki_rejects_garbage() -> None:
    with pytest.raises(PublicKeyError):
        load_spki(b"\x30\x03\x02\x01\x01")
