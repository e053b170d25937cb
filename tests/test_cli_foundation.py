"""`icao-pki` foundation commands as a user runs them: a real process, a throwaway data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from icao_pki.cli import app
from icao_pki.policy import DECREE_LIMITS
from tests.support.hsm import require_softhsm

REPO = Path(__file__).resolve().parents[1]


def icao_pki(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icao_pki.cli", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_policy_show_json_lists_the_ten_rows_with_articles() -> None:
    result = icao_pki("policy", "show", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10
    assert {(r["document_type"], r["role"]) for r in rows} == {(d.value, r.value) for d, r in DECREE_LIMITS}
    by_key = {(r["document_type"], r["role"]): r for r in rows}
    assert by_key[("passport", "ds")]["article"] == "Art. 23.1b"
    assert by_key[("passport", "ds")]["max_signatures"] == 100_000
    assert by_key[("idcard", "csca")]["certificate_validity"] == "27 years"
    assert by_key[("idcard", "is")]["key_usage_months"] == 1


def test_policy_show_table() -> None:
    result = icao_pki("policy", "show")
    assert result.returncode == 0
    assert "Art. 26.2c" in result.stdout and "100,000" in result.stdout


def _all_command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        paths.append(prefix)
        # Typer's groups are not always click.Group subclasses; they all have `.commands`.
        if isinstance(getattr(cmd, "commands", None), dict):
            for name, sub in cmd.commands.items():  # type: ignore[attr-defined]
                walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "icao-pki")
def test_every_command_has_help(path: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.hsm
def test_hsm_init_keygen_list_in_a_fresh_data_folder(tmp_path: Path) -> None:
    require_softhsm()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ICAO_PKI_", "SOFTHSM2_"))}
    env["ICAO_PKI_DATA_DIR"] = str(tmp_path / "var")

    first = icao_pki("hsm", "init", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["created"] is True
    again = icao_pki("hsm", "init", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["created"] is False
    assert (tmp_path / "var" / "softhsm2.conf").exists()
    assert oct((tmp_path / "var" / "hsm-pin").stat().st_mode & 0o777) == "0o600"

    made = icao_pki("hsm", "keygen", "--doc", "passport", "--role", "ds", "--type", "brainpoolP256r1", "--json", env=env)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["label"] == "passport-ds-00001"
    assert (key["sensitive"], key["extractable"], key["state"]) == (True, False, "active")

    listed = icao_pki("hsm", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [k["label"] for k in json.loads(listed.stdout)] == ["passport-ds-00001"]

    bad = icao_pki("hsm", "keygen", "--doc", "passport", "--role", "ds", "--type", "p999", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: unsupported key type 'p999'")
    assert len(bad.stderr.strip().splitlines()) == 1

    wrong = icao_pki("hsm", "list", env={**env, "ICAO_PKI_HSM_PIN": "hunter2-wrong"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: HSM login to token 'icao-pki' failed: incorrect PIN (from environment variable ICAO_PKI_HSM_PIN)"
    )
    assert "hunter2-wrong" not in wrong.stderr + wrong.stdout

    # The audit log of key events is hash-chained and verifies.
    from icao_pki.keystore import JsonlAuditSink

    assert JsonlAuditSink(tmp_path / "var" / "audit" / "keystore.jsonl").verify() == 1


@pytest.mark.hsm
def test_serve_check_initialises_token_and_database(tmp_path: Path) -> None:
    """What `make run` relies on: an empty data folder gets a token and a migrated database."""
    require_softhsm()
    import sqlite3

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ICAO_PKI_", "SOFTHSM2_", "DATABASE_URL"))}
    env["ICAO_PKI_DATA_DIR"] = str(tmp_path / "var")
    result = icao_pki("serve", "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert "token 'icao-pki'" in result.stderr
    assert any((tmp_path / "var" / "tokens").iterdir())
    with sqlite3.connect(tmp_path / "var" / "icao-pki.db") as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
    assert {"alembic_version", "organisations", "keys", "certificates", "requests", "audit_log"} <= tables


@pytest.mark.hsm
def test_serve_takes_the_unused_key_age_from_the_environment_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """``ICAO_PKI_UNUSED_KEY_MAX_AGE`` reaches the schedules' job context `serve` builds; a value
    that is not whole days (or under a day) stops it in one line, before anything is created."""
    require_softhsm()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ICAO_PKI_", "SOFTHSM2_", "DATABASE_URL"))}
    env["ICAO_PKI_DATA_DIR"] = str(tmp_path / "var")
    for value, expected in (("12h", "error: ICAO_PKI_UNUSED_KEY_MAX_AGE must be a whole number of days such as "
                                    "30 or 30d, got '12h'"),
                            ("0", "error: ICAO_PKI_UNUSED_KEY_MAX_AGE must be at least 1 day, got '0'")):
        refused = icao_pki("serve", "--check", env={**env, "ICAO_PKI_UNUSED_KEY_MAX_AGE": value})
        assert refused.returncode == 2
        assert refused.stderr.strip() == expected
        assert not (tmp_path / "var").exists()
    for value, days in (("7d", 7), (None, 30)):
        result = icao_pki("serve", "--check", env=env if value is None else {**env, "ICAO_PKI_UNUSED_KEY_MAX_AGE": value})
        assert result.returncode == 0, result.stderr
        # the job context's value, as serve reports it (the console may wrap the line)
        assert f"icao-pki: generated keys left uncertified {days} day(s) are destroyed" in " ".join(result.stderr.split())


def test_policy_file_narrows_limits_and_refuses_longer_ones(tmp_path: Path) -> None:
    shorter = tmp_path / "short.json"
    shorter.write_text(json.dumps({"passport.ds": {"key_usage_months": 2, "max_signatures": 60000}}))
    env = {**os.environ, "ICAO_PKI_POLICY_FILE": str(shorter)}
    result = icao_pki("policy", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    row = next(r for r in json.loads(result.stdout) if (r["document_type"], r["role"]) == ("passport", "ds"))
    assert (row["key_usage_months"], row["max_signatures"]) == (2, 60000)

    longer = tmp_path / "long.json"
    longer.write_text(json.dumps({"idcard.is": {"certificate_validity_months": 2}}))
    env = {**os.environ, "ICAO_PKI_POLICY_FILE": str(longer), "ICAO_PKI_DATA_DIR": str(tmp_path / "var")}
    expected = "error: Art. 26.2c: configured ID card IS certificate validity of 2 months exceeds the decree's 1 month"
    for command in (["policy", "show"], ["serve", "--check"]):
        refused = icao_pki(*command, env=env)
        assert refused.returncode == 2
        assert refused.stderr.strip() == expected
    assert not (tmp_path / "var").exists()  # refused at start: nothing was created

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    refused = icao_pki("policy", "show", env={**os.environ, "ICAO_PKI_POLICY_FILE": str(broken)})
    assert refused.returncode == 2 and "is not valid JSON" in refused.stderr
