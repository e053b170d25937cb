from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from icao_pki.keystore import KeyInactive
from icao_pki.policy import DocumentType, Policy
from lifecycle_api.audit import verify_chain
from lifecycle_api.signing import (
    DsSigningService,
    NoSigningKey,
    RolloverThresholds,
    SodInput,
    destroy_retired,
    due_rollovers,
    perform_rollovers,
    usage_report,
)
from lifecycle_api.store import KeyState, PublishedKind, PublishedObject
from tests.signing.support import SigningWorld, data_groups, make_world

pytestmark = pytest.mark.hsm

SMALL = Policy.with_overrides({"passport.ds": {"max_signatures": 20}})


@pytest.fixture
def small(tmp_path, keystore):  # type: ignore[no-untyped-def]
    world = make_world(f"sqlite:///{tmp_path / 'r.db'}", keystore, policy=SMALL)
    yield world
    world.store.dispose()


def _sign(world: SigningWorld, n: int, svc: DsSigningService | None = None) -> list[int]:
    own = svc is None
    svc = svc or DsSigningService(world.store, world.keystore, world.clock, world.policy, block_size=1)
    try:
        return [s.key_id for s in svc.sign_batch("passport", [SodInput(data_groups(i)) for i in range(n)])]
    finally:
        if own:
            svc.close()


def test_count_threshold_requests_one_successor_and_signing_moves_on(small: SigningWorld) -> None:
    first = small.issuer.issue(DocumentType.PASSPORT)
    _sign(small, 17)
    assert due_rollovers(small.store, small.clock, small.policy) == []
    _sign(small, 1)  # 18 of 20 = 90 %
    [due] = due_rollovers(small.store, small.clock, small.policy)
    assert (due.key_id, due.reason) == (first, "count")
    small.clock.advance(seconds=1)
    [action] = perform_rollovers(small.store, small.clock, small.issuer, small.policy)
    assert perform_rollovers(small.store, small.clock, small.issuer, small.policy) == []  # idempotent
    second = int(action.reference.split(":")[1])
    small.clock.advance(seconds=1)
    assert _sign(small, 5) == [first, first, second, second, second]
    usage = {u.key_id: u for u in usage_report(small.store)}
    assert (usage[first].signed, usage[first].state) == (20, "retired")
    assert usage[second].signed == 3


def test_window_threshold_is_14_days_before_the_end(small: SigningWorld) -> None:
    small.issuer.issue(DocumentType.PASSPORT)
    with small.store.transaction() as tx:
        end = tx.key(1).usage_not_after
    assert end is not None
    small.clock.set(end - timedelta(days=14, seconds=1))
    assert due_rollovers(small.store, small.clock, small.policy) == []
    small.clock.set(end - timedelta(days=14))
    assert [d.reason for d in due_rollovers(small.store, small.clock, small.policy)] == ["window"]
    custom = RolloverThresholds(count_fraction=0.5, window_lead=timedelta(days=30))
    small.clock.set(end - timedelta(days=29))
    assert [d.reason for d in due_rollovers(small.store, small.clock, small.policy, custom)] == ["window"]


def test_exhausted_without_successor_is_due_and_refused(small: SigningWorld) -> None:
    small.issuer.issue(DocumentType.PASSPORT)
    _sign(small, 20)
    with pytest.raises(NoSigningKey):
        _sign(small, 1)
    assert [d.reason for d in due_rollovers(small.store, small.clock, small.policy)] in (["count"], ["no_active_key"])
    perform_rollovers(small.store, small.clock, small.issuer, small.policy)
    assert len(_sign(small, 3)) == 3


def test_retired_key_destroyed_after_its_window_certificate_stays_published(small: SigningWorld) -> None:
    first = small.issuer.issue(DocumentType.PASSPORT)
    _sign(small, 2)
    with small.store.transaction() as tx:
        label, end = tx.key(first).hsm_label, tx.key(first).usage_not_after
    assert end is not None
    assert destroy_retired(small.store, small.keystore, small.clock) == []
    small.clock.set(end + timedelta(seconds=1))
    assert destroy_retired(small.store, small.keystore, small.clock) == [label]
    assert destroy_retired(small.store, small.keystore, small.clock) == []
    with pytest.raises(KeyInactive):
        small.keystore.signer(label)
    with small.store.transaction() as tx:
        assert tx.key(first).state is KeyState.DESTROYED
        published = tx.session.scalars(select(PublishedObject).where(PublishedObject.kind == PublishedKind.DS)).all()
        assert [p.certificate_id for p in published if p.withdrawn_at is None] == [1]
        actions = [e.action for e in tx.audit_entries()]
        assert actions[-2:] == ["ds_key.retired", "ds_key.destroyed"]
        assert verify_chain(tx.audit_entries()).ok


def test_a_key_the_hsm_refuses_to_destroy_stays_retired_and_the_others_go(small: SigningWorld) -> None:
    """One DS key the HSM will not destroy does not hold up the others; it stays RETIRED (still
    due) and goes on a later run, with its audit record then."""
    from icao_pki.keystore import KeyStoreError

    first = small.issuer.issue(DocumentType.PASSPORT)
    _sign(small, 2)
    second = small.issuer.issue(DocumentType.PASSPORT)
    with small.store.transaction() as tx:
        labels = {tx.key(k).hsm_label for k in (first, second)}
        end = max(tx.key(k).usage_not_after for k in (first, second))  # type: ignore[type-var]
    small.clock.set(end + timedelta(seconds=1))
    stubborn = sorted(labels)[0]

    class Refusing:
        def destroy(self, label: str, *, reason: str) -> object:
            if label == stubborn:
                raise KeyStoreError("CKR_ACTION_PROHIBITED")
            return small.keystore.destroy(label, reason=reason)

    assert destroy_retired(small.store, Refusing(), small.clock) == sorted(labels - {stubborn})
    with small.store.transaction() as tx:
        states = {tx.key(k).hsm_label: tx.key(k).state for k in (first, second)}
    assert states == {stubborn: KeyState.RETIRED, **{label: KeyState.DESTROYED for label in labels - {stubborn}}}
    assert destroy_retired(small.store, small.keystore, small.clock) == [stubborn]
