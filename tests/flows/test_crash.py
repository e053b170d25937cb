"""A crash between HSM key creation and the database commit leaves no usable orphan key and no
half-issued certificate once start-up recovery (`Authority.recover`) has run."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from icao_pki.keystore import KeyNotFound
from icao_pki.policy import DocumentType
from icao_pki.signer import HashAlgorithm
from lifecycle_api.auth import Caller
from lifecycle_api.certificate_flows import create_ds_key
from lifecycle_api.store import HsmOperationKind, HsmOperationState, PartyType, RequestState, StoreTx
from lifecycle_api.workflow import act_and_record
from tests.flows.pki import PkiWorld
from tests.support.hsm import TEST_PIN_ENV

pytestmark = pytest.mark.hsm
REPO = Path(__file__).resolve().parents[2]


class PowerCut(BaseException):
    """Not an Exception: no handler of ours runs, as when the process dies."""


def _services(pki: PkiWorld):
    return pki.client.app.state.services


def _caller(pki: PkiWorld, party: str) -> Caller:
    p = pki.world[party]
    kind = PartyType.PROVIDER if party == "provider" else PartyType.AGENCY
    return Caller(operator_id=1, operator_name=party, organisation_id=p.organisation_id, organisation_name=party,
                  party_type=kind, ministry=None)


def _unusable(keystore, label: str) -> bool:
    try:
        keystore.signer(label).sign(b"probe", HashAlgorithm.SHA256)
    except KeyNotFound:
        return True
    except Exception:
        return True
    return False


def test_failed_step_destroys_the_generated_key_at_once(pki_sqlite: PkiWorld, monkeypatch) -> None:
    pki = pki_sqlite

    def refuse(self: StoreTx, **_: object) -> None:
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(StoreTx, "add_key", refuse)
    with pytest.raises(RuntimeError):
        create_ds_key(_services(pki), _caller(pki, "agency"), DocumentType.PASSPORT, None)
    with pki.world.store.transaction() as tx:
        op = [o for o in tx.hsm_operations() if o.kind is HsmOperationKind.GENERATE_KEY][-1]
        assert op.state is HsmOperationState.DESTROYED
        assert tx.key_by_label(op.hsm_label) is None
        audit = [e for e in tx.audit_entries() if e.action == "hsm.key_destroyed"]
        assert audit and audit[-1].entity_id == op.hsm_label
    assert _unusable(pki.keystore, op.hsm_label)


def test_killed_process_leaves_no_usable_orphan_key(pki_sqlite: PkiWorld, hsm_env: dict) -> None:
    pki = pki_sqlite
    url = str(pki.world.store.engine.url)
    env = {**os.environ, "SOFTHSM2_CONF": hsm_env["SOFTHSM2_CONF"], TEST_PIN_ENV: hsm_env[TEST_PIN_ENV],
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("crash_worker.py")), url,
                           hsm_env["ICAO_PKI_TOKEN_LABEL"], TEST_PIN_ENV, str(pki.world["agency"].organisation_id),
                           pki.world.clock.now().isoformat()],
                          env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # SIGKILL: died mid-step
    assert "KEY-GENERATED" in proc.stdout
    with pki.world.store.transaction() as tx:
        op = [o for o in tx.hsm_operations() if o.kind is HsmOperationKind.GENERATE_KEY][-1]
        assert op.state is HsmOperationState.DONE  # the HSM made the key; the database never adopted it
        assert tx.key_by_label(op.hsm_label) is None
        label = op.hsm_label
    assert not _unusable(pki.keystore, label), "the crash should have left a live orphan key in the HSM"
    report = _services(pki).authority.recover(older_than=timedelta(0))
    assert label in report.destroyed_keys
    assert _unusable(pki.keystore, label)
    with pki.world.store.transaction() as tx:
        states = {o.kind: o.state for o in tx.hsm_operations() if o.hsm_label == label}
        # the key is destroyed; the CSR it had signed was never handed out
        assert states == {HsmOperationKind.GENERATE_KEY: HsmOperationState.DESTROYED,
                          HsmOperationKind.SIGN: HsmOperationState.ABANDONED}
        audit = [e for e in tx.audit_entries() if e.action == "hsm.key_destroyed" and e.entity_id == label]
        assert audit and "recovery" in audit[0].details["reason"]
    # recovery is idempotent
    assert _services(pki).authority.recover(older_than=timedelta(0)).destroyed_keys == []


def test_crash_after_signing_leaves_no_half_issued_certificate(pki_sqlite: PkiWorld, monkeypatch) -> None:
    pki = pki_sqlite
    key = pki.ds_key()
    r = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]})
    rid = r.json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    before = pki.world.row_counts()

    def power_cut(self: StoreTx, *a: object, **k: object) -> None:
        raise PowerCut

    monkeypatch.setattr(StoreTx, "activate_key", power_cut)
    services = _services(pki)
    with pytest.raises(PowerCut):
        act_and_record(services.store, services, _caller(pki, "provider"), rid)
    monkeypatch.undo()
    after = pki.world.row_counts()
    assert after["certificates"] == before["certificates"]
    assert after["published_objects"] == before["published_objects"]
    with pki.world.store.transaction() as tx:
        assert tx.request(rid).state is RequestState.COUNTERSIGNED
        signed = [o for o in tx.hsm_operations() if o.request_id == rid]
        assert [o.state for o in signed] == [HsmOperationState.DONE]  # signed, never handed out
    report = services.authority.recover(older_than=timedelta(0))
    assert report.abandoned_signatures == [signed[0].id]
    # the Provider acts again: exactly one certificate comes out
    r = pki.world.act(rid)
    assert r.status_code == 200, r.text
    assert pki.world.row_counts()["certificates"] == before["certificates"] + 1


def test_store_step_failure_abandons_the_signature(pki_sqlite: PkiWorld, monkeypatch) -> None:
    """A store step that fails (here: the request was taken meanwhile) hands nothing out."""
    pki = pki_sqlite
    key = pki.ds_key()
    rid = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]}).json()["id"]
    assert pki.world.countersign(rid).status_code == 200

    def taken(self: StoreTx, *a: object, **k: object) -> None:
        raise RuntimeError("another worker completed the request")

    monkeypatch.setattr(StoreTx, "activate_key", taken)
    r = pki.world.act(rid)
    assert r.status_code == 500
    with pki.world.store.transaction() as tx:
        assert [o.state for o in tx.hsm_operations() if o.request_id == rid] == [HsmOperationState.ABANDONED]
        assert tx.request(rid).state is RequestState.COUNTERSIGNED
