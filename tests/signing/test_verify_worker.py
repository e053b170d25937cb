"""The SOD worker process: prepares, verifies and assembles while the service signs; no unverified SOD leaves."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icao_pki.pa import verify_pa
from icao_pki.policy import DocumentType
from icao_pki.signer import HashAlgorithm, RsaPadding
from icao_pki.sod import hash_data_groups
from lifecycle_api.signing import DsSigningService, SodInput, usage_report
from lifecycle_api.signing import keys as keyq
from lifecycle_api.signing.service import InvalidSodInput, SigningFailed, _chunks
from lifecycle_api.signing.worker import SodWorker, WorkerUnavailable
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
                            verify_in="process", verify_chunk=8, pipeline_min=1, **kw)  # fmt: skip


@given(start=st.integers(0, 40), count=st.integers(0, 300), size=st.integers(1, 80))
def test_chunks_cover_every_item_once_in_order_with_a_short_first_chunk(start: int, count: int, size: int) -> None:
    chunks = _chunks(start, start + count, size)
    assert [i for chunk in chunks for i in chunk] == list(range(start, start + count))
    assert all(len(chunk) <= size for chunk in chunks)
    assert len(chunks[0]) == min(count, max(1, size // 4))  # the signing thread's wait for the worker
    assert all(len(chunk) == size for chunk in chunks[1:-1])


def test_worker_made_sods_pass_pa_and_are_counted(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld, block_size=16)
    try:
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(30)])
        assert svc._worker is not None and svc._worker.alive  # the worker prepared, verified and assembled
        hashed = svc.sign_batch("passport", [SodInput(dg_hashes=hash_data_groups(data_groups(i), HashAlgorithm.SHA256))
                                             for i in range(30, 33)])  # fmt: skip
    finally:
        svc.close()
    assert svc._worker is None
    for i in (0, 1, 2, 3, 10, 11, 29):  # the first (build_sod), chunk edges (1-2, 3-10, 11-18, …), the last
        verify_pa(out[i].sod, data_groups(i), trust=[sworld.csca_der], at=sworld.clock.now())
    verify_pa(hashed[2].sod, data_groups(32), trust=[sworld.csca_der], at=sworld.clock.now())
    assert len({signed.sod for signed in out}) == 30
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (33, 0)


def test_bad_item_anywhere_in_a_pipelined_batch_reserves_and_signs_nothing(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld, block_size=16)
    items = [SodInput(data_groups(i)) for i in range(40)]
    wrong_tag = dict(data_groups(37))
    wrong_tag[2] = wrong_tag[1]  # DG1's TLV given as DG2
    try:
        for bad, message in ((SodInput(wrong_tag), "which is DG1"), (SodInput({1: b"\x61\x00"}), "2..16"),
                             (SodInput({1: b"\x61", 2: b"\x75\x00"}), "DG1: truncated TLV"),
                             (SodInput(dg_hashes={1: b"x" * 32, 2: 5}), "not bytes")):  # fmt: skip
            with pytest.raises(InvalidSodInput, match=message):
                svc.sign_batch("passport", [*items[:37], bad, *items[38:]])
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (0, 0)


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
        assert svc._worker is not None
        first = svc._worker._process
        first.kill()
        first.wait()
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(10, 20)])
        assert svc._worker._process is not first and svc._worker.alive
        verify_pa(out[-1].sod, data_groups(19), trust=[sworld.csca_der], at=sworld.clock.now())
    finally:
        svc.close()


@dataclass
class _KillingKeyStore:
    """Kills the service's worker process (SIGKILL) just before the n-th signature."""

    inner: Any
    kill_at: int
    service: DsSigningService | None = None
    calls: int = 0

    def signer(self, label: str) -> Any:
        store = self
        inner = self.inner.signer(label)

        class Killing:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def sign(self, data: bytes, hash_algorithm: HashAlgorithm,
                     rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:  # fmt: skip
                store.calls += 1
                if store.calls == store.kill_at:
                    assert store.service is not None and store.service._worker is not None
                    process = store.service._worker._process
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                return inner.sign(data, hash_algorithm, rsa_padding)

        return Killing()


def test_worker_killed_mid_batch_fails_closed_and_counts_every_signature(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    killing = _KillingKeyStore(sworld.keystore, kill_at=30)
    svc = _service(sworld, keystore=killing, block_size=64)
    killing.service = svc
    try:
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3)])  # template + worker up
        with pytest.raises(SigningFailed, match="could not be verified") as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 43)])
        partial = info.value.partial_sods  # type: ignore[attr-defined]
        assert len(partial) < 27  # nothing the dead worker had not answered for leaves
        for offset, signed in enumerate(partial):
            verify_pa(signed.sod, data_groups(3 + offset), trust=[sworld.csca_der], at=sworld.clock.now())
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(43, 45)])  # a new worker
        verify_pa(out[-1].sod, data_groups(44), trust=[sworld.csca_der], at=sworld.clock.now())
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (killing.calls, 0)  # every HSM signature counted


def test_worker_lost_mid_batch_fails_closed(sworld: SigningWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    # the worker signs no share here (a lost share stays reserved: test_worker_signing.py)
    svc = _service(sworld, block_size=64, delegate=False)
    try:
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3)])

        def lost(self: SodWorker, chunk: int) -> Any:  # the worker died before answering
            self.close()
            raise WorkerUnavailable("SOD worker failed: connection lost")

        original = SodWorker.finished
        monkeypatch.setattr(SodWorker, "finished", lost)
        with pytest.raises(SigningFailed, match="could not be verified") as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 23)])
        assert info.value.partial_sods == []  # type: ignore[attr-defined]  # nothing unverified leaves
        monkeypatch.setattr(SodWorker, "finished", original)
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(23, 25)])
        verify_pa(out[-1].sod, data_groups(24), trust=[sworld.csca_der], at=sworld.clock.now())
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (25, 0)


def test_worker_reports_the_first_bad_signature_by_index(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = DsSigningService(sworld.store, sworld.keystore, sworld.clock, sworld.policy, verify_in="inline")
    try:
        reference = svc.sign_sod("passport", data_groups(0))  # a lease's first SOD: build_sod's
    finally:
        svc.close()
    with sworld.store.transaction() as tx:
        [view] = keyq.ds_keys(tx, DocumentType.PASSPORT)
    assert view.certificate_der is not None
    signer = sworld.keystore.signer(view.hsm_label)
    worker = SodWorker()
    try:
        worker.start()
        template = worker.template(view.key_id, reference.sod, view.certificate_der, "sha256", True)
        at = sworld.clock.now()
        chunk = worker.prep("sha256", at, [(data_groups(i), None, None) for i in (1, 2, 3)])
        attrs = worker.prepped(chunk)
        signatures = [signer.sign(a, HashAlgorithm.SHA256) for a in attrs]
        first = worker.finish(chunk, 0, [(template, signatures[0])], last=False)  # item 0 of the chunk
        rest = worker.finish(chunk, 1, [(template, signatures[0]), (template, signatures[2])])  # items 1, 2
        good, none, _ = worker.finished(first)
        sods, failure, _ = worker.finished(rest)
    finally:
        worker.close()
    assert none is None and len(good) == 1
    verify_pa(good[0], data_groups(1), trust=[sworld.csca_der], at=at)
    assert failure is not None and failure[0] == 0 and "does not verify" in failure[1]  # item 1: the part's first
    assert sods == []


def test_bad_signature_inline_stops_the_batch_at_it(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = DsSigningService(sworld.store, _SpoilingKeyStore(sworld.keystore, bad_call=12), sworld.clock,
                           sworld.policy, block_size=32, verify_in="inline")  # fmt: skip
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
    if ec:  # what OpenSSL must refuse on the direct path, as `verify_signature` does
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

        r, s = decode_dss_signature(signature)
        n = key.curve.n  # type: ignore[union-attr]
        for bad in (encode_dss_signature(r + n, s), encode_dss_signature(r, n), encode_dss_signature(0, s),
                    _with_padded_r(signature), signature + b"\x00"):
            with pytest.raises(CmsSignatureError):
                check(bad, b"signed attributes")


def _with_padded_r(der: bytes) -> bytes:
    """The same ECDSA-Sig-Value with a superfluous 0x00 before r: valid BER, not DER."""
    assert der[0] == 0x30 and der[1] < 0x80 and der[2] == 0x02
    r_len = der[3]
    body = b"\x02" + bytes((r_len + 1,)) + b"\x00" + der[4:4 + r_len] + der[4 + r_len:]
    return b"\x30" + bytes((len(body),)) + body
