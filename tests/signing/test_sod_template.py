"""The fast path must produce exactly what `build_sod` produces (RSA PKCS#1 v1.5 is deterministic)."""

from __future__ import annotations

from datetime import timedelta

from icao_pki.policy import DocumentType
from icao_pki.signer import HashAlgorithm, RsaPadding
from icao_pki.sod import build_lds_security_object, build_sod, parse_sod
from lifecycle_api.signing.sod_template import SodTemplate
from tests.icao.test_certificate_support import T0, make_csca, make_ds


def _hashes(i: int) -> dict[int, bytes]:
    return {1: HashAlgorithm.SHA256.digest(b"dg1-%d" % i), 2: HashAlgorithm.SHA256.digest(b"dg2-%d" % i)}


def test_template_reproduces_build_sod_byte_for_byte(soft_p256, soft_rsa2048) -> None:  # type: ignore[no-untyped-def]
    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, soft_rsa2048, DocumentType.PASSPORT)
    reference = build_sod(dg_hashes=_hashes(0), ds_signer=soft_rsa2048, ds_certificate=ds.der, signing_time=T0)
    template = SodTemplate.from_reference(reference, HashAlgorithm.SHA256)
    assert template is not None
    for i, when in ((1, T0 + timedelta(seconds=1)), (2, T0 + timedelta(days=40, microseconds=5))):
        expected = build_sod(dg_hashes=_hashes(i), ds_signer=soft_rsa2048, ds_certificate=ds.der, signing_time=when)
        econtent = build_lds_security_object(_hashes(i))
        attrs = template.signed_attributes(econtent, when)
        signature = soft_rsa2048.sign(attrs, HashAlgorithm.SHA256, RsaPadding.PKCS1V15)
        assert template.assemble(econtent, when, signature) == expected


def test_template_ecdsa_parses_and_carries_the_new_content(soft_p256, soft_bp256) -> None:  # type: ignore[no-untyped-def]
    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, soft_bp256, DocumentType.PASSPORT)
    reference = build_sod(dg_hashes=_hashes(0), ds_signer=soft_bp256, ds_certificate=ds.der, signing_time=T0)
    template = SodTemplate.from_reference(reference, HashAlgorithm.SHA256)
    assert template is not None
    econtent = build_lds_security_object(_hashes(5))
    attrs = template.signed_attributes(econtent, T0)
    from icao_pki.signature import plain_to_der

    sod = parse_sod(template.assemble(econtent, T0, plain_to_der(soft_bp256.sign(attrs, HashAlgorithm.SHA256))))
    assert sod.dg_hashes == _hashes(5)


def test_template_refuses_what_it_cannot_reproduce(soft_p256, soft_rsa2048) -> None:  # type: ignore[no-untyped-def]
    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, soft_rsa2048, DocumentType.PASSPORT)
    reference = build_sod(dg_hashes=_hashes(0), ds_signer=soft_rsa2048, ds_certificate=ds.der, signing_time=T0)
    assert SodTemplate.from_reference(reference + b"\x00", HashAlgorithm.SHA256) is None
    assert SodTemplate.from_reference(b"\x77\x03\x30\x01\x00", HashAlgorithm.SHA256) is None
