"""Our certificates against tools nobody here wrote: OpenSSL (subprocess) and pyca/cryptography.

What OpenSSL 3.0 supports, measured here (OpenSSL 3.0.x, Debian bookworm):

* RSA CSCA → RSA DS: `openssl verify -x509_strict` accepts the chain.
* Any EC key with EXPLICIT domain parameters (9303-12 §4.1.6 mandates them) — P-256 and
  brainpool alike: `openssl verify` refuses every chain longer than one certificate with
  error 94 X509_V_ERR_EC_KEY_EXPLICIT_PARAMS, before it looks at any signature, and no
  option turns that check off.  So for EC chains we (1) assert that 94 is the ONLY
  complaint (any other error fails the test), and (2) let OpenSSL check the signature
  itself: `openssl x509 -pubkey` extracts the CSCA's explicit-parameter key and
  `openssl dgst -verify` verifies the DS signature over the TBS bytes — that works for
  P-256, brainpoolP256r1 and brainpoolP384r1.  pyca/cryptography additionally verifies
  the explicit-parameter P-256 chain (it maps explicit P-256/384/521 to the named curve).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509 as cx509

from icao_pki.certificate import Certificate, build_ds_certificate, parse_certificate
from icao_pki.policy import DocumentType, Role
from icao_pki.signer import KeyKind
from tests.icao.test_certificate_support import CRL_URL, DS_NAME, T0, make_csca, make_ds, openssl, windows, write_pem
from tests.support.softsigner import SoftwareSigner

AT = T0 + timedelta(days=10)


def _verify(tmp_path: Path, csca: Certificate, ds: Certificate, *extra: str, at=AT) -> tuple[int, str]:
    ca = write_pem(tmp_path / "csca.pem", csca)
    leaf = write_pem(tmp_path / "ds.pem", ds)
    result = openssl("verify", "-attime", str(int(at.timestamp())), *extra, "-CAfile", str(ca), str(leaf))
    return result.returncode, (result.stdout + result.stderr).decode()


def _openssl_checks_signature(tmp_path: Path, issuer: Certificate, cert: Certificate, tbs: bytes | None = None) -> bool:
    pub = tmp_path / "issuer-pub.pem"
    extracted = openssl("x509", "-in", str(write_pem(tmp_path / "issuer.pem", issuer)), "-pubkey", "-noout")
    assert extracted.returncode == 0, extracted.stderr.decode()
    pub.write_bytes(extracted.stdout)
    (tmp_path / "tbs.der").write_bytes(tbs if tbs is not None else cert.tbs_der)
    (tmp_path / "sig.der").write_bytes(cert.signature)
    hash_name = cert.signature_algorithm.hash_algo
    args = ["dgst", f"-{hash_name}", "-verify", str(pub), "-signature", str(tmp_path / "sig.der")]
    if cert.signature_algorithm.signature_algo == "rsassa_pss":
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
    result = openssl(*args, str(tmp_path / "tbs.der"))
    return result.returncode == 0 and b"Verified OK" in result.stdout


@pytest.fixture(scope="module")
def rsa_pair() -> tuple[SoftwareSigner, SoftwareSigner]:
    return SoftwareSigner.generate("rsa2048"), SoftwareSigner.generate("rsa2048")


def test_certificate_openssl_verify_accepts_rsa_chain(tmp_path: Path, rsa_pair) -> None:
    csca_key, ds_key = rsa_pair
    csca = make_csca(csca_key)
    ds = make_ds(csca_key, csca, ds_key)
    code, text = _verify(tmp_path, csca, ds, "-x509_strict")
    assert code == 0 and "ds.pem: OK" in text, text
    # ... and it can fail: after the DS expired, and against another CSCA.
    code, text = _verify(tmp_path, csca, ds, at=ds.not_after + timedelta(days=1))
    assert code != 0 and "expired" in text
    other = make_csca(ds_key)
    code, text = _verify(tmp_path, other, ds)
    assert code != 0


def test_certificate_openssl_verify_accepts_rsa_pkcs1_chain(tmp_path: Path, rsa_pair) -> None:
    from icao_pki.signer import RsaPadding

    csca_key, ds_key = rsa_pair
    csca = make_csca(csca_key, rsa_padding=RsaPadding.PKCS1V15)
    ds = make_ds(csca_key, csca, ds_key, rsa_padding=RsaPadding.PKCS1V15)
    code, text = _verify(tmp_path, csca, ds, "-x509_strict")
    assert code == 0, text


@pytest.mark.parametrize("curve", ["secp256r1", "brainpoolP256r1", "brainpoolP384r1"])
def test_certificate_openssl_on_explicit_parameter_ec_chains(tmp_path: Path, curve: str) -> None:
    csca_key, ds_key = SoftwareSigner.generate(curve), SoftwareSigner.generate(curve)
    csca = make_csca(csca_key)
    ds = make_ds(csca_key, csca, ds_key)
    code, text = _verify(tmp_path, csca, ds)
    errors = set(re.findall(r"error (\d+) at", text))
    # OpenSSL 3.0 refuses explicit EC parameters in any chain (error 94) — and nothing else.
    assert (code == 0 and not errors) or errors == {"94"}, text
    # The self-signed CSCA alone is a one-certificate chain, which OpenSSL does verify.
    code, text = _verify(tmp_path, csca, csca)
    assert code == 0, text
    # OpenSSL verifies the DS signature with the CSCA's explicit-parameter key ...
    assert _openssl_checks_signature(tmp_path, csca, ds)
    assert _openssl_checks_signature(tmp_path, csca, csca)
    # ... and rejects it over altered TBS bytes.
    altered = bytearray(ds.tbs_der)
    altered[-1] ^= 1
    assert not _openssl_checks_signature(tmp_path, csca, ds, bytes(altered))


def test_certificate_openssl_checks_link_signature_across_algorithm_change(tmp_path: Path, rsa_pair) -> None:
    from icao_pki.certificate import build_csca_link_certificate
    from icao_pki.policy import Window, add_months

    old_key, _ = rsa_pair
    new_key = SoftwareSigner.generate("brainpoolP256r1")
    old = make_csca(old_key)
    start = T0 + timedelta(days=400)
    link = parse_certificate(
        build_csca_link_certificate(
            old_key, old, new_key.public_key_info(), validity=Window(start, old.not_after),
            private_key_usage=Window(start, add_months(start, 60)), document_type=DocumentType.PASSPORT,
            crl_distribution_points=[CRL_URL],
        )
    )  # fmt: skip
    assert _openssl_checks_signature(tmp_path, old, link)


def test_certificate_cryptography_verifies_explicit_p256_chain(soft_p256: SoftwareSigner) -> None:
    ds_key = SoftwareSigner.generate("secp256r1")
    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, ds_key)
    theirs_csca = cx509.load_der_x509_certificate(csca.der)
    theirs_ds = cx509.load_der_x509_certificate(ds.der)
    theirs_ds.verify_directly_issued_by(theirs_csca)
    theirs_csca.verify_directly_issued_by(theirs_csca)


def test_certificate_openssl_asn1parse_shows_explicit_parameters(tmp_path: Path, soft_bp256: SoftwareSigner) -> None:
    csca = make_csca(soft_bp256)
    path = tmp_path / "csca.der"
    path.write_bytes(csca.der)
    result = openssl("asn1parse", "-inform", "DER", "-in", str(path))
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    assert ":id-ecPublicKey" in text
    assert ":prime-field" in text
    lines = text.splitlines()
    field = next(i for i, line in enumerate(lines) if ":prime-field" in line)
    # version 1, fieldID{prime-field, p}, curve{a, b}, base (04||X||Y), order, cofactor
    tail = [line.split(":", 3)[-1] for line in lines[field + 1 : field + 8]]
    assert tail[-1].strip() == "01", lines[field : field + 8]  # the cofactor is there
    assert any(line.strip().startswith("048BD2AEB9") for line in tail)  # brainpoolP256r1 G, uncompressed
    shown = openssl("x509", "-inform", "DER", "-in", str(path), "-noout", "-text").stdout.decode()
    assert "Field Type: prime-field" in shown and re.search(r"Cofactor:\s+1 ", shown)
    assert "2.23.136.1.1.6.2" not in shown  # CSCA has no DocumentTypeList


def test_certificate_openssl_reads_profile_fields(tmp_path: Path, soft_p256: SoftwareSigner) -> None:
    ds_key = SoftwareSigner.generate("secp256r1")
    csca = make_csca(soft_p256, DocumentType.IDCARD)
    ds = make_ds(soft_p256, csca, ds_key, DocumentType.IDCARD)
    path = write_pem(tmp_path / "csca.pem", csca)
    text = openssl("x509", "-in", str(path), "-noout", "-text").stdout.decode()
    assert "CA:TRUE, pathlen:0" in text
    assert re.search(r"Key Usage: critical\s+Certificate Sign, CRL Sign", text)
    assert "Not After : Nov 21 08:00:00 2053 GMT" in text  # GeneralizedTime read correctly
    assert "Private Key Usage Period" in text and "DirName:/L=VNM" in text
    text = openssl("x509", "-in", str(write_pem(tmp_path / "ds.pem", ds)), "-noout", "-text").stdout.decode()
    assert re.search(r"Key Usage: critical\s+Digital Signature", text)
    # A DS has no basicConstraints ("CA:" alone could also appear in hex dumps of key bytes).
    assert "2.23.136.1.1.6.2:" in text and "X509v3 Basic Constraints" not in text
    assert "URI:" + CRL_URL in text


# --- keys in the HSM (SoftHSM2) ---------------------------------------------------------------


@pytest.mark.hsm
@pytest.mark.parametrize(("csca_spec", "ds_spec"), [("brainpoolP256r1", "brainpoolP256r1"), ("rsa2048", "rsa2048")])
def test_certificate_hsm_issued_chain_verifies(tmp_path: Path, keystore, csca_spec: str, ds_spec: str) -> None:
    csca_signer = keystore.generate_key(keystore.next_label("passport", "csca"), csca_spec)
    ds_signer = keystore.generate_key(keystore.next_label("passport", "ds"), ds_spec)
    csca = make_csca(csca_signer)
    validity, pkup = windows(DocumentType.PASSPORT, Role.DS)
    ds = parse_certificate(
        build_ds_certificate(
            csca_signer, csca, ds_signer.public_key_info(), DS_NAME, validity=validity, private_key_usage=pkup,
            document_type=DocumentType.PASSPORT, crl_distribution_points=[CRL_URL],
        )
    )  # fmt: skip
    ds.verify_issued_by(csca)
    csca.verify_issued_by(csca)
    assert _openssl_checks_signature(tmp_path, csca, ds)
    if csca_signer.kind is KeyKind.RSA and ds_signer.kind is KeyKind.RSA:
        code, text = _verify(tmp_path, csca, ds, "-x509_strict")
        assert code == 0, text
    else:
        assert csca.tbs["subject_public_key_info"]["algorithm"]["parameters"].name == "specified"
