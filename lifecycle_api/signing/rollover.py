"""Forced DS rollover and retired-key destruction: the *decide* part, from the database only.

`due_rollovers` answers "which DS keys need a successor now?": an active DS key whose
used + reserved signatures reached the count threshold (default 90 % of its budget) or
whose usage window ends within the lead time (default 14 days), whichever comes first,
and for which no successor exists (a generated key awaiting its certificate, an active
key whose window ends later, or a successor request still open).  A generated successor that
no request names (a crash between the key and its request; the requester's optional
`stalled_successor` tells) is due again as "stalled", and the requester resumes it.  A document type whose
DS keys can no longer sign at all and that has no successor is due as well.

`perform_rollovers` asks a `SuccessorRequester` for each due document type (one per run)
and audits it; running it twice asks once.  `destroy_retired` removes retired keys from
the HSM after their usage window (their certificates stay published), with an audit record.

IS keys the service holds for IS operators (`POST /v1/is/keys`, renewed by
`signing.is_renewal`) go the same way (issue 5): `retire_superseded_is_keys` retires an
active IS key once its certificate has expired (whole days) and a newer IS certificate of
the same holder is active; `destroy_superseded_is_keys` destroys retired IS keys after
their window, audited, the certificate untouched.

A CVCA key is retired by its successor's ceremony, in the step that stores the link certificate
(`ceremonies.retire_superseded_cvca`): after the link it has nothing left to sign.
`destroy_retired_cvca_keys` destroys it once the old CVCA certificate's validity has ended,
audited, its certificates still published.  The ``ds-key-destruction`` job runs all three.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from icao_pki.clock import Clock
from icao_pki.keystore import KeyNotFound, KeyStoreError
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Policy, Role

from ..store import Key, KeyState, Store, StoreTx
from . import keys as keyq

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloverThresholds:
    """Configurable; defaults from issue 5: 90 % of the count or 14 days before the window ends."""

    count_fraction: float = 0.9
    window_lead: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if not 0 < self.count_fraction <= 1:
            raise ValueError("count_fraction must be in (0, 1]")
        if self.window_lead < timedelta(0):
            raise ValueError("window_lead must not be negative")


@dataclass(frozen=True)
class RolloverDue:
    document_type: DocumentType
    key_id: int | None
    hsm_label: str | None
    reason: str  # "count" | "window" | "no_active_key" | "stalled"
    used: int = 0
    reserved: int = 0
    max_signatures: int | None = None
    usage_not_after: datetime | None = None


class SuccessorRequester(Protocol):
    """Creates the successor DS key and its certificate request (Agency → Cơ yếu → Provider)."""

    def successor_pending(self, tx: StoreTx, document_type: DocumentType) -> bool:
        """True while a successor request of this document type is open (no key row yet)."""
        ...

    def request_successor(self, document_type: DocumentType, predecessor_key_id: int, now: datetime) -> str:
        """Start the successor's issuance; returns a reference (request id or key)."""
        ...


def _stalled(tx: StoreTx, requester: SuccessorRequester | None, document_type: DocumentType) -> bool:
    """A requester that can tell (optional `stalled_successor`) reports a generated successor
    key that no open or past request names — a crash between key generation and request."""
    probe = getattr(requester, "stalled_successor", None)
    if probe is None or requester is None or requester.successor_pending(tx, document_type):
        return False
    return probe(tx, document_type) is not None


def _reason(key: Key, now: datetime, thresholds: RolloverThresholds) -> str:
    if key.usage_not_after is not None and key.usage_not_after <= now + thresholds.window_lead:
        return "window"
    return "count"


def due_rollovers(
    store: Store,
    clock: Clock,
    policy: Policy = DEFAULT_POLICY,
    thresholds: RolloverThresholds = RolloverThresholds(),
    requester: SuccessorRequester | None = None,
) -> list[RolloverDue]:
    """The DS rollovers due now, at most one per document type."""
    now = clock.now()
    due: dict[DocumentType, RolloverDue] = {}
    with store.transaction() as tx:
        for key in keyq.rollover_candidates(tx, now, thresholds.count_fraction, now + thresholds.window_lead):
            if key.document_type in due:
                continue
            reason = _reason(key, now, thresholds)
            if keyq.successors_of(tx, key):
                if not _stalled(tx, requester, key.document_type):
                    continue
                reason = "stalled"  # a generated successor no request names: resume it
            elif requester is not None and requester.successor_pending(tx, key.document_type):
                continue
            due[key.document_type] = RolloverDue(
                key.document_type, key.id, key.hsm_label, reason, key.signatures_used,
                key.signatures_reserved, key.max_signatures, key.usage_not_after,
            )  # fmt: skip
        # document types that had DS keys but none can sign and none is coming: signing has stopped
        for doc in tx.session.scalars(select(Key.document_type).where(Key.role == Role.DS).distinct()).all():
            if doc in due or keyq.signing_candidates(tx, doc, now, limit=1):
                continue
            generated = tx.session.scalars(
                select(Key.id).where(Key.role == Role.DS, Key.document_type == doc, Key.state == KeyState.GENERATED)
            ).first()
            if generated is None and not (requester is not None and requester.successor_pending(tx, doc)):
                due[doc] = RolloverDue(doc, None, None, "no_active_key")
            elif generated is not None and _stalled(tx, requester, doc):
                due[doc] = RolloverDue(doc, None, None, "stalled")
    return sorted(due.values(), key=lambda d: d.document_type.value)


@dataclass(frozen=True)
class RolloverAction:
    due: RolloverDue
    reference: str


def perform_rollovers(
    store: Store,
    clock: Clock,
    requester: SuccessorRequester,
    policy: Policy = DEFAULT_POLICY,
    thresholds: RolloverThresholds = RolloverThresholds(),
) -> list[RolloverAction]:
    """Ask for each due successor once and audit it (idempotent: a successor ends the 'due')."""
    actions = []
    for item in due_rollovers(store, clock, policy, thresholds, requester):
        now = clock.now()
        reference = requester.request_successor(item.document_type, item.key_id or 0, now)
        with store.transaction() as tx:
            tx.append_audit(
                at=now, action="ds.rollover_requested", entity_type="key", entity_id=item.key_id or 0,
                details={"document_type": item.document_type.value, "reason": item.reason, "used": item.used,
                         "reserved": item.reserved, "max": item.max_signatures, "successor": reference,
                         "article": policy.limit(item.document_type, Role.DS).article},
            )  # fmt: skip
        actions.append(RolloverAction(item, reference))
    return actions


def retire_expired(store: Store, clock: Clock) -> list[int]:
    """ACTIVE DS keys whose usage window is over → RETIRED (CAS), audited."""
    now = clock.now()
    retired = []
    with store.transaction() as tx:
        for key in keyq.expired_active_ds_keys(tx, now):
            if keyq.retire_if_window_over(tx, key.id, now):
                tx.append_audit(at=now, action="ds_key.retired", entity_type="key", entity_id=key.id,
                                details={"reason": "usage window over", "label": key.hsm_label})
                retired.append(key.id)
    return retired


class KeyDestroyer(Protocol):
    def destroy(self, label: str, *, reason: str) -> object: ...


def _destruction_reason(role: Role, certified: bool) -> str:
    """Why a retired key leaves the HSM: its usage window (or certificate) is over, or it never
    had one — retired unused (`unused_keys`)."""
    if not certified:
        return f"{role.value.upper()} key retired unused: never certified"
    if role is Role.DS:
        return "DS key retired: usage window over (Art. 23.1b / 26.1b)"
    if role is Role.CVCA:
        return "CVCA key retired when a newer CVCA succeeded it, its certificate's validity over"
    return "IS key retired, its certificate's validity over"


def _destroy_in_hsm(keystore: KeyDestroyer, role: Role, key_id: int, label: str,
                    reason: str) -> tuple[str, str | None] | None:
    """The HSM step of a retired key's destruction: (outcome, the key's SPKI SHA-256 where the
    HSM reports it), or None where the HSM refused — the row stays retired and the next run
    tries again, so one key the HSM will not destroy does not hold up the others.  A key
    already gone (a crash between the HSM and the database) is an outcome, not an error."""
    try:
        record = keystore.destroy(label, reason=reason)
    except KeyNotFound:
        return "already absent from the HSM", None
    except KeyStoreError as exc:
        log.warning("%s key %s (key %s) could not be destroyed: %s: %s", role.value.upper(), label, key_id,
                    type(exc).__name__, exc)
        return None
    return "destroyed", record.get("spki_sha256") if isinstance(record, dict) else None


def _destroy_each(store: Store, keystore: KeyDestroyer, clock: Clock, role: Role,
                  due: Sequence[tuple[int, str, bool]], action: str,
                  details: Callable[[StoreTx, int, str | None], dict[str, Any]]) -> list[str]:
    """For each (key id, label, ever certified) due: the HSM step (`_destroy_in_hsm`), then the
    row RETIRED → DESTROYED (CAS) with the audit record — the one sequence the DS, IS and CVCA
    jobs share; `details(tx, key_id, spki_sha256)` adds what each role records, read before
    the state moves.  Returns the labels destroyed."""
    destroyed = []
    for key_id, label, certified in due:
        now = clock.now()
        reason = _destruction_reason(role, certified)
        done = _destroy_in_hsm(keystore, role, key_id, label, reason)
        if done is None:
            continue
        outcome, spki_sha256 = done
        with store.transaction() as tx:
            recorded = {"label": label, "outcome": outcome, "reason": reason, **details(tx, key_id, spki_sha256)}
            tx.set_key_state(key_id, KeyState.RETIRED, KeyState.DESTROYED, now=now)
            tx.append_audit(at=now, action=action, entity_type="key", entity_id=key_id, details=recorded)
        destroyed.append(label)
    return destroyed


def due_destructions(store: Store, clock: Clock) -> list[tuple[int, str, bool]]:
    """(key id, label, ever certified) of the retired DS keys due for destruction."""
    with store.transaction() as tx:
        return [(k.id, k.hsm_label, k.usage_not_after is not None) for k in keyq.destroyable_ds_keys(tx, clock.now())]


def destroy_retired(store: Store, keystore: KeyDestroyer, clock: Clock) -> list[str]:
    """Destroy retired DS keys after their window; certificates stay published.  Idempotent:
    a key already gone from the HSM (crash between the HSM and the database) is recorded; a key
    the HSM refuses to destroy stays retired for the next run (`_destroy_in_hsm`)."""
    retire_expired(store, clock)

    def counts(tx: StoreTx, key_id: int, _spki: str | None) -> dict[str, Any]:
        row = tx.key(key_id)
        return {"signed": row.signatures_used, "reserved_unused": row.signatures_reserved}

    return _destroy_each(store, keystore, clock, Role.DS, due_destructions(store, clock), "ds_key.destroyed", counts)


def retire_superseded_is_keys(store: Store, clock: Clock) -> list[int]:
    """ACTIVE IS keys whose certificate expired and whose holder has a newer active IS
    certificate → RETIRED (CAS), audited with the certificate that superseded them."""
    now = clock.now()
    retired = []
    with store.transaction() as tx:
        for key, successor in keyq.superseded_is_keys(tx, now):
            if keyq.retire_if_superseded(tx, key.id, keyq.cv_day_start(now)):
                tx.append_audit(at=now, action="is_key.retired", entity_type="key", entity_id=key.id,
                                details={"reason": "certificate expired, superseded", "label": key.hsm_label,
                                         "usage_not_after": key.usage_not_after.isoformat()
                                         if key.usage_not_after else None,
                                         "superseded_by": successor.chr, "superseded_by_certificate_id": successor.id,
                                         "holder_organisation_id": key.organisation_id})  # fmt: skip
                retired.append(key.id)
    return retired


def destroy_superseded_is_keys(store: Store, keystore: KeyDestroyer, clock: Clock) -> list[str]:
    """Destroy retired IS keys after their window; their certificates stay.  Idempotent: a
    destroyed key is DESTROYED in the database, so a second run finds nothing; a key already
    gone from the HSM (a crash between the HSM and the database) is recorded, not an error."""
    retire_superseded_is_keys(store, clock)
    now = clock.now()
    with store.transaction() as tx:
        due = [(k.id, k.hsm_label, k.usage_not_after is not None) for k in keyq.destroyable_is_keys(tx, now)]

    def holder(tx: StoreTx, key_id: int, spki_sha256: str | None) -> dict[str, Any]:
        return {"spki_sha256": spki_sha256, "certificates": [c.chr for c in keyq.certificates_of_key(tx, key_id)],
                "holder_organisation_id": tx.key(key_id).organisation_id}

    return _destroy_each(store, keystore, clock, Role.IS, due, "is_key.destroyed", holder)


def destroy_retired_cvca_keys(store: Store, keystore: KeyDestroyer, clock: Clock) -> list[str]:
    """Destroy the CVCA keys their successors' ceremonies retired, once the old CVCA certificate's
    validity has ended (whole days); the certificates stay published.

    Why then: a retired CVCA key signs nothing (`Authority.refuse_retired_cvca`), but while its
    certificate is valid it is the trust point chips and relying parties still hold; after that
    it is only attack surface.  The database decided first (the ceremony's retirement); this is
    the HSM step, then the row moves RETIRED → DESTROYED (CAS) with the audit record.
    Idempotent: a destroyed key is no longer RETIRED; a key already gone from the HSM (a crash
    between the HSM and the database) is recorded; a key the HSM refuses to destroy stays
    retired and the next run tries again."""
    now = clock.now()
    with store.transaction() as tx:
        due = [(k.id, k.hsm_label, True) for k in keyq.destroyable_cvca_keys(tx, now)]

    def certified(tx: StoreTx, key_id: int, spki_sha256: str | None) -> dict[str, Any]:
        certificates = keyq.certificates_of_key(tx, key_id)
        valid_until = max((c.not_after for c in certificates), default=None)
        return {"spki_sha256": spki_sha256, "certificates": [c.chr for c in certificates],
                "certificates_valid_until": valid_until.isoformat() if valid_until else None}

    return _destroy_each(store, keystore, clock, Role.CVCA, due, "cvca_key.destroyed", certified)


def document_types_with_ds_keys(store: Store) -> Sequence[DocumentType]:
    with store.transaction() as tx:
        return tx.session.scalars(select(Key.document_type).where(Key.role == Role.DS).distinct()).all()
