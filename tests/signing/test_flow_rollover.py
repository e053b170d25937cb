"""Forced rollover through issue 6's real DS flow: Agency key + CSR + signed request → Cơ yếu → Provider."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from icao_pki.pa import verify_pa
from lifecycle_api.signing import DsSigningService, RolloverThresholds, SodInput, due_rollovers, perform_rollovers
from lifecycle_api.signing.flow import AgencyFlowRequester
from lifecycle_api.store import KeyState, Operator
from tests.flows.pki import PkiWorld, unb64
from tests.signing.support import data_groups

pytestmark = pytest.mark.hsm

EARLY = RolloverThresholds(count_fraction=0.00001)  # 1 signature of 100,000 makes the key "due"


def _csca(pki: PkiWorld) -> bytes:
    cid = pki.ceremonies["passport_csca"]["certificate_id"]
    r = pki.client.get(f"/v1/certificates/{cid}", headers=pki.headers("provider"))
    return unb64(r.json()["der"])


def _first_key_signed(pki: PkiWorld) -> tuple[dict[str, Any], Any, Any]:
    """A passport DS key issued through the flow that has made one SOD (the rollover is due
    with EARLY); the key, the app's services and policy."""
    world = pki.world
    key = pki.ds_key()
    pki.flow("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]})
    services = world.client.app.state.services
    policy = services.settings.policy
    service = DsSigningService(world.store, pki.keystore, world.clock, policy, block_size=4)
    service.sign_sod("passport", data_groups(1))
    service.close()
    return key, services, policy


def _agency_requester(pki: PkiWorld, services: Any) -> AgencyFlowRequester:
    """The rollover's requester acting as the Agency's operator, signing with its test key."""
    world = pki.world
    with world.store.transaction() as tx:
        operator_id = tx.session.scalars(
            select(Operator.id).where(Operator.organisation_id == world["agency"].organisation_id)
        ).first()

    def sign(content: bytes, when: datetime) -> bytes:
        return base64.b64decode(world.sign("agency", content, at=when))

    return AgencyFlowRequester(services, operator_id, sign_document=sign)


def test_rollover_asks_the_successor_through_the_flow(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    key = pki.ds_key()
    pki.flow("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]})
    services = world.client.app.state.services
    service = DsSigningService(world.store, pki.keystore, world.clock, services.settings.policy, block_size=4)
    first = service.sign_sod("passport", data_groups(1))
    assert first.key_label == key["hsm_label"]
    verify_pa(first.sod, data_groups(1), trust=[_csca(pki)], at=world.clock.now())

    requester = _agency_requester(pki, services)
    [action] = perform_rollovers(world.store, world.clock, requester, services.settings.policy, EARLY)
    assert action.due.key_id == key["key_id"]
    request_id = action.reference
    # the successor key exists (generated) and the request is open: not asked twice
    assert due_rollovers(world.store, world.clock, services.settings.policy, EARLY, requester) == []
    assert perform_rollovers(world.store, world.clock, requester, services.settings.policy, EARLY) == []
    assert world.countersign(request_id).status_code == 200
    r = world.act(request_id)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    successor = r.json()["result"]
    assert successor["hsm_label"] != key["hsm_label"]

    # the old key keeps signing until it is spent (oldest first); retire it and the successor signs
    world.clock.advance(seconds=5)
    assert service.sign_sod("passport", data_groups(2)).key_label == key["hsm_label"]
    service.close()
    with world.store.transaction() as tx:
        tx.set_key_state(key["key_id"], KeyState.ACTIVE, KeyState.RETIRED, now=world.clock.now())
    out = service.sign_batch("passport", [SodInput(data_groups(i)) for i in range(3)])
    assert {s.key_label for s in out} == {successor["hsm_label"]}
    verify_pa(out[-1].sod, data_groups(2), trust=[_csca(pki)], at=world.clock.now())
    service.close()


class _Killed(BaseException):
    """Stands for the process dying (not an Exception: nothing is cleaned up on the way out)."""


def test_crash_between_successor_key_and_request_is_resumed_through_the_flow(
        pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle_api.audit import verify_chain
    from lifecycle_api.store import HsmOperation, HsmOperationState, Key, Request

    pki, world = pki_sqlite, pki_sqlite.world
    key, services, policy = _first_key_signed(pki)
    requester = _agency_requester(pki, services)

    def killed(*args: object, **kwargs: object) -> str:
        raise _Killed  # after the successor key and its row committed, before the request

    monkeypatch.setattr(AgencyFlowRequester, "_submit", killed)
    with pytest.raises(_Killed):
        perform_rollovers(world.store, world.clock, requester, policy, EARLY)
    monkeypatch.undo()

    def generated() -> list[str]:
        with world.store.transaction() as tx:
            return list(tx.session.scalars(select(Key.hsm_label).where(Key.state == KeyState.GENERATED)).all())

    [stalled_label] = generated()
    with world.store.transaction() as tx:
        assert tx.session.scalars(select(Request).where(Request.state == "submitted")).all() == []
    # a key just generated may still be on its way to a request (or the Agency is submitting by hand)
    assert due_rollovers(world.store, world.clock, policy, EARLY, requester) == []
    world.clock.advance(hours=2)
    world.import_crls()
    [due] = due_rollovers(world.store, world.clock, policy, EARLY, requester)
    assert due.reason == "stalled"
    # restarted: the rollover resumes with the same key (a fresh CSR), no second key
    [action] = perform_rollovers(world.store, world.clock, requester, policy, EARLY)
    assert generated() == [stalled_label]
    assert due_rollovers(world.store, world.clock, policy, EARLY, requester) == []
    assert perform_rollovers(world.store, world.clock, requester, policy, EARLY) == []  # asked once
    assert world.countersign(action.reference).status_code == 200
    r = world.act(action.reference)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    assert r.json()["result"]["hsm_label"] == stalled_label
    assert due_rollovers(world.store, world.clock, policy, EARLY, requester) == []  # the successor is active
    with world.store.transaction() as tx:
        csr_ops = tx.session.scalars(select(HsmOperation).where(HsmOperation.hsm_label == stalled_label,
                                                                HsmOperation.purpose.like("DS CSR%"))).all()
        assert verify_chain(tx.audit_entries()).ok
    assert sorted(o.state.value for o in csr_ops) == [HsmOperationState.COMMITTED.value] * 2  # first CSR, resumed CSR
    service = DsSigningService(world.store, pki.keystore, world.clock, policy, block_size=4)
    with world.store.transaction() as tx:
        tx.set_key_state(key["key_id"], KeyState.ACTIVE, KeyState.RETIRED, now=world.clock.now())
    signed = service.sign_sod("passport", data_groups(3))
    service.close()
    assert signed.key_label == stalled_label
    verify_pa(signed.sod, data_groups(3), trust=[_csca(pki)], at=world.clock.now())


def test_stalled_successor_without_agency_signature_notifies_once_per_interval(pki_sqlite: PkiWorld) -> None:
    """No Agency signature here (no `sign_document`, no centrally held key): the Agency is asked to
    submit the request itself.  Its key then has no request, but it is not re-notified (with a fresh
    CSR) on every rollover run: once per `renotify_after`, recorded in the database."""
    from datetime import timedelta

    from icao_pki.policy import Role
    from lifecycle_api.audit import verify_chain
    from lifecycle_api.signing.flow import SUCCESSOR_REQUEST_NEEDED
    from lifecycle_api.store import HsmOperation, Key

    pki, world = pki_sqlite, pki_sqlite.world
    key, services, policy = _first_key_signed(pki)
    agency = world["agency"].organisation_id
    with world.store.transaction() as tx:
        operator_id = tx.session.scalars(select(Operator.id).where(Operator.organisation_id == agency)).first()
        assert tx.centrally_held_certificate(agency, world.clock.now()) is None  # nobody can sign for the Agency

    def requester() -> AgencyFlowRequester:  # a fresh one per run: nothing survives in memory (restart)
        return AgencyFlowRequester(services, operator_id, renotify_after=timedelta(days=1))

    def notices() -> list[dict]:
        with world.store.transaction() as tx:
            return [dict(m.payload) for m in tx.notifications(agency) if m.event == SUCCESSOR_REQUEST_NEEDED]

    def ds_keys() -> list[tuple[int, str]]:
        with world.store.transaction() as tx:
            return [(k.id, k.hsm_label) for k in tx.session.scalars(select(Key).where(Key.role == Role.DS)
                                                                     .order_by(Key.id))]

    def csr_count(label: str) -> int:
        with world.store.transaction() as tx:
            return len(tx.session.scalars(select(HsmOperation).where(HsmOperation.hsm_label == label,
                                                                     HsmOperation.purpose.like("DS CSR%"))).all())

    notified_at = world.clock.now()
    [first] = perform_rollovers(world.store, world.clock, requester(), policy, EARLY)
    [(successor_id, successor)] = ds_keys()[1:]
    assert first.reference == f"key:{successor_id}"
    assert [n["hsm_label"] for n in notices()] == [successor]
    # the rollover job runs every 15 minutes: past stall_after, within the interval, it asks nothing
    for after in (timedelta(hours=2), timedelta(hours=6), timedelta(hours=23, minutes=59)):
        world.clock.set(notified_at + after)
        assert due_rollovers(world.store, world.clock, policy, EARLY, requester()) == []
        assert perform_rollovers(world.store, world.clock, requester(), policy, EARLY) == []
    assert len(notices()) == 1 and csr_count(successor) == 1
    # a day after the notice: asked again, for the same key (a fresh CSR), once
    world.clock.set(notified_at + timedelta(days=1, seconds=1))
    [again] = perform_rollovers(world.store, world.clock, requester(), policy, EARLY)
    assert again.due.reason == "stalled" and again.reference == f"key:{successor_id}"
    assert [n["hsm_label"] for n in notices()] == [successor, successor] and csr_count(successor) == 2
    renotified_at = world.clock.now()
    world.clock.set(renotified_at + timedelta(hours=12))
    assert perform_rollovers(world.store, world.clock, requester(), policy, EARLY) == []
    world.clock.set(renotified_at + timedelta(days=1, seconds=1))
    assert len(perform_rollovers(world.store, world.clock, requester(), policy, EARLY)) == 1
    assert len(notices()) == 3
    assert [label for _, label in ds_keys()] == [key["hsm_label"], successor]  # never a second successor key
    with world.store.transaction() as tx:
        assert verify_chain(tx.audit_entries()).ok
