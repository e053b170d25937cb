"""DS and IS keys generated in the HSM whose certificate request never came leave it after
`unused_keys.DEFAULT_MAX_AGE` (30 days): the ``unused-key-destruction`` job retires them (CAS,
audit, a notice to the holder) — the database first, so a key can never be certified once its
destruction is decided — and ``ds-key-destruction`` destroys them in the HSM.  A key a request
in progress names is kept.  Time moves only through the world's FakeClock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from icao_pki.keystore import KeyInactive
from lifecycle_api.audit import verify_chain
from lifecycle_api.signing import keys as keyq
from lifecycle_api.signing import unused_keys
from lifecycle_api.store import AuditEntry, KeyState, RequestState, Store, StoreTx
from schedules.jobs import JOBS, JobContext, build_scheduler, register_jobs
from schedules.runtime import job_context
from tests.flows.pki import PkiWorld

JOB = "unused-key-destruction"
MAX_AGE = unused_keys.DEFAULT_MAX_AGE

pytestmark = pytest.mark.hsm




# --- helpers ------------------------------------------------------------------------------------


def _run(pki: PkiWorld, job: str = JOB) -> list[str]:
    """A job as `icao-pki serve` wires it (`schedules.runtime.job_context`: default age, the HSM)."""
    ctx = job_context(pki.world.client.app.state.services, pki.keystore)
    return JOBS[job].run(ctx)


def _destroy(pki: PkiWorld) -> list[str]:
    return _run(pki, "ds-key-destruction")


def _submit(pki: PkiWorld, request_type: str, payload: dict[str, Any], party: str = "agency") -> str:
    r = pki.submit(party, request_type, "passport", payload)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _submit_ds(pki: PkiWorld, key: dict[str, Any]) -> str:
    return _submit(pki, "ds_certificate", {"hsm_label": key["hsm_label"], "csr": key["csr"]})


def _provision_is(pki: PkiWorld) -> dict[str, Any]:
    r = pki.client.post("/v1/is/keys", json={"document_type": "passport"}, headers=pki.headers("is_operator"))
    assert r.status_code == 201, r.text
    return r.json()


def _state(pki: PkiWorld, key_id: int) -> KeyState:
    with pki.world.store.transaction() as tx:
        return tx.key(key_id).state


def _in_hsm(pki: PkiWorld, label: str) -> bool:
    """The private key is on the token (`KeyStore.signer` refuses a destroyed one)."""
    try:
        pki.keystore.signer(label)
    except KeyInactive:
        return False
    return True


def _audit(pki: PkiWorld, key_id: int, action: str) -> list[dict[str, Any]]:
    with pki.world.store.transaction() as tx:
        return [e.details for e in tx.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "key", AuditEntry.entity_id == str(key_id),
                                     AuditEntry.action == action).order_by(AuditEntry.seq))]  # fmt: skip


def _notices(pki: PkiWorld, party: str, event: str) -> list[dict[str, Any]]:
    with pki.world.store.transaction() as tx:
        return [m.payload for m in tx.notifications(pki.world[party].organisation_id) if m.event == event]


# --- DS keys ------------------------------------------------------------------------------------


def test_the_deployments_max_age_reaches_the_unused_key_job(pki_sqlite: PkiWorld) -> None:
    """`Settings.unused_key_max_age` (``ICAO_PKI_UNUSED_KEY_MAX_AGE``) is the age the job that
    `schedules.runtime.job_context` builds retires keys at, unless the caller passes its own."""
    pki, world = pki_sqlite, pki_sqlite.world
    services = world.client.app.state.services
    week = timedelta(days=7)
    configured = replace(services, settings=replace(services.settings, unused_key_max_age=week))
    ctx = job_context(configured, pki.keystore)
    assert ctx.unused_key_max_age == week
    assert job_context(configured, pki.keystore, unused_key_max_age=timedelta(days=10)).unused_key_max_age \
        == timedelta(days=10)
    assert job_context(services, pki.keystore).unused_key_max_age == MAX_AGE
    start = world.clock.now()
    key = pki.ds_key()
    world.clock.set(start + week - timedelta(seconds=1))
    assert JOBS[JOB].run(ctx) == []
    world.clock.set(start + week + timedelta(hours=1))
    assert _run(pki) == []  # the default 30 days: not yet
    assert JOBS[JOB].run(ctx) == [key["hsm_label"]]
    assert _state(pki, key["key_id"]) is KeyState.RETIRED
    [audit] = _audit(pki, key["key_id"], "ds.unused_key_retired")
    assert audit["max_age_days"] == 7 and "kept at most 7.0 days" in audit["reason"]


def test_unused_ds_key_is_destroyed_after_30_days_unless_a_request_in_progress_names_it(any_pki: PkiWorld) -> None:
    pki, world = any_pki, any_pki.world
    start = world.clock.now()
    unused = pki.ds_key()
    submitted = pki.ds_key()
    submitted_request = _submit_ds(pki, submitted)
    countersigned = pki.ds_key()
    countersigned_request = _submit_ds(pki, countersigned)
    assert world.countersign(countersigned_request).status_code == 200
    # a request that ended without its key being destroyed (a crash after the rejection): no protection
    ended = pki.ds_key()
    ended_request = _submit_ds(pki, ended)
    with world.store.transaction() as tx:
        tx.transition_request(ended_request, RequestState.SUBMITTED, RequestState.REJECTED, now=start)
        assert tx.request(submitted_request).state is RequestState.SUBMITTED
        assert tx.request(countersigned_request).state is RequestState.COUNTERSIGNED
    world.clock.set(start + timedelta(days=20))
    young = pki.ds_key()

    # one second short of the age: nothing is due
    world.clock.set(start + MAX_AGE - timedelta(seconds=1))
    assert _run(pki) == []
    assert all(_in_hsm(pki, k["hsm_label"]) for k in (unused, submitted, countersigned, ended, young))

    world.clock.set(start + MAX_AGE + timedelta(hours=1))
    assert _run(pki) == [unused["hsm_label"], ended["hsm_label"]]
    for key in (unused, ended):  # retired in the database first: no request can take them any more
        assert _state(pki, key["key_id"]) is KeyState.RETIRED
        [audit] = _audit(pki, key["key_id"], "ds.unused_key_retired")
        assert audit["hsm_label"] == key["hsm_label"]
        assert audit["age_days"] == pytest.approx((MAX_AGE + timedelta(hours=1)) / timedelta(days=1), abs=0.01)
        assert audit["max_age_days"] == 30 and "never certified" in audit["reason"]
    notices = _notices(pki, "agency", "ds.unused_key_retired")
    assert [n["hsm_label"] for n in notices] == [unused["hsm_label"], ended["hsm_label"]]
    assert notices[0]["key_id"] == unused["key_id"] and "never certified" in notices[0]["reason"]
    refused = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": unused["hsm_label"], "csr": unused["csr"]})
    assert refused.status_code in (400, 409, 422), refused.text

    world.clock.advance(timedelta(minutes=5))
    destroyed_at = world.clock.now()
    assert _destroy(pki) == [unused["hsm_label"], ended["hsm_label"]]
    for key in (unused, ended):
        assert not _in_hsm(pki, key["hsm_label"])
        assert pki.keystore.key_info(key["hsm_label"]).state == "destroyed"
        with world.store.transaction() as tx:
            row = tx.key(key["key_id"])
            assert (row.state, row.destroyed_at) == (KeyState.DESTROYED, destroyed_at)
        [audit] = _audit(pki, key["key_id"], "ds_key.destroyed")
        assert audit["outcome"] == "destroyed" and audit["reason"] == "DS key retired unused: never certified"

    # kept: younger than the age, or named by a request still in progress (however old)
    for key in (submitted, countersigned, young):
        assert _state(pki, key["key_id"]) is KeyState.GENERATED
        assert _in_hsm(pki, key["hsm_label"])
        assert _audit(pki, key["key_id"], "ds.unused_key_retired") == []

    # idempotent: second runs find nothing and record nothing more
    assert _run(pki) == [] and _destroy(pki) == []
    assert len(_notices(pki, "agency", "ds.unused_key_retired")) == 2
    assert len(_audit(pki, unused["key_id"], "ds.unused_key_retired")) == 1

    # the young key's turn comes 30 days after it was generated
    world.clock.set(start + timedelta(days=20) + MAX_AGE + timedelta(minutes=1))
    assert _run(pki) == [young["hsm_label"]]
    assert _destroy(pki) == [young["hsm_label"]]
    assert _state(pki, submitted["key_id"]) is KeyState.GENERATED
    with world.store.transaction() as tx:
        assert verify_chain(tx.audit_entries()).ok


class _Crash(BaseException):
    """A process dying between the HSM and the database (not an Exception: nothing handles it)."""


def test_crash_between_hsm_destruction_and_the_row_is_finished_by_the_next_run(
        pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    key = pki.ds_key()
    world.clock.advance(MAX_AGE + timedelta(days=1))
    assert _run(pki) == [key["hsm_label"]]
    real = StoreTx.set_key_state

    def crash(self: StoreTx, *args: Any, **kwargs: Any) -> None:
        raise _Crash()

    monkeypatch.setattr(StoreTx, "set_key_state", crash)
    with pytest.raises(_Crash):
        _destroy(pki)
    # the HSM key is gone, the row still says retired, nothing was recorded
    assert not _in_hsm(pki, key["hsm_label"])
    assert _state(pki, key["key_id"]) is KeyState.RETIRED
    assert _audit(pki, key["key_id"], "ds_key.destroyed") == []

    monkeypatch.setattr(StoreTx, "set_key_state", real)
    world.clock.advance(timedelta(hours=1))
    assert _destroy(pki) == [key["hsm_label"]]
    assert _state(pki, key["key_id"]) is KeyState.DESTROYED
    [audit] = _audit(pki, key["key_id"], "ds_key.destroyed")
    assert audit["outcome"] == "already absent from the HSM"
    assert [n["key_id"] for n in _notices(pki, "agency", "ds.unused_key_retired")] == [key["key_id"]]
    assert _run(pki) == [] and _destroy(pki) == []


def test_a_key_certified_after_the_decision_is_not_retired_and_stays_in_the_hsm(
        pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision and the retirement are two transactions: the retirement's compare-and-set
    on GENERATED is what keeps a key certified in between (a request that slipped in)."""
    pki, world = pki_sqlite, pki_sqlite.world
    key = pki.ds_key()
    world.clock.advance(MAX_AGE + timedelta(days=1))
    decided = unused_keys.unused_keys(world.store, world.clock, MAX_AGE, pki.keystore)
    assert [k.hsm_label for k in decided] == [key["hsm_label"]]
    now = world.clock.now()
    with world.store.transaction() as tx:  # what the Provider's act does when it issues the certificate
        tx.activate_key(key["key_id"], expected=KeyState.GENERATED, usage_not_before=now,
                        usage_not_after=now + timedelta(days=90), max_signatures=100_000)
    monkeypatch.setattr(unused_keys, "unused_keys", lambda *args, **kwargs: decided)
    assert _run(pki) == []
    assert _state(pki, key["key_id"]) is KeyState.ACTIVE
    assert _destroy(pki) == []
    assert _in_hsm(pki, key["hsm_label"])
    assert _audit(pki, key["key_id"], "ds.unused_key_retired") == []


# --- IS keys ------------------------------------------------------------------------------------


def test_unused_is_key_is_destroyed_unless_an_is_request_in_progress_carries_it(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    unused = _provision_is(pki)
    requested = _provision_is(pki)
    _submit(pki, "is_certificate", {"cv_request": requested["cv_request"]}, party="is_operator")
    world.clock.advance(MAX_AGE + timedelta(minutes=5))

    # without the HSM to match public keys, every IS key of a holder with an open IS request is kept
    assert JOBS[JOB].run(JobContext(store=world.store, clock=world.clock)) == []
    assert _state(pki, unused["key_id"]) is KeyState.GENERATED

    assert _run(pki) == [unused["hsm_label"]]
    assert _state(pki, unused["key_id"]) is KeyState.RETIRED
    [audit] = _audit(pki, unused["key_id"], "is.unused_key_retired")
    assert audit["age_days"] >= 30
    [notice] = _notices(pki, "is_operator", "is.unused_key_retired")
    assert notice["hsm_label"] == unused["hsm_label"]
    assert _destroy(pki) == [unused["hsm_label"]]
    assert not _in_hsm(pki, unused["hsm_label"])
    assert _state(pki, unused["key_id"]) is KeyState.DESTROYED
    [destroyed] = _audit(pki, unused["key_id"], "is_key.destroyed")
    assert destroyed["outcome"] == "destroyed" and destroyed["reason"] == "IS key retired unused: never certified"
    # the key its open request carries (matched on the HSM's public key) stays
    assert _state(pki, requested["key_id"]) is KeyState.GENERATED
    assert _in_hsm(pki, requested["hsm_label"])
    assert _run(pki) == [] and _destroy(pki) == []


# --- wiring and cost ------------------------------------------------------------------------------


def test_job_is_registered_under_its_id(tmp_path: Path) -> None:
    scheduler = build_scheduler(f"sqlite:///{tmp_path / 'jobs.db'}")
    scheduler.start(paused=True)
    try:
        register_jobs(scheduler)
        register_jobs(scheduler)  # a restart replaces, never duplicates
        job = scheduler.get_job(JOB)
        assert job is not None and job.coalesce and job.max_instances == 1
        assert tuple(job.args) == (JOB, "default")
        assert [j.id for j in scheduler.get_jobs()].count(JOB) == 1
    finally:
        scheduler.shutdown(wait=False)


def test_due_keys_are_found_through_the_state_and_age_index(tmp_path: Path) -> None:
    """The due-work query is answered by ``ix_keys_state_created_at`` (SQLite's plan for the very
    statement the job runs), not by walking every key of a role."""
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}")
    store.create_schema()
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    with store.transaction() as tx:
        assert keyq.generated_keys_before(tx, unused_keys.ROLES, datetime(2027, 1, 1, tzinfo=UTC)) == []
    event.remove(store.engine, "before_cursor_execute", capture)
    [(statement, parameters)] = [(s, p) for s, p in statements if "FROM keys" in s]
    with store.engine.connect() as conn:
        plan = " | ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "ix_keys_state_created_at" in plan, plan
