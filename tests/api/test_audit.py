"""The audit log is hash-chained and verify_chain names the first broken entry."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from lifecycle_api.audit import GENESIS_HASH, verify_chain
from lifecycle_api.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'audit.db'}")
    s.create_schema()
    with s.transaction() as tx:
        for i in range(5):
            tx.append_audit(at=T0 + timedelta(seconds=i), action=f"step.{i}", entity_type="request", entity_id=f"r{i}",
                            details={"n": i, "note": "Cơ yếu"}, actor_organisation_id=1)
    yield s
    s.dispose()


def _report(store: Store):
    with store.transaction() as tx:
        return verify_chain(tx.audit_entries())


def test_audit_chain_intact(store: Store) -> None:
    report = _report(store)
    assert report.ok and report.entries == 5
    with store.transaction() as tx:
        entries = list(tx.audit_entries())
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    assert report.head_hash == entries[-1].entry_hash


def test_audit_chain_edit_detected_at_that_entry(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET details = :d WHERE seq = 3"), {"d": '{"n": 99, "note": "Cơ yếu"}'})
    report = _report(store)
    assert report.first_broken_seq == 3
    assert "content" in (report.reason or "")


def test_audit_chain_deletion_detected(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    report = _report(store)
    assert report.first_broken_seq == 3
    assert "gap" in (report.reason or "")


def test_audit_chain_rehash_without_relinking_detected(store: Store) -> None:
    """An attacker who edits entry 2 and recomputes its hash still breaks entry 3's link."""
    from lifecycle_api.audit import compute_entry_hash

    with store.transaction() as tx:
        entry = list(tx.audit_entries())[1]
        fields = {k: getattr(entry, k) for k in ("seq", "at", "actor_organisation_id", "actor_operator_id", "action",
                                                  "entity_type", "entity_id", "prev_hash")}
        fields["details"] = {"n": 1, "note": "forged"}
        new_hash = compute_entry_hash(**fields)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET details = :d, entry_hash = :h WHERE seq = 2"),
                     {"d": '{"n": 1, "note": "forged"}', "h": new_hash})
    report = _report(store)
    assert report.first_broken_seq == 3
    assert "prev_hash" in (report.reason or "")


def test_audit_append_continues_chain_across_transactions(store: Store) -> None:
    with store.transaction() as tx:
        e = tx.append_audit(at=T0 + timedelta(minutes=1), action="later", entity_type="x", entity_id=1)
    assert e.seq == 6
    assert _report(store).ok
