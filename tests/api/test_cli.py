"""`icao-pki client …` commands against the ASGI app (HTTP client and signer injected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lifecycle_api import cli
from tests.api.world import World

runner = CliRunner()


@pytest.fixture
def wired(sqlite_world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    monkeypatch.setattr(cli, "http_factory", lambda url: sqlite_world.client)
    signers = {f"org-{k}-00001": p.identity.signer for k, p in sqlite_world.parties.items()}
    monkeypatch.setattr(cli, "signer_factory", lambda label: signers[label])
    monkeypatch.setattr(cli, "SystemClock", lambda: sqlite_world.clock)
    for key, party in sqlite_world.parties.items():
        (tmp_path / f"{key}.der").write_bytes(party.identity.certificate.der)
    sqlite_world.tmp = tmp_path  # type: ignore[attr-defined]
    return sqlite_world


def _as(world: World, key: str, *, signing: bool = True) -> list[str]:
    party = world[key]
    args = ["--token", party.token, "--organisation-id", str(party.organisation_id)]
    if signing:
        args += ["--key-label", f"org-{key}-00001", "--certificate", str(world.tmp / f"{key}.der")]  # type: ignore[attr-defined]
    return args


def test_cli_client_flow(wired: World) -> None:
    r = runner.invoke(cli.app, ["submit", "echo", "--payload", '{"months": 1}', "--document-type", "passport",
                                "--json", *_as(wired, "agency")])
    assert r.exit_code == 0, r.output
    rid = json.loads(r.stdout)["id"]
    r = runner.invoke(cli.app, ["queue", *_as(wired, "coyeu", signing=False)])
    assert r.exit_code == 0 and rid[:8] in r.stdout
    r = runner.invoke(cli.app, ["countersign", rid, "--json", *_as(wired, "coyeu")])
    assert r.exit_code == 0 and json.loads(r.stdout)["state"] == "countersigned"
    r = runner.invoke(cli.app, ["act", rid, "--json", *_as(wired, "provider", signing=False)])
    assert r.exit_code == 0 and json.loads(r.stdout)["result"]["echo"] == {"months": 1}
    r = runner.invoke(cli.app, ["notices", "--json", *_as(wired, "agency", signing=False)])
    assert {"request.countersigned", "request.completed"} <= {n["event"] for n in json.loads(r.stdout)}


def test_cli_client_refusal_is_one_line_exit_2(wired: World) -> None:
    r = runner.invoke(cli.app, ["submit", "echo", "--payload", '{"months": 9}', "--document-type", "passport",
                                *_as(wired, "agency")])
    assert r.exit_code == 2
    assert "Art. 23.1b" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_client_signing_needs_key_and_certificate(wired: World) -> None:
    party = wired["agency"]
    r = runner.invoke(cli.app, ["submit", "echo", "--token", party.token, "--organisation-id",
                                str(party.organisation_id), "--key-label", "org-agency-00001"])
    assert r.exit_code == 2 and "--certificate" in r.stderr
