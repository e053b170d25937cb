"""An IS operator's IS key in the service's HSM, from first provisioning to destruction (issue 5).

`POST /v1/is/keys` generates the key and its CV request; the is_certificate request makes
it active and linked to its certificate; `HsmIsRenewal` renews it with the fake clock; the
``ds-key-destruction`` job destroys the superseded key once its certificate has expired
(whole days), audited, and never before.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cvc.certificate import AuthenticatedRequest, CvRequest, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import verify_chain_at, verify_request
from icao_pki.keystore import KeyInactive, KeyStoreError
from icao_pki.policy import DocumentType, Role
from icao_pki.signature import load_spki
from lifecycle_api import certificate_flows
from lifecycle_api.store import AuditEntry, Certificate, HsmOperation, HsmOperationState, Key, KeyState
from schedules import decisions
from schedules.jobs import JOBS, JobContext
from tests.flows.pki import PkiWorld, b64, unb64
from tests.flows.test_client_cli import Cli
from tests.flows.test_client_cli import client_cli as client_cli  # the `icao-pki client` fixture
from tests.schedules.support import hsm_is_renewals

pytestmark = pytest.mark.hsm

DESTRUCTION = "ds-key-destruction"


# --- helpers ------------------------------------------------------------------------------------




def _provision(pki: PkiWorld, party: str = "is_operator", **body: Any) -> dict[str, Any]:
    r = pki.client.post("/v1/is/keys", json={"document_type": "passport", **body}, headers=pki.headers(party))
    assert r.status_code == 201, r.text
    return r.json()


def _issue(pki: PkiWorld, cv_request: str, party: str = "is_operator") -> dict[str, Any]:
    return pki.flow(party, "is_certificate", "passport", {"cv_request": cv_request})["result"]


def _curve(pki: PkiWorld) -> Any:
    with pki.world.store.transaction() as tx:
        return parse_cv(tx.certificate(pki.ceremonies["passport_cvca"]["certificate_id"]).der).public_key.curve


def _chain(pki: PkiWorld) -> tuple[Any, Any]:
    with pki.world.store.transaction() as tx:
        cvca = parse_cv(tx.certificate(pki.ceremonies["passport_cvca"]["certificate_id"]).der)
        dv = parse_cv(tx.certificate(pki.ceremonies["passport_dvca"]["certificate_id"]).der)
    return cvca, dv


def _key(pki: PkiWorld, key_id: int) -> Key:
    with pki.world.store.transaction() as tx:
        key = tx.key(key_id)
        tx.session.expunge(key)
        return key


def _active_labels(pki: PkiWorld) -> set[str]:
    return {k.label for k in pki.keystore.list_keys() if k.state == "active"}


def _destruction(pki: PkiWorld) -> list[Any]:
    return JOBS[DESTRUCTION].run(JobContext(store=pki.world.store, clock=pki.world.clock, keystore=pki.keystore))


def _audit(pki: PkiWorld, key_id: int) -> list[AuditEntry]:
    with pki.world.store.transaction() as tx:
        rows = tx.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "key",
                                                           AuditEntry.entity_id == str(key_id))
                                  .order_by(AuditEntry.seq)).all()  # fmt: skip
        for row in rows:
            tx.session.expunge(row)
        return list(rows)


# --- provisioning -----------------------------------------------------------------------------


def test_is_key_provisioned_issued_renewed_then_destroyed_after_expiry(any_pki: PkiWorld) -> None:
    pki, world = any_pki, any_pki.world
    holder = world["is_operator"].organisation_id
    dv_chr = pki.ceremonies["passport_dvca"]["chr"]
    key = _provision(pki)
    # the key: in the HSM, on the chain's curve, recorded as generated for the IS operator
    assert key["car"] == dv_chr and key["hsm_label"].startswith("passport-is-")
    signer = pki.keystore.signer(key["hsm_label"])
    assert signer.curve == _curve(pki) and key["spec"] == _curve(pki).name
    row = _key(pki, key["key_id"])
    assert (row.role, row.state, row.organisation_id, row.hsm_label) == (
        Role.IS, KeyState.GENERATED, holder, key["hsm_label"])
    # the CV request: plain, made by that key, CHR the holder's first, CAR our DV
    request = parse_request(unb64(key["cv_request"]))
    assert isinstance(request, CvRequest)
    verify_request(request)
    assert (request.chr, request.car) == (key["chr"], dv_chr)
    assert request.chr == f"VNISP{holder:04d}00001"
    assert request.public_key.public_key() == load_spki(signer.public_key_info())
    with world.store.transaction() as tx:
        ops = tx.session.scalars(select(HsmOperation).where(HsmOperation.hsm_label == key["hsm_label"])).all()
        assert {o.state for o in ops} == {HsmOperationState.COMMITTED} and len(ops) == 2  # key, request
    assert [e.action for e in _audit(pki, key["key_id"])] == ["is.key_generated"]

    # submitted as an is_certificate request, countersigned, issued: the key is active and linked
    result = _issue(pki, key["cv_request"])
    assert (result["chr"], result["key_id"], result["hsm_label"]) == (key["chr"], key["key_id"], key["hsm_label"])
    issued = parse_cv(unb64(result["der"]))
    cvca, dv = _chain(pki)
    assert verify_chain_at(cvca, [dv, issued], world.clock.now().date()).valid
    assert issued.public_key.public_key(cvca.public_key.curve) == load_spki(signer.public_key_info())
    row = _key(pki, key["key_id"])
    with world.store.transaction() as tx:
        first = tx.certificate(result["certificate_id"])
        first_not_after, first_der = first.not_after, first.der
        assert first.key_id == key["key_id"] and first.organisation_id == holder
    assert row.state is KeyState.ACTIVE
    assert row.usage_not_after == first_not_after and row.usage_not_after.date() == issued.expiration_date

    # HsmIsRenewal renews it (outer signature by this key) five days before expiry
    world.clock.set(first_not_after - timedelta(days=5))
    world.import_crls()
    [(due, reference)] = decisions.run_renewals(world.store, world.clock, Role.IS, hsm_is_renewals(pki))
    assert due.certificate_id == result["certificate_id"] and reference.startswith("request:")
    request_id = reference.split(":", 1)[1]
    body = world.client.get(f"/v1/requests/{request_id}", headers=world["coyeu"].headers).json()
    renewal = parse_request(unb64(body["payload"]["cv_request"]))
    assert isinstance(renewal, AuthenticatedRequest) and renewal.outer_car == key["chr"]
    assert renewal.chr == f"VNISP{holder:04d}00002"
    assert world.countersign(request_id).status_code == 200
    r = world.act(request_id)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    renewed = r.json()["result"]
    new_key = _key(pki, renewed["key_id"])
    assert new_key.state is KeyState.ACTIVE and new_key.id != key["key_id"] and new_key.organisation_id == holder
    assert parse_cv(unb64(renewed["der"])).public_key.public_key(cvca.public_key.curve) == load_spki(
        pki.keystore.signer(new_key.hsm_label).public_key_info())

    # the old key stays while its certificate is valid — through the whole expiration day
    assert _destruction(pki) == []
    world.clock.set(first_not_after + timedelta(milliseconds=500))  # 23:59:59.5 of the expiration date
    assert key["hsm_label"] not in _destruction(pki)
    assert _key(pki, key["key_id"]).state is KeyState.ACTIVE
    pki.keystore.signer(key["hsm_label"])  # still in the HSM

    # the next day it is destroyed, audited; its certificate stays; the new key is untouched
    world.clock.set(first_not_after + timedelta(seconds=1))
    assert _destruction(pki) == [key["hsm_label"]]
    assert _key(pki, key["key_id"]).state is KeyState.DESTROYED
    with pytest.raises(KeyInactive):
        pki.keystore.signer(key["hsm_label"])
    assert pki.keystore.key_info(key["hsm_label"]).state == "destroyed"  # the public tombstone stays
    audit = _audit(pki, key["key_id"])
    assert [e.action for e in audit] == ["is.key_generated", "is_key.retired", "is_key.destroyed"]
    assert audit[1].details["superseded_by"] == renewed["chr"]
    assert audit[2].details["outcome"] == "destroyed" and audit[2].details["certificates"] == [key["chr"]]
    assert audit[2].details["spki_sha256"] == pki.keystore.key_info(key["hsm_label"]).spki_sha256
    with world.store.transaction() as tx:
        assert tx.certificate(result["certificate_id"]).der == first_der
    assert _key(pki, new_key.id).state is KeyState.ACTIVE
    pki.keystore.signer(new_key.hsm_label)
    # idempotent
    assert _destruction(pki) == []
    assert len(_audit(pki, key["key_id"])) == 3
    r = world.client.get("/v1/audit/verify", headers=world["provider"].headers)
    assert r.status_code == 200 and r.json()["ok"], r.text


def test_is_key_expired_without_successor_is_kept(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    key = _provision(pki)
    result = _issue(pki, key["cv_request"])
    with world.store.transaction() as tx:
        not_after = tx.certificate(result["certificate_id"]).not_after
    world.clock.set(not_after + timedelta(days=3))
    assert _destruction(pki) == []
    assert _key(pki, key["key_id"]).state is KeyState.ACTIVE
    pki.keystore.signer(key["hsm_label"])


def test_is_key_already_gone_from_the_hsm_is_recorded(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    first = _provision(pki)
    first_cert = _issue(pki, first["cv_request"])
    world.clock.advance(timedelta(days=20))
    world.import_crls()
    second = _provision(pki)  # the holder's next CHR after its latest certificate
    assert second["chr"] == first["chr"][:-5] + "00002"
    _issue(pki, second["cv_request"])
    with world.store.transaction() as tx:
        not_after = tx.certificate(first_cert["certificate_id"]).not_after
    pki.keystore.destroy(first["hsm_label"], reason="test: lost between the HSM and the database")
    world.clock.set(not_after + timedelta(hours=1))
    assert _destruction(pki) == [first["hsm_label"]]
    assert _key(pki, first["key_id"]).state is KeyState.DESTROYED
    assert _audit(pki, first["key_id"])[-1].details["outcome"] == "already absent from the HSM"
    assert _key(pki, second["key_id"]).state is KeyState.ACTIVE
    assert _destruction(pki) == []


def test_is_key_of_a_revoked_certificate_is_retired_and_destroyed_after_its_window(pki_sqlite: PkiWorld) -> None:
    """"Otherwise retired": the holder revokes its IS certificate (Art. 17), the key retires with
    it and leaves the HSM once the certificate's validity is over, no successor needed."""
    pki, world = pki_sqlite, pki_sqlite.world
    key = _provision(pki)
    result = _issue(pki, key["cv_request"])
    body = pki.flow("is_operator", "revocation", None,
                    {"certificate_id": result["certificate_id"], "reason": "key-device-lost"})
    assert body["state"] == "completed", body
    assert _key(pki, key["key_id"]).state is KeyState.RETIRED
    with world.store.transaction() as tx:
        not_after = tx.certificate(result["certificate_id"]).not_after
    world.clock.set(not_after)
    assert _destruction(pki) == []
    pki.keystore.signer(key["hsm_label"])
    world.clock.set(not_after + timedelta(seconds=1))
    assert _destruction(pki) == [key["hsm_label"]]
    assert _key(pki, key["key_id"]).state is KeyState.DESTROYED
    assert [e.action for e in _audit(pki, key["key_id"])][-1] == "is_key.destroyed"
    assert _destruction(pki) == []


def test_is_keys_provisioned_twice_get_distinct_chrs(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    one, two = _provision(pki), _provision(pki)
    assert one["chr"] != two["chr"] and two["chr"] == one["chr"][:-5] + "00002"
    assert _issue(pki, two["cv_request"])["key_id"] == two["key_id"]  # either can be certified first
    assert _issue(pki, one["cv_request"])["key_id"] == one["key_id"]
    assert _provision(pki)["chr"] == one["chr"][:-5] + "00003"


def test_is_key_of_an_agency(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    key = _provision(pki, party="agency")
    assert key["chr"] == f"VNISP{world['agency'].organisation_id:04d}00001"
    result = _issue(pki, key["cv_request"], party="agency")
    row = _key(pki, key["key_id"])
    assert row.state is KeyState.ACTIVE and row.organisation_id == world["agency"].organisation_id
    assert result["key_id"] == key["key_id"]


def test_is_key_of_a_rejected_request_is_destroyed(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    key = _provision(pki)
    r = pki.submit("is_operator", "is_certificate", "passport", {"cv_request": key["cv_request"]})
    assert r.status_code == 201, r.text
    r = world.reject(r.json()["id"], "terminal not registered")
    assert r.status_code == 200 and r.json()["state"] == "rejected", r.text
    assert _key(pki, key["key_id"]).state is KeyState.DESTROYED
    with pytest.raises(KeyInactive):
        pki.keystore.signer(key["hsm_label"])
    assert _audit(pki, key["key_id"])[-1].action == "hsm.key_destroyed"


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("party", ["provider", "coyeu", "foreign"])
def test_is_key_wrong_party_is_forbidden(pki_sqlite: PkiWorld, party: str) -> None:
    pki = pki_sqlite
    before = _active_labels(pki)
    r = pki.client.post("/v1/is/keys", json={"document_type": "passport"}, headers=pki.headers(party))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["reason"] == "forbidden" and "may not call POST /v1/is/keys" in problem["detail"]
    assert _active_labels(pki) == before


def test_is_key_for_a_document_type_not_served_is_forbidden(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    before = _active_labels(pki)
    r = pki.client.post("/v1/is/keys", json={"document_type": "idcard"}, headers=pki.headers("is_operator"))
    assert r.status_code == 403 and "does not serve" in r.json()["detail"], r.text
    assert _active_labels(pki) == before
    with pki.world.store.transaction() as tx:
        assert tx.session.scalars(select(Key).where(Key.role == Role.IS)).all() == []


@pytest.mark.parametrize(("body", "detail"), [
    ({"document_type": "visa"}, None),
    ({}, None),
    ({"document_type": "passport", "car": "VNXX00001"}, "not a DV of this service"),
])
def test_is_key_bad_input_leaves_nothing(pki_sqlite: PkiWorld, body: dict[str, Any], detail: str | None) -> None:
    pki = pki_sqlite
    before = _active_labels(pki)
    r = pki.client.post("/v1/is/keys", json=body, headers=pki.headers("is_operator"))
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if detail:
        assert detail in r.json()["detail"]
    assert _active_labels(pki) == before
    with pki.world.store.transaction() as tx:
        assert tx.session.scalars(select(Key).where(Key.role == Role.IS)).all() == []


def test_is_key_car_naming_our_cvca_is_refused(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    before = _active_labels(pki)
    r = pki.client.post("/v1/is/keys", json={"document_type": "passport", "car": pki.ceremonies["passport_cvca"]["chr"]},
                        headers=pki.headers("is_operator"))
    assert r.status_code == 422 and r.json()["reason"] == "invalid-input", r.text
    assert _active_labels(pki) == before


def test_is_key_failure_after_generation_destroys_the_key(pki_sqlite: PkiWorld,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pki = pki_sqlite
    before = _active_labels(pki)

    def broken(*_: Any, **__: Any) -> bytes:
        raise KeyStoreError("token removed")

    monkeypatch.setattr(certificate_flows, "build_request", broken)
    r = pki.client.post("/v1/is/keys", json={"document_type": "passport"}, headers=pki.headers("is_operator"))
    assert r.status_code >= 400
    assert _active_labels(pki) == before  # the generated key was destroyed
    with pki.world.store.transaction() as tx:
        assert tx.session.scalars(select(Key).where(Key.role == Role.IS)).all() == []
        [generated] = tx.session.scalars(select(HsmOperation).where(HsmOperation.purpose.like("IS key of%"))).all()
        assert generated.state is HsmOperationState.DESTROYED
        assert pki.keystore.key_info(generated.hsm_label).state == "destroyed"


def test_is_request_for_a_key_held_elsewhere_activates_nothing(pki_sqlite: PkiWorld) -> None:
    """The link is made on the HSM's public key, never assumed: a terminal's own key stays unlinked."""
    from cvc.builders import build_request

    pki = pki_sqlite
    held = _provision(pki)
    _, terminal = pki.terminal_key(_curve(pki).name)
    own = build_request(terminal, chr="VNISNB00001", car=pki.ceremonies["passport_dvca"]["chr"])
    result = _issue(pki, b64(own))
    assert "key_id" not in result
    with pki.world.store.transaction() as tx:
        assert tx.certificate(result["certificate_id"]).key_id is None
        assert tx.session.scalars(select(Certificate).where(Certificate.key_id == held["key_id"])).all() == []
    assert _key(pki, held["key_id"]).state is KeyState.GENERATED


def test_is_key_cv_request_verified_by_cvc_print(pki_sqlite: PkiWorld, tmp_path: Any) -> None:
    import shutil
    import subprocess

    if shutil.which("cvc-print") is None:
        pytest.skip("interop NOT RUN: cvc-print missing (Debian openpace; `make test` installs it)")
    pki = pki_sqlite
    key = _provision(pki)

    def cvc_print(der: bytes) -> list[str]:
        path = tmp_path / "is.cvreq"
        path.write_bytes(der)
        proc = subprocess.run(["cvc-print", "--csr", str(path)], capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]

    lines = cvc_print(unb64(key["cv_request"]))
    assert f"CAR: {key['car']}" in lines and f"CHR: {key['chr']}" in lines
    assert lines[-1] == "certificate request verified"  # the inner signature, by the new key
    broken = bytearray(unb64(key["cv_request"]))
    broken[-5] ^= 0x01  # and it can fail: one flipped signature byte
    assert cvc_print(bytes(broken))[-1] == "certificate request not verified"


def test_is_key_type_is_the_chains(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    key = _provision(pki)
    with pki.world.store.transaction() as tx:
        assert tx.key(key["key_id"]).algorithm == _curve(pki).name
        assert tx.key(key["key_id"]).document_type is DocumentType.PASSPORT


# --- client and command line ------------------------------------------------------------------


def test_cli_is_key_request_issues_a_key_held_here(client_cli: Cli) -> None:
    c, pki = client_cli, client_cli.pki
    submitted = c.run("is_operator", "is-key-request", "--document-type", "passport", signing=True)
    assert submitted["request_type"] == "is_certificate" and submitted["state"] == "submitted"
    request = parse_request(unb64(submitted["payload"]["cv_request"]))
    assert isinstance(request, CvRequest) and request.car == pki.ceremonies["passport_dvca"]["chr"]
    result = c.countersign_and_act(submitted["id"])
    row = _key(pki, result["key_id"])
    assert row.state is KeyState.ACTIVE and row.hsm_label == result["hsm_label"]
    assert result["chr"] == request.chr
    refused = c.run("coyeu", "is-key-request", "--document-type", "passport", signing=True, code=2)
    assert "403" in refused.stderr and "may not call POST /v1/is/keys" in refused.stderr
