"""Issue 5 acceptance: the 100,000 limit holds across processes, databases and crashes.

8 processes race one DS key (budget 100,000, the decree's) and its successor on PostgreSQL
and on SQLite; every SOD a process receives is logged by it, and the database's count must
equal the processes' exactly: 100,000 on the first key, the rest on the successor.  Then a
SIGKILL during signing and another during a rollover: nothing exceeds, no certificate is
lost, the audit chain verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from icao_pki.clock import SystemClock
from icao_pki.keystore import KeyStore
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Role
from lifecycle_api.audit import verify_chain
from lifecycle_api.signing import due_rollovers, usage_report
from lifecycle_api.store import Certificate, KeyState
from tests.signing.support import make_world

pytestmark = [pytest.mark.hsm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = DEFAULT_POLICY.limit(DocumentType.PASSPORT, Role.DS).max_signatures
assert LIMIT is not None


def _env(hsm_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "ICAO_PKI_HSM_PIN": hsm_env["ICAO_PKI_HSM_PIN"],
            "ICAO_PKI_TOKEN_LABEL": hsm_env["ICAO_PKI_TOKEN_LABEL"], "PYTHONPATH": str(ROOT)}


def _worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.signing.race_worker", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _received(outs: list[Path]) -> Counter[str]:
    total: Counter[str] = Counter()
    for out in outs:
        if out.exists():
            for line in out.read_text().splitlines():
                label, count = line.split()
                total[label] += int(count)
    return total


def _two_keys(url: str, keystore: KeyStore):  # type: ignore[no-untyped-def]
    world = make_world(url, keystore, start=SystemClock().now().replace(microsecond=0))
    first = world.issuer.issue(DocumentType.PASSPORT)
    world.clock.advance(seconds=1)
    second = world.issuer.issue(DocumentType.PASSPORT)
    return world, first, second


def _race(url: str, keystore: KeyStore, hsm_env: dict[str, str], tmp_path: Path) -> None:
    world, first, second = _two_keys(url, keystore)
    extra = 4_000
    per_process = (LIMIT + extra) // 8
    outs = [tmp_path / f"out{i}.txt" for i in range(8)]
    env = _env(hsm_env)
    procs = [_worker(env, "sign", url, "--n", str(per_process), "--out", str(o), "--block", "500") for o in outs]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    usage = {u.key_id: u for u in usage_report(world.store)}
    received = _received(outs)
    assert sum(received.values()) == 8 * per_process == LIMIT + extra
    assert (usage[first].signed, usage[first].reserved_unused) == (LIMIT, 0)
    assert (usage[second].signed, usage[second].reserved_unused) == (extra, 0)
    assert received[usage[first].hsm_label] == LIMIT and received[usage[second].hsm_label] == extra
    assert usage[first].state == KeyState.RETIRED.value
    with world.store.transaction() as tx:
        assert verify_chain(tx.audit_entries()).ok
    world.store.dispose()


@pytest.mark.postgres
def test_eight_processes_sign_exactly_the_limit_on_postgres(pg, keystore, hsm_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _race(pg.create_database(), keystore, hsm_env, tmp_path)


def test_eight_processes_sign_exactly_the_limit_on_sqlite(keystore, hsm_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _race(f"sqlite:///{tmp_path / 'race.db'}", keystore, hsm_env, tmp_path)


def test_sigkill_during_signing_and_during_rollover(keystore, hsm_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from icao_pki.policy import Policy

    url = f"sqlite:///{tmp_path / 'kill.db'}"
    world = make_world(url, keystore, start=SystemClock().now().replace(microsecond=0),
                       policy=Policy.with_overrides({"passport.ds": {"max_signatures": 3_000}}))
    world.issuer.issue(DocumentType.PASSPORT)  # budget 3,000; the successor gets the decree's
    clock = SystemClock()  # the workers sign on the system clock
    env = _env(hsm_env)
    outs = [tmp_path / f"k{i}.txt" for i in range(3)]
    procs = [_worker(env, "sign", url, "--n", "1000000", "--out", str(o), "--block", "200", "--batch", "50")
             for o in outs]
    deadline = time.monotonic() + 60
    # kill the first worker once it is itself signing (under load it may start last)
    while (sum(_received(outs).values()) < 500 or not _received(outs[:1])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _received(outs[:1]), "the first worker never signed"
    procs[0].send_signal(signal.SIGKILL)  # mid-signing: its reservation block is lost, never exceeded
    for proc in procs[1:]:
        proc.wait(timeout=120)  # the others run the first key dry and stop: no successor yet
    procs[0].wait()
    [usage] = usage_report(world.store)
    received = _received(outs)
    assert usage.signed + usage.reserved_unused <= 3_000
    assert usage.signed <= received[usage.hsm_label] + 50  # at most one unlogged batch of the killed process
    assert usage.signed >= received[usage.hsm_label]
    assert usage.reserved_unused > 0  # the killed process's block, wasted
    assert [d.reason for d in due_rollovers(world.store, clock, world.policy)] in (["count"], ["no_active_key"])

    csca_file = tmp_path / "csca.der"
    csca_file.write_bytes(world.csca_der)
    roll = _worker(env, "rollover", url, "--csca-label", world.csca_label, "--csca-file", str(csca_file), "--pause")
    assert roll.stdout is not None
    assert roll.stdout.readline().strip() == "generated"
    roll.send_signal(signal.SIGKILL)  # the HSM key exists, the database does not know it
    roll.wait()
    with world.store.transaction() as tx:
        certificates_before = tx.session.query(Certificate).count()
    assert due_rollovers(world.store, clock, world.policy), "the killed rollover must still be due"
    roll = _worker(env, "rollover", url, "--csca-label", world.csca_label, "--csca-file", str(csca_file))
    out, err = roll.communicate(timeout=120)
    assert roll.returncode == 0, err[-2000:]
    assert out.strip() == "1"
    assert due_rollovers(world.store, clock, world.policy) == []

    more = tmp_path / "after.txt"
    proc = _worker(env, "sign", url, "--n", "300", "--out", str(more))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    usage = {u.hsm_label: u for u in usage_report(world.store)}
    assert all(u.within_limit for u in usage.values())
    assert set(_received([more])) <= set(usage) and sum(_received([more]).values()) == 300
    with world.store.transaction() as tx:
        assert tx.session.query(Certificate).count() == certificates_before + 1  # nothing lost, one added
        assert verify_chain(tx.audit_entries()).ok
    world.store.dispose()
