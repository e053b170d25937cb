from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from icao_pki.clock import FakeClock
from icao_pki.policy import DocumentType, Role
from lifecycle_api.audit import verify_chain
from lifecycle_api.store import CertificateStatus, KeyState, PartyType, Store
from schedules import decisions
from schedules.jobs import JOBS, JobContext, build_scheduler, register_context, register_jobs, run_all, run_job
from schedules.leader import LeaderLock

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def _ids(path: Path) -> list[str]:
    scheduler = build_scheduler(f"sqlite:///{path}")
    scheduler.start(paused=True)
    try:
        register_jobs(scheduler)
        return sorted(job.id for job in scheduler.get_jobs())
    finally:
        scheduler.shutdown(wait=False)


def test_job_registration_is_idempotent_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first = _ids(path)
    second = _ids(path)
    assert first == second == sorted(JOBS)
    with create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar() == len(JOBS)
        rows = conn.execute(text("SELECT id FROM apscheduler_jobs ORDER BY id")).scalars().all()
    assert rows == sorted(JOBS)


def test_sqlite_leader_lock_is_exclusive(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    a, b = LeaderLock(engine), LeaderLock(engine)
    assert a.try_acquire()
    assert not b.try_acquire()
    a.release()
    assert b.try_acquire()
    b.release()


@pytest.mark.postgres
def test_postgres_leader_is_an_advisory_lock(pg) -> None:  # type: ignore[no-untyped-def]
    url = pg.create_database()
    e1, e2 = create_engine(url), create_engine(url)
    a, b = LeaderLock(e1), LeaderLock(e2)
    assert a.try_acquire()
    assert not b.try_acquire()
    a._conn.invalidate()  # the leader's connection dies (crash): the lock goes with it
    a._conn = None
    for _ in range(50):
        if b.try_acquire():
            break
        time.sleep(0.1)
    assert b.held
    b.release()
    e1.dispose()
    e2.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'l.db'}")
    s.create_schema()
    with s.transaction() as tx:
        tx.add_organisation(name="Provider", party_type=PartyType.PROVIDER, country="VN", now=T0)
        tx.add_organisation(name="Agency", party_type=PartyType.AGENCY, country="VN", now=T0,
                            document_types=[DocumentType.PASSPORT])
    return s


def _cert(store: Store, role: Role, not_after: datetime, *, org: int | None = 2, subject: str = "CN=x",
          key_id: int | None = None) -> int:
    der = f"{role}{not_after}{subject}{key_id}".encode()
    with store.transaction() as tx:
        return tx.add_certificate(
            key_id=key_id, organisation_id=org, certificate_format="x509", role=role,
            document_type=DocumentType.PASSPORT, serial=hashlib.sha256(der).hexdigest()[:16], subject=subject,
            issuer="CN=issuer", not_before=T0 - timedelta(days=20), not_after=not_after, der=der,
            fingerprint_sha256=hashlib.sha256(der).hexdigest(), created_at=T0,
        ).id  # fmt: skip


def test_expiry_revokes_automatically_once(store: Store) -> None:
    clock = FakeClock(T0)
    expired = _cert(store, Role.IS, T0 - timedelta(seconds=1))
    valid = _cert(store, Role.IS, T0 + timedelta(days=3), subject="CN=y")
    assert decisions.expire_certificates(store, clock) == [expired]
    assert decisions.expire_certificates(store, clock) == []
    with store.transaction() as tx:
        assert tx.certificate(expired).status is CertificateStatus.EXPIRED
        assert tx.certificate(valid).status is CertificateStatus.ACTIVE
        assert tx.session.execute(text("SELECT reason FROM revocations")).scalars().all() == ["expired"]


def test_is_renewal_due_ahead_of_expiry_until_renewed(store: Store) -> None:
    clock = FakeClock(T0)
    old = _cert(store, Role.IS, T0 + timedelta(days=5))
    _cert(store, Role.IS, T0 + timedelta(days=25), subject="CN=other")  # not yet due
    assert [d.certificate_id for d in decisions.due_renewals(store, clock, Role.IS)] == [old]
    notices = decisions.RenewalNotices(store)
    assert [r for _, r in decisions.run_renewals(store, clock, Role.IS, notices)] == ["noticed"]
    assert [r for _, r in decisions.run_renewals(store, clock, Role.IS, notices)] == ["already-noticed"]
    _cert(store, Role.IS, T0 + timedelta(days=35))  # the renewal was issued
    assert decisions.due_renewals(store, clock, Role.IS) == []
    assert decisions.due_renewals(store, clock, Role.DVCA) == []


def test_csca_rollover_notice_recorded_once_90_days_ahead(store: Store) -> None:
    clock = FakeClock(T0)
    with store.transaction() as tx:
        key = tx.add_key(hsm_label="passport-csca-00001", role=Role.CSCA, document_type=DocumentType.PASSPORT,
                         algorithm="secp256r1", now=T0, usage_not_before=T0 - timedelta(days=1700),
                         usage_not_after=T0 + timedelta(days=100), state=KeyState.ACTIVE).id
    actor = decisions.CaRolloverNotices(store)
    assert [r for _, r in decisions.run_ca_rollovers(store, clock, Role.CSCA, actor)] == ["noticed"]
    assert [r for _, r in decisions.run_ca_rollovers(store, clock, Role.CSCA, actor)] == ["already-noticed"]
    with store.transaction() as tx:
        [notice] = [m for m in tx.notifications(2) if m.event == "csca.rollover_notice"]
        assert notice.payload["key_id"] == key
        assert datetime.fromisoformat(notice.payload["new_key_effective"]) == T0 + timedelta(days=90)
        assert verify_chain(tx.audit_entries()).ok
    assert decisions.due_ca_rollovers(store, clock, Role.CVCA) == []


def test_every_job_runs_through_the_registered_context(store: Store) -> None:
    clock = FakeClock(T0)
    register_context(JobContext(store=store, clock=clock), "t")
    assert run_job("overdue-requests", "t") == {"overdue": [], "auto_acted": []}
    results = run_all(JobContext(store=store, clock=clock))
    assert set(results) == set(JOBS)


def test_runner_leads_registers_and_runs_jobs(tmp_path: Path) -> None:
    from schedules.jobs import ScheduleRunner

    s = Store(f"sqlite:///{tmp_path / 'run.db'}")
    s.create_schema()
    engine = s.engine
    ran: list[str] = []
    ctx = JobContext(store=s, clock=FakeClock(T0), deliver_notifications=lambda: ran.append("delivered"))
    # the same configuration on both (two instances of one deployment): either may lead
    intervals = {"notification-delivery": timedelta(seconds=0.3)}
    a = ScheduleRunner(ctx, engine, LeaderLock(engine), context_name="r", retry=timedelta(seconds=0.2),
                       intervals=intervals)
    b = ScheduleRunner(ctx, engine, LeaderLock(engine), context_name="r", retry=timedelta(seconds=0.2),
                       intervals=intervals)
    a.start()
    b.start()
    deadline = time.monotonic() + 10
    while not ran and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ran, "the leader's scheduler ran the notification job"
    assert (a.scheduler is None) != (b.scheduler is None)  # exactly one leader
    a.stop()
    b.stop()


def test_stranded_automatic_acts_are_swept_but_refused_ones_are_left_to_officers(store: Store) -> None:
    """A crash between countersignature and the Provider's automatic act leaves the request
    countersigned with nobody to act; the overdue-requests job acts on it (after ten minutes),
    never on a request whose automatic act was refused, nor on types the policy does not list."""
    from lifecycle_api.store import RequestState

    clock = FakeClock(T0)
    with store.transaction() as tx:
        org = tx.add_organisation(name="A", party_type=PartyType.AGENCY, country="VN", now=T0)
        for rid, rtype in (("lost", "ds_certificate"), ("refused", "ds_certificate"), ("fresh", "ds_certificate"),
                           ("manual", "revocation"), ("open", "ds_certificate")):
            tx.add_request(request_id=rid, request_type=rtype, document_type=DocumentType.PASSPORT,
                           applicant_organisation_id=org.id, ministry=None, payload={}, deadline=None, now=T0)
            if rid != "open":
                when = T0 + (timedelta(minutes=55) if rid == "fresh" else timedelta(0))
                tx.transition_request(rid, RequestState.SUBMITTED, RequestState.COUNTERSIGNED, now=when)
        tx.append_audit(at=T0 + timedelta(seconds=1), action="request.auto_act_failed", entity_type="request",
                        entity_id="refused", details={"error": "PolicyViolation"})
    clock.set(T0 + timedelta(hours=1))
    acted: list[str] = []
    ctx = JobContext(store=store, clock=clock, auto_act=lambda rid: acted.append(rid) or rid,
                     auto_act_types=("ds_certificate",))
    assert JOBS["overdue-requests"].run(ctx) == {"overdue": [], "auto_acted": ["lost"]}
    assert acted == ["lost"]
    assert decisions.stranded_auto_acts(store, clock, ()) == []  # no automatic policy: nothing to sweep
    clock.advance(minutes=10)  # "fresh" is now old enough
    assert decisions.stranded_auto_acts(store, clock, ("ds_certificate",)) == ["lost", "fresh"]
