"""The generic request workflow through HTTP, on SQLite and on PostgreSQL.

Agency signs → its ministry's Cơ yếu unit countersigns (or rejects) → the Provider acts
through the handler registered for the request type.  Refusals return problem+json with
the reason and leave no row behind.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from fixtures.orgpki import RevokedEntry
from tests.api.world import World
from tests.support.softsigner import SoftwareSigner

PROBLEM = "application/problem+json"


def _events(world: World, party: str) -> list[tuple[str, str | None]]:
    r = world.client.get("/v1/notifications", headers=world[party].headers)
    assert r.status_code == 200
    return [(n["event"], n["request_id"]) for n in r.json()]


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def test_flow_submit_countersign_act(world: World) -> None:
    r = world.submit(payload={"months": 3, "label": "passport-ds-00001"})
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["id"]
    assert req["state"] == "submitted" and req["ministry"] == "Bộ Công an"
    assert [s["purpose"] for s in req["signatures"]] == ["application"]

    # only the agency's own ministry's Cơ yếu unit sees it in its queue
    assert _ids(world.client.get("/v1/queue", headers=world["coyeu"].headers)) == [rid]
    assert _ids(world.client.get("/v1/queue", headers=world["coyeu_mod"].headers)) == []
    assert ("request.awaiting_countersignature", rid) in _events(world, "coyeu")
    assert _events(world, "coyeu_mod") == []

    r = world.countersign(rid)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "countersigned"
    assert _ids(world.client.get("/v1/queue", headers=world["coyeu"].headers)) == []
    assert _ids(world.client.get("/v1/queue", headers=world["provider"].headers)) == [rid]

    r = world.act(rid)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "completed"
    assert done["result"]["echo"] == {"months": 3, "label": "passport-ds-00001"}
    assert [s["purpose"] for s in done["signatures"]] == ["application", "countersignature"]

    # result visible to the agency, notice to the Cơ yếu unit, nothing for the other ministry
    assert world.client.get(f"/v1/requests/{rid}", headers=world["agency"].headers).json()["state"] == "completed"
    assert ("request.completed", rid) in _events(world, "agency")
    assert ("request.completed", rid) in _events(world, "coyeu")
    assert world.client.get(f"/v1/requests/{rid}", headers=world["agency_mod"].headers).status_code == 404
    assert world.client.get(f"/v1/requests/{rid}", headers=world["coyeu_mod"].headers).status_code == 404
    assert _ids(world.client.get("/v1/requests", headers=world["agency_mod"].headers)) == []

    audit = world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()
    assert audit["ok"] is True and audit["first_broken_seq"] is None
    assert world.act(rid).status_code == 409  # acting twice is a stale state


def test_flow_coyeu_rejects_with_reason(world: World) -> None:
    rid = world.submit().json()["id"]
    r = world.reject(rid, "Sai thông tin đơn vị")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected" and r.json()["rejection_reason"] == "Sai thông tin đơn vị"
    notes = world.client.get("/v1/notifications", headers=world["agency"].headers).json()
    rejected = [n for n in notes if n["event"] == "request.rejected"]
    assert rejected and rejected[0]["payload"]["reason"] == "Sai thông tin đơn vị"
    assert world.countersign(rid).status_code == 409


def test_flow_provider_rejects_countersigned(world: World) -> None:
    rid = world.submit().json()["id"]
    assert world.countersign(rid).status_code == 200
    r = world.reject(rid, "CSCA key ceremony pending", party="provider")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected"


def test_flow_other_ministry_cannot_countersign_and_nothing_changes(world: World) -> None:
    rid = world.submit().json()["id"]
    before = world.row_counts()
    r = world.countersign(rid, party="coyeu_mod")
    assert r.status_code == 404  # the other ministry's unit does not even see it
    assert r.headers["content-type"].startswith(PROBLEM)
    assert world.row_counts() == before
    assert world.client.get(f"/v1/requests/{rid}", headers=world["agency"].headers).json()["state"] == "submitted"


def test_flow_replayed_document_is_conflict(world: World) -> None:
    document = world.request_document()
    assert world.client.post("/v1/requests", json={"document": document}, headers=world["agency"].headers).status_code == 201
    before = world.row_counts()
    r = world.client.post("/v1/requests", json={"document": document}, headers=world["agency"].headers)
    assert r.status_code == 409, r.text
    assert world.row_counts() == before


def test_flow_tampered_document_refused_and_leaves_nothing(world: World) -> None:
    der = bytearray(base64.b64decode(world.request_document(payload={"months": 2})))
    at = der.find(b'"months": 2')
    der[at + len('"months": ')] = ord("1")
    before = world.row_counts()
    r = world.client.post("/v1/requests", json={"document": base64.b64encode(bytes(der)).decode()},
                          headers=world["agency"].headers)
    assert r.status_code == 422
    body = r.json()
    assert r.headers["content-type"].startswith(PROBLEM)
    assert body["reason"] == "bad-signature" and body["article"] == "Art. 31"
    assert world.row_counts() == before


def test_flow_policy_refusal_names_the_article(world: World) -> None:
    before = world.row_counts()
    r = world.submit(payload={"months": 4})
    assert r.status_code == 422
    body = r.json()
    assert body["article"] == "Art. 23.1b"
    assert "exceeds 3 months" in body["detail"]
    assert body["type"].endswith("/policy-violation")
    assert world.row_counts() == before


def test_flow_failed_act_leaves_nothing_but_an_audit_record(world: World) -> None:
    rid = world.submit(request_type="explode").json()["id"]
    assert world.countersign(rid).status_code == 200
    before = world.row_counts()
    r = world.act(rid)
    assert r.status_code == 500
    assert r.json()["reason"] == "handler-failed" and "HSM unavailable" in r.json()["detail"]
    after = world.row_counts()
    assert after.pop("audit_log") == before.pop("audit_log") + 1
    assert after == before  # no published object, no notification, no state change
    assert world.client.get(f"/v1/requests/{rid}", headers=world["provider"].headers).json()["state"] == "countersigned"
    assert world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()["ok"] is True


def test_flow_countersignature_must_cover_the_application(world: World) -> None:
    rid = world.submit().json()["id"]
    r = world.countersign(rid, application_sha256="0" * 64)
    assert r.status_code == 422
    assert "not over the document" in r.json()["detail"]


def test_flow_wrong_party_signature(world: World) -> None:
    """The agency's operator presents a document signed with the Cơ yếu unit's certificate."""
    content = {"kind": "request", "organisation_id": world["agency"].organisation_id, "request_type": "echo",
               "document_type": "passport", "payload": {}, "nonce": "x"}
    document = world.sign("agency", content, identity=world["coyeu"].identity)
    r = world.client.post("/v1/requests", json={"document": document}, headers=world["agency"].headers)
    assert r.status_code == 403
    assert r.json()["reason"] == "wrong-party"


def test_flow_unregistered_signer(world: World, org_pki) -> None:
    stranger = org_pki.identity("Đơn vị chưa đăng ký", "MST:0101010101")
    content = {"kind": "request", "organisation_id": world["agency"].organisation_id, "request_type": "echo",
               "document_type": "passport", "payload": {}, "nonce": "y"}
    r = world.client.post("/v1/requests", json={"document": world.sign("agency", content, identity=stranger)},
                          headers=world["agency"].headers)
    assert r.status_code == 403
    assert r.json()["reason"] == "signer-not-registered"


def test_flow_revoked_signer(world: World) -> None:
    serial = world["agency"].identity.certificate.serial
    world.clock.advance(hours=2)
    world.import_crls(revoked=[RevokedEntry(serial, world.clock.now() - timedelta(minutes=30))])
    r = world.submit()
    assert r.status_code == 422
    assert r.json()["reason"] == "certificate-revoked"


def test_flow_expired_signer(world: World) -> None:
    cert = world["agency"].identity.certificate.asn1
    world.clock.set(cert.not_valid_after + timedelta(days=1))
    r = world.submit()
    assert r.status_code == 422
    assert r.json()["reason"] == "certificate-not-valid-at-signing-time"


def test_flow_wrong_root_certificate_cannot_be_registered(world: World) -> None:
    from fixtures.orgpki import build_demo_org_pki

    other = build_demo_org_pki(SoftwareSigner.generate("secp256r1"), SoftwareSigner.generate("secp256r1"),
                               not_before=world.clock.now() - timedelta(days=30))
    cert = other.issue(SoftwareSigner.generate("secp256r1"), common_name="Giả mạo", uid="MST:9",
                       not_before=world.clock.now() - timedelta(days=1))
    r = world.client.post(f"/v1/organisations/{world['agency'].organisation_id}/certificates",
                          json={"der": base64.b64encode(cert.der).decode()}, headers=world["provider"].headers)
    assert r.status_code == 422
    assert r.json()["reason"] == "untrusted-path"


def test_flow_signing_time_in_future_refused(world: World) -> None:
    r = world.client.post("/v1/requests",
                          json={"document": world.request_document(at=world.clock.now() + timedelta(hours=1))},
                          headers=world["agency"].headers)
    assert r.status_code == 422
    assert r.json()["reason"] == "signing-time"


def test_flow_agency_cannot_submit_for_document_type_it_does_not_serve(world: World) -> None:
    r = world.submit(document_type="idcard")
    assert r.status_code == 403


def test_flow_unknown_request_type(world: World) -> None:
    r = world.submit(request_type="no-such-thing")
    assert r.status_code == 422
    assert r.json()["data"]["request_type"] == "no-such-thing"


def test_flow_handler_names_its_submitters(world: World) -> None:
    """A foreign state may submit its DV request type, not the agency's types."""
    r = world.submit(party="foreign", request_type="dv_foreign", document_type=None)
    assert r.status_code == 422  # the foreign state has no ministry: no Cơ yếu unit could countersign
    r = world.submit(party="foreign", request_type="echo", document_type=None)
    assert r.status_code == 403
    r = world.submit(party="agency", request_type="dv_foreign", document_type=None)
    assert r.status_code == 403


def test_flow_overdue_listing(world: World) -> None:
    urgent = world.submit(request_type="urgent").json()
    world.submit(request_type="echo")
    assert urgent["deadline"] == "2026-03-03T09:00:00Z"  # Monday 09:00 UTC + 1 working day
    provider = world["provider"].headers
    assert _ids(world.client.get("/v1/requests/overdue", headers=provider)) == []
    world.clock.advance(days=1, minutes=1)
    world.import_crls()
    assert _ids(world.client.get("/v1/requests/overdue", headers=provider)) == [urgent["id"]]
    assert world.countersign(urgent["id"]).status_code == 200
    assert world.act(urgent["id"]).status_code == 200
    assert _ids(world.client.get("/v1/requests/overdue", headers=provider)) == []


def test_flow_audit_verify_names_tampered_entry(world: World) -> None:
    from sqlalchemy import text

    rid = world.submit().json()["id"]
    world.countersign(rid)
    with world.store.engine.begin() as conn:
        seq = conn.execute(text("SELECT seq FROM audit_log WHERE action = 'request.submitted'")).scalar_one()
        conn.execute(text("UPDATE audit_log SET action = 'request.forged' WHERE seq = :s"), {"s": seq})
    body = world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()
    assert body["ok"] is False and body["first_broken_seq"] == seq
