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

from datetime import timedelta
from typing import Any

import pytest

from cvc.builders import build_dv_certificate
from cvc.certificate import AuthenticatedRequest, CvCertificate, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.errors import CvcError
from cvc.validation import trust_point
from icao_pki.policy import DocumentType, Role
from icao_pki.signer import Signer
from lifecycle_api.store import KeyState, OperatorKind
from schedules import decisions
from schedules.actors import FlowRenewals
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
    result = _abroad(pki)["result"]
    assert result["successive"] is False and result["authenticated_by"] == ours.chr


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
