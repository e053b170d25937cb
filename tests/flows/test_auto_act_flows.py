"""The Provider's automatic act on the real certificate flows (decide / sign / store after the
countersignature's transaction has committed), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import text

from cvc.builders import build_authenticated_request, build_request
from icao_pki.certificate import parse_certificate
from tests.flows.pki import PkiWorld, b64, unb64

pytestmark = pytest.mark.hsm


def _policy(pki: PkiWorld, *types: str) -> int:
    services = pki.client.app.state.services
    services.settings = replace(services.settings, auto_act_request_types=types)
    r = pki.client.post(f"/v1/organisations/{pki.world['provider'].organisation_id}/operators",
                        json={"name": "auto-act", "kind": "service_account"}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_ds_and_is_issued_automatically_revocation_waits(pki: PkiWorld) -> None:
    account = _policy(pki, "ds_certificate", "is_certificate")
    key = pki.ds_key()
    rid = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]}
                     ).json()["id"]
    r = pki.world.countersign(rid)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    ds = parse_certificate(unb64(r.json()["result"]["der"]))
    csca = pki.client.get(f"/v1/certificates/{pki.ceremonies['passport_csca']['certificate_id']}",
                          headers=pki.headers("provider")).json()
    ds.verify_issued_by(parse_certificate(unb64(csca["der"])))
    with pki.world.store.engine.connect() as conn:
        actor = conn.execute(text("SELECT actor_operator_id FROM audit_log WHERE action = 'request.completed' "
                                  "AND entity_id = :id"), {"id": rid}).scalar_one()
    assert actor == account
    # IS certificate
    _label, signer = pki.terminal_key()
    req = build_request(signer, chr="VNISNB00061", car=pki.ceremonies["passport_dvca"]["chr"])
    rid = pki.submit("is_operator", "is_certificate", "passport", {"cv_request": b64(req)}).json()["id"]
    assert pki.world.countersign(rid).json()["state"] == "completed"
    # revocation is not in the policy
    rev = pki.submit("agency", "revocation", None, {"certificate_id": r.json()["result"]["certificate_id"],
                                                    "reason": "key-compromise"}).json()["id"]
    assert pki.world.countersign(rev).json()["state"] == "countersigned"


def test_failed_automatic_act_stays_in_the_queue(pki: PkiWorld) -> None:
    _policy(pki, "is_certificate")
    dv = pki.ceremonies["passport_dvca"]["chr"]
    _, signer1 = pki.terminal_key()
    rid = pki.submit("is_operator", "is_certificate", "passport",
                     {"cv_request": b64(build_request(signer1, chr="VNISNB00071", car=dv))}).json()["id"]
    assert pki.world.countersign(rid).json()["state"] == "completed"
    # a renewal whose outer signature is not the current IS key's: the act refuses it
    _, new = pki.terminal_key()
    _, other = pki.terminal_key()
    forged = build_authenticated_request(build_request(new, chr="VNISNB00072", car=dv), other, outer_car="VNISNB00071")
    rid = pki.submit("is_operator", "is_certificate", "passport", {"cv_request": b64(forged)}).json()["id"]
    r = pki.world.countersign(rid)
    assert r.status_code == 200 and r.json()["state"] == "countersigned", r.text
    assert rid in [q["id"] for q in pki.client.get("/v1/queue", headers=pki.headers("provider")).json()]
    with pki.world.store.engine.connect() as conn:
        failed = conn.execute(text("SELECT details FROM audit_log WHERE action = 'request.auto_act_failed' "
                                   "AND entity_id = :id"), {"id": rid}).scalar_one()
    failed = failed if isinstance(failed, dict) else json.loads(failed)
    assert failed["error"] == "InvalidInput" and "outer signature" in failed["message"]
    assert pki.client.get("/v1/audit/verify", headers=pki.headers("provider")).json()["ok"] is True
