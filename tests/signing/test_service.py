from __future__ import annotations

from datetime import timedelta

import pytest

from icao_pki.pa import verify_pa
from icao_pki.policy import DocumentType, Policy
from icao_pki.signer import HashAlgorithm
from icao_pki.sod import parse_sod
from lifecycle_api.audit import verify_chain
from lifecycle_api.signing import DsSigningService, NoSigningKey, SodInput, usage_report
from lifecycle_api.signing.service import InvalidSodInput
from lifecycle_api.store import KeyState
from tests.signing.support import SigningWorld, data_groups, make_world

pytestmark = pytest.mark.hsm

SMALL = Policy.with_overrides({"passport.ds": {"max_signatures": 10}})


def service(world: SigningWorld, **kw: object) -> DsSigningService:
    return DsSigningService(world.store, world.keystore, world.clock, world.policy, **kw)  # type: ignore[arg-type]


def test_sign_sod_builds_a_verifiable_sod_and_counts_it(sworld: SigningWorld) -> None:
    key_id = sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld, block_size=8)
    signed = svc.sign_sod("passport", data_groups(1))
    sod = parse_sod(signed.sod)
    assert sod.data_groups == [1, 2]
    assert sod.dg_hashes[1] == HashAlgorithm.SHA256.digest(data_groups(1)[1])
    assert signed.key_id == key_id
    verify_pa(signed.sod, data_groups(1), trust=[sworld.csca_der], at=sworld.clock.now())  # a border would accept it
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (1, 7)  # the rest of the block is held
    svc.close()
    [usage] = usage_report(sworld.store)
    assert (usage.signed, usage.reserved_unused) == (1, 0)


def test_dg_hashes_in(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld)
    hashes = {n: HashAlgorithm.SHA256.digest(dg) for n, dg in data_groups(7).items()}
    sod = parse_sod(svc.sign_sod("passport", dg_hashes=hashes).sod)
    assert sod.dg_hashes == hashes
    svc.close()


def test_invalid_input_reserves_nothing(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld)
    with pytest.raises(InvalidSodInput):
        svc.sign_sod("passport", {1: b"\x75\x01\x00", 2: data_groups(1)[2]})  # DG1 with DG2's tag
    assert usage_report(sworld.store)[0].signed == 0


def test_budget_is_exact_and_switches_to_successor(tmp_path, keystore) -> None:  # type: ignore[no-untyped-def]
    world = make_world(f"sqlite:///{tmp_path / 's.db'}", keystore, policy=SMALL)
    first = world.issuer.issue(DocumentType.PASSPORT)
    second = world.issuer.issue(DocumentType.PASSPORT, start=world.clock.now() + timedelta(seconds=1))
    world.clock.advance(seconds=2)
    svc = service(world, block_size=4)
    out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(13)])
    assert [s.key_id for s in out] == [first] * 10 + [second] * 3
    svc.close()
    usage = {u.key_id: u for u in usage_report(world.store)}
    assert (usage[first].signed, usage[first].reserved_unused, usage[first].state) == (10, 0, "retired")
    assert usage[second].signed == 3


def test_no_successor_refuses_naming_the_article_and_alerts(tmp_path, keystore, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    world = make_world(f"sqlite:///{tmp_path / 's.db'}", keystore, policy=SMALL)
    world.issuer.issue(DocumentType.PASSPORT)
    svc = service(world, block_size=3)
    svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(10)])
    caplog.set_level(logging.INFO, logger="lifecycle_api.signing.service")
    for _ in range(3):  # a line retrying: one alert and one error line per alert interval
        with pytest.raises(NoSigningKey, match=r"Art\. 23\.1b"):
            svc.sign_sod("passport", data_groups(11))
    levels = [r.levelno for r in caplog.records if "Art. 23.1b" in r.getMessage()]
    assert levels == [logging.ERROR, logging.INFO, logging.INFO]
    [usage] = usage_report(world.store)
    assert (usage.signed, usage.reserved_unused) == (10, 0)
    with world.store.transaction() as tx:
        actions = [e.action for e in tx.audit_entries()]
        assert "ds.signing_refused" in actions
        assert verify_chain(tx.audit_entries()).ok
        assert [m.event for m in tx.notifications(world.agency_id)] == ["ds.signing_refused"]
        assert [m.event for m in tx.notifications(world.provider_id)] == ["ds.signing_refused"]


def test_usage_window_rechecked_at_each_signature(sworld: SigningWorld) -> None:
    key_id = sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld, block_size=50)
    svc.sign_sod("passport", data_groups(1))
    sworld.clock.advance(days=200)  # past the 3-month PrivateKeyUsagePeriod, lease still holds 49 slots
    with pytest.raises(NoSigningKey):
        svc.sign_sod("passport", data_groups(2))
    [usage] = usage_report(sworld.store)
    assert (usage.key_id, usage.signed, usage.reserved_unused) == (key_id, 1, 0)
    assert usage.state == KeyState.RETIRED.value


def test_id_card_key_does_not_sign_passports(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld)
    with pytest.raises(NoSigningKey, match=r"Art\. 26\.1b"):
        svc.sign_sod("idcard", data_groups(1))


def test_fast_path_sods_pass_pa_like_the_first(sworld: SigningWorld) -> None:
    sworld.issuer.issue(DocumentType.PASSPORT)
    svc = service(sworld, block_size=16)
    out = svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(6)])
    svc.close()
    for i, signed in enumerate(out):
        verify_pa(signed.sod, data_groups(i), trust=[sworld.csca_der], at=sworld.clock.now())
    assert len({s.sod for s in out}) == 6


def test_refused_mid_batch_hands_out_what_was_counted(tmp_path, keystore) -> None:  # type: ignore[no-untyped-def]
    world = make_world(f"sqlite:///{tmp_path / 's.db'}", keystore, policy=SMALL)
    world.issuer.issue(DocumentType.PASSPORT)
    svc = service(world, block_size=4)
    with pytest.raises(NoSigningKey) as info:
        svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(13)])
    partial = info.value.partial_sods  # type: ignore[attr-defined]
    assert len(partial) == 10
    [usage] = usage_report(world.store)
    assert (usage.signed, usage.reserved_unused) == (10, 0)
    svc.close()


def test_slots_given_back_to_an_older_key_are_used_before_its_successor(tmp_path, keystore) -> None:  # type: ignore[no-untyped-def]
    """Instance A holds the first key's last slots; B, finding it fully reserved, signs on the
    successor.  A closes, giving the slots back: the key stays active (not every signature is
    made), B's next batch switches back to it, and it ends at exactly its budget, retired."""
    world = make_world(f"sqlite:///{tmp_path / 's.db'}", keystore, policy=SMALL)
    first = world.issuer.issue(DocumentType.PASSPORT)
    second = world.issuer.issue(DocumentType.PASSPORT, start=world.clock.now() + timedelta(seconds=1))
    world.clock.advance(seconds=2)
    a, b = service(world, block_size=8), service(world, block_size=2)
    assert {s.key_id for s in a.sign_batch("passport", [SodInput(data_groups(i)) for i in range(2)])} == {first}
    assert a.held_reservations() == {a._leases[DocumentType.PASSPORT].key.hsm_label: 6}  # used 2 + held 6 = 8
    out = b.sign_batch("passport", [SodInput(data_groups(i)) for i in range(2, 5)])
    assert [s.key_id for s in out] == [first, first, second]  # the 2 free slots, then the successor
    usage = {u.key_id: u for u in usage_report(world.store)}
    assert (usage[first].signed, usage[first].reserved_unused, usage[first].state) == (4, 6, "active")
    a.close()  # gives the 6 back: the first key is not retired, its slots are free again
    usage = {u.key_id: u for u in usage_report(world.store)}
    assert (usage[first].signed, usage[first].reserved_unused, usage[first].state) == (4, 0, "active")
    out = b.sign_batch("passport", [SodInput(data_groups(i)) for i in range(5, 6)])  # still on the successor
    assert [s.key_id for s in out] == [second]
    out = b.sign_batch("passport", [SodInput(data_groups(i)) for i in range(6, 14)])  # its settle switched back
    assert [s.key_id for s in out] == [first] * 6 + [second] * 2
    b.close()
    usage = {u.key_id: u for u in usage_report(world.store)}
    assert (usage[first].signed, usage[first].reserved_unused, usage[first].state) == (10, 0, "retired")
    assert (usage[second].signed, usage[second].reserved_unused) == (4, 0)
