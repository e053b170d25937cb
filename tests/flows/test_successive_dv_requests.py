"""Successive EAC DV requests (TR-03110-3 C.2.6, TR-03139 Table 2), both directions.

The outer signature of a CV request is optional for an initial certificate and required for
a successive one.  Our DV abroad: the first request (and the first after every certificate
from that state expired) is outer-signed by our CVCA; while a DV certificate from that state
is valid and its key can sign, the next request is outer-signed by that DV key (outer CAR =
its CHR).  A foreign DV's request to us: the state's CVCA vouches for an initial one, the
DV's still-valid certificate from our CVCA for a successive one — of the same state, the same
document type and the same holder.  And a certificate for our DV abroad is verified against
the root its own CAR leads back to, when the state registered two self-signed roots.

Utopia's and Erewhon's keys stand for keys held in their own HSMs (tests/flows/pki.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from cvc.builders import build_authenticated_request, build_cvca_certificate, build_dv_certificate, build_request
from cvc.certificate import AuthenticatedRequest, ChatRole, CvCertificate, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.errors import CvcError
from cvc.validation import trust_point, verify_chain_at
from icao_pki.clock import SystemClock
from icao_pki.policy import DocumentType, Role, cv_max_expiration
from icao_pki.signature import EcPublicKey, plain_to_der
from icao_pki.signer import Signer
from lifecycle_api.store import (
    Certificate,
    CertificateStatus,
    HsmOperation,
    HsmOperationState,
    KeyState,
    OperatorKind,
    Request,
    RequestState,
)
from schedules import decisions
from schedules.actors import FlowRenewals
from tests.cvc.openpace import require_openpace, run
from tests.flows.pki import PkiWorld, b64, unb64

pytestmark = pytest.mark.hsm


def _cert(pki: PkiWorld, certificate_id: int) -> bytes:
    r = pki.client.get(f"/v1/certificates/{certificate_id}", headers=pki.headers("provider"))
    assert r.status_code == 200, r.text
    return unb64(r.json()["der"])


def _our_cvca(pki: PkiWorld) -> CvCertificate:
    return parse_cv(_cert(pki, pki.ceremonies["passport_cvca"]["certificate_id"]))


def _uto(pki: PkiWorld) -> tuple[Signer, CvCertificate]:
    return pki.keystore.signer(pki.uto_cvca_label), parse_cv(pki.uto_cvca_der)


def _refused(pki: PkiWorld, party: str, request_type: str, document_type: str, payload: dict[str, Any]) -> str:
    """Submitted and countersigned, then refused when the Provider acts: the refusal's text."""
    r = pki.submit(party, request_type, document_type, payload)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    r = pki.world.act(rid)
    assert r.status_code == 422, r.text
    return r.json()["detail"]


def _refused_at_submission(pki: PkiWorld, payload: dict[str, Any]) -> str:
    """A foreign DV request the Agency's submission already refuses (422): the refusal's text;
    nothing enters the queues."""
    with pki.world.store.transaction() as tx:
        before = len(tx.session.scalars(select(Request.id)).all())
    r = pki.submit("agency", "foreign_dv_certificate", "passport", payload)
    assert r.status_code == 422, r.text
    with pki.world.store.transaction() as tx:
        assert len(tx.session.scalars(select(Request.id)).all()) == before
    return r.json()["detail"]


def _later(pki: PkiWorld, days: int) -> None:
    """Move the clock; fresh CRLs for the organisations' signing certificates at the new time."""
    pki.world.clock.advance(days=days)
    pki.world.import_crls()


# --- our DV abroad ----------------------------------------------------------------------------


def _abroad(pki: PkiWorld) -> dict[str, Any]:
    """A dv_request_abroad to Utopia, through the three hops: the request (with its id)."""
    state = pki.world["foreign"].organisation_id
    return pki.flow("agency", "dv_request_abroad", "passport", {"foreign_state_organisation_id": state})


def _utopia_certifies(pki: PkiWorld, done: dict[str, Any], days: int = 80) -> bytes:
    """Utopia's CVCA certifies the exported request; we install the certificate."""
    signer, uto = _uto(pki)
    today = pki.world.clock.now().date()
    der = build_dv_certificate(signer, uto, unb64(done["result"]["cv_request"]), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=days),
                               document_type="passport")
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": done["id"], "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    return der


def _outer_verifies_with_dv(request: AuthenticatedRequest, dv_der: bytes, trust: CvCertificate) -> bool:
    dv = parse_cv(dv_der)
    try:
        request.verify_outer_signature(dv.public_key.public_key(trust.public_key.curve), dv.public_key.algorithm)
    except CvcError:
        return False
    return True


def _outer_verifies_with_cvca(request: AuthenticatedRequest, cvca: CvCertificate) -> bool:
    tp = trust_point(cvca)
    try:
        request.verify_outer_signature(tp.public_key, tp.algorithm)
    except CvcError:
        return False
    return True


def test_dv_abroad_renewal_is_outer_signed_by_the_current_dv_key(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    ours, (_, uto) = _our_cvca(pki), _uto(pki)
    first = _abroad(pki)
    assert first["result"]["successive"] is False and first["result"]["authenticated_by"] == ours.chr
    first_der = _utopia_certifies(pki, first)
    _later(pki, 30)
    second = _abroad(pki)["result"]
    assert second["authenticated"] is True and second["successive"] is True
    assert second["authenticated_by"] == first["result"]["chr"]
    assert first["result"]["passed_over"] == second["passed_over"] == []
    request = parse_request(unb64(second["cv_request"]))
    assert isinstance(request, AuthenticatedRequest)
    assert request.outer_car == first["result"]["chr"] and request.request.car == uto.chr
    assert request.chr == second["chr"] != first["result"]["chr"]
    # what Utopia checks (TR-03139 Table 2): the outer signature under the DV certificate it issued
    assert _outer_verifies_with_dv(request, first_der, uto)
    assert not _outer_verifies_with_cvca(request, ours)
    # the new key's CHR keeps the holder mnemonic, so Utopia sees the same DV renewing itself
    assert request.chr[:-5] == first["result"]["chr"][:-5]


def test_dv_abroad_renewal_uses_the_newest_valid_dv_certificate(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    _, uto = _uto(pki)
    first = _abroad(pki)
    _utopia_certifies(pki, first)
    _later(pki, 10)
    second = _abroad(pki)
    second_der = _utopia_certifies(pki, second)
    _later(pki, 10)
    third = parse_request(unb64(_abroad(pki)["result"]["cv_request"]))
    assert isinstance(third, AuthenticatedRequest) and third.outer_car == second["result"]["chr"]
    assert _outer_verifies_with_dv(third, second_der, uto)


def test_dv_abroad_after_the_dv_certificate_expired_is_initial_again(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    ours = _our_cvca(pki)
    first = _abroad(pki)
    _utopia_certifies(pki, first, days=20)
    with pki.world.store.transaction() as tx:
        not_after = tx.certificate_by_chr(first["result"]["chr"]).not_after
    pki.world.clock.set(not_after - timedelta(hours=1))  # the last hour of its validity: still successive
    pki.world.import_crls()
    assert _abroad(pki)["result"]["authenticated_by"] == first["result"]["chr"]
    pki.world.clock.set(not_after + timedelta(seconds=1))
    pki.world.import_crls()
    again = _abroad(pki)["result"]
    assert again["successive"] is False and again["authenticated_by"] == ours.chr
    request = parse_request(unb64(again["cv_request"]))
    assert isinstance(request, AuthenticatedRequest) and request.outer_car == ours.chr
    assert _outer_verifies_with_cvca(request, ours)


def test_dv_abroad_with_the_dv_key_unusable_is_initial(pki_sqlite: PkiWorld) -> None:
    """A valid certificate whose key cannot sign (retired, e.g. with a revocation) does not make
    the request successive: the request goes out initial, signed by our CVCA."""
    pki = pki_sqlite
    ours = _our_cvca(pki)
    first = _abroad(pki)
    _utopia_certifies(pki, first)
    with pki.world.store.transaction() as tx:
        tx.set_key_state(first["result"]["key_id"], KeyState.ACTIVE, KeyState.RETIRED, now=pki.world.clock.now())
    request_id = (result := _abroad(pki))["id"]
    result = result["result"]
    assert result["successive"] is False and result["authenticated_by"] == ours.chr
    # the result and the journal of the outer signature say which certificate was passed over, and why
    passed = [{"chr": first["result"]["chr"], "certificate_id": _dv_certificate_id(pki, first), "why": "its key is retired"}]
    assert result["passed_over"] == passed
    assert _outer_signature(pki, request_id).details["passed_over"] == passed


def _dv_certificate_id(pki: PkiWorld, done: dict[str, Any]) -> int:
    with pki.world.store.transaction() as tx:
        certificate = tx.certificate_by_chr(done["result"]["chr"])
        assert certificate is not None
        return certificate.id


def _outer_signature(pki: PkiWorld, request_id: str) -> HsmOperation:
    """The journal row of the outer signature of our DV request abroad."""
    with pki.world.store.transaction() as tx:
        [op] = tx.session.scalars(select(HsmOperation).where(HsmOperation.request_id == request_id,
                                                             HsmOperation.purpose.like("DV request abroad (outer,%"))).all()
        tx.session.expunge(op)
        return op


def test_dv_abroad_with_the_dv_key_gone_from_the_hsm_is_initial(pki_sqlite: PkiWorld) -> None:
    """The database still says active, the HSM no longer holds the key: it cannot sign, so the
    request is initial rather than a failure."""
    pki = pki_sqlite
    ours = _our_cvca(pki)
    first = _abroad(pki)
    _utopia_certifies(pki, first)
    pki.keystore.destroy(first["result"]["hsm_label"], reason="test: lost between the HSM and the database")
    result = _abroad(pki)["result"]
    assert result["successive"] is False and result["authenticated_by"] == ours.chr
    [passed] = result["passed_over"]
    assert passed["chr"] == first["result"]["chr"] and passed["certificate_id"] == _dv_certificate_id(pki, first)
    assert first["result"]["hsm_label"] in passed["why"]  # the key store's own words: not found


def test_scheduled_renewal_abroad_is_outer_signed_by_the_dv_due(pki_sqlite: PkiWorld) -> None:
    """The DV renewal schedule renews our DV abroad through `submit_abroad` (a dv_request_abroad):
    the request it produces is the successive one, authenticated by the certificate falling due."""
    pki, world = pki_sqlite, pki_sqlite.world
    first = _abroad(pki)
    _utopia_certifies(pki, first, days=30)
    with world.store.transaction() as tx:
        due_row = tx.certificate_by_chr(first["result"]["chr"])
        due_id, not_after = due_row.id, due_row.not_after
        account = tx.add_operator(organisation_id=world["provider"].organisation_id, name="scheduler",
                                  kind=OperatorKind.SERVICE_ACCOUNT, token_id="sched-abroad",
                                  credential_hash="unused", now=world.clock.now()).id
    world.clock.set(not_after - timedelta(days=10))
    world.import_crls()
    submitted: list[dict[str, Any]] = []

    def submit_abroad(state: int, document_type: DocumentType, now: Any) -> str:
        done = pki.flow("agency", "dv_request_abroad", document_type.value, {"foreign_state_organisation_id": state})
        submitted.append(done["result"])
        return f"request:{done['id']}"

    renewals = FlowRenewals(world.client.app.state.services, account, submit_abroad=submit_abroad)
    [(due, outcome)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, renewals)
    assert due.certificate_id == due_id and outcome.startswith("request:")
    [renewal] = submitted
    assert renewal["successive"] is True and renewal["authenticated_by"] == first["result"]["chr"]
    request = parse_request(unb64(renewal["cv_request"]))
    assert isinstance(request, AuthenticatedRequest) and request.outer_car == first["result"]["chr"]


def test_serve_schedules_renew_our_dv_abroad_as_the_agency(pki_sqlite: PkiWorld,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`icao-pki serve`'s wiring (`job_context` with the Agencies' operators): the DV renewal
    schedule submits the Agency's dv_request_abroad itself, signed as the Agency (its centrally
    held key; here its test key in that place); without an Agency signature it notifies."""
    from sqlalchemy import select

    import lifecycle_api.signing.flow as flow
    from lifecycle_api.store import Operator, Request
    from schedules.runtime import job_context

    pki, world = pki_sqlite, pki_sqlite.world
    first = _abroad(pki)
    _utopia_certifies(pki, first, days=30)
    services = world.client.app.state.services
    with world.store.transaction() as tx:
        not_after = tx.certificate_by_chr(first["result"]["chr"]).not_after
        account = tx.add_operator(organisation_id=world["provider"].organisation_id, name="scheduler",
                                  kind=OperatorKind.SERVICE_ACCOUNT, token_id="sched-serve",
                                  credential_hash="unused", now=world.clock.now()).id
        agency_operator = tx.session.scalars(
            select(Operator.id).where(Operator.organisation_id == world["agency"].organisation_id)).first()
    world.clock.set(not_after - timedelta(days=10))
    world.import_crls()
    ctx = job_context(services, pki.keystore, provider_operator_id=account,
                      agency_operator_ids={DocumentType.PASSPORT: agency_operator})
    # no centrally held Agency key in this world: the schedule can only notify
    [(_, outcome)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, ctx.renewals)
    assert outcome == "noticed"

    def agency_signs(services: Any, organisation_id: int, now: Any) -> Any:
        assert organisation_id == world["agency"].organisation_id
        return lambda content, when: unb64(world.sign("agency", content, at=when))

    monkeypatch.setattr(flow, "central_document_signer", agency_signs)
    [(_, outcome)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, ctx.renewals)
    assert outcome.startswith("request:")
    request_id = outcome.removeprefix("request:")
    with world.store.transaction() as tx:
        row = tx.session.get(Request, request_id)
        assert row is not None and row.request_type == "dv_request_abroad"
        assert row.applicant_organisation_id == world["agency"].organisation_id
    if world.client.get(f"/v1/requests/{request_id}", headers=pki.headers("provider")).json()["state"] != "completed":
        assert world.countersign(request_id).status_code == 200
        assert world.act(request_id).status_code == 200
    done = world.client.get(f"/v1/requests/{request_id}", headers=pki.headers("provider")).json()
    assert done["state"] == "completed"
    assert done["result"]["successive"] is True and done["result"]["authenticated_by"] == first["result"]["chr"]
    # the next runs, before Utopia answers, do not ask again (nor generate another DV key)
    world.clock.advance(hours=1)
    [(_, outcome)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, ctx.renewals)
    assert outcome == f"already-requested:{request_id}"
    with world.store.transaction() as tx:
        assert len(tx.session.scalars(select(Request).where(Request.request_type == "dv_request_abroad")).all()) == 2


# --- foreign DV requests to us -------------------------------------------------------------------


def _dv_key(pki: PkiWorld) -> Signer:
    label = str(pki.keystore.next_label("uto", "dv"))
    return pki.keystore.generate_key(label, "brainpoolP256r1")


def _payload(request: bytes, state: int, validity_days: int | None = None) -> dict[str, Any]:
    extra = {"validity_days": validity_days} if validity_days is not None else {}
    return {"cv_request": b64(request), "foreign_state_organisation_id": state, **extra}


def _initial_foreign_dv(pki: PkiWorld, chr: str, *, state: int | None = None, cvca: tuple[Signer, str] | None = None,
                        validity_days: int | None = None) -> tuple[Signer, dict[str, Any]]:
    """A foreign DV certified by our CVCA on its state's CVCA's word (default: Utopia's)."""
    signer = _dv_key(pki)
    outer_signer, outer_car = cvca or (pki.keystore.signer(pki.uto_cvca_label), pki.uto_cvca_chr)
    inner = build_request(signer, chr=chr, car=_our_cvca(pki).chr)
    request = build_authenticated_request(inner, outer_signer, outer_car=outer_car)
    payload = _payload(request, state or pki.world["foreign"].organisation_id, validity_days)
    return signer, pki.flow("agency", "foreign_dv_certificate", "passport", payload)["result"]


def _successive(pki: PkiWorld, chr: str, current: Signer, current_chr: str, state: int | None = None) -> dict:
    inner = build_request(_dv_key(pki), chr=chr, car=_our_cvca(pki).chr)
    request = build_authenticated_request(inner, current, outer_car=current_chr)
    return _payload(request, state or pki.world["foreign"].organisation_id)


def test_foreign_dv_successive_request_authenticated_by_its_valid_certificate(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    ours = _our_cvca(pki)
    current, _ = _initial_foreign_dv(pki, "UTDVVN00001")
    _later(pki, 30)
    payload = _successive(pki, "UTDVVN00002", current, "UTDVVN00001")
    result = pki.flow("agency", "foreign_dv_certificate", "passport", payload)["result"]
    dv = parse_cv(unb64(result["der"]))
    assert dv.chr == "UTDVVN00002" and dv.car == ours.chr and dv.role is ChatRole.DV_FOREIGN
    assert verify_chain_at(ours, [dv], pki.world.clock.now().date()).valid
    # the state's CVCA still vouches for an initial request
    _initial_foreign_dv(pki, "UTDVVN00003")
    # a forged successive request: the outer CAR names the DV, another key signed it
    forged = _successive(pki, "UTDVVN00004", _dv_key(pki), "UTDVVN00001")
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport", forged)
    assert detail.startswith("the foreign DV request does not verify") and "outer" in detail


def test_foreign_dv_successive_refused_when_the_certificate_expired(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    current, first = _initial_foreign_dv(pki, "UTDVVN00001", validity_days=10)
    with pki.world.store.transaction() as tx:
        not_after = tx.certificate(first["certificate_id"]).not_after
    pki.world.clock.set(not_after + timedelta(seconds=1))
    pki.world.import_crls()
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVVN00002", current, "UTDVVN00001"))
    assert detail.startswith("the DV certificate UTDVVN00001 that authenticates the request is not valid now")
    assert "must be an initial one, authenticated by the state's CVCA" in detail
    # as an initial request again, on the state's CVCA's word, it is certified (a new sequence
    # number: the refused request, left in the Provider's queue, still asks for UTDVVN00002)
    _initial_foreign_dv(pki, "UTDVVN00003")


def test_foreign_dv_successive_refused_when_the_certificate_is_revoked(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    current, first = _initial_foreign_dv(pki, "UTDVVN00001")
    with pki.world.store.transaction() as tx:
        tx.set_certificate_status(first["certificate_id"], CertificateStatus.ACTIVE, CertificateStatus.REVOKED)
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVVN00002", current, "UTDVVN00001"))
    assert detail.startswith("the DV certificate UTDVVN00001 that authenticates the request is revoked")


def test_foreign_dv_successive_refused_for_another_holder_mnemonic(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    current, _ = _initial_foreign_dv(pki, "UTDVVN00001")
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVXX00002", current, "UTDVVN00001"))
    assert detail.startswith("the request for UTDVXX00002 is authenticated by UTDVVN00001, a DV certificate of "
                             "another holder")
    # another country code with the same mnemonic is another holder too
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "ERDVVN00002", current, "UTDVVN00001"))
    assert "a DV certificate of another holder" in detail


def _erewhon(pki: PkiWorld) -> tuple[int, Signer, str]:
    """A second foreign state with its own passport CVCA, registered."""
    return _another_state(pki, "Erewhon CVCA", "ERE", "ER")


def _another_state(pki: PkiWorld, name: str, country: str, chr_country: str) -> tuple[int, Signer, str]:
    """A foreign state stored with `country`, its passport CVCA (CHR country `chr_country`) registered."""
    r = pki.client.post("/v1/organisations", json={"name": name, "party_type": "foreign_state",
                                                   "country": country}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    state = r.json()["id"]
    label = str(pki.keystore.next_label(chr_country.lower(), "cvca"))
    signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    chr = f"{chr_country}CVCA{int(label[-5:]):05d}"
    today = pki.world.clock.now().date()
    der = build_cvca_certificate(signer, chr=chr, effective_date=today, expiration_date=cv_max_expiration(today, 36),
                                 document_type="passport")
    r = pki.client.post(f"/v1/organisations/{state}/cvca", json={"der": b64(der)}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    return state, signer, chr


def test_foreign_dv_successive_refused_with_a_certificate_of_another_state(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    erewhon, ere_signer, ere_chr = _erewhon(pki)
    ere_dv, _ = _initial_foreign_dv(pki, "ERDVVN00001", state=erewhon, cvca=(ere_signer, ere_chr))
    # brought in as Utopia's: Erewhon's DV certificate does not speak for Utopia, even for its own holder
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "ERDVVN00002", ere_dv, "ERDVVN00001"))
    assert detail == ("outer CAR ERDVVN00001 is a DV certificate we issued to Erewhon CVCA, not to Utopia CVCA; "
                      "a successive request is authenticated by the DV's own certificate")
    # brought in as Erewhon's, it is certified
    result = pki.flow("agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "ERDVVN00003", ere_dv, "ERDVVN00001", state=erewhon))["result"]
    assert result["chr"] == "ERDVVN00003"


def test_foreign_dv_successive_refused_with_a_certificate_of_the_other_document_type(pki_sqlite: PkiWorld) -> None:
    """Utopia's ID-card DV certificate from us does not vouch for a passport DV's key."""
    pki = pki_sqlite
    ours_id = pki.ceremony(kind="cvca", document_type="idcard")
    label = str(pki.keystore.next_label("uto", "cvca"))
    id_signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    id_chr = f"UTCVCI{int(label[-5:]):05d}"
    today = pki.world.clock.now().date()
    id_der = build_cvca_certificate(id_signer, chr=id_chr, effective_date=today,
                                    expiration_date=cv_max_expiration(today, 36), document_type="idcard")
    r = pki.client.post(f"/v1/organisations/{pki.world['foreign'].organisation_id}/cvca",
                        json={"der": b64(id_der), "document_type": "idcard"}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    id_dv = _dv_key(pki)
    inner = build_request(id_dv, chr="UTDVVN00001", car=ours_id["chr"])
    request = build_authenticated_request(inner, id_signer, outer_car=id_chr)
    pki.flow("idcard_agency", "foreign_dv_certificate", "idcard",
             _payload(request, pki.world["foreign"].organisation_id))
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVVN00002", id_dv, "UTDVVN00001"))
    assert detail == "outer CAR UTDVVN00001 is a DV certificate for ID cards, not for passports"


def test_foreign_dv_outer_car_neither_cvca_nor_our_dv_refused(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    # our own domestic DV is not a DV of Utopia's
    domestic = pki.ceremonies["passport_dvca"]["chr"]
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVVN00002", _dv_key(pki), domestic))
    assert detail.startswith(f"outer CAR {domestic} is a DV certificate we issued to ")
    assert detail.endswith("not to Utopia CVCA; a successive request is authenticated by the DV's own certificate")
    # (a new CHR: the refused request above keeps UTDVVN00002 while it waits in the queue)
    detail = _refused(pki, "agency", "foreign_dv_certificate", "passport",
                      _successive(pki, "UTDVVN00003", _dv_key(pki), "UTDVVN00001"))
    assert detail == ("outer CAR UTDVVN00001 is neither a CVCA of Utopia CVCA registered for passports (initial "
                      "request) nor a DV certificate our CVCA issued to it (successive request)")


# --- the requested CHR: the state's own, and new (TR-03110-3 A.7.1, TR-03139) ---------------------


def _new_initial(pki: PkiWorld, chr: str, *, state: int | None = None,
                 cvca: tuple[Signer, str] | None = None) -> dict[str, Any]:
    """An initial request for a new DV key, outer-signed by the state's CVCA (default: Utopia's)."""
    outer_signer, outer_car = cvca or (pki.keystore.signer(pki.uto_cvca_label), pki.uto_cvca_chr)
    inner = build_request(_dv_key(pki), chr=chr, car=_our_cvca(pki).chr)
    request = build_authenticated_request(inner, outer_signer, outer_car=outer_car)
    return _payload(request, state or pki.world["foreign"].organisation_id)


def _certified_dvs(pki: PkiWorld) -> int:
    with pki.world.store.transaction() as tx:
        return len(tx.certificates(role=Role.DVCA))


def _foreign_dv_signature(pki: PkiWorld, request_id: str) -> HsmOperation:
    """The journal row of our CVCA's signature of the request's certificate."""
    with pki.world.store.transaction() as tx:
        [op] = tx.session.scalars(select(HsmOperation).where(HsmOperation.request_id == request_id,
                                                             HsmOperation.purpose == "foreign DV certificate")).all()
        tx.session.expunge(op)
        return op


def test_foreign_dv_request_for_an_already_certified_chr_refused(pki_sqlite: PkiWorld) -> None:
    """A new key asking for a CHR we certified — active, revoked or expired, for this state or
    another — is refused when the Agency submits it: nothing queued, signed or issued."""
    pki = pki_sqlite
    _, first = _initial_foreign_dv(pki, "UTDVVN00001")
    before, counts = _certified_dvs(pki), pki.world.row_counts()
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00001"))
    assert detail.startswith(f"the requested CHR UTDVVN00001 is already held by certificate {first['certificate_id']} "
                             "(dvca, active); a new DV key needs a new sequence number (TR-03110-3 A.7.1, TR-03139)")
    assert _certified_dvs(pki) == before
    after = pki.world.row_counts()
    assert after["hsm_operations"] == counts["hsm_operations"]  # our CVCA signed nothing
    assert after["certificates"] == counts["certificates"]
    # revoked, it still names that key on every inspection system that saw it
    with pki.world.store.transaction() as tx:
        tx.set_certificate_status(first["certificate_id"], CertificateStatus.ACTIVE, CertificateStatus.REVOKED)
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00001"))
    assert f"already held by certificate {first['certificate_id']} (dvca, revoked)" in detail
    # expired too
    _, second = _initial_foreign_dv(pki, "UTDVVN00002", validity_days=10)
    with pki.world.store.transaction() as tx:
        not_after = tx.certificate(second["certificate_id"]).not_after
    pki.world.clock.set(not_after + timedelta(seconds=1))
    pki.world.import_crls()
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00002"))
    assert f"already held by certificate {second['certificate_id']} (dvca, expired)" in detail
    # another state's DV certificate holds it just the same
    erewhon, ere_signer, ere_chr = _erewhon(pki)
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00002", state=erewhon, cvca=(ere_signer, ere_chr)))
    assert f"already held by certificate {second['certificate_id']}" in detail
    assert _certified_dvs(pki) == before + 1


def test_foreign_dv_request_for_a_chr_certified_after_its_submission_refused_by_the_act(pki_sqlite: PkiWorld) -> None:
    """Submitted while the CHR was free; another state's request for it is certified before the
    Provider acts on ours: the act refuses it, before our CVCA signs anything."""
    pki = pki_sqlite
    ours = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00005"))
    assert ours.status_code == 201, ours.text
    ours_id = ours.json()["id"]
    assert pki.world.countersign(ours_id).status_code == 200
    erewhon, ere_signer, ere_chr = _erewhon(pki)  # ERE: not an ISO code, so its CHRs' country is not compared
    theirs = pki.flow("agency", "foreign_dv_certificate", "passport",
                      _new_initial(pki, "UTDVVN00005", state=erewhon, cvca=(ere_signer, ere_chr)))["result"]
    before, counts = _certified_dvs(pki), pki.world.row_counts()
    r = pki.world.act(ours_id)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"the requested CHR UTDVVN00005 is already held by certificate "
                                         f"{theirs['certificate_id']} (dvca, active)")
    assert _certified_dvs(pki) == before
    assert pki.world.row_counts()["hsm_operations"] == counts["hsm_operations"]


def test_foreign_dv_request_for_a_chr_an_earlier_request_asks_for_refused(pki_sqlite: PkiWorld) -> None:
    """A second request of one state for a CHR its earlier request, still pending, asks for is
    refused at submission, naming that request."""
    pki = pki_sqlite
    earlier = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001")).json()["id"]
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00001"))
    assert detail.startswith(f"the requested CHR UTDVVN00001 is already asked for by request {earlier} "
                             "of the same state, submitted earlier and still submitted")
    assert pki.world.countersign(earlier).status_code == 200
    detail = _refused_at_submission(pki, _new_initial(pki, "UTDVVN00001"))
    assert f"already asked for by request {earlier} of the same state, submitted earlier and still countersigned" in detail
    assert "a new DV key needs a new sequence number (TR-03110-3 A.7.1, TR-03139)" in detail


def test_foreign_dv_requests_for_one_chr_submitted_at_once_the_act_certifies_the_earlier(
        pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two submissions in flight at once each pass the submission check in their own
    transaction (made here by switching the check off for the second): the Provider's act
    refuses the later one while the earlier is pending, certifies the earlier, and the later
    stays refused."""
    pki = pki_sqlite
    services = pki.client.app.state.services
    earlier = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001")).json()["id"]
    assert pki.world.countersign(earlier).status_code == 200
    pki.world.clock.advance(minutes=1)
    handler = services.handlers.get("foreign_dv_certificate")
    with monkeypatch.context() as patch:
        patch.setitem(services.handlers._handlers, "foreign_dv_certificate", replace(handler, check_submission=None))
        later = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001"))
    assert later.status_code == 201, later.text
    later_id = later.json()["id"]
    assert pki.world.countersign(later_id).status_code == 200
    before = _certified_dvs(pki)
    r = pki.world.act(later_id)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"the requested CHR UTDVVN00001 is already asked for by request {earlier} "
                                         "of the same state, submitted earlier and still countersigned")
    assert _certified_dvs(pki) == before
    # the later request does not hold the CHR back from the earlier one
    r = pki.world.act(earlier)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["chr"] == "UTDVVN00001"
    r = pki.world.act(later_id)
    assert r.status_code == 422 and "is already held by certificate" in r.json()["detail"]


def test_foreign_dv_request_for_a_chr_of_a_rejected_request_certified(pki_sqlite: PkiWorld) -> None:
    """An earlier request holds its CHR until it is completed or rejected; once it is
    rejected, a new request for that CHR is accepted and certified."""
    pki = pki_sqlite
    stale = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001")).json()["id"]
    assert pki.world.countersign(stale).status_code == 200
    assert f"already asked for by request {stale}" in _refused_at_submission(pki, _new_initial(pki, "UTDVVN00001"))
    assert pki.world.reject(stale, "superseded", party="provider").status_code == 200
    result = pki.flow("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001"))["result"]
    assert result["chr"] == "UTDVVN00001"


@pytest.mark.parametrize("blind", [False, True], ids=["flow-check", "database-index"])
def test_foreign_dv_chr_certified_while_signing_refused(pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch,
                                                        blind: bool) -> None:
    """Another state's request for the same CHR is certified while ours is being signed: our
    act finds the CHR taken in its own transaction, stores nothing and abandons the signature.
    `blind`: every CHR lookup of the flows sees the CHR free (two Provider instances on
    PostgreSQL whose transactions each passed the checks): the unique (CAR, CHR) index refuses
    the second certificate, with the same outcome."""
    from lifecycle_api.auth import Caller
    from lifecycle_api.store import Operator, PartyType, StoreTx
    from lifecycle_api.workflow import act_and_record

    pki = pki_sqlite
    services = pki.client.app.state.services
    erewhon, ere_signer, ere_chr = _erewhon(pki)  # ERE: not an ISO code, so its CHRs' country is not compared
    theirs = pki.submit("agency", "foreign_dv_certificate", "passport",
                        _new_initial(pki, "UTDVVN00001", state=erewhon, cvca=(ere_signer, ere_chr))).json()["id"]
    ours = pki.submit("agency", "foreign_dv_certificate", "passport", _new_initial(pki, "UTDVVN00001")).json()["id"]
    for rid in (theirs, ours):
        assert pki.world.countersign(rid).status_code == 200
    provider = pki.world["provider"].organisation_id
    with pki.world.store.transaction() as tx:
        operator = tx.session.scalars(select(Operator.id).where(Operator.organisation_id == provider)).first()
    caller = Caller(operator_id=operator, operator_name="provider", organisation_id=provider,
                    organisation_name="provider", party_type=PartyType.PROVIDER, ministry=None)
    handler = services.handlers.get("foreign_dv_certificate")

    def prepare_then_theirs_completes(ctx: Any) -> Any:
        prepared = handler.prepare(ctx)
        if ctx.request.id == ours:
            assert act_and_record(services.store, services, caller, theirs).result["chr"] == "UTDVVN00001"
        return prepared

    monkeypatch.setitem(services.handlers._handlers, "foreign_dv_certificate",
                        replace(handler, prepare=prepare_then_theirs_completes))
    if blind:
        monkeypatch.setattr(StoreTx, "certificate_by_chr", lambda self, chr: None)
    before = _certified_dvs(pki)
    r = pki.world.act(ours)
    assert r.status_code == 409, r.text
    if blind:
        assert r.json()["detail"] == "certificate conflicts with an existing record"
    else:
        assert r.json()["detail"].startswith("the requested CHR UTDVVN00001 was certified meanwhile (certificate ")
    assert _certified_dvs(pki) == before + 1  # theirs only
    assert _foreign_dv_signature(pki, ours).state is HsmOperationState.ABANDONED
    with pki.world.store.transaction() as tx:
        assert tx.request(ours).state is RequestState.COUNTERSIGNED


@pytest.mark.parametrize("country", ["DEU", "DE"])
def test_foreign_dv_request_with_another_states_country_code_refused(pki_sqlite: PkiWorld, country: str) -> None:
    """Germany's request (its country stored alpha-3 or alpha-2) naming France's country code is
    refused by name; with its own, it is certified."""
    pki = pki_sqlite
    state, signer, chr = _another_state(pki, "Germany CVCA", country, "DE")
    before = _certified_dvs(pki)
    detail = _refused_at_submission(pki, _new_initial(pki, "FRDVXX00001", state=state, cvca=(signer, chr)))
    stored = " (DEU)" if country == "DEU" else ""
    assert detail == (f"the requested CHR FRDVXX00001 has the country code FR, but Germany CVCA's country is DE{stored}: "
                      "a DV's CHR starts with its own state's ISO 3166-1 alpha-2 code (TR-03110-3 A.7.1)")
    assert _certified_dvs(pki) == before
    result = pki.flow("agency", "foreign_dv_certificate", "passport",
                      _new_initial(pki, "DEDVXX00001", state=state, cvca=(signer, chr)))["result"]
    assert result["chr"] == "DEDVXX00001"


def test_foreign_cvca_with_another_states_country_code_refused(pki_sqlite: PkiWorld) -> None:
    """A CVCA registered for Germany must carry DE: one naming France is refused by name and
    nothing is stored; Germany's own is registered."""
    pki = pki_sqlite
    r = pki.client.post("/v1/organisations", json={"name": "Germany", "party_type": "foreign_state",
                                                   "country": "DEU"}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    state = r.json()["id"]
    today = pki.world.clock.now().date()
    signer = pki.keystore.generate_key(str(pki.keystore.next_label("de", "cvca")), "brainpoolP256r1")

    def cvca(chr: str) -> bytes:
        return build_cvca_certificate(signer, chr=chr, effective_date=today,
                                      expiration_date=cv_max_expiration(today, 36), document_type="passport")

    with pki.world.store.transaction() as tx:
        before = len(tx.session.scalars(select(Certificate).where(Certificate.role == Role.CVCA)).all())
    r = pki.client.post(f"/v1/organisations/{state}/cvca", json={"der": b64(cvca("FRCVCA00001"))},
                        headers=pki.headers("provider"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == ("the CVCA's CHR FRCVCA00001 has the country code FR, but Germany's country is DE "
                                  "(DEU): a CVCA's CHR starts with its own state's ISO 3166-1 alpha-2 code "
                                  "(TR-03110-3 A.7.1)")
    with pki.world.store.transaction() as tx:
        assert len(tx.session.scalars(select(Certificate).where(Certificate.role == Role.CVCA)).all()) == before
    r = pki.client.post(f"/v1/organisations/{state}/cvca", json={"der": b64(cvca("DECVCA00001"))},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text


def test_foreign_dv_request_chr_not_a_holder_reference_refused(pki_sqlite: PkiWorld) -> None:
    """A CHR whose first two characters are no country code (lower case here) is refused by
    name before anything else looks at it."""
    pki = pki_sqlite
    payload = _new_initial(pki, "UTDVVN00001")
    payload["cv_request"] = b64(unb64(payload["cv_request"]).replace(b"UTDVVN00001", b"utDVVN00001"))
    detail = _refused_at_submission(pki, payload)
    assert detail.startswith("the requested CHR 'utDVVN00001' is not a holder reference (TR-03110-3 A.7.1")


def test_foreign_dv_result_and_journal_say_whether_successive(pki_sqlite: PkiWorld) -> None:
    """As for our requests abroad: the result and the journal of our CVCA's signature name the
    outer CAR (`authenticated_by` / `outer_car`) and `successive`."""
    pki = pki_sqlite
    current, _ = _initial_foreign_dv(pki, "UTDVVN00001")
    with pki.world.store.transaction() as tx:
        first_id = tx.certificate_by_chr("UTDVVN00001").request_id
    initial = pki.world.client.get(f"/v1/requests/{first_id}", headers=pki.headers("provider")).json()
    assert initial["result"]["successive"] is False and initial["result"]["authenticated_by"] == pki.uto_cvca_chr
    assert _foreign_dv_signature(pki, first_id).details == {"outer_car": pki.uto_cvca_chr, "successive": False}
    _later(pki, 30)
    successive = pki.flow("agency", "foreign_dv_certificate", "passport",
                          _successive(pki, "UTDVVN00002", current, "UTDVVN00001"))
    assert successive["result"]["successive"] is True and successive["result"]["authenticated_by"] == "UTDVVN00001"
    assert _foreign_dv_signature(pki, successive["id"]).details == {"outer_car": "UTDVVN00001", "successive": True}


# --- the trust point of a certificate for our DV abroad ------------------------------------------


def test_import_picks_the_root_that_the_car_leads_to(pki_sqlite: PkiWorld) -> None:
    """Utopia re-keyed without a link certificate: two self-signed passport roots registered.
    Our request goes to the newest; its certificate verifies against that root, not the first."""
    pki = pki_sqlite
    label = str(pki.keystore.next_label("uto", "cvca"))
    signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    today = pki.world.clock.now().date()
    root2 = build_cvca_certificate(signer, chr=f"UTCVCB{int(label[-5:]):05d}", effective_date=today,
                                   expiration_date=cv_max_expiration(today, 36), document_type="passport")
    r = pki.client.post(f"/v1/organisations/{pki.world['foreign'].organisation_id}/cvca",
                        json={"der": b64(root2)}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    done = _abroad(pki)
    assert done["result"]["car"] == parse_cv(root2).chr
    der = build_dv_certificate(signer, parse_cv(root2), unb64(done["result"]["cv_request"]), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="passport")
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": done["id"], "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    assert r.json()["chr"] == done["result"]["chr"] and r.json()["issuer"] == parse_cv(root2).chr
    # and the next request is successive, authenticated by that certificate
    assert _abroad(pki)["result"]["authenticated_by"] == done["result"]["chr"]


def test_import_signed_by_the_other_root_refused(pki_sqlite: PkiWorld) -> None:
    """The CAR names the second root, the signature is the first root's: refused."""
    pki = pki_sqlite
    label = str(pki.keystore.next_label("uto", "cvca"))
    signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    today = pki.world.clock.now().date()
    root2 = parse_cv(build_cvca_certificate(signer, chr=f"UTCVCB{int(label[-5:]):05d}", effective_date=today,
                                            expiration_date=cv_max_expiration(today, 36), document_type="passport"))
    r = pki.client.post(f"/v1/organisations/{pki.world['foreign'].organisation_id}/cvca",
                        json={"der": b64(root2.encoded)}, headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    done = _abroad(pki)
    uto_signer, _ = _uto(pki)
    # a certificate naming root2 as CAR but signed by the first root's key
    impostor = parse_cv(build_cvca_certificate(uto_signer, chr=root2.chr, effective_date=today,
                                               expiration_date=root2.expiration_date, document_type="passport"))
    der = build_dv_certificate(uto_signer, impostor, unb64(done["result"]["cv_request"]), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="passport")
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": done["id"], "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"the certificate does not verify against {root2.chr}")


# --- interop: tools nobody here wrote ---------------------------------------------------------------


def _openssl_verifies_outer(request: AuthenticatedRequest, dv_der: bytes, trust: CvCertificate, tmp: Path) -> bool:
    """OpenSSL checks the outer ECDSA signature (plain r||s, TR-03111) over TLV(7F21) || TLV(42)
    with the public key of the DV certificate named by the outer CAR."""
    dv = parse_cv(dv_der)
    key = dv.public_key.public_key(trust.public_key.curve)
    assert isinstance(key, EcPublicKey) and dv.public_key.algorithm.label.endswith("SHA-256")
    spki = ec.EllipticCurvePublicKey.from_encoded_point(key.curve.cryptography_curve(), key.point)
    (tmp / "dv.pem").write_bytes(spki.public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp / "signed.bin").write_bytes(request.outer_signed_data)
    (tmp / "outer.sig").write_bytes(plain_to_der(request.outer_signature))
    proc = run("openssl", "dgst", "-sha256", "-verify", "dv.pem", "-signature", "outer.sig", "signed.bin", cwd=tmp)
    return proc.returncode == 0 and "Verified OK" in proc.stdout


def _cvc_print(args: list[str | Path], tmp: Path) -> str:
    proc = run("cvc-print", *args, cwd=tmp)
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.openpace
@pytest.mark.openssl
def test_successive_requests_checked_by_openssl_and_cvc_print(pki_sqlite: PkiWorld, tmp_path: Path) -> None:
    """This OpenPACE's cvc-print cannot parse an authenticated request (67) at all, so OpenSSL
    checks the outer signatures, and cvc-print the inner request and the certificate issued."""
    require_openpace()
    pki = pki_sqlite
    pki.world.clock.set(SystemClock().now())  # cvc-print checks validity against the real date
    pki.world.import_crls()
    ours, (_, uto) = _our_cvca(pki), _uto(pki)
    # a foreign DV's successive request, certified by our CVCA
    current, _ = _initial_foreign_dv(pki, "UTDVVN77001")
    payload = _successive(pki, "UTDVVN77002", current, "UTDVVN77001")
    request = parse_request(unb64(payload["cv_request"]))
    assert isinstance(request, AuthenticatedRequest)
    result = pki.flow("agency", "foreign_dv_certificate", "passport", payload)["result"]
    with pki.world.store.transaction() as tx:
        first_der = tx.certificate_by_chr("UTDVVN77001").der
    assert _openssl_verifies_outer(request, first_der, ours, tmp_path)
    (tmp_path / "inner.cvreq").write_bytes(request.request.encoded)
    assert _cvc_print(["--csr", "inner.cvreq"], tmp_path) == "certificate request verified"
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / ours.chr).write_bytes(ours.encoded)  # issuers are found by files named after their CHR
    (tmp_path / "renewed.cvcert").write_bytes(unb64(result["der"]))
    assert _cvc_print(["--cvc", "renewed.cvcert", "--cvc-dir", trust], tmp_path) == "certificate verified"
    # our DV abroad: the renewal's outer signature verifies under the certificate Utopia issued
    first = _abroad(pki)
    dv_der = _utopia_certifies(pki, first)
    renewal = parse_request(unb64(_abroad(pki)["result"]["cv_request"]))
    assert isinstance(renewal, AuthenticatedRequest) and renewal.outer_car == first["result"]["chr"]
    assert _openssl_verifies_outer(renewal, dv_der, uto, tmp_path)
    # and OpenSSL can say no: the same signature checked against the other DV's key
    assert not _openssl_verifies_outer(renewal, first_der, ours, tmp_path)
