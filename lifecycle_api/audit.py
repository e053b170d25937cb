"""The audit log's hash chain (Art. 36: the certificate database is kept tamper-evident).

Each entry stores the hash of the entry before it and its own hash, SHA-256 over a
canonical JSON of all its fields (sorted keys, no spaces, UTF-8, times as ISO-8601 UTC
with microseconds).  Changing, deleting or reordering any entry breaks the chain at that
entry; `verify_chain` names the first one.  The store appends (`StoreTx.append_audit`);
nothing ever updates or deletes a row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

#: prev_hash of the first entry
GENESIS_HASH = "0" * 64


class AuditRecord(Protocol):
    seq: int
    at: datetime
    actor_organisation_id: int | None
    actor_operator_id: int | None
    action: str
    entity_type: str
    entity_id: str
    details: Mapping[str, Any]
    prev_hash: str
    entry_hash: str


def canonical_json(value: Any) -> bytes:
    """The one serialisation that is hashed: deterministic for equal values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_entry_hash(
    *,
    seq: int,
    at: datetime,
    actor_organisation_id: int | None,
    actor_operator_id: int | None,
    action: str,
    entity_type: str,
    entity_id: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    fields = {
        "seq": seq,
        "at": _time(at),
        "actor_organisation_id": actor_organisation_id,
        "actor_operator_id": actor_operator_id,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "details": dict(details),
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def hash_of(record: AuditRecord, prev_hash: str | None = None) -> str:
    return compute_entry_hash(
        seq=record.seq,
        at=record.at,
        actor_organisation_id=record.actor_organisation_id,
        actor_operator_id=record.actor_operator_id,
        action=record.action,
        entity_type=record.entity_type,
        entity_id=record.entity_id,
        details=record.details,
        prev_hash=record.prev_hash if prev_hash is None else prev_hash,
    )


@dataclass(frozen=True)
class ChainReport:
    """Result of a chain check; `first_broken_seq` is None when the chain is intact."""

    entries: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def verify_chain(entries: Iterable[AuditRecord]) -> ChainReport:
    """Recompute the chain in `seq` order; report the first entry that does not fit.

    An entry is broken when its sequence number skips (a deleted entry), its stored
    prev_hash is not the previous entry's hash (reordered or deleted), or its stored hash
    is not the hash of its fields (edited).
    """
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainReport(count, expected_prev, entry.seq, f"sequence gap: expected entry {expected_seq}, found {entry.seq}")
        if entry.prev_hash != expected_prev:
            return ChainReport(count, expected_prev, entry.seq, "prev_hash does not match the previous entry's hash")
        recomputed = hash_of(entry)
        if recomputed != entry.entry_hash:
            return ChainReport(count, expected_prev, entry.seq, "entry_hash does not match the entry's content")
        expected_prev = entry.entry_hash
        expected_seq += 1
        count += 1
    return ChainReport(count, expected_prev)
