"""The DS-key queries of the signing service, rollover and destruction decisions (and the
IS- and CVCA-key queries of the destruction job).

Written against the store's models (SQLAlchemy Core/ORM) so that the store stays the only
code that writes SQL shapes; every state change here is a compare-and-set ``UPDATE … WHERE``
whose "0 rows" is a typed answer, never a read-modify-write in Python.

Which DS key signs: the *current* key of a document type is the active DS key whose usage
window contains `now`, which has budget left and an active DS certificate, the OLDEST first
(smallest ``usage_not_before``, then id).  Using the oldest key first means a successor
issued ahead of time waits until its predecessor is exhausted or its window ends; the
switch is then a matter of the predecessor's reservation failing (CAS), never of a flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from icao_pki.policy import DocumentType, Role

from ..store import Certificate, CertificateStatus, Key, KeyState, Request, RequestState, StoreTx


@dataclass(frozen=True)
class DsKeyView:
    """A detached snapshot of a DS key with the certificate it signs under."""

    key_id: int
    hsm_label: str
    document_type: DocumentType
    state: KeyState
    usage_not_before: datetime | None
    usage_not_after: datetime | None
    max_signatures: int | None
    signatures_used: int
    signatures_reserved: int
    certificate_id: int | None
    certificate_der: bytes | None

    @property
    def remaining(self) -> int | None:
        if self.max_signatures is None:
            return None
        return self.max_signatures - self.signatures_used - self.signatures_reserved


def _view(key: Key, cert: Certificate | None) -> DsKeyView:
    return DsKeyView(
        key_id=key.id,
        hsm_label=key.hsm_label,
        document_type=key.document_type,
        state=key.state,
        usage_not_before=key.usage_not_before,
        usage_not_after=key.usage_not_after,
        max_signatures=key.max_signatures,
        signatures_used=key.signatures_used,
        signatures_reserved=key.signatures_reserved,
        certificate_id=None if cert is None else cert.id,
        certificate_der=None if cert is None else cert.der,
    )


def _latest_ds_certificate(session: Session, key_id: int, now: datetime | None = None) -> Certificate | None:
    query = select(Certificate).where(
        Certificate.key_id == key_id, Certificate.role == Role.DS, Certificate.status == CertificateStatus.ACTIVE
    )
    if now is not None:  # signing: the certificate must be valid now as well
        query = query.where(Certificate.not_before <= now, Certificate.not_after >= now)
    return session.scalars(
        query
        .order_by(Certificate.not_before.desc(), Certificate.id.desc())
        .limit(1)
    ).first()


def signing_candidates(tx: StoreTx, document_type: DocumentType, now: datetime, limit: int = 4) -> list[DsKeyView]:
    """Active DS keys of `document_type` usable at `now`, oldest first, each with its certificate.

    Keys with no budget left are skipped in SQL; a key without an active DS certificate is
    skipped here (it cannot be named in a SOD)."""
    session = tx.session
    keys = session.scalars(
        select(Key)
        .where(
            Key.role == Role.DS,
            Key.document_type == DocumentType(document_type),
            Key.state == KeyState.ACTIVE,
            Key.usage_not_before <= now,
            Key.usage_not_after > now,
            Key.max_signatures.is_not(None),
            Key.signatures_used + Key.signatures_reserved < Key.max_signatures,
        )
        .order_by(Key.usage_not_before, Key.id)
        .limit(limit)
    ).all()
    out = []
    for key in keys:
        session.refresh(key)
        cert = _latest_ds_certificate(session, key.id, now)
        if cert is not None:
            out.append(_view(key, cert))
    return out


def ds_key(tx: StoreTx, key_id: int) -> DsKeyView:
    key = tx.key(key_id)
    return _view(key, _latest_ds_certificate(tx.session, key_id))


def ds_keys(tx: StoreTx, document_type: DocumentType | None = None) -> list[DsKeyView]:
    """Every DS key (any state), for reports: signed and reserved-but-unused per key."""
    query = select(Key).where(Key.role == Role.DS).order_by(Key.id)
    if document_type is not None:
        query = query.where(Key.document_type == DocumentType(document_type))
    return [_view(k, _latest_ds_certificate(tx.session, k.id)) for k in tx.session.scalars(query).all()]


def retire_if_spent(tx: StoreTx, key_id: int) -> bool:
    """ACTIVE → RETIRED once every signature of the budget has been made (used = max); CAS.

    Not when the rest is merely reserved: an instance may still give reserved slots back
    (closing, switching keys), and a retired key's slots would be stranded — the key would
    end short of its 100,000 while its successor signs.  A key whose slots a crash wasted
    stays active, unusable (no budget to reserve), until its window ends."""
    result = tx.session.execute(
        update(Key)
        .where(
            Key.id == key_id,
            Key.state == KeyState.ACTIVE,
            Key.max_signatures.is_not(None),
            Key.signatures_used >= Key.max_signatures,
        )
        .values(state=KeyState.RETIRED)
    )
    return result.rowcount == 1


def older_key_with_budget(tx: StoreTx, view: DsKeyView, now: datetime) -> bool | None:
    """Slots given back to an older key must be used before the newer key's: is there an active
    key of the same document type, older than `view` (the order of `signing_candidates`), usable
    now, with budget no instance holds and an active certificate?  None when there is no older
    active key at all — the usual case, which a lease then need not ask about again."""
    older = (Key.usage_not_before < view.usage_not_before) | (
        (Key.usage_not_before == view.usage_not_before) & (Key.id < view.key_id))
    rows = tx.session.execute(
        select(Key.id, Key.signatures_used + Key.signatures_reserved < Key.max_signatures).where(
            Key.role == Role.DS, Key.document_type == view.document_type, Key.state == KeyState.ACTIVE,
            Key.id != view.key_id, older, Key.usage_not_after > now, Key.max_signatures.is_not(None))
    ).all()  # fmt: skip
    if not rows:
        return None
    free = [key_id for key_id, has_budget in rows if has_budget]
    return bool(free) and tx.session.scalars(
        select(Certificate.id).where(
            Certificate.key_id.in_(free), Certificate.role == Role.DS, Certificate.status == CertificateStatus.ACTIVE,
            Certificate.not_before <= now, Certificate.not_after >= now,
        ).limit(1)
    ).first() is not None


def retire_if_window_over(tx: StoreTx, key_id: int, now: datetime) -> bool:
    """ACTIVE → RETIRED once the usage window has ended; CAS."""
    result = tx.session.execute(
        update(Key)
        .where(Key.id == key_id, Key.state == KeyState.ACTIVE, Key.usage_not_after <= now)
        .values(state=KeyState.RETIRED)
    )
    return result.rowcount == 1


def expired_active_ds_keys(tx: StoreTx, now: datetime) -> Sequence[Key]:
    return tx.session.scalars(
        select(Key).where(Key.role == Role.DS, Key.state == KeyState.ACTIVE, Key.usage_not_after <= now).order_by(Key.id)
    ).all()


def destroyable_ds_keys(tx: StoreTx, now: datetime) -> Sequence[Key]:
    """Retired DS keys whose usage window is over: nobody can sign with them any more."""
    return tx.session.scalars(
        select(Key)
        .where(
            Key.role == Role.DS,
            Key.state == KeyState.RETIRED,
            or_(Key.usage_not_after.is_(None), Key.usage_not_after <= now),
        )
        .order_by(Key.id)
    ).all()


def rollover_candidates(tx: StoreTx, now: datetime, count_fraction: float, window_lead: datetime) -> Sequence[Key]:
    """Active DS keys past a threshold: used+reserved ≥ fraction × max, or the window ends before `window_lead`.

    `window_lead` is ``now + lead time``.  The fraction is applied in SQL (``used + reserved
    >= max * fraction``) so the cost grows with the due keys, not with the table."""
    return tx.session.scalars(
        select(Key)
        .where(
            Key.role == Role.DS,
            Key.state == KeyState.ACTIVE,
            or_(
                and_(
                    Key.max_signatures.is_not(None),
                    (Key.signatures_used + Key.signatures_reserved) * 1.0 >= Key.max_signatures * count_fraction,
                ),
                Key.usage_not_after <= window_lead,
            ),
        )
        .order_by(Key.id)
    ).all()


def successors_of(tx: StoreTx, key: Key) -> Sequence[Key]:
    """DS keys of the same document type that can take over from `key`: generated (certificate
    pending) or active with a usage window ending later."""
    later = Key.state == KeyState.ACTIVE
    if key.usage_not_after is not None:
        later = and_(later, Key.usage_not_after > key.usage_not_after)
    return tx.session.scalars(
        select(Key)
        .where(
            Key.role == Role.DS,
            Key.document_type == key.document_type,
            Key.id != key.id,
            or_(Key.state == KeyState.GENERATED, later),
        )
        .order_by(Key.id)
    ).all()


# --- IS keys held for IS operators (issue 5: destroyed once superseded) -----------------------


def cv_day_start(now: datetime) -> datetime:
    """The start of `now`'s day (UTC): a CV validity is over only if it ended before it, since a
    CV expiration date is valid through the whole day."""
    return datetime(now.year, now.month, now.day, tzinfo=now.tzinfo)


def superseded_is_keys(tx: StoreTx, now: datetime) -> Sequence[tuple[Key, Certificate]]:
    """Active IS keys of this HSM whose certificate has expired while a newer IS certificate of
    the same holder and document type is active, each with that newer certificate.

    "Expired" in whole days: a CV expiration date is valid through the whole day, and the
    key's usage window ends with it (``usage_not_after`` = the day's end), so the key is due
    only from the next day's start.  Without a newer certificate the key stays: nothing
    replaces it yet, and retiring it would hide that from whoever looks at the keys."""
    today = cv_day_start(now)
    newer = select(Certificate).where(
        Certificate.role == Role.IS, Certificate.organisation_id == Key.organisation_id,
        Certificate.document_type == Key.document_type, Certificate.status == CertificateStatus.ACTIVE,
        Certificate.not_before <= now, Certificate.not_after >= now,
        or_(Certificate.key_id.is_(None), Certificate.key_id != Key.id),
    )  # fmt: skip
    keys = tx.session.scalars(
        select(Key)
        .where(
            Key.role == Role.IS, Key.state == KeyState.ACTIVE, Key.usage_not_after.is_not(None),
            Key.usage_not_after < today, exists(newer.with_only_columns(Certificate.id)),
        )
        .order_by(Key.id)
    ).all()  # fmt: skip
    out = []
    for key in keys:
        successor = tx.session.scalars(
            newer.where(Key.id == key.id).order_by(Certificate.not_before.desc(), Certificate.id.desc()).limit(1)
        ).first()
        if successor is not None:
            out.append((key, successor))
    return out


def retire_if_superseded(tx: StoreTx, key_id: int, today: datetime) -> bool:
    """ACTIVE → RETIRED for an IS key whose window ended before `today` (a day's start); CAS."""
    result = tx.session.execute(
        update(Key)
        .where(Key.id == key_id, Key.role == Role.IS, Key.state == KeyState.ACTIVE, Key.usage_not_after < today)
        .values(state=KeyState.RETIRED)
    )
    return result.rowcount == 1


def destroyable_is_keys(tx: StoreTx, now: datetime) -> Sequence[Key]:
    """Retired IS keys whose window is over (whole days): superseded, or retired otherwise
    (e.g. their certificate was revoked).  Their certificates stay."""
    today = cv_day_start(now)
    return tx.session.scalars(
        select(Key)
        .where(
            Key.role == Role.IS,
            Key.state == KeyState.RETIRED,
            or_(Key.usage_not_after.is_(None), Key.usage_not_after < today),
        )
        .order_by(Key.id)
    ).all()


# --- CVCA keys retired by their successor's ceremony (`ceremonies.retire_superseded_cvca`) ------


def destroyable_cvca_keys(tx: StoreTx, now: datetime) -> Sequence[Key]:
    """Retired CVCA keys none of whose certificates is still valid (whole days: a CV expiration
    date is valid through the whole day, so a key is due from the next day's start).

    The certificate, not the key's usage window, decides: the old CVCA stays a trust point for
    as long as its certificate is valid, and its key stays in the HSM until then.  A retired
    CVCA key with no certificate at all (none is made that way) has nothing to wait for."""
    still_valid = select(Certificate.id).where(Certificate.key_id == Key.id,
                                               Certificate.not_after >= cv_day_start(now))
    return tx.session.scalars(
        select(Key)
        .where(Key.role == Role.CVCA, Key.state == KeyState.RETIRED, ~exists(still_valid))
        .order_by(Key.id)
    ).all()


def certificates_of_key(tx: StoreTx, key_id: int) -> Sequence[Certificate]:
    """The certificates that carry a key of ours (for the destruction's audit record)."""
    return tx.session.scalars(select(Certificate).where(Certificate.key_id == key_id).order_by(Certificate.id)).all()


# --- keys generated for a certificate that never came (`signing.unused_keys`) -----------------


def generated_keys_query(roles: Sequence[Role], generated_before: datetime) -> Select[tuple[Key]]:
    """Keys of `roles` still GENERATED that were generated at or before `generated_before`, oldest first.

    Led by ``state = generated`` and a range on ``created_at`` so that ``ix_keys_state_created_at``
    answers it: the cost follows the few keys waiting for a certificate, not the key table
    (the role-led index would walk every key of the role)."""
    return (
        select(Key)
        .where(Key.state == KeyState.GENERATED, Key.created_at <= generated_before,
               Key.role.in_([Role(r) for r in roles]))
        .order_by(Key.created_at, Key.id)
    )  # fmt: skip


def generated_keys_before(tx: StoreTx, roles: Sequence[Role], generated_before: datetime) -> Sequence[Key]:
    return tx.session.scalars(generated_keys_query(roles, generated_before)).all()


def open_requests(tx: StoreTx, request_types: Sequence[str]) -> Sequence[Request]:
    """Requests of `request_types` still in progress (submitted or countersigned), by the
    ``(state, deadline)`` index: in-flight work, never the request history."""
    open_states = [s for s in RequestState if not s.terminal]
    return tx.session.scalars(
        select(Request).where(Request.state.in_(open_states), Request.request_type.in_(list(request_types)))
        .order_by(Request.created_at, Request.id)
    ).all()  # fmt: skip
