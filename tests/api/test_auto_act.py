"""The Provider's policy (issue 6 §3): act at once on the listed request types once countersigned."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import text

from lifecycle_api.app import create_app
from lifecycle_api.settings import Settings
from lifecycle_api.workflow import after_countersigned
from tests.api.test_auto_countersign import DictKeyring, _setup_mfa
from tests.api.world import World


def _policy(world: World, *types: str, operator: str | None = None) -> None:
    services = world.client.app.state.services
    services.settings = replace(services.settings, auto_act_request_types=types, auto_act_operator=operator)


def _service_account(world: World, name: str = "auto-act") -> int:
    r = world.client.post(f"/v1/organisations/{world['provider'].organisation_id}/operators",
                          json={"name": name, "kind": "service_account"}, headers=world["provider"].headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _audit(world: World, action: str) -> list[dict]:
    with world.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT entity_id, actor_operator_id, details FROM audit_log WHERE action = :a "
                                 "ORDER BY seq"), {"a": action}).all()
    return [{"entity_id": r[0], "actor_operator_id": r[1],
             "details": r[2] if isinstance(r[2], dict) else json.loads(r[2])} for r in rows]


def test_listed_type_is_acted_on_when_countersigned(world: World) -> None:
    _policy(world, "echo")
    account = _service_account(world)
    req = world.submit(payload={"months": 2}).json()
    assert req["state"] == "submitted"
    r = world.countersign(req["id"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "completed"
    assert body["result"]["echo"] == {"months": 2}
    completed = _audit(world, "request.completed")
    assert [(e["entity_id"], e["actor_operator_id"]) for e in completed] == [(req["id"], account)]
    assert world.client.get("/v1/queue", headers=world["provider"].headers).json() == []
    assert world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()["ok"] is True


def test_unlisted_type_waits_in_the_queue(world: World) -> None:
    _policy(world, "echo")
    _service_account(world)
    req = world.submit(request_type="urgent").json()
    assert world.countersign(req["id"]).json()["state"] == "countersigned"
    assert [r["id"] for r in world.client.get("/v1/queue", headers=world["provider"].headers).json()] == [req["id"]]
    assert _audit(world, "request.completed") == []


def test_failing_act_leaves_request_countersigned_and_audited(world: World) -> None:
    _policy(world, "explode")
    _service_account(world)
    before = world.row_counts()["published_objects"]
    req = world.submit(request_type="explode").json()
    r = world.countersign(req["id"])
    assert r.status_code == 200, r.text  # the countersignature itself stands
    assert r.json()["state"] == "countersigned"
    failed = _audit(world, "request.act_failed")
    assert [e["entity_id"] for e in failed] == [req["id"]]
    assert "HSM unavailable" in failed[0]["details"]["message"]
    assert [e["entity_id"] for e in _audit(world, "request.auto_act_failed")] == [req["id"]]
    assert world.row_counts()["published_objects"] == before  # the handler's write was rolled back
    assert [r["id"] for r in world.client.get("/v1/queue", headers=world["provider"].headers).json()] == [req["id"]]
    # a person can still act (and it fails the same way, as a 500 problem)
    assert world.act(req["id"]).status_code == 500


def test_no_operator_to_act_as_is_audited(world: World) -> None:
    _policy(world, "echo")  # the world's Provider has only its admin (a person)
    req = world.submit().json()
    assert world.countersign(req["id"]).json()["state"] == "countersigned"
    skipped = _audit(world, "request.auto_act_skipped")
    assert [e["entity_id"] for e in skipped] == [req["id"]]
    assert "service account" in skipped[0]["details"]["reason"]


def test_named_operator_acts(sqlite_world: World) -> None:
    world = sqlite_world
    _policy(world, "echo", operator="admin")
    req = world.submit().json()
    assert world.countersign(req["id"]).json()["state"] == "completed"
    assert _audit(world, "request.completed")[0]["actor_operator_id"] is not None


def test_after_countersigned_is_idempotent_and_ignores_other_states(sqlite_world: World) -> None:
    world = sqlite_world
    services = world.client.app.state.services
    _service_account(world)
    req = world.submit().json()
    _policy(world, "echo")
    assert after_countersigned(services, req["id"]) is None  # still submitted
    _policy(world)
    assert world.countersign(req["id"]).json()["state"] == "countersigned"
    assert after_countersigned(services, req["id"]) is None  # not the policy
    _policy(world, "echo")
    done = after_countersigned(services, req["id"])
    assert done is not None and done.state.value == "completed"
    assert after_countersigned(services, req["id"]) is None  # already completed


def test_auto_countersign_then_auto_act_on_submission(world: World) -> None:
    coyeu = world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    client, _ = _setup_mfa(world, DictKeyring({"org-coyeu-00042": coyeu.signer}), coyeu, "org-coyeu-00042")
    _policy(world, "echo")
    _service_account(world)
    req = client.submit("echo", {"months": 1}, document_type="passport")
    assert req["state"] == "completed"
    assert [s["purpose"] for s in req["signatures"]] == ["application", "countersignature"]


def test_settings_from_environment_and_unknown_type_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("ICAO_PKI_AUTO_ACT", "ds_certificate, is_certificate,")
    monkeypatch.setenv("ICAO_PKI_AUTO_ACT_OPERATOR", "robot")
    settings = Settings.from_environment()
    assert settings.auto_act_request_types == ("ds_certificate", "is_certificate")
    assert settings.auto_act_operator == "robot"
    with pytest.raises(ValueError, match="ds_certifcate"):
        create_app(Settings(database_url=f"sqlite:///{tmp_path}/x.db", auto_act_request_types=("ds_certifcate",)))
