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

from cvc.certificate import parse_certificate as parse_cv
from icao_pki.clock import FakeClock
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role
from lifecycle_api.certificate_flows import ds_subject
from lifecycle_api.csr import build_csr
from lifecycle_api.hierarchy import day_end, day_start
from lifecycle_api.signing.sandbox import open_sandbox
from lifecycle_api.store import Certificate, PartyType, Request
from schedules.decisions import RenewalDue
from schedules.simulation import (
    SimCvAuthority,
    SimEvent,
    SimFlow,
    SimulationReport,
    check_ds_requests,
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
        assert cv.request_renewal(due, clock.now()) == parse_cv(cv.dv_der).chr != first_dv.chr
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
    events = _job_events(at, {"ds-key-destruction": ["passport-ds-00003", "passport-is-00007", 42]}, str)
    assert [(e.kind, e.detail) for e in events] == [
        ("ds-destroyed", "passport-ds-00003 destroyed in the HSM"),
        ("is-destroyed", "passport-is-00007 destroyed in the HSM"),
    ]
