"""The SOD worker signs a share of each chunk but the last two with its own login to the token: counted and
window-checked by the service first, verified like every other signature, never after the
service's check has gone stale, and nothing unverified or uncounted leaves when it fails."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from icao_pki.keystore import KeyStoreConfig, PinSource
from icao_pki.pa import verify_pa
from icao_pki.policy import DocumentType
from lifecycle_api.signing import DsSigningService, SodInput, usage_report
from lifecycle_api.signing import keys as keyq
from lifecycle_api.signing.service import DELEGATION_MARGIN, SigningFailed
from lifecycle_api.signing.worker import SodWorker
from tests.signing.support import SigningWorld, data_groups

pytestmark = pytest.mark.hsm


def _service(world: SigningWorld, keystore: Any = None, **kw: Any) -> DsSigningService:
    return DsSigningService(world.store, keystore or world.keystore, world.clock, world.policy, block_size=64,
                            verify_in="process", verify_chunk=16, pipeline_min=1, **kw)  # fmt: skip


def _worker_up(svc: DsSigningService, *, ready: bool = True) -> SodWorker:
    """A first batch starts the worker; wait for its answer to the login."""
    svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3)])
    worker = svc._worker
    assert worker is not None
    deadline = time.monotonic() + 20
    while worker.hsm_state == "opening" and time.monotonic() < deadline:
        worker.poll()
        if worker.can_sign:
            break
        time.sleep(0.01)
    assert worker.can_sign is ready, worker.hsm_state
    return worker


def _verify_all(world: SigningWorld, out: list, first: int) -> None:  # type: ignore[type-arg]
    for offset, signed in enumerate(out):
        verify_pa(signed.sod, data_groups(first + offset), trust=[world.csca_der], at=world.clock.now())


def test_worker_signs_a_share_counted_exactly_and_every_sod_verifies(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld)
    try:
        _worker_up(svc)
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 203)])
        assert svc.worker_signed > 0  # the worker signed part of the batch itself
        assert len(out) == 200 and len({s.sod for s in out}) == 200
        _verify_all(sworld, out, 3)
        assert svc._worker is not None and svc._worker.stats()["pending_chunks"] == 0  # every chunk ended
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (203, 0)


def test_worker_shares_the_first_chunk_too(sworld: SigningWorld) -> None:
    """While the service signs a batch's first chunk the worker has nothing to verify yet, so
    it signs the chunk's tail; the last two chunks stay the service's."""
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld)
    try:
        _worker_up(svc)
        before = svc.worker_signed
        # chunks of 4, 16 and 16 (`verify_chunk=16`): only the first may be shared
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 39)])
        assert 0 < svc.worker_signed - before <= 2  # at most half of the first chunk
        assert len(out) == 36
        _verify_all(sworld, out, 3)
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (39, 0)


def test_no_share_when_the_usage_window_ends_within_the_margin(sworld: SigningWorld) -> None:
    key_id = sworld.issuer.issue(DocumentType.PASSPORT)
    with sworld.store.transaction() as tx:
        ends = tx.key(key_id).usage_not_after
    assert ends is not None
    svc = _service(sworld)
    try:
        _worker_up(svc)
        sworld.clock.set(ends - DELEGATION_MARGIN + timedelta(seconds=1))
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 103)])
        assert svc.worker_signed == 0  # the service signed every one itself, each checked at its signature
        _verify_all(sworld, out, 3)
        sworld.clock.set(ends - DELEGATION_MARGIN - timedelta(hours=1))  # the margin holds again
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(103, 203)])
        assert svc.worker_signed > 0
    finally:
        svc.close()


@dataclass
class _PinlessForWorker:
    """The service's key store, configured with a PIN source the worker cannot read."""

    inner: Any
    config: KeyStoreConfig

    def signer(self, label: str) -> Any:
        return self.inner.signer(label)


def test_worker_that_cannot_log_in_signs_nothing_and_the_batch_is_whole(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    os.environ.pop("ICAO_PKI_TEST_NO_SUCH_PIN", None)
    config = KeyStoreConfig(token_label=sworld.keystore.config.token_label,
                            module_path=sworld.keystore.config.module_path,
                            pin=PinSource(env="ICAO_PKI_TEST_NO_SUCH_PIN"))  # fmt: skip
    svc = _service(sworld, keystore=_PinlessForWorker(sworld.keystore, config))
    try:
        worker = _worker_up(svc, ready=False)
        assert (worker.hsm_state or "").startswith("refused") and "ICAO_PKI_TEST_NO_SUCH_PIN" in worker.hsm_state
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 103)])
        assert svc.worker_signed == 0
        _verify_all(sworld, out, 3)
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (103, 0)


def test_worker_refuses_to_sign_once_the_services_check_is_stale(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    reference = DsSigningService(sworld.store, sworld.keystore, sworld.clock, sworld.policy, verify_in="inline")
    try:
        reference.sign_sod("passport", data_groups(0))  # a reference SOD for the template
        lease = next(iter(reference._leases.values()))
    finally:
        reference.close()
    with sworld.store.transaction() as tx:
        [view] = keyq.ds_keys(tx, DocumentType.PASSPORT)
    worker = SodWorker()
    try:
        worker.start()
        worker.open_hsm(sworld.keystore.config)
        template = worker.template(view.key_id, lease.reference, lease.certificate, "sha256", True, view.hsm_label)
        at = sworld.clock.now()
        chunk = worker.prep("sha256", at, [(data_groups(i), None, None) for i in (1, 2, 3)])
        worker.prepped(chunk)
        late = worker.sign(chunk, 0, 3, template, "sha256", "pkcs1v15", time.monotonic() - 1)
        on_time = worker.sign(chunk, 1, 3, template, "sha256", "pkcs1v15", time.monotonic() + 60)
        sods, failure, signed = worker.finished(late)
        good, none, made = worker.finished(on_time)
        assert worker.can_sign
    finally:
        worker.close()
    assert (sods, signed) == ([], 0) and failure is not None and failure[1].startswith("late")
    assert none is None and made == 2 and len(good) == 2
    for offset, sod in enumerate(good):
        verify_pa(sod, data_groups(2 + offset), trust=[sworld.csca_der], at=at)


def test_worker_killed_during_its_share_fails_closed_and_never_over_counts(
        sworld: SigningWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = _service(sworld)
    shares: list[int] = []
    original = SodWorker.sign

    def sign_then_die(self: SodWorker, chunk: int, start: int, end: int, *args: Any) -> int:
        finish_id = original(self, chunk, start, end, *args)
        shares.append(end - start)
        os.kill(self._process.pid, signal.SIGKILL)  # it may have signed some of them, or none
        self._process.wait()
        return finish_id

    try:
        _worker_up(svc)
        monkeypatch.setattr(SodWorker, "sign", sign_then_die)
        with pytest.raises(SigningFailed) as info:
            svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3, 103)])
        assert shares  # the worker had a share when it died
        partial = info.value.partial_sods  # type: ignore[attr-defined]
        _verify_all(sworld, partial, 3)  # only what was verified and answered for leaves
        monkeypatch.setattr(SodWorker, "sign", original)
        out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(103, 106)])  # a new worker
        _verify_all(sworld, out, 103)
    finally:
        svc.close()
    [usage] = usage_report(sworld.store)
    # the dead worker's share stays reserved, as a crash leaves it: wasted, never counted twice or exceeded
    assert usage.reserved_unused == shares[0]
    assert usage.signed + usage.reserved_unused <= 3 + 100 + 3
    assert usage.signed >= 3 + len(partial) + 3
