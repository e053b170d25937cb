"""Issue 5 acceptance: two simulated years, ≥ 300,000 SODs, monthly IS renewals — no gap, no excess —
with every DS key through the Agency → Cơ yếu → Provider request flow; the checks that prove it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cvc.builders import build_cvca_certificate
from cvc.certificate import parse_certificate as parse_cv
from icao_pki.certificate import parse_certificate
from icao_pki.clock import FakeClock
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role, add_months
from lifecycle_api.authority import key_matches
from lifecycle_api.certificate_flows import ds_subject
from lifecycle_api.csr import build_csr
from lifecycle_api.hierarchy import day_end, day_start
from lifecycle_api.signing.sandbox import open_sandbox
from lifecycle_api.store import (
    AuditEntry,
    Certificate,
    Key,
    KeyState,
    Operator,
    OperatorKind,
    PartyType,
    Request,
    RequestState,
    Store,
)
from schedules.decisions import CSCA_ADVANCE_NOTICE, RenewalDue, due_ca_rollovers
from schedules.jobs import JOBS, JobContext
from schedules.simulation import (
    SimCeremonies,
    SimCvAuthority,
    SimEvent,
    SimFlow,
    SimulationReport,
    _csca_problem,
    _our_cscas,
    check_ca_rollovers,
    check_ds_requests,
    cv_chain_problem,
    run_simulation,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.hsm
@pytest.mark.slow
def test_two_years_300k_sods_no_gap_no_excess(keystore) -> None:  # type: ignore[no-untyped-def]
    report = run_simulation(2, 411, keystore=keystore)  # the default: DS keys through the request flow
    limit = DEFAULT_POLICY.limit(DocumentType.PASSPORT, Role.DS)
    assert report.requested == report.signed >= 300_000
    assert report.refused == 0 and not report.signing_stopped
    assert report.violations == [] and not report.limit_exceeded
    assert report.is_uncovered_days == []
    assert report.counts["is_renewals"] >= 23  # a 1-month IS certificate, renewed every month
    assert report.counts["dv_renewals"] >= 7
    assert report.counts["ds_rollovers"] >= 8  # window-driven: 3 months minus 14 days
    assert report.counts["crls"] >= 700
    assert sum(k["signed"] for k in report.keys) == report.signed
    for key in report.keys:
        assert key["signed"] == key["handed_out"] <= limit.max_signatures
        assert key["reserved_unused"] == 0
    switches = [e for e in report.events if e.kind == "ds-switch"]
    assert len(switches) == len(report.keys)
    # every DS key came through Agency → Cơ yếu → Provider: the first one and each rollover's successor
    rollovers = [e for e in report.events if e.kind == "ds-rollover"]
    assert report.counts["ds_requests_completed"] == len(rollovers) + 1 == len(report.keys)
    assert report.counts["ds_certificates"] == len(report.keys)
    assert report.counts["ds_requests_open"] == report.counts["ds_requests_rejected"] == 0
    assert [r["problem"] for r in report.ds_requests] == [None] * len(report.keys)
    assert {r["hsm_label"] for r in report.ds_requests} == {k["label"] for k in report.keys}
    assert len({r["request_id"] for r in report.ds_requests}) == len(report.keys)
    for event, entry in zip(rollovers, report.ds_requests[1:], strict=True):
        assert f"request {entry['request_id']} completed: {entry['hsm_label']} certified" in event.detail


def _check(box, flow, clock) -> SimulationReport:  # type: ignore[no-untyped-def]
    report = SimulationReport(clock.now(), clock.now(), 0)
    check_ds_requests(box, flow, report)
    return report


@pytest.mark.hsm
def test_ds_certificates_that_bypass_or_mismatch_their_request_are_violations(keystore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(datetime(2027, 1, 4, tzinfo=UTC))
    box = open_sandbox(clock, folder=tmp_path, keystore=keystore)
    try:
        flow = SimFlow(box, clock, DEFAULT_POLICY)
        request_id = flow.request_first_key(clock.now())
        report = _check(box, flow, clock)
        assert report.violations == []
        assert report.counts["ds_requests_completed"] == 1
        [entry] = report.ds_requests
        assert entry["request_id"] == request_id and entry["request_state"] == "completed"

        # a DS key certified directly, past the Agency and its Cơ yếu unit
        clock.advance(days=1)
        direct_key = box.issuer.issue(DocumentType.PASSPORT)
        report = _check(box, flow, clock)
        [violation] = report.violations
        assert violation.endswith("issued without a request")
        assert report.ds_requests[1]["request_id"] is None and report.ds_requests[1]["problem"] is not None

        # the request names another key than the one its certificate carries
        with box.store.transaction() as tx:
            req = tx.session.get(Request, request_id)
            original = dict(req.payload)
            direct_label = tx.key(direct_key).hsm_label
            req.payload = {**original, "hsm_label": direct_label}
        report = _check(box, flow, clock)
        assert len(report.violations) == 2
        assert f"request {request_id} names key {direct_label}" in report.violations[0]

        # the request's CSR (proof of possession) is for another key than the certified one
        other_csr = build_csr(keystore.signer(direct_label), ds_subject(DocumentType.PASSPORT, "x", "y").to_asn1())
        with box.store.transaction() as tx:
            tx.session.get(Request, request_id).payload = {**original, "csr": base64.b64encode(other_csr).decode()}
        report = _check(box, flow, clock)
        assert len(report.violations) == 2
        assert f"does not carry the public key of request {request_id}'s CSR" in report.violations[0]

        with box.store.transaction() as tx:
            tx.session.get(Request, request_id).payload = original
        assert len(_check(box, flow, clock).violations) == 1  # only the directly issued certificate
    finally:
        box.store.dispose()


@pytest.mark.hsm
def test_cv_renewal_capped_by_the_cvca_is_refused_instead_of_repeated(keystore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Near the CVCA's end a DV renewal would expire with the DV it replaces; issuing it made
    the next day's schedule renew both, then all four… (a 3-year simulation never ended)."""
    clock = FakeClock(datetime(2027, 1, 4, tzinfo=UTC))
    box = open_sandbox(clock, folder=tmp_path, keystore=keystore)

    def dv_count() -> int:
        with box.store.transaction() as tx:
            return tx.session.scalar(select(func.count()).select_from(Certificate).where(Certificate.role == Role.DVCA))

    try:
        with box.store.transaction() as tx:
            operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                           ministry="MPS", now=clock.now()).id
        cv = SimCvAuthority(box, clock, DEFAULT_POLICY, operator)
        cvca, first_dv = parse_cv(cv.cvca_der), parse_cv(cv.dv_der)
        clock.advance(days=70)
        due = RenewalDue(0, Role.DVCA, DocumentType.PASSPORT, box.provider_id, first_dv.chr,
                         day_end(first_dv.expiration_date))
        result = cv.request_renewal(due, clock.now())
        assert result == f"{parse_cv(cv.dv_der).chr} (issued by {cvca.chr})" and parse_cv(cv.dv_der).chr != first_dv.chr
        assert dv_count() == 2

        clock.set(day_start(cvca.expiration_date) - timedelta(days=10))
        capped = RenewalDue(0, Role.DVCA, DocumentType.PASSPORT, box.provider_id, "VNSIMDV00099",
                            day_end(cvca.expiration_date))
        result = cv.request_renewal(capped, clock.now())
        assert result.startswith("not renewed") and cvca.chr in result
        assert dv_count() == 2
    finally:
        box.store.dispose()


@pytest.mark.hsm
@pytest.mark.slow
def test_cli_on_a_throwaway_token_prints_the_final_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SOFTHSM2_CONF", None)
    result = subprocess.run([sys.executable, "-m", "icao_pki.cli_simulate", "--years", "1", "--sods-per-day", "8",
                             "--json"], capture_output=True, text=True, env=env, cwd="/tmp", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["limit_exceeded"] is False and report["signing_stopped"] is False
    assert report["signed"] == 8 * 365
    kinds = {e["kind"] for e in report["events"]}
    assert {"ds-first", "ds-rollover", "ds-switch", "is-renewal", "dv-renewal", "crl"} <= kinds
    # each DS key through a request: the timeline names it, the report checked it
    rollovers = [e for e in report["events"] if e["kind"] in ("ds-first", "ds-rollover")]
    assert len(rollovers) == report["counts"]["ds_requests_completed"] == report["counts"]["ds_certificates"]
    for event, entry in zip(rollovers, report["ds_requests"], strict=True):
        assert entry["problem"] is None and entry["request_state"] == "completed"
        assert f"request {entry['request_id']} completed: {entry['hsm_label']} certified" in event["detail"]


@pytest.mark.parametrize("years", ["0", "10"])
def test_cli_refuses_years_out_of_range_in_one_line(years: str) -> None:
    result = subprocess.run([sys.executable, "-m", "icao_pki.cli_simulate", "--years", years], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2
    assert "years" in result.stderr


def test_cli_prints_a_stop_once_and_a_key_without_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the CSCA key's window the successor's request stays countersigned: its generated key
    has no budget yet, and every batch is refused from then on (seen on a 6-year run)."""
    import schedules.simulation
    from icao_pki.cli_simulate import app

    start = datetime(2032, 2, 18, tzinfo=UTC)
    report = SimulationReport(start, start + timedelta(days=3), 4, requested=12, refused=12)
    report.events = [SimEvent(start + timedelta(days=d, hours=6 + h), "refused", "Art. 23.1b: no key may sign now")
                     for d in range(3) for h in (0, 6)]
    report.keys = [{"label": "passport-ds-00025", "state": "generated", "signed": 0, "handed_out": 0,
                    "reserved_unused": 0, "max": None, "usage_not_before": "None", "usage_not_after": "None",
                    "first_signature": "None", "last_signature": "None"}]
    monkeypatch.setattr(schedules.simulation, "run_simulation", lambda *a, **k: report)
    result = CliRunner().invoke(app, ["--years", "6", "--sods-per-day", "4"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if "Art. 23.1b" in line] == ["2032-02-18 06:00  refused      Art. 23.1b: no key may sign now"]
    assert "2032-02         refused      5 batch(es) refused" in lines
    assert "DS key passport-ds-00025: 0 signed of no budget, 0 reserved unused, state generated, usage None – None" in lines
    assert lines[-1].endswith("signing stopped: YES")


def test_destroyed_keys_are_told_apart_by_the_role_in_their_label() -> None:
    """The destruction job returns retired DS keys and superseded IS keys alike."""
    from schedules.simulation import _job_events

    at = datetime(2027, 1, 1, tzinfo=UTC)
    events = _job_events(at, {"ds-key-destruction": ["passport-ds-00003", "passport-is-00007", "passport-cvca-00002",
                                                      42]}, str)
    assert [(e.kind, e.detail) for e in events] == [
        ("ds-destroyed", "passport-ds-00003 destroyed in the HSM"),
        ("is-destroyed", "passport-is-00007 destroyed in the HSM"),
        ("cvca-destroyed", "passport-cvca-00002 destroyed in the HSM"),
    ]


#: the simulation starts with the CSCA key 54 of its 60 months and the CVCA 30 of its 36 months
#: into their lives: one year at 4 SODs a day crosses both rollovers
CSCA_AGE_MONTHS, CVCA_AGE_MONTHS = 54, 30


@pytest.fixture(scope="module")
def aged_run(keystore, tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulationReport, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("aged-simulation")  # kept: the test reads the run's database
    report = run_simulation(1, 4, keystore=keystore, folder=folder, csca_age_months=CSCA_AGE_MONTHS,
                            cvca_age_months=CVCA_AGE_MONTHS)
    return report, folder


def _audit(tx, request_id: str, action: str) -> AuditEntry:  # type: ignore[no-untyped-def]
    [entry] = tx.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "request",
                                                          AuditEntry.entity_id == request_id,
                                                          AuditEntry.action == action)).all()
    return entry


@pytest.mark.hsm
@pytest.mark.slow
def test_cvca_and_csca_ceremonies_are_held_by_a_second_officer_and_nothing_lapses(  # type: ignore[no-untyped-def]
        aged_run, keystore) -> None:
    report, folder = aged_run
    limit = DEFAULT_POLICY.limit(DocumentType.PASSPORT, Role.DS)
    assert report.requested == report.signed == 4 * 365
    assert report.refused == 0 and not report.signing_stopped
    assert report.violations == [] and not report.limit_exceeded
    assert report.is_uncovered_days == []
    assert report.counts["renewals_refused"] == report.counts["ceremonies_failed"] == 0
    assert report.counts["cvca_ceremonies"] == report.counts["csca_ceremonies"] == 1
    assert report.counts["cvcas"] == report.counts["cscas"] == 2
    for key in report.keys:
        assert key["signed"] == key["handed_out"] <= limit.max_signatures
    # the timeline: the schedule proposes at midnight, the officer holds the ceremony the next morning
    held = {}
    for kind in ("cvca", "csca"):
        [proposal] = [e for e in report.events if e.kind == kind]
        [ceremony] = [e for e in report.events if e.kind == f"{kind}-ceremony"]
        request_id = proposal.detail.rsplit("ceremony:", 1)[1]
        assert f"ceremony {request_id} proposed by ca-rollover-schedule, approved by ceremony-officer" in ceremony.detail
        assert ceremony.at == proposal.at + timedelta(days=1, hours=10)
        assert "link certificate" in ceremony.detail
        held[kind] = request_id
    assert "Master List published" in next(e for e in report.events if e.kind == "csca-ceremony").detail

    store = Store(f"sqlite:///{folder / 'sandbox.db'}")
    try:
        with store.transaction() as tx:
            [provider] = tx.organisations_of_type(PartyType.PROVIDER)
            ceremonies = {r.payload["kind"]: r for r in tx.session.scalars(
                select(Request).where(Request.request_type == "ceremony"))}
            assert {k: r.id for k, r in ceremonies.items()} == held
            made = {}
            for kind, req in ceremonies.items():
                assert req.state is RequestState.COMPLETED
                proposed, completed = _audit(tx, req.id, "ceremony.proposed"), _audit(tx, req.id, "ceremony.completed")
                assert proposed.actor_operator_id == req.payload["proposed_by_operator_id"]
                proposer = tx.session.get(Operator, proposed.actor_operator_id)
                approver = tx.session.get(Operator, completed.actor_operator_id)
                assert proposer.id != approver.id
                assert proposer.organisation_id == approver.organisation_id == provider.id
                assert (proposer.kind, approver.kind) == (OperatorKind.SERVICE_ACCOUNT, OperatorKind.OPERATOR)
                if kind == "csca":
                    _audit(tx, req.id, "ceremony.master_list_published")
                # the new CA: its key row and certificate in the database, its key in the HSM
                cert, key = tx.certificate(req.result["certificate_id"]), tx.key(req.result["key_id"])
                assert cert.key_id == key.id and key.state is KeyState.ACTIVE
                assert key_matches(keystore.signer(key.hsm_label), cert.der, cert.certificate_format)
                link = tx.certificate(req.result["link_certificate_id"])
                assert link.key_id is None and link.issuer_certificate_id != cert.id
                made[kind] = (cert, key, req, link)

            # X.509: the new CSCA signs DS certificates from the end of the 90-day notice on
            csca, csca_key, csca_req, csca_link = made["csca"]
            assert csca_key.usage_not_before == csca_req.created_at + CSCA_ADVANCE_NOTICE
            old_csca = csca_link.issuer_certificate_id
            issuers = {r["certificate_id"]: r["csca_certificate_id"] for r in report.ds_requests}
            for row in tx.session.scalars(select(Certificate).where(Certificate.role == Role.DS)):
                expected = csca.id if row.not_before >= csca_key.usage_not_before else old_csca
                assert issuers[row.id] == row.issuer_certificate_id == expected
                parse_certificate(row.der).verify_issued_by(parse_certificate(tx.certificate(expected).der))
            assert set(issuers.values()) == {old_csca, csca.id}

            # X.509: the old CSCA key is still active — it signs the CRLs of the DS certificates it issued
            assert tx.certificate(old_csca).key_id is not None
            assert tx.key(tx.certificate(old_csca).key_id).state is KeyState.ACTIVE

            # CV: the old CVCA key was retired by the ceremony, destroyed after its certificate ended
            cvca, _, cvca_req, cvca_link = made["cvca"]
            old_cvca = tx.certificate(cvca_link.issuer_certificate_id)
            old_cvca_key = tx.key(old_cvca.key_id)
            assert cvca_req.result["retired_key_id"] == old_cvca_key.id
            assert old_cvca_key.state is KeyState.DESTROYED and old_cvca_key.destroyed_at is not None
            assert old_cvca.not_after < old_cvca_key.destroyed_at <= old_cvca.not_after + timedelta(days=1)
            [destroyed] = [e for e in report.events if e.kind == "cvca-destroyed"]
            assert destroyed.detail == f"{old_cvca_key.hsm_label} destroyed in the HSM"
            assert destroyed.at == old_cvca_key.destroyed_at
            assert report.counts["cvca_destroyed"] == 1

            # CV: the DVs renewed after the CVCA ceremony are the new CVCA's, and IS certificates theirs
            assert parse_cv(cvca_link.der).chr == cvca.chr != parse_cv(cvca_link.der).car
            later = tx.session.scalars(select(Certificate).where(Certificate.created_at > cvca.created_at)
                                       .order_by(Certificate.id)).all()
            dvs = {r.chr for r in later if r.role is Role.DVCA}
            assert dvs and {parse_cv(r.der).car for r in later if r.role is Role.DVCA} == {cvca.chr}
            assert any(parse_cv(r.der).car in dvs for r in later if r.role is Role.IS)
            for row in tx.session.scalars(select(Certificate).where(Certificate.role.in_((Role.DVCA, Role.IS)))):
                assert cv_chain_problem(tx, row, parse_cv(row.der).effective_date) is None
    finally:
        store.dispose()


@pytest.mark.hsm
@pytest.mark.slow
def test_cli_prints_the_ceremonies_in_text_and_json(aged_run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import schedules.simulation
    from icao_pki.cli_simulate import app

    report, _ = aged_run
    monkeypatch.setattr(schedules.simulation, "run_simulation", lambda *a, **k: report)
    result = CliRunner().invoke(app, ["--years", "1", "--sods-per-day", "4"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for kind in ("cvca", "csca", "cvca-ceremony", "csca-ceremony"):
        [event] = [e for e in report.events if e.kind == kind]
        assert f"{event.at:%Y-%m-%d %H:%M}  {kind:<12} {event.detail}" in lines
    assert "cvca_ceremonies 1, csca_ceremonies 1, ceremonies_failed 0" in lines[-2]
    assert lines[-1].endswith("limit exceeded: no; signing stopped: no")
    result = CliRunner().invoke(app, ["--years", "1", "--sods-per-day", "4", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ceremonies = [e for e in data["events"] if e["kind"].endswith("-ceremony")]
    assert [e["kind"] for e in ceremonies] == ["csca-ceremony", "cvca-ceremony"]
    assert all("link certificate" in e["detail"] for e in ceremonies)
    assert data["counts"]["cscas"] == data["counts"]["cvcas"] == 2


@pytest.mark.hsm
def test_ca_checks_catch_a_ds_certificate_of_the_old_csca_and_a_cvca_without_link(keystore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The checks behind the aged run's empty violation list can fail: a DS certificate signed by
    the previous CSCA once the new one's usage began, a CVCA made outside a ceremony (no link),
    an IS certificate after its CVCA's end."""
    start = datetime(2027, 1, 4, tzinfo=UTC)
    clock = FakeClock(start - timedelta(days=5 * 365 - 100))  # the CSCA key's usage ends in ~100 days
    box = open_sandbox(clock, folder=tmp_path, keystore=keystore)
    clock.set(start)
    try:
        with box.store.transaction() as tx:
            operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                           ministry="MPS", now=start).id
        cv = SimCvAuthority(box, clock, DEFAULT_POLICY, operator)
        flow = SimFlow(box, clock, DEFAULT_POLICY)
        flow.request_first_key(start)
        ceremonies = SimCeremonies(flow.services, box.provider_id)
        [due] = due_ca_rollovers(box.store, clock, Role.CSCA)
        request_id = ceremonies.proposer.rollover(due, clock.now()).removeprefix("ceremony:")
        assert ceremonies.approve_due(clock.now()) == []  # not before the next day
        clock.advance(days=1, hours=10)
        [held] = ceremonies.approve_due(clock.now())
        assert held.kind == "csca-ceremony" and request_id in held.detail and "Master List published" in held.detail
        report = SimulationReport(start, clock.now(), 0)
        check_ca_rollovers(box, report)
        assert report.violations == [] and report.counts["cscas"] == 2

        clock.set(start + CSCA_ADVANCE_NOTICE + timedelta(days=1))  # the new CSCA's usage has begun
        box.issuer.issue(DocumentType.PASSPORT)  # signed directly with the previous CSCA's key
        [violation] = _check(box, flow, clock).violations
        assert violation.endswith("issued without a request")
        with box.store.transaction() as tx:
            first, direct = tx.session.scalars(select(Certificate).where(Certificate.role == Role.DS)
                                               .order_by(Certificate.id)).all()
            assert _csca_problem(parse_certificate(first.der), first, _our_cscas(tx)) is None
            problem = _csca_problem(parse_certificate(direct.der), direct, _our_cscas(tx))
        assert problem is not None and "while the newer CSCA certificate" in problem

        # a second CVCA, self-signed, without a link certificate from the first
        first_cvca = parse_cv(cv.cvca_der)
        label = str(keystore.next_label("passport", "cvca"))
        today = clock.now().date()
        der = build_cvca_certificate(keystore.generate_key(label, "brainpoolP256r1", reason="test CVCA"),
                                     chr="VNCVCA00099", effective_date=today, expiration_date=today + timedelta(days=300),
                                     document_type=DocumentType.PASSPORT, policy=DEFAULT_POLICY)
        cv._store(der, Role.CVCA, label, None)
        report = SimulationReport(start, clock.now(), 0)
        check_ca_rollovers(box, report)
        assert report.violations == [f"CVCA VNCVCA00099 has no link certificate from {first_cvca.chr}"]

        # the first IS certificate's chain on its first day, and on the day after its CVCA's end
        with box.store.transaction() as tx:
            first_is = tx.session.scalars(select(Certificate).where(Certificate.role == Role.IS)).first()
            assert cv_chain_problem(tx, first_is, parse_cv(first_is.der).effective_date) is None
            problem = cv_chain_problem(tx, first_is, first_cvca.expiration_date + timedelta(days=1))
        assert problem is not None and problem.startswith(f"{first_cvca.chr}: not valid on")
    finally:
        box.store.dispose()


@pytest.mark.hsm
def test_ca_checks_catch_an_old_cvca_key_left_active_or_destroyed_out_of_time(keystore, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The check behind the aged run's empty violation list for the old CVCA key can fail: still
    in the HSM after its certificate ended, destroyed before, or never retired."""
    start = datetime(2027, 1, 4, tzinfo=UTC)
    clock = FakeClock(start)
    box = open_sandbox(clock, folder=tmp_path, keystore=keystore)
    try:
        with box.store.transaction() as tx:
            operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                           ministry="MPS", now=start).id
        cv = SimCvAuthority(box, clock, DEFAULT_POLICY, operator, cvca_since=add_months(start, -34).date())
        old_label, old_der, old_id = cv.current_cvca()
        old = parse_cv(old_der)
        flow = SimFlow(box, clock, DEFAULT_POLICY)
        ceremonies = SimCeremonies(flow.services, box.provider_id)
        [due] = due_ca_rollovers(box.store, clock, Role.CVCA)
        ceremonies.proposer.rollover(due, clock.now())
        clock.advance(days=1, hours=10)
        [held] = ceremonies.approve_due(clock.now())
        assert held.kind == "cvca-ceremony"
        new_chr = parse_cv(cv.cvca_der).chr
        assert new_chr != old.chr
        with box.store.transaction() as tx:
            key_id = tx.certificate(old_id).key_id
            assert tx.key(key_id).state is KeyState.RETIRED

        def violations(until: datetime) -> list[str]:
            report = SimulationReport(start, until, 0)
            check_ca_rollovers(box, report)
            return report.violations

        who = f"CVCA key {old_label} ({old.chr})"
        assert violations(clock.now()) == []
        late = day_end(old.expiration_date) + timedelta(days=3)
        assert violations(late) == [f"{who} is still in the HSM though its certificate's validity ended "
                                    f"{old.expiration_date}"]

        clock.set(day_start(old.expiration_date + timedelta(days=1)))
        labels = JOBS["ds-key-destruction"].run(JobContext(store=box.store, clock=clock, keystore=box.keystore))
        assert labels == [old_label]
        assert violations(late) == []

        with box.store.transaction() as tx:  # destroyed while its certificate was still valid
            tx.session.get(Key, key_id).destroyed_at = day_end(old.expiration_date) - timedelta(days=1)
        [early] = violations(late)
        assert early.startswith(f"{who} was destroyed at ") and early.endswith(
            f"not after its certificate's validity ended {old.expiration_date}")

        with box.store.transaction() as tx:  # a ceremony that left the old key active
            row = tx.session.get(Key, key_id)
            row.state, row.destroyed_at = KeyState.ACTIVE, None
        assert violations(clock.now()) == [f"{who} is active after CVCA {new_chr} succeeded it"]
    finally:
        box.store.dispose()
