"""A small test PKI (CSCA, link, DS, ML signer, CRL) built with `cryptography`, plus tests of
`icao_pki.cms` itself.

The product's own certificate builders live in `icao_pki.certificate` (another module, with
explicit EC parameters); these helpers only need to produce valid-looking 9303-12 shaped
certificates for the CMS / SOD / PA tests, independently of that code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms as a_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from icao_pki.cms import (
    CmsBuildError,
    CmsDecodeError,
    CmsSignatureError,
    SignerIdKind,
    build_signed_data,
    load_certificate,
    parse_signed_data,
    verify_signer,
)
from icao_pki.signer import HashAlgorithm, RsaPadding
from tests.support.softsigner import SoftwareSigner

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ML_SIGNER_EKU = ObjectIdentifier("2.23.136.1.1.3")
DL_SIGNER_EKU = ObjectIdentifier("2.23.136.1.1.8")


def name(country: str, cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign(builder: x509.CertificateBuilder, issuer: SoftwareSigner) -> bytes:
    key = issuer.private_key
    if isinstance(key, rsa.RSAPrivateKey):
        cert = builder.sign(key, hashes.SHA256())
    else:
        cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.DER)


def _public(signer: SoftwareSigner):
    return signer.private_key.public_key()


@dataclass
class Issued:
    signer: SoftwareSigner
    der: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


def make_csca(
    signer: SoftwareSigner,
    *,
    country: str = "VN",
    cn: str = "CSCA Viet Nam",
    not_before: datetime = T0 - timedelta(days=30),
    years: int = 15,
) -> Issued:
    subject = name(country, cn)
    ski = x509.SubjectKeyIdentifier.from_public_key(_public(signer))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(_public(signer))
        .serial_number(int.from_bytes(os.urandom(12), "big") | 1)
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.PrivateKeyUsagePeriod(not_before, not_before + timedelta(days=365 * 5)), critical=False)
    )
    return Issued(signer, _sign(builder, signer))


def make_link(old: Issued, new_signer: SoftwareSigner, *, cn: str = "CSCA Viet Nam 2") -> Issued:
    """A CSCA link certificate: issuer = old CSCA, key = the new CSCA key."""
    old_cert = old.cert
    subject = name(old_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value, cn)
    nb = old_cert.not_valid_before_utc + timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(old_cert.subject)
        .public_key(_public(new_signer))
        .serial_number(int.from_bytes(os.urandom(12), "big") | 1)
        .not_valid_before(nb)
        .not_valid_after(nb + timedelta(days=365 * 15))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(_public(new_signer)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_public(old.signer)), critical=False)
    )
    return Issued(new_signer, _sign(builder, old.signer))


def make_self_signed_new_csca(link: Issued) -> Issued:
    """The self-signed certificate for the new key of `link` (same subject)."""
    subject = link.cert.subject
    nb = link.cert.not_valid_before_utc
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(_public(link.signer))
        .serial_number(int.from_bytes(os.urandom(12), "big") | 1)
        .not_valid_before(nb)
        .not_valid_after(nb + timedelta(days=365 * 15))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(_public(link.signer)), critical=False)
    )
    return Issued(link.signer, _sign(builder, link.signer))


def make_leaf(
    issuer: Issued,
    signer: SoftwareSigner,
    *,
    cn: str = "Document Signer 1",
    country: str | None = None,
    not_before: datetime = T0 - timedelta(days=1),
    pkup_days: int | None = 90,
    eku: ObjectIdentifier | None = None,
    serial: int | None = None,
    with_ski: bool = True,
    doc_types: tuple[str, ...] | None = ("P",),
) -> Issued:
    """A DS certificate (or an ML / DL signer with `eku`) issued by `issuer`."""
    issuer_cert = issuer.cert
    if country is None:
        country = issuer_cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(country, cn))
        .issuer_name(issuer_cert.subject)
        .public_key(_public(signer))
        .serial_number(serial or (int.from_bytes(os.urandom(12), "big") | 1))
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=365 * 10 + 90))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_public(issuer.signer)), critical=False)
    )
    if with_ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(_public(signer)), critical=False)
    if pkup_days is not None:
        builder = builder.add_extension(
            x509.PrivateKeyUsagePeriod(not_before, not_before + timedelta(days=pkup_days)), critical=False
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=True)
    elif doc_types is not None:  # DocumentTypeList 2.23.136.1.1.6.2 (DS only)
        from asn1crypto import core as a_core

        from icao_pki.extensions import document_type_list

        value = document_type_list(list(doc_types)).dump()
        assert isinstance(a_core.Sequence.load(value), a_core.Sequence)
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ObjectIdentifier("2.23.136.1.1.6.2"), value), critical=False
        )
    return Issued(signer, _sign(builder, issuer.signer))


def make_crl(
    issuer: Issued,
    revoked_serials: list[int] = (),  # type: ignore[assignment]
    *,
    this_update: datetime = T0,
    next_update: datetime | None = None,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=90))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_public(issuer.signer)), critical=False)
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this_update).build()
        )
    crl = builder.sign(issuer.signer.private_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def to_pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    import base64

    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


# --- a session-wide PKI shared by the icao tests -----------------------------------------------


class Pki:
    """CSCA (P-256) → DS (P-256), plus an RSA CSCA → RSA DS, an ML signer and a second country."""

    def __init__(self) -> None:
        self.csca = make_csca(SoftwareSigner.generate("secp256r1"))
        self.ds = make_leaf(self.csca, SoftwareSigner.generate("secp256r1"))
        self.rsa_csca = make_csca(SoftwareSigner.generate("rsa2048"), cn="CSCA Viet Nam RSA")
        self.rsa_ds = make_leaf(self.rsa_csca, SoftwareSigner.generate("rsa2048"), cn="Document Signer RSA")
        self.mls = make_leaf(self.csca, SoftwareSigner.generate("secp256r1"), cn="Master List Signer", eku=ML_SIGNER_EKU, pkup_days=None)
        self.dls = make_leaf(self.csca, SoftwareSigner.generate("secp256r1"), cn="Deviation List Signer", eku=DL_SIGNER_EKU, pkup_days=None)
        self.foreign_csca = make_csca(SoftwareSigner.generate("secp256r1"), country="DE", cn="csca-germany")


_PKI: Pki | None = None


def pki() -> Pki:
    global _PKI
    if _PKI is None:
        _PKI = Pki()
    return _PKI


# --- tests of icao_pki.cms ---------------------------------------------------------------------


@pytest.mark.parametrize("padding_", [RsaPadding.PKCS1V15, RsaPadding.PSS])
def test_cms_rsa_roundtrip(padding_: RsaPadding) -> None:
    p = pki()
    der = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=b"hello",
        signer=p.rsa_ds.signer,
        signer_certificate=p.rsa_ds.der,
        signing_time=T0,
        rsa_padding=padding_,
        certificates=[p.rsa_ds.der],
    )
    obj = parse_signed_data(der)
    result = verify_signer(obj)
    assert result.signing_time == T0
    assert result.certificate.dump() == p.rsa_ds.der
    assert obj.signer_infos[0]["signature_algorithm"]["algorithm"].native == (
        "rsassa_pss" if padding_ is RsaPadding.PSS else "sha256_rsa"
    )
    # the RSA signature verifies independently with cryptography, over the DER signed attributes
    signed_attrs = b"\x31" + obj.signer_infos[0]["signed_attrs"].dump()[1:]
    pad = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        if padding_ is RsaPadding.PSS
        else padding.PKCS1v15()
    )
    p.rsa_ds.signer.private_key.public_key().verify(
        obj.signer_infos[0]["signature"].native, signed_attrs, pad, hashes.SHA256()
    )


def test_cms_sid_by_ski_and_version() -> None:
    p = pki()
    der = build_signed_data(
        content_type="2.23.136.1.1.2",
        content=b"\x30\x00",
        signer=p.mls.signer,
        signer_certificate=p.mls.der,
        signing_time=T0,
        sid=SignerIdKind.SUBJECT_KEY_IDENTIFIER,
        certificates=[p.mls.der, p.csca.der],
    )
    obj = parse_signed_data(der)
    assert obj.version == 3
    si = obj.signer_infos[0]
    assert si["version"].native == "v3"
    assert si["sid"].name == "subject_key_identifier"
    assert verify_signer(obj).certificate.dump() == p.mls.der
    # digest algorithms carry no NULL parameters
    assert obj.signed_data["digest_algorithms"][0]["parameters"].native is None


def test_cms_refuses_signer_that_does_not_match_certificate() -> None:
    p = pki()
    with pytest.raises(CmsBuildError, match="not the key"):
        build_signed_data(
            content_type="1.2.840.113549.1.7.1",
            content=b"x",
            signer=p.ds.signer,
            signer_certificate=p.rsa_ds.der,
            signing_time=T0,
        )


def test_cms_tampered_content_detected() -> None:
    p = pki()
    der = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=b"original content",
        signer=p.ds.signer,
        signer_certificate=p.ds.der,
        signing_time=T0,
        certificates=[p.ds.der],
    )
    tampered = der.replace(b"original content", b"0riginal content")
    with pytest.raises(CmsSignatureError, match="messageDigest"):
        verify_signer(parse_signed_data(tampered))


def test_cms_non_der_signed_attributes_tolerated_as_warning() -> None:
    """Real Master Lists transmit signed attributes in an order other than DER's; the
    signature covers the DER form.  Tolerant mode accepts with a warning, strict refuses."""
    p = pki()
    der = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=b"payload",
        signer=p.ds.signer,
        signer_certificate=p.ds.der,
        signing_time=T0,
        certificates=[p.ds.der],
    )
    info = a_cms.ContentInfo.load(der)
    si = info["content"]["signer_infos"][0]
    children = [c.dump() for c in si["signed_attrs"]]
    assert len(children) == 3
    body_der = b"".join(children)
    body_unsorted = b"".join(reversed(children))
    assert body_der != body_unsorted
    tampered = der.replace(body_der, body_unsorted)
    assert tampered != der
    obj = parse_signed_data(tampered)
    result = verify_signer(obj, tolerant=True)
    assert [f.code for f in result.findings] == ["signed-attrs-not-der"]
    with pytest.raises(CmsSignatureError, match="re-encoding"):
        verify_signer(parse_signed_data(tampered), tolerant=False)


def test_cms_plain_ecdsa_tolerated_only_in_tolerant_mode() -> None:
    """pymrtd#11: some documents carry plain r||s in SignerInfo.signature."""
    from icao_pki.signature import der_to_plain

    p = pki()
    der = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=b"payload",
        signer=p.ds.signer,
        signer_certificate=p.ds.der,
        signing_time=T0,
        certificates=[p.ds.der],
    )
    info = a_cms.ContentInfo.load(der)
    si = info["content"]["signer_infos"][0]
    plain = der_to_plain(si["signature"].native, 32)
    info2 = a_cms.ContentInfo.load(der)
    info2["content"]["signer_infos"][0]["signature"] = plain
    rebuilt = info2.dump(force=True)
    result = verify_signer(parse_signed_data(rebuilt), tolerant=True)
    assert "ecdsa-plain-signature" in [f.code for f in result.findings]
    with pytest.raises(CmsSignatureError):
        verify_signer(parse_signed_data(rebuilt), tolerant=False)


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x30", b"\x30\x03\x02\x01\x00", b"\x77\x05hello", os.urandom(64), b"\x30\x80" + b"\x00" * 10],
)
def test_cms_garbage_raises_typed_error(garbage: bytes) -> None:
    with pytest.raises(CmsDecodeError):
        parse_signed_data(garbage)


def test_cms_load_certificate_rejects_garbage() -> None:
    with pytest.raises(CmsDecodeError):
        load_certificate(b"\x30\x03\x02\x01\x01")


def test_cms_hash_algorithms_allowed() -> None:
    p = pki()
    with pytest.raises(CmsBuildError, match="sha1"):
        build_signed_data(
            content_type="1.2.840.113549.1.7.1",
            content=b"x",
            signer=p.ds.signer,
            signer_certificate=p.ds.der,
            signing_time=T0,
            hash_algorithm=HashAlgorithm.SHA1,
        )


def test_cms_foreign_pss_parameters_verified_with_info() -> None:
    """Foreign RSASSA-PSS signatures with a 20-byte salt (RFC 4055 allows it) verify; the
    deviation from what we write is reported as info."""
    from asn1crypto import algos

    p = pki()
    der = build_signed_data(
        content_type="1.2.840.113549.1.7.1",
        content=b"foreign",
        signer=p.rsa_ds.signer,
        signer_certificate=p.rsa_ds.der,
        signing_time=T0,
        rsa_padding=RsaPadding.PSS,
        certificates=[p.rsa_ds.der],
    )
    info = a_cms.ContentInfo.load(der)
    si = info["content"]["signer_infos"][0]
    to_sign = b"\x31" + si["signed_attrs"].dump()[1:]
    signature = p.rsa_ds.signer.private_key.sign(
        to_sign, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256()
    )
    si["signature"] = signature
    si["signature_algorithm"] = algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                "salt_length": 20,
            },
        }
    )
    result = verify_signer(parse_signed_data(info.dump(force=True)))
    assert [f.code for f in result.findings] == ["pss-parameters"]
    si["signature"] = signature[:-1] + bytes([signature[-1] ^ 1])
    with pytest.raises(CmsSignatureError):
        verify_signer(parse_signed_data(info.dump(force=True)))
