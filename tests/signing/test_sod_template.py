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


class _Recording:
    """Wraps a signer and remembers every (data → output), so an ECDSA signature (random k)
    can be replayed: the fast path given build_sod's own signature must give build_sod's bytes."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.made: dict[bytes, bytes] = {}

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def sign(self, data: bytes, hash_algorithm, rsa_padding=RsaPadding.PKCS1V15) -> bytes:  # type: ignore[no-untyped-def]
        out = self.made[data] = self.inner.sign(data, hash_algorithm, rsa_padding)
        return out


def test_template_reproduces_build_sod_byte_for_byte_ecdsa(soft_p256, soft_bp256) -> None:  # type: ignore[no-untyped-def]
    from icao_pki.signature import plain_to_der
    from icao_pki.sod import LdsVersion

    csca = make_csca(soft_p256)
    ds = make_ds(soft_p256, csca, soft_bp256, DocumentType.PASSPORT)
    recording = _Recording(soft_bp256)
    reference = build_sod(dg_hashes=_hashes(0), ds_signer=recording, ds_certificate=ds.der, signing_time=T0)
    template = SodTemplate.from_reference(reference, HashAlgorithm.SHA256)
    assert template is not None
    cases = [(1, T0 + timedelta(seconds=1), None), (2, T0 + timedelta(days=40, microseconds=5), None),
             (3, T0.replace(year=2051), None), (4, T0 + timedelta(hours=3), LdsVersion("0108", "040000"))]
    for i, when, lds in cases:
        hashes = _hashes(i) | ({n: HashAlgorithm.SHA256.digest(b"%d" % n) for n in range(3, 17)} if i == 4 else {})
        expected = build_sod(dg_hashes=hashes, ds_signer=recording, ds_certificate=ds.der, signing_time=when,
                             lds_version=lds)  # fmt: skip
        econtent = build_lds_security_object(hashes, HashAlgorithm.SHA256, lds)
        attrs = template.signed_attributes(econtent, when)
        assert attrs in recording.made  # the fast path signs exactly the bytes build_sod signed
        assert template.assemble(econtent, when, plain_to_der(recording.made[attrs]), attrs) == expected
