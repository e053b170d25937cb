"""Fast-path signatures verified in a worker process: same guarantee, no unverified SOD leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from icao_pki.pa import verify_pa
from icao_pki.policy import DocumentType
from icao_pki.signer import HashAlgorithm, RsaPadding
from lifecycle_api.signing import DsSigningService, SodInput, usage_report
from lifecycle_api.signing import keys as keyq
from lifecycle_api.signing.service import SigningFailed
from lifecycle_api.signing.verifier import ProcessVerifier, VerifierUnavailable
from tests.signing.support import SigningWorld, data_groups

pytestmark = pytest.mark.hsm


@dataclass
class _Spoiling:
    """A signer that returns a corrupted signature on its n-th call (a broken token)."""

    inner: Any
    bad_call: int
    calls: int = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def sign(self, data: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:
        self.calls += 1
        raw = self.inner.sign(data, hash_algorithm, rsa_padding)
        if self.calls == self.bad_call:
            return raw[:-1] + bytes([raw[-1] ^ 0x01])
        return raw


@dataclass
class _SpoilingKeyStore:
    inner: Any
    bad_call: int

    def signer(self, label: str) -> Any:
        return _Spoiling(self.inner.signer(label), self.bad_call)


def _service(world: SigningWorld, keystore: Any = None, **kw: Any) -> DsSigningService:
    return DsSigningService(world.store, keystore or world.keystore, world.clock, world.policy,
                            verify_in="process", verify_chunk=8, **kw)  # fmt: skip


def test_worker_verified_sods_pass_pa_and_are_counted(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld, block_size=16)
    try:
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(30)])
        assert svc._verifier is not None and svc._verifier._process.poll() is None  # the worker did the checking
    finally:
        svc.close()
    assert svc._verifier is None
    for i in (0, 1, 17, 29):
        verify_pa(out[i].sod, data_groups(i), trust=[sworld.csca_der], at=sworld.clock.now())
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (30, 0)


def test_bad_signature_found_by_the_worker_stops_the_batch_at_it(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    # call 1 is build_sod's (verified inline); call 12 is the 12th SOD, on the fast path
    svc = _service(sworld, keystore=_SpoilingKeyStore(sworld.keystore, bad_call=12), block_size=32)
    try:
        with pytest.raises(SigningFailed, match="does not verify") as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(20)])
    finally:
        svc.close()
    partial = info.value.partial_sods  # type: ignore[attr-defined]
    assert len(partial) == 11  # only those before the bad one, all verified
    for i, signed in enumerate(partial):
        verify_pa(signed.sod, data_groups(i), trust=[sworld.csca_der], at=sworld.clock.now())
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (20, 0)  # every HSM signature is counted, none exceeds


def test_dead_worker_is_replaced_before_a_batch(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld, block_size=64)
    try:
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(10)])
        assert svc._verifier is not None
        first = svc._verifier._process
        first.kill()
        first.wait()
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(10, 20)])
        assert svc._verifier._process is not first
        verify_pa(out[-1].sod, data_groups(19), trust=[sworld.csca_der], at=sworld.clock.now())
    finally:
        svc.close()


def test_worker_lost_mid_batch_fails_closed(sworld: SigningWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld, block_size=64)
    try:
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3)])

        def lost(self: ProcessVerifier) -> None:  # the worker died before answering
            self.close()
            raise VerifierUnavailable("signature verifier failed: connection reset")

        original = ProcessVerifier.collect
        monkeypatch.setattr(ProcessVerifier, "collect", lost)
        with pytest.raises(SigningFailed, match="could not be verified") as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 23)])
        assert info.value.partial_sods == []  # type: ignore[attr-defined]  # nothing unverified leaves
        monkeypatch.setattr(ProcessVerifier, "collect", original)
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(23, 25)])
        verify_pa(out[-1].sod, data_groups(24), trust=[sworld.csca_der], at=sworld.clock.now())
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (25, 0)


def test_verifier_reports_bad_pairs_by_index(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    with sworld.store.transaction() as tx:
        [view] = keyq.ds_keys(tx, DocumentType.PASSPORT)
    assert view.certificate_der is not None
    certificate = view.certificate_der
    signer = sworld.keystore.signer(view.hsm_label)
    from asn1crypto import algos

    from icao_pki.signature import plain_to_der

    algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}).dump()
    good = plain_to_der(signer.sign(b"one", HashAlgorithm.SHA256))
    verifier = ProcessVerifier()
    try:
        job = verifier.submit(certificate, algorithm, [(good, b"one"), (good, b"two")])
        [(index, why)] = verifier.collect()[job]
    finally:
        verifier.close()
    assert index == 1 and "does not verify" in why


def test_bad_signature_inline_stops_the_batch_at_it(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = DsSigningService(sworld.store, _SpoilingKeyStore(sworld.keystore, bad_call=12), sworld.clock,
                           sworld.policy, block_size=32)  # fmt: skip
    try:
        with pytest.raises(SigningFailed, match="does not verify") as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(20)])
    finally:
        svc.close()
    assert len(info.value.partial_sods) == 11  # type: ignore[attr-defined]
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (12, 0)  # the bad one was made, so it counts


@pytest.mark.parametrize("spec", ["secp256r1", "brainpoolP256r1", "rsa2048"])
@pytest.mark.parametrize("padding", [RsaPadding.PKCS1V15, RsaPadding.PSS])
def test_signature_checker_accepts_good_and_refuses_bad(spec: str, padding: RsaPadding) -> None:
    from asn1crypto import algos

    from icao_pki.cms import CmsSignatureError
    from icao_pki.signature import load_spki, plain_to_der
    from lifecycle_api.signing.verifier import signature_checker
    from tests.support.softsigner import SoftwareSigner

    signer = SoftwareSigner.generate(spec)
    key = load_spki(signer.public_key_info())
    ec = not spec.startswith("rsa")
    if ec:
        algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    elif padding is RsaPadding.PSS:
        algorithm = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            "salt_length": 32, "trailer_field": "trailer_field_bc"}})
    else:
        algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"})
    raw = signer.sign(b"signed attributes", HashAlgorithm.SHA256, padding)
    signature = plain_to_der(raw) if ec else raw
    check = signature_checker(key, algorithm)
    check(signature, b"signed attributes")
    with pytest.raises(CmsSignatureError):
        check(signature, b"other attributes")
