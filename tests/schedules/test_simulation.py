"""Issue 5 acceptance: two simulated years, ≥ 300,000 SODs, monthly IS renewals — no gap, no excess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role
from schedules.simulation import run_simulation

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.hsm
@pytest.mark.slow
def test_two_years_300k_sods_no_gap_no_excess(keystore) -> None:  # type: ignore[no-untyped-def]
    report = run_simulation(2, 411, keystore=keystore)
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
    assert {"ds-rollover", "ds-switch", "is-renewal", "dv-renewal", "crl"} <= kinds


def test_cli_refuses_zero_years_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "icao_pki.cli_simulate", "--years", "0"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2
    assert "years" in result.stderr
