"""One end-to-end test per flow, through HTTP against the ASGI app, on SQLite and PostgreSQL.

Agency (or IS operator) signs → its ministry's Cơ yếu unit countersigns → the Provider
acts; the certificates coming out pass the `icao_pki` and `cvc` validators.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from cvc.builders import build_authenticated_request, build_dv_certificate, build_request
from cvc.certificate import AuthenticatedRequest, ChatRole, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import trust_point, verify_chain_at
from icao_pki.certificate import parse_certificate
from icao_pki.crl import parse_crl, verify_crl
from icao_pki.keystore import KeyStoreError
from icao_pki.lint import check_certificate
from icao_pki.masterlist import parse_master_list, verify_master_list
from icao_pki.policy import DocumentType, add_months
from icao_pki.signer import HashAlgorithm
from tests.flows.pki import PkiWorld, b64, unb64

pytestmark = pytest.mark.hsm


def _cert(pki: PkiWorld, certificate_id: int) -> bytes:
    r = pki.client.get(f"/v1/certificates/{certificate_id}", headers=pki.headers("provider"))
    assert r.status_code == 200, r.text
    return unb64(r.json()["der"])


def _notices(pki: PkiWorld, party: str) -> list[dict]:
    return pki.client.get("/v1/notifications", headers=pki.headers(party)).json()


def issue_ds(pki: PkiWorld, document_type: str = "passport", party: str = "agency") -> dict:
    key = pki.ds_key(document_type, party)
    req = pki.flow(party, "ds_certificate", document_type, {"hsm_label": key["hsm_label"], "csr": key["csr"]})
    return req["result"]


def test_flow_ds_certificate(pki: PkiWorld) -> None:
    now = pki.world.clock.now()
    result = issue_ds(pki)
    ds = parse_certificate(unb64(result["der"]))
    csca = parse_certificate(_cert(pki, pki.ceremonies["passport_csca"]["certificate_id"]))
    ds.verify_issued_by(csca)
    assert [f for f in check_certificate(ds, "ds", "passport", issuer=csca) if f.is_error] == []
    assert ds.private_key_usage_period.end == add_months(now, 3).replace(microsecond=0)
    assert result["max_signatures"] == 100_000
    # the signing service's query finds it
    with pki.world.store.transaction() as tx:
        found = tx.active_ds_key(DocumentType.PASSPORT, now + timedelta(minutes=1))
        assert found is not None and found[0].hsm_label == result["hsm_label"]
        assert found[1].fingerprint_sha256 == result["fingerprint_sha256"]
        assert tx.active_ds_key(DocumentType.IDCARD, now + timedelta(minutes=1)) is None
    # result to the Agency, notice to the Cơ yếu unit, published
    agency = [n for n in _notices(pki, "agency") if n["event"] == "request.completed"]
    assert agency and agency[-1]["payload"]["result"]["der"] == result["der"]
    assert any(n["event"] == "request.completed" for n in _notices(pki, "coyeu"))
    assert any(o["kind"] == "ds" and o["sha256"] == result["fingerprint_sha256"]
               for o in pki.client.get("/v1/pub").json())
    # a DS key is certified once
    again = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": result["hsm_label"], "csr": b64(b"0")})
    assert again.status_code == 422


def test_flow_ds_idcard_rsa(pki: PkiWorld) -> None:
    result = issue_ds(pki, "idcard", "idcard_agency")
    ds = parse_certificate(unb64(result["der"]))
    csca = parse_certificate(_cert(pki, pki.ceremonies["idcard_csca"]["certificate_id"]))
    ds.verify_issued_by(csca)
    assert [f for f in check_certificate(ds, "ds", "idcard", issuer=csca) if f.is_error] == []
    assert ds.document_types is not None and "P" not in ds.document_types


def _terminal_request(pki: PkiWorld, car: str, seq: int) -> tuple[str, object, bytes]:
    _label, signer = pki.terminal_key()
    chr = f"VNISNB{seq:05d}"
    return chr, signer, build_request(signer, chr=chr, car=car)


def test_flow_is_certificate_and_renewal(pki: PkiWorld) -> None:
    dv_chr = pki.ceremonies["passport_dvca"]["chr"]
    chr1, signer1, req1 = _terminal_request(pki, dv_chr, 1)
    result = pki.flow("is_operator", "is_certificate", "passport", {"cv_request": b64(req1)})["result"]
    cvca = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
    dv = parse_cv(_cert(pki, pki.ceremonies["passport_dvca"]["certificate_id"]))
    is1 = parse_cv(unb64(result["der"]))
    today = pki.world.clock.now().date()
    assert is1.chr == chr1 and is1.role is ChatRole.TERMINAL
    assert verify_chain_at(cvca, [dv, is1], today).valid
    assert (is1.expiration_date - is1.effective_date).days < 31
    # renewal: authenticated by the current IS key
    _chr2, _, req2 = _terminal_request(pki, dv_chr, 2)
    renewal = build_authenticated_request(req2, signer1, outer_car=chr1)
    result2 = pki.flow("is_operator", "is_certificate", "passport", {"cv_request": b64(renewal)})["result"]
    assert verify_chain_at(cvca, [dv, parse_cv(unb64(result2["der"]))], today).valid
    # a renewal whose outer signature is not the named key's is refused
    _chr3, _, req3 = _terminal_request(pki, dv_chr, 3)
    _, other = pki.terminal_key()
    forged = build_authenticated_request(req3, other, outer_car=chr1)
    rid = pki.submit("is_operator", "is_certificate", "passport", {"cv_request": b64(forged)}).json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    r = pki.world.act(rid)
    assert r.status_code == 422 and "outer signature" in r.json()["detail"]


def test_flow_is_renewal_only_by_holder(pki: PkiWorld) -> None:
    dv_chr = pki.ceremonies["passport_dvca"]["chr"]
    chr1, signer1, req1 = _terminal_request(pki, dv_chr, 11)
    pki.flow("agency", "is_certificate", "passport", {"cv_request": b64(req1)})  # the Agency holds this one
    _, _, req2 = _terminal_request(pki, dv_chr, 12)
    renewal = build_authenticated_request(req2, signer1, outer_car=chr1)
    rid = pki.submit("is_operator", "is_certificate", "passport", {"cv_request": b64(renewal)}).json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    r = pki.world.act(rid)
    assert r.status_code == 403 and "only renew its own" in r.json()["detail"]


def _uto_signer(pki: PkiWorld):
    return pki.keystore.signer(pki.uto_cvca_label)


def test_flow_foreign_dv_certified_by_our_cvca(pki: PkiWorld) -> None:
    ours = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
    label = str(pki.keystore.next_label("uto", "dv"))
    dv_signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    inner = build_request(dv_signer, chr="UTDVVN00001", car=ours.chr)
    request = build_authenticated_request(inner, _uto_signer(pki), outer_car=pki.uto_cvca_chr)
    payload = {"cv_request": b64(request), "foreign_state_organisation_id": pki.world["foreign"].organisation_id}
    result = pki.flow("agency", "foreign_dv_certificate", "passport", payload)["result"]
    dv = parse_cv(unb64(result["der"]))
    assert dv.role is ChatRole.DV_FOREIGN and dv.car == ours.chr
    assert verify_chain_at(ours, [dv], pki.world.clock.now().date()).valid
    assert any(n["event"] == "certificate.issued" for n in _notices(pki, "foreign"))
    # the foreign state fetches its result
    mine = pki.client.get("/v1/certificates", headers=pki.headers("foreign")).json()
    assert [c["chr"] for c in mine if c["role"] == "dvca"] == ["UTDVVN00001"]
    # not authenticated by Utopia's CVCA: refused at submission
    bad = dict(payload, cv_request=b64(inner))
    r = pki.submit("agency", "foreign_dv_certificate", "passport", bad)
    assert r.status_code == 422


def test_flow_our_dv_certified_by_foreign_cvca(pki: PkiWorld) -> None:
    state = pki.world["foreign"].organisation_id
    first = pki.flow("agency", "dv_request_abroad", "passport", {"foreign_state_organisation_id": state})["result"]
    request = parse_request(unb64(first["cv_request"]))
    ours = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
    assert isinstance(request, AuthenticatedRequest) and request.outer_car == ours.chr
    tp = trust_point(ours)
    request.verify_outer_signature(tp.public_key, tp.algorithm)
    assert request.request.car == pki.uto_cvca_chr
    # Utopia issues; we import, verify against its registered CVCA, install
    uto = parse_cv(pki.uto_cvca_der)
    today = pki.world.clock.now().date()
    der = build_dv_certificate(_uto_signer(pki), uto, unb64(first["cv_request"]), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="passport")
    rid = next(r["id"] for r in pki.client.get("/v1/requests", headers=pki.headers("provider")).json()
               if r["request_type"] == "dv_request_abroad")
    # a certificate whose signature is not Utopia's CVCA's is refused
    tampered = bytearray(der)
    tampered[-3] ^= 0x01
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": rid, "der": b64(bytes(tampered))},
                        headers=pki.headers("provider"))
    assert r.status_code == 422, r.text
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": rid, "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    assert r.json()["chr"] == first["chr"]
    # our IS certificates chain to it
    _chr1, _, req1 = _terminal_request(pki, first["chr"], 21)
    result = pki.flow("is_operator", "is_certificate", "passport", {"cv_request": b64(req1)})["result"]
    assert verify_chain_at(uto, [parse_cv(der), parse_cv(unb64(result["der"]))], today).valid
    # the next request to Utopia is successive: outer-signed by that DV's key, not by our CVCA
    second = pki.flow("agency", "dv_request_abroad", "passport", {"foreign_state_organisation_id": state})["result"]
    assert second["successive"] is True and second["authenticated_by"] == first["chr"]
    renewal = parse_request(unb64(second["cv_request"]))
    assert isinstance(renewal, AuthenticatedRequest) and renewal.outer_car == first["chr"]
    dv = parse_cv(der)
    renewal.verify_outer_signature(dv.public_key.public_key(uto.public_key.curve), dv.public_key.algorithm)


def test_flow_revocation_publishes_crl(pki: PkiWorld) -> None:
    result = issue_ds(pki)
    serial = parse_certificate(unb64(result["der"])).serial_number
    before = parse_crl(pki.client.get("/v1/pub/crl/passport").content)
    rid = pki.submit("agency", "revocation", None,
                     {"certificate_id": result["certificate_id"], "reason": "key-compromise"}).json()
    assert rid["deadline"] is not None
    assert pki.world.countersign(rid["id"]).status_code == 200
    r = pki.world.act(rid["id"])
    assert r.status_code == 200, r.text
    assert r.json()["result"]["article"] == "Art. 17.1b"
    crl_der = pki.client.get("/v1/pub/crl/passport").content
    csca = parse_certificate(_cert(pki, pki.ceremonies["passport_csca"]["certificate_id"]))
    crl = verify_crl(crl_der, csca)
    assert crl.crl_number == before.crl_number + 1
    assert crl.is_revoked(serial) is not None
    with pki.world.store.transaction() as tx:
        assert tx.active_ds_key(DocumentType.PASSPORT, pki.world.clock.now()) is None
    cert = pki.client.get(f"/v1/certificates/{result['certificate_id']}", headers=pki.headers("agency")).json()
    assert cert["status"] == "revoked"


@pytest.mark.parametrize(("party", "reason", "status", "article"), [
    ("agency", "position-changed", 422, "Art. 17.2b"),
    ("agency", "organisation-dissolved", 422, "Art. 17.3b"),
    ("agency", "expired", 403, "Art. 18.1"),
    ("agency_mod", "managing-organisation-request", 403, "Art. 18.2"),
    ("agency_mod", "law-enforcement-request", 403, "Art. 18.5"),
])
def test_revocation_authority_refusals(pki_sqlite: PkiWorld, party: str, reason: str, status: int,
                                       article: str) -> None:
    pki = pki_sqlite
    result = issue_ds(pki)
    before = pki.world.row_counts()
    r = pki.submit(party, "revocation", None, {"certificate_id": result["certificate_id"], "reason": reason})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["article"] == article
    assert pki.world.row_counts() == before


def test_revocation_by_law_enforcement_of_public_security(pki_sqlite: PkiWorld) -> None:
    """Art. 18.5: an Agency of the Ministry of Public Security may ask for any certificate."""
    pki = pki_sqlite
    result = issue_ds(pki, "idcard", "idcard_agency")
    body = pki.flow("agency", "revocation", None,
                    {"certificate_id": result["certificate_id"], "reason": "law-enforcement-request"})
    assert body["result"]["article"] == "Art. 17.1c"


@pytest.mark.parametrize(("party", "request_type", "doc", "payload_extra", "article"), [
    ("agency", "ds_certificate", "passport", {"key_usage_months": 4}, "Art. 23.1b"),
    ("agency", "ds_certificate", "passport", {"validity_months": 10 * 12 + 1}, "Art. 23.1b"),
    ("idcard_agency", "ds_certificate", "idcard", {"key_usage_months": 4}, "Art. 26.1b"),
    ("idcard_agency", "ds_certificate", "idcard", {"validity_months": 22 * 12 + 1}, "Art. 26.1b"),
    ("is_operator", "is_certificate", "passport", {"validity_days": 32}, "Art. 23.2c"),
    ("idcard_agency", "is_certificate", "idcard", {"validity_days": 32}, "Art. 26.2c"),
    ("agency", "foreign_dv_certificate", "passport", {"validity_days": 93}, "Art. 23.2b"),
])
def test_decree_limits_refused_at_submission(pki_sqlite: PkiWorld, party: str, request_type: str, doc: str,
                                             payload_extra: dict, article: str) -> None:
    pki = pki_sqlite
    if request_type == "ds_certificate":
        key = pki.ds_key(doc, party)
        payload = {"hsm_label": key["hsm_label"], "csr": key["csr"]}
    elif request_type == "is_certificate":
        payload = {"cv_request": b64(_terminal_request(pki, pki.ceremonies["passport_dvca"]["chr"], 31)[2])}
    else:
        ours = parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))
        _, dv_signer = pki.terminal_key()
        inner = build_request(dv_signer, chr="UTDVVN00009", car=ours.chr)
        payload = {"cv_request": b64(build_authenticated_request(inner, _uto_signer(pki), outer_car=pki.uto_cvca_chr)),
                   "foreign_state_organisation_id": pki.world["foreign"].organisation_id}
    before = pki.world.row_counts()
    r = pki.submit(party, request_type, doc, {**payload, **payload_extra})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["article"] == article
    assert pki.world.row_counts() == before


def test_publication(pki: PkiWorld) -> None:
    issue_ds(pki)
    r = pki.client.post("/v1/publication/master-list", json={"document_type": "passport"},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    index = pki.client.get("/v1/pub").json()
    kinds = {o["kind"] for o in index}
    assert {"csca", "crl", "master_list", "cvca", "ds"} <= kinds
    for o in index:  # every object is served, as published, without credentials
        body = pki.client.get(o["url"])
        assert body.status_code == 200
        assert hashlib.sha256(body.content).hexdigest() == o["sha256"]
    ml = parse_master_list(pki.client.get("/v1/pub/master-list").content)
    csca_der = _cert(pki, pki.ceremonies["passport_csca"]["certificate_id"])
    verify_master_list(ml, trust_anchors=[csca_der], at=pki.world.clock.now())
    assert len(ml.entries) == 2  # passport and ID-card CSCAs
    roots = pki.client.get("/v1/pub/trusted-roots").json()
    assert {r["kind"] for r in roots} == {"csca", "cvca"}
    assert pki.client.get("/v1/pub/crl/idcard").status_code == 200
    assert pki.client.get("/v1/pub/crl/nonsense").status_code == 422


def test_rejected_ds_request_destroys_its_key(pki: PkiWorld) -> None:
    key = pki.ds_key()
    rid = pki.submit("agency", "ds_certificate", "passport", {"hsm_label": key["hsm_label"], "csr": key["csr"]}).json()
    r = pki.world.reject(rid["id"], "the Agency did not order this DS")
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    with pki.world.store.transaction() as tx:
        row = tx.key_by_label(key["hsm_label"])
        assert row.state.value == "destroyed" and row.destroyed_at is not None
        assert any(e.action == "hsm.key_destroyed" and e.details["hsm_label"] == key["hsm_label"]
                   for e in tx.audit_entries())
    with pytest.raises(KeyStoreError):  # no private key any more
        pki.keystore.signer(key["hsm_label"]).sign(b"x", HashAlgorithm.SHA256)


def test_revocation_deadline_and_overdue(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    result = issue_ds(pki)
    req = pki.submit("agency", "revocation", None,
                     {"certificate_id": result["certificate_id"], "reason": "service-stopped"}).json()
    # START is Monday 09:00: Art. 19.2b gives the Provider one working day
    assert req["deadline"].startswith("2026-03-03")
    pki.world.clock.advance(days=2)
    overdue = pki.client.get("/v1/requests/overdue", headers=pki.headers("provider")).json()
    assert [o["id"] for o in overdue] == [req["id"]]


def test_revocation_deadline_configurable_to_12_hours(pki_sqlite: PkiWorld) -> None:
    from dataclasses import replace

    from lifecycle_api.app import create_app
    from lifecycle_api.deadlines import DeadlineRule

    services = pki_sqlite.client.app.state.services
    app = create_app(replace(services.settings, revocation_deadline="12 hours"), services.clock,
                     store=services.store, keyring=pki_sqlite.keystore)
    assert app.state.services.handlers.get("revocation").deadline == DeadlineRule.parse("12 hours")
