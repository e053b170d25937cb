"""Decision functions the schedules call (one per job), computed from the database with an
injected clock.  The DS rollover and destruction decisions live with the signing service
(`lifecycle_api.signing.rollover`); these are the others: renewals ahead of expiry, CA key
rollover notices, CRLs due, expiry (Art. 18.1) and overdue requests.

Idempotency: each action records what it did (a key row, an audit entry, a notification),
and the next run's query no longer finds the item due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from icao_pki.clock import Clock
from icao_pki.crl import RevocationReason
from icao_pki.policy import DocumentType, Role
from lifecycle_api.store import (
    AuditEntry,
    Certificate,
    CertificateStatus,
    Crl,
    CrlScope,
    Key,
    KeyState,
    PartyType,
    Request,
    RequestState,
    Revocation,
    Store,
    StoreTx,
)

# --- renewals ahead of expiry (IS 1 month, DV 3 months) -------------------------------------

#: how long before expiry a renewal is started
RENEWAL_LEAD: dict[Role, timedelta] = {Role.IS: timedelta(days=7), Role.DVCA: timedelta(days=21)}


@dataclass(frozen=True)
class RenewalDue:
    certificate_id: int
    role: Role
    document_type: DocumentType
    organisation_id: int | None
    subject: str
    not_after: datetime


def holder_of(row: Certificate) -> str:
    """Who a certificate is for, across renewals: the CHR without its 5-character sequence
    number (CV, TR-03110) or the subject DN (X.509)."""
    if row.chr:
        return row.chr[:-5]
    return row.subject


def due_renewals(store: Store, clock: Clock, role: Role, lead: timedelta | None = None) -> list[RenewalDue]:
    """Active certificates of `role` expiring within `lead` whose holder has no newer one."""
    now = clock.now()
    lead = RENEWAL_LEAD.get(role, timedelta(days=7)) if lead is None else lead
    out = []
    with store.transaction() as tx:
        rows = tx.session.scalars(
            select(Certificate)
            .where(
                Certificate.role == role,
                Certificate.status == CertificateStatus.ACTIVE,
                Certificate.not_after > now,
                Certificate.not_after <= now + lead,
            )
            .order_by(Certificate.not_after)
        ).all()
        for c in rows:
            newer = tx.session.scalars(
                select(Certificate).where(
                    Certificate.role == c.role, Certificate.document_type == c.document_type,
                    Certificate.organisation_id == c.organisation_id, Certificate.status == CertificateStatus.ACTIVE,
                    Certificate.not_after > c.not_after,
                )
            ).all()  # fmt: skip
            if any(holder_of(n) == holder_of(c) for n in newer):
                continue
            out.append(RenewalDue(c.id, c.role, c.document_type, c.organisation_id, c.subject, c.not_after))
    return out


class RenewalRequester(Protocol):
    def request_renewal(self, due: RenewalDue, now: datetime) -> str: ...


def _notified(tx: StoreTx, organisation_id: int, event: str, field: str, value: object) -> bool:
    return any(m.event == event and m.payload.get(field) == value for m in tx.notifications(organisation_id))


def _providers(tx: StoreTx) -> list[int]:
    return [o.id for o in tx.organisations_of_type(PartyType.PROVIDER)]


@dataclass
class RenewalNotices:
    """Fallback `RenewalRequester`: records the due renewal (audit + notification to the holder
    and the Provider) once; the holder then submits its authenticated request."""

    store: Store

    def request_renewal(self, due: RenewalDue, now: datetime) -> str:
        event = f"{due.role.value}.renewal_due"
        with self.store.transaction() as tx:
            targets = {*(_providers(tx)), *([due.organisation_id] if due.organisation_id else [])}
            if any(_notified(tx, org, event, "certificate_id", due.certificate_id) for org in targets):
                return "already-noticed"
            payload = {"certificate_id": due.certificate_id, "subject": due.subject,
                       "document_type": due.document_type.value, "not_after": due.not_after.isoformat()}
            for org in sorted(targets):
                tx.enqueue_notification(organisation_id=org, event=event, payload=payload, now=now)
            tx.append_audit(at=now, action=event, entity_type="certificate", entity_id=due.certificate_id,
                            details=payload)
        return "noticed"


def run_renewals(store: Store, clock: Clock, role: Role, requester: RenewalRequester,
                 lead: timedelta | None = None) -> list[tuple[RenewalDue, str]]:
    return [(due, requester.request_renewal(due, clock.now())) for due in due_renewals(store, clock, role, lead)]


# --- CVCA (3 years) and CSCA (key 5 years) rollovers ------------------------------------------

#: CSCA: the new CSCA must be announced 90 days ahead (ICAO 9303-12 §5.1.2), plus 30 days to prepare
CA_ROLLOVER_LEAD: dict[Role, timedelta] = {Role.CSCA: timedelta(days=120), Role.CVCA: timedelta(days=90)}
CSCA_ADVANCE_NOTICE = timedelta(days=90)


@dataclass(frozen=True)
class CaRolloverDue:
    key_id: int
    role: Role
    document_type: DocumentType
    hsm_label: str
    usage_not_after: datetime


def due_ca_rollovers(store: Store, clock: Clock, role: Role, lead: timedelta | None = None) -> list[CaRolloverDue]:
    """Active CSCA / CVCA keys whose usage window ends within `lead` and that have no successor key."""
    now = clock.now()
    lead = CA_ROLLOVER_LEAD[role] if lead is None else lead
    other = aliased(Key)
    with store.transaction() as tx:
        keys = tx.session.scalars(
            select(Key)
            .where(
                Key.role == role,
                Key.state == KeyState.ACTIVE,
                Key.usage_not_after.is_not(None),
                Key.usage_not_after <= now + lead,
                ~exists().where(
                    other.role == Key.role,
                    other.document_type == Key.document_type,
                    other.id != Key.id,
                    or_(other.state == KeyState.GENERATED,
                        and_(other.state == KeyState.ACTIVE, other.usage_not_after > Key.usage_not_after)),
                ),
            )
            .order_by(Key.usage_not_after)
        ).all()
        return [CaRolloverDue(k.id, k.role, k.document_type, k.hsm_label, k.usage_not_after) for k in keys
                if k.usage_not_after is not None]


class CaRolloverActor(Protocol):
    """New key + link certificate (+ new Master List for a CSCA), through the key ceremony."""

    def rollover(self, due: CaRolloverDue, now: datetime) -> str: ...


@dataclass
class CaRolloverNotices:
    """Fallback actor: records the decision and, for a CSCA, the 90-day advance notice to every
    Agency and foreign state (audit + notifications), once per key."""

    store: Store

    def rollover(self, due: CaRolloverDue, now: datetime) -> str:
        event = f"{due.role.value}.rollover_notice"
        with self.store.transaction() as tx:
            providers = _providers(tx)
            if any(_notified(tx, org, event, "key_id", due.key_id) for org in providers):
                return "already-noticed"
            effective = now + CSCA_ADVANCE_NOTICE if due.role is Role.CSCA else due.usage_not_after
            payload = {"key_id": due.key_id, "document_type": due.document_type.value,
                       "usage_not_after": due.usage_not_after.isoformat(), "new_key_effective": effective.isoformat()}
            recipients = set(providers)
            for org in tx.organisations():
                if org.party_type in (PartyType.AGENCY, PartyType.FOREIGN_STATE):
                    recipients.add(org.id)
            for org_id in sorted(recipients):
                tx.enqueue_notification(organisation_id=org_id, event=event, payload=payload, now=now)
            tx.append_audit(at=now, action=event, entity_type="key", entity_id=due.key_id, details=payload)
        return "noticed"


def run_ca_rollovers(store: Store, clock: Clock, role: Role, actor: CaRolloverActor,
                     lead: timedelta | None = None) -> list[tuple[CaRolloverDue, str]]:
    return [(due, actor.rollover(due, clock.now())) for due in due_ca_rollovers(store, clock, role, lead)]


# --- CRLs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrlDue:
    csca_certificate_id: int
    document_type: DocumentType
    fingerprint_sha256: str
    last_number: int | None
    reason: str  # "none" | "interval" | "next_update"


def due_crls(store: Store, clock: Clock, interval: timedelta = timedelta(days=1),
             margin: timedelta = timedelta(hours=1)) -> list[CrlDue]:
    """Our active CSCA certificates whose latest CRL is missing, older than `interval`, or whose
    nextUpdate comes within `margin` (a CRL must never lapse; nextUpdate ≤ 90 days)."""
    now = clock.now()
    out = []
    with store.transaction() as tx:
        cscas = tx.session.scalars(
            select(Certificate).join(Key, Key.id == Certificate.key_id).where(
                Certificate.role == Role.CSCA, Certificate.status == CertificateStatus.ACTIVE,
                Certificate.not_before <= now, Certificate.not_after > now, Key.state != KeyState.DESTROYED,
            ).order_by(Certificate.id)
        ).all()  # fmt: skip
        for cert in cscas:
            latest = tx.latest_crl(cert.fingerprint_sha256, CrlScope.CSCA)
            reason = None
            if latest is None:
                reason = "none"
            elif latest.this_update <= now - interval:
                reason = "interval"
            elif latest.next_update is not None and latest.next_update <= now + margin:
                reason = "next_update"
            if reason:
                out.append(CrlDue(cert.id, cert.document_type, cert.fingerprint_sha256,
                                  latest.crl_number if latest else None, reason))
    return out


class CrlIssuer(Protocol):
    def issue_crl(self, due: CrlDue, now: datetime) -> int: ...


def run_crls(store: Store, clock: Clock, issuer: CrlIssuer, interval: timedelta = timedelta(days=1)) -> list[int]:
    return [issuer.issue_crl(due, clock.now()) for due in due_crls(store, clock, interval)]


# --- expiry (Art. 18.1) ---------------------------------------------------------------------


def expire_certificates(store: Store, clock: Clock, limit: int = 500) -> list[int]:
    """Active certificates past notAfter → EXPIRED, with a revocation record (reason "expired",
    Art. 18.1: expired certificates are revoked automatically).  CAS on the status."""
    now = clock.now()
    done = []
    with store.transaction() as tx:
        ids = tx.session.scalars(
            select(Certificate.id)
            .where(Certificate.status == CertificateStatus.ACTIVE, Certificate.not_after < now)
            .order_by(Certificate.not_after)
            .limit(limit)
        ).all()
        for cert_id in ids:
            result = tx.session.execute(
                update(Certificate)
                .where(Certificate.id == cert_id, Certificate.status == CertificateStatus.ACTIVE)
                .values(status=CertificateStatus.EXPIRED)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                continue
            if tx.session.scalars(select(Revocation.id).where(Revocation.certificate_id == cert_id)).first() is None:
                tx.add_revocation(certificate_id=cert_id, reason=RevocationReason.EXPIRED.value, requested_at=now,
                                  deadline=now, revoked_at=now)
            tx.append_audit(at=now, action="certificate.expired", entity_type="certificate", entity_id=cert_id,
                            details={"article": RevocationReason.EXPIRED.article})
            done.append(cert_id)
    return done


# --- overdue requests -----------------------------------------------------------------------


def overdue_requests(store: Store, clock: Clock) -> Sequence[Request]:
    with store.transaction() as tx:
        return tx.overdue_requests(clock.now())


def stranded_auto_acts(store: Store, clock: Clock, request_types: Sequence[str],
                       older_than: timedelta = timedelta(minutes=10)) -> list[str]:
    """Countersigned requests the Provider's policy acts on automatically that still wait.

    The automatic act runs right after the countersignature commits; a crash (or SIGKILL)
    between the two, or during the act, leaves the request countersigned with nobody to act
    (the Cơ yếu unit's side is done, the rollover job does not ask again since a request names
    the key).  A request whose automatic act was refused (``request.auto_act_failed`` after it
    was countersigned) is left to the Provider's officers: retrying a refusal would only repeat
    it.  `older_than` keeps the sweep away from an act that is still running."""
    if not request_types:
        return []
    cutoff = clock.now() - older_than
    with store.transaction() as tx:
        waiting = tx.session.scalars(
            select(Request).where(Request.state == RequestState.COUNTERSIGNED,
                                  Request.request_type.in_(list(request_types)), Request.updated_at <= cutoff)
            .order_by(Request.updated_at)
        ).all()  # fmt: skip
        if not waiting:
            return []
        since = {r.id: r.updated_at for r in waiting}
        failures = tx.session.execute(
            select(AuditEntry.entity_id, AuditEntry.at).where(
                AuditEntry.entity_type == "request", AuditEntry.entity_id.in_(list(since)),
                AuditEntry.action == "request.auto_act_failed")
        ).all()  # fmt: skip
        refused = {entity_id for entity_id, at in failures if at >= since[entity_id]}
        return [request_id for request_id in since if request_id not in refused]


def latest_crl_numbers(store: Store) -> dict[str, int]:
    with store.transaction() as tx:
        rows = tx.session.execute(select(Crl.issuer_fingerprint_sha256, Crl.crl_number)).all()
    out: dict[str, int] = {}
    for fp, number in rows:
        out[fp] = max(out.get(fp, 0), number)
    return out

