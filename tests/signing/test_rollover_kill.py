"""Issue 5 acceptance, the rollover half through the production Agency flow: a real SIGKILL.

A separate service process (tests/signing/rollover_kill_worker.py) runs the "ds-rollover-check"
job — `AgencyFlowRequester` signing with the Agency's centrally held key, the Cơ yếu unit
countersigning automatically, the Provider acting automatically — on this test's SQLite file
and SoftHSM2 token, and is SIGKILLed at one of five points, from "the successor key exists only
in the HSM" to "the HSM has signed its certificate, which was never stored".  Then a fresh
process restarts the service as production does (start-up recovery, the rollover job again);
what the automatic policy left undone after the crash (the Provider's act) is done by the
overdue-requests job's sweep.  After each: the successor key is active with exactly one certificate, carrying the HSM
key's public key; the predecessor signs up to its budget and not one more; no key's
used + reserved exceeds its maximum; no journal row is left unsettled; the audit chain verifies.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from icao_pki.certificate import parse_certificate
from icao_pki.keystore import KeyInactive, KeyStore
from icao_pki.pa import verify_pa
from icao_pki.policy import Policy, Role
from icao_pki.signature import load_spki
from lifecycle_api.audit import verify_chain
from lifecycle_api.signing import DsSigningService, RolloverThresholds, SodInput, due_rollovers
from lifecycle_api.signing.flow import AgencyFlowRequester
from lifecycle_api.store import (
    Certificate,
    HsmOperation,
    HsmOperationState,
    Key,
    KeyState,
    Operator,
    Organisation,
    Request,
    RequestState,
)
from tests.flows.pki import PkiWorld, unb64
from tests.signing.support import data_groups

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 20  # a deployment's shorter DS budget (the decree's 100,000 would take minutes to spend)
OVERRIDES = {"passport.ds": {"max_signatures": BUDGET}}
SIGNED_BEFORE = 12  # of 20: due at half the budget (count_fraction 0.5), 8 left for after the crash
COUNT_FRACTION = 0.5


@dataclass
class Scene:
    pki: PkiWorld
    policy: Policy
    config: Path
    env: dict[str, str]
    agency_operator_id: int
    predecessor_id: int
    predecessor_label: str

    @property
    def world(self) -> Any:
        return self.pki.world


def _centrally_held(pki: PkiWorld, keystore: KeyStore, party: str, common_name: str, uid: str) -> None:
    """The organisation's official-use key in the service's HSM (letter 293), its certificate registered."""
    world = pki.world
    label = str(keystore.next_label("org", party))
    signer = keystore.generate_key(label, "secp256r1")
    cert = world.org_pki.pki.issue(signer, common_name=common_name, uid=uid,
                                   not_before=world.clock.now() - timedelta(days=1))
    r = world.client.post(f"/v1/organisations/{world[party].organisation_id}/certificates",
                          json={"der": base64.b64encode(cert.der).decode(), "hsm_label": label},
                          headers=world["provider"].headers)
    assert r.status_code == 201, r.text


def _scene(pki: PkiWorld, keystore: KeyStore, hsm_env: dict[str, str], tmp_path: Path) -> Scene:
    """The demo's production policy: the Agency's and the Cơ yếu unit's keys held centrally, the unit
    countersigns automatically, the Provider acts on DS requests automatically; an active DS key
    with a budget of 20 of which 12 are spent, so the rollover is due."""
    world = pki.world
    services = world.client.app.state.services
    policy = Policy.with_overrides(OVERRIDES)
    services.settings = replace(services.settings, policy=policy)
    key = pki.ds_key()
    pki.flow("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]})
    service = DsSigningService(world.store, keystore, world.clock, policy, block_size=4)
    service.sign_batch("passport", [SodInput(data_groups(i)) for i in range(SIGNED_BEFORE)])
    service.close()
    _centrally_held(pki, keystore, "agency", "Cục Quản lý xuất nhập cảnh (HSM)", "MNS:A1001")
    _centrally_held(pki, keystore, "coyeu", "Cục Cơ yếu Bộ Công an (HSM)", "MNS:C1001")
    with world.store.transaction() as tx:  # no API edits a party's policy; the demo creates it so
        tx.session.get(Organisation, world["coyeu"].organisation_id).auto_countersign = True
    r = world.client.post(f"/v1/organisations/{world['provider'].organisation_id}/operators",
                          json={"name": "auto-act", "kind": "service_account"}, headers=world["provider"].headers)
    assert r.status_code == 201, r.text
    with world.store.transaction() as tx:
        operator_id = tx.session.scalars(
            select(Operator.id).where(Operator.organisation_id == world["agency"].organisation_id)
        ).first()
        assert tx.key(key["key_id"]).max_signatures == BUDGET
    trust = world.client.app.state.services.checker.trust
    config = tmp_path / "worker.json"
    config.write_text(json.dumps({
        "database_url": str(world.store.engine.url), "policy_overrides": OVERRIDES, "auto_act": ["ds_certificate"],
        "agency_operator_id": operator_id, "count_fraction": COUNT_FRACTION,
        "org_pki_roots": [base64.b64encode(d).decode() for d in trust.roots],
        "org_pki_intermediates": [base64.b64encode(d).decode() for d in trust.intermediates],
    }))
    env = {**os.environ, "ICAO_PKI_HSM_PIN": hsm_env["ICAO_PKI_HSM_PIN"],
           "ICAO_PKI_TOKEN_LABEL": hsm_env["ICAO_PKI_TOKEN_LABEL"], "PYTHONPATH": str(ROOT)}
    return Scene(pki, policy, config, env, operator_id, key["key_id"], key["hsm_label"])


def _worker(scene: Scene, now: datetime, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.signing.rollover_kill_worker", str(scene.config),
                           "--now", now.isoformat(), *args],
                          env=scene.env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _ds_keys(scene: Scene) -> list[Key]:
    with scene.world.store.transaction() as tx:
        rows = tx.session.scalars(select(Key).where(Key.role == Role.DS).order_by(Key.id)).all()
        tx.session.expunge_all()
        return list(rows)


def _journal(scene: Scene) -> list[HsmOperation]:
    with scene.world.store.transaction() as tx:
        rows = tx.hsm_operations()
        tx.session.expunge_all()
        return list(rows)


def _csca(pki: PkiWorld) -> bytes:
    cid = pki.ceremonies["passport_csca"]["certificate_id"]
    r = pki.client.get(f"/v1/certificates/{cid}", headers=pki.headers("provider"))
    return unb64(r.json()["der"])


@pytest.mark.parametrize("point", ["key-generated", "key-committed", "request-submitted",
                                   "certificate-hsm-signed", "certificate-signed"])
def test_sigkill_during_rollover_through_the_agency_flow(point: str, pki_sqlite: PkiWorld, keystore: KeyStore,
                                                         hsm_env: dict[str, str], tmp_path: Path) -> None:
    scene = _scene(pki_sqlite, keystore, hsm_env, tmp_path)
    world = scene.world
    with world.store.transaction() as tx:
        certificates_before = tx.session.query(Certificate).count()
        requests_before = set(tx.session.scalars(select(Request.id)).all())
    journal_before = {op.id for op in _journal(scene)}

    # --- the service process dies at `point` ---------------------------------------------------
    killed_at = world.clock.now()
    run = _worker(scene, killed_at, "--kill-at", point)
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stdout, run.stderr[-3000:])
    assert run.stdout.splitlines()[-1] == f"SIGKILL {point}"
    crashed = [op for op in _journal(scene) if op.id not in journal_before]
    left = {(op.purpose, op.state) for op in crashed if op.state in (HsmOperationState.PENDING,
                                                                      HsmOperationState.DONE)}
    with world.store.transaction() as tx:
        request_states = [(r.id, r.state) for r in tx.session.scalars(select(Request).order_by(Request.created_at))
                          if r.id not in requests_before]
    generated = [k for k in _ds_keys(scene) if k.state is KeyState.GENERATED]
    # what the crash left behind, as the kill point says
    if point == "key-generated":
        assert generated == [] and request_states == []
        assert left == {("DS key of Cục Quản lý xuất nhập cảnh", HsmOperationState.DONE),
                        ("DS CSR", HsmOperationState.DONE)}
        [orphan_label] = {op.hsm_label for op in crashed if op.purpose.startswith("DS key")}
        keystore.signer(orphan_label)  # in the HSM, unknown to the database
    elif point == "key-committed":
        assert len(generated) == 1 and request_states == [] and left == set()
    else:
        assert len(generated) == 1 and len(request_states) == 1
        assert request_states[0][1] is RequestState.COUNTERSIGNED  # the Cơ yếu unit's automatic policy
        if point == "request-submitted":
            assert left == set()
        else:
            expected = HsmOperationState.PENDING if point == "certificate-hsm-signed" else HsmOperationState.DONE
            assert left == {("DS certificate", expected)}
    with world.store.transaction() as tx:  # the crash stored no certificate
        assert tx.session.query(Certificate).count() == certificates_before

    # --- restart: start-up recovery, then the rollover job (two hours later: past stall_after) -----
    restarted_at = killed_at + timedelta(hours=2)
    world.clock.set(restarted_at)
    world.import_crls()  # the government CA's fresh CRLs, for the signatures made from now on
    run = _worker(scene, restarted_at, "--restart")
    assert run.returncode == 0, (run.stdout, run.stderr[-3000:])
    report = json.loads(run.stdout.splitlines()[-1])
    actions = report["actions"]
    if point == "key-generated":
        assert [a["reason"] for a in actions] == ["count"]  # the orphan was destroyed: due again, a new key
        with pytest.raises(KeyInactive):  # destroyed in the HSM (its public half kept for the record)
            keystore.signer(orphan_label)
    elif point == "key-committed":
        assert [a["reason"] for a in actions] == ["stalled"]  # the same key, a fresh CSR, the request
    else:
        assert actions == []  # a request names the key: nothing is asked twice
        # the automatic act the crash lost is done by the overdue-requests job's sweep
        request_id = request_states[0][0]
        assert report["auto_acted"] == [request_id]
        assert world.client.get("/v1/queue", headers=world["provider"].headers).json() == []
        with world.store.transaction() as tx:
            assert tx.request(request_id).state is RequestState.COMPLETED

    # --- after the restart --------------------------------------------------------------------
    keys = _ds_keys(scene)
    [successor] = [k for k in keys if k.id != scene.predecessor_id and k.state is not KeyState.DESTROYED]
    assert successor.state is KeyState.ACTIVE and successor.max_signatures == BUDGET
    if point != "key-generated":
        assert [successor.hsm_label] == [k.hsm_label for k in generated]  # the key the crash left, resumed
    with world.store.transaction() as tx:
        certs = tx.session.scalars(select(Certificate).where(Certificate.key_id == successor.id)).all()
        assert len(certs) == 1  # no duplicate
        der = certs[0].der
        assert tx.session.query(Certificate).count() == certificates_before + 1  # none lost, one added
    cert = parse_certificate(der)
    assert cert.public_key == load_spki(keystore.signer(successor.hsm_label).public_key_info())
    cert.verify_issued_by(parse_certificate(_csca(scene.pki)))
    unsettled = [(op.id, op.purpose, op.state) for op in _journal(scene)
                 if op.state in (HsmOperationState.PENDING, HsmOperationState.DONE)]
    assert unsettled == []
    if point.startswith("certificate"):  # the certificate the crash signed was never stored: abandoned
        [orphan] = [op for op in _journal(scene) if op.id in {c.id for c in crashed} and op.purpose == "DS certificate"]
        assert orphan.state is HsmOperationState.ABANDONED
    requester = AgencyFlowRequester(world.client.app.state.services, scene.agency_operator_id)
    assert due_rollovers(world.store, world.clock, scene.policy, RolloverThresholds(COUNT_FRACTION), requester) == []

    # the predecessor signs up to its budget, never beyond; then its successor takes over
    world.clock.advance(seconds=5)
    service = DsSigningService(world.store, keystore, world.clock, scene.policy, block_size=4)
    out = service.sign_batch("passport", [SodInput(data_groups(i)) for i in range(BUDGET - SIGNED_BEFORE)])
    assert {s.key_label for s in out} == {scene.predecessor_label}
    more = [service.sign_sod("passport", data_groups(i)) for i in range(3)]
    service.close()
    assert {s.key_label for s in more} == {successor.hsm_label}
    verify_pa(more[-1].sod, data_groups(2), trust=[_csca(scene.pki)], at=world.clock.now())
    keys = {k.id: k for k in _ds_keys(scene)}
    assert (keys[scene.predecessor_id].signatures_used, keys[scene.predecessor_id].signatures_reserved) == (BUDGET, 0)
    assert keys[successor.id].signatures_used == 3
    for k in keys.values():  # every key with a budget (a generated key has none yet)
        assert k.max_signatures is None or k.signatures_used + k.signatures_reserved <= k.max_signatures, k.hsm_label
    with world.store.transaction() as tx:
        assert verify_chain(tx.audit_entries()).ok
