"""The store: compare-and-set transitions and counters, aware times, duplicate refusal."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from icao_pki.policy import DocumentType, Role
from lifecycle_api.errors import Conflict, CounterExhausted, StaleState
from lifecycle_api.store import KeyState, PartyType, RequestState, Store
from lifecycle_api.store.models import Key

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'store.db'}")
    s.create_schema()
    yield s
    s.dispose()


def _ds_key(store: Store, max_signatures: int) -> int:
    with store.transaction() as tx:
        key = tx.add_key(
            hsm_label="passport-ds-00001",
            role=Role.DS,
            document_type=DocumentType.PASSPORT,
            algorithm="brainpoolP256r1",
            max_signatures=max_signatures,
            state=KeyState.ACTIVE,
            now=NOW,
        )
        return key.id


def test_store_times_come_back_aware_utc(store: Store) -> None:
    with store.transaction() as tx:
        org = tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=NOW)
    with store.transaction() as tx:
        again = tx.organisation(org.id)
        assert again.created_at == NOW
        assert again.created_at.tzinfo is not None


def test_store_refuses_naive_datetime(store: Store) -> None:
    with pytest.raises(Exception, match="naive"), store.transaction() as tx:
        tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=datetime(2026, 1, 1))


def test_store_duplicate_name_is_conflict_and_rolls_back(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=NOW)
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.add_organisation(name="B", party_type=PartyType.AGENCY, country="VN", now=NOW)
        tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=NOW)
    with store.transaction() as tx:
        assert [o.name for o in tx.organisations()] == ["A"]


def test_store_reserve_signatures_stops_at_max(store: Store) -> None:
    key_id = _ds_key(store, max_signatures=3)
    with store.transaction() as tx:
        tx.reserve_signatures(key_id, 2)
        assert tx.settle_signatures(key_id, used=2) is False  # 2 of 3 made: not spent
        tx.reserve_signatures(key_id, 1)
    with pytest.raises(CounterExhausted) as info, store.transaction() as tx:
        tx.reserve_signatures(key_id, 1)
    assert info.value.data["used"] == 2 and info.value.data["reserved"] == 1
    with store.transaction() as tx:
        assert tx.settle_signatures(key_id, used=0, released=1) is False
        tx.reserve_signatures(key_id, 1)
        key = tx.key(key_id)
        assert (key.signatures_used, key.signatures_reserved) == (2, 1)
        assert tx.settle_signatures(key_id, used=1) is True  # the 3rd of 3: every signature made


def test_store_counter_updates_refresh_a_key_loaded_in_the_same_transaction(store: Store) -> None:
    """The counters change in SQL only; a `Key` this transaction already holds must not keep
    the old values (a select returns the loaded object as it is)."""
    key_id = _ds_key(store, max_signatures=10)
    with store.transaction() as tx:
        loaded = tx.session.scalars(select(Key).where(Key.id == key_id)).one()
        assert (loaded.signatures_used, loaded.signatures_reserved) == (0, 0)
        tx.reserve_signatures(key_id, 4)
        assert (loaded.signatures_used, loaded.signatures_reserved) == (0, 4)
        tx.settle_signatures(key_id, used=3, released=1)
        again = tx.session.scalars(select(Key).where(Key.id == key_id)).one()
        assert again is loaded
        assert (loaded.signatures_used, loaded.signatures_reserved) == (3, 0)


def test_store_reserve_signatures_concurrent_never_exceeds_max(store: Store) -> None:
    key_id = _ds_key(store, max_signatures=10)
    wins: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            try:
                with store.transaction() as tx:
                    tx.reserve_signatures(key_id, 1)
                with lock:
                    wins.append(1)
            except CounterExhausted:
                pass

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 10
    with store.transaction() as tx:
        assert tx.key(key_id).signatures_reserved == 10


def test_store_reserve_on_retired_key_is_stale(store: Store) -> None:
    key_id = _ds_key(store, max_signatures=3)
    with store.transaction() as tx:
        tx.set_key_state(key_id, KeyState.ACTIVE, KeyState.RETIRED, now=NOW)
    with pytest.raises(StaleState), store.transaction() as tx:
        tx.reserve_signatures(key_id, 1)


def test_store_transition_is_compare_and_set(store: Store) -> None:
    with store.transaction() as tx:
        org = tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=NOW)
        tx.add_request(
            request_id="r1", request_type="t", document_type=None, applicant_organisation_id=org.id,
            ministry=None, payload={}, deadline=None, now=NOW,
        )
    with store.transaction() as tx:
        req = tx.transition_request("r1", RequestState.SUBMITTED, RequestState.COUNTERSIGNED, now=NOW)
        assert req.state is RequestState.COUNTERSIGNED
    with pytest.raises(StaleState) as info, store.transaction() as tx:
        tx.transition_request("r1", RequestState.SUBMITTED, RequestState.REJECTED, now=NOW)
    assert info.value.data["state"] == "countersigned"


def test_store_overdue_lists_open_requests_past_deadline(store: Store) -> None:
    with store.transaction() as tx:
        org = tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=NOW)
        for rid, deadline in (("late", NOW - timedelta(hours=1)), ("ok", NOW + timedelta(hours=1)), ("none", None)):
            tx.add_request(
                request_id=rid, request_type="t", document_type=None, applicant_organisation_id=org.id,
                ministry=None, payload={}, deadline=deadline, now=NOW - timedelta(days=1),
            )
        tx.add_request(
            request_id="done", request_type="t", document_type=None, applicant_organisation_id=org.id,
            ministry=None, payload={}, deadline=NOW - timedelta(hours=2), now=NOW - timedelta(days=1),
        )
        tx.transition_request("done", RequestState.SUBMITTED, RequestState.REJECTED, now=NOW)
    with store.transaction() as tx:
        assert [r.id for r in tx.overdue_requests(NOW)] == ["late"]
