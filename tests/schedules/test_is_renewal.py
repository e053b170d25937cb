"""IS renewal without a human when the service's HSM holds the IS operator's current IS key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cvc.builders import build_request
from cvc.certificate import AuthenticatedRequest, parse_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import verify_chain_at
from icao_pki.policy import DocumentType, Role
from lifecycle_api.store import Certificate, HsmOperation, HsmOperationState, Key, KeyState
from schedules import decisions
from tests.flows.pki import PkiWorld, b64, unb64
from tests.schedules.support import hsm_is_renewals

pytestmark = pytest.mark.hsm


def _issue_is_due(pki: PkiWorld, *, in_hsm: bool, seq: int) -> tuple[int, str, str]:
    """`_issue_is`, then the clock set to 5 days before that certificate expires (renewal due)."""
    world = pki.world
    issued = _issue_is(pki, in_hsm=in_hsm, seq=seq)
    with world.store.transaction() as tx:
        not_after = tx.certificate(issued[0]).not_after
    world.clock.set(not_after - timedelta(days=5))
    world.import_crls()  # the organisations' CRLs of that day (signed documents are checked against them)
    return issued


def _issue_is(pki: PkiWorld, *, in_hsm: bool, seq: int) -> tuple[int, str, str]:
    """An IS certificate for the IS operator; its key recorded as held here when `in_hsm`."""
    world = pki.world
    dv_chr = pki.ceremonies["passport_dvca"]["chr"]
    with world.store.transaction() as tx:
        dv = tx.certificate_by_chr(dv_chr)
        assert dv is not None
        curve = parse_cv(tx.certificate(pki.ceremonies["passport_cvca"]["certificate_id"]).der).public_key.curve
    label = str(pki.keystore.next_label("passport", "is"))
    signer = pki.keystore.generate_key(label, curve.name)
    chr = f"VNISNB{seq:05d}"
    result = pki.flow("is_operator", "is_certificate", "passport",
                      {"cv_request": b64(build_request(signer, chr=chr, car=dv_chr))})["result"]
    if in_hsm:
        with world.store.transaction() as tx:
            tx.add_key(hsm_label=label, role=Role.IS, document_type=DocumentType.PASSPORT, algorithm=curve.name,
                       now=world.clock.now(), organisation_id=world["is_operator"].organisation_id)
    return int(result["certificate_id"]), chr, label


def test_is_renewal_is_requested_authenticated_by_the_current_key_and_completes(
        pki_sqlite: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle_api.signing import is_renewal
    from lifecycle_api.workflow import after_countersigned

    handed: list[str] = []

    def spy(services: object, request_id: str) -> object:
        handed.append(request_id)
        return after_countersigned(services, request_id)  # type: ignore[arg-type]

    monkeypatch.setattr(is_renewal, "after_countersigned", spy)
    pki, world = pki_sqlite, pki_sqlite.world
    cert_id, chr, label = _issue_is_due(pki, in_hsm=True, seq=1)
    renewals = hsm_is_renewals(pki)
    [(due, reference)] = decisions.run_renewals(world.store, world.clock, Role.IS, renewals)
    assert due.certificate_id == cert_id and reference.startswith("request:")
    assert decisions.run_renewals(world.store, world.clock, Role.IS, renewals)[0][1] == reference  # once
    request_id = reference.split(":", 1)[1]
    assert handed == [request_id]  # offered to the Provider's automatic act (a no-op without that policy)
    body = world.client.get(f"/v1/requests/{request_id}", headers=world["coyeu"].headers).json()
    request = parse_request(unb64(body["payload"]["cv_request"]))
    assert isinstance(request, AuthenticatedRequest)
    assert request.outer_car == chr and request.chr == "VNISNB00002"  # outer: the current key; inner: the next CHR
    with world.store.transaction() as tx:
        new_key = tx.session.scalars(select(Key).where(Key.role == Role.IS, Key.hsm_label != label)).one()
        ops = tx.session.scalars(select(HsmOperation).where(HsmOperation.purpose.like("IS%renew%"))).all()
    assert new_key.state is KeyState.GENERATED and new_key.organisation_id == world["is_operator"].organisation_id
    assert len(ops) == 3 and {o.state for o in ops} == {HsmOperationState.COMMITTED}  # key, inner, outer
    # Cơ yếu countersigns and the Provider acts, as for any request (here by hand: no auto policy)
    assert world.countersign(request_id).status_code == 200
    r = world.act(request_id)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    new_der = unb64(r.json()["result"]["der"])
    with world.store.transaction() as tx:
        cvca = parse_cv(tx.certificate(pki.ceremonies["passport_cvca"]["certificate_id"]).der)
        dv = parse_cv(tx.certificate(pki.ceremonies["passport_dvca"]["certificate_id"]).der)
        renewed = tx.session.scalars(select(Certificate).where(Certificate.chr == "VNISNB00002")).one()
    assert renewed.organisation_id == world["is_operator"].organisation_id
    assert verify_chain_at(cvca, [dv, parse_cv(new_der)], world.clock.now().date()).valid
    assert decisions.due_renewals(world.store, world.clock, Role.IS) == []  # renewed: nothing due any more
    # the renewed key is the one the next renewal will authenticate with
    world.clock.set(renewed.not_after - timedelta(days=5))
    world.import_crls()
    [(_, again)] = decisions.run_renewals(world.store, world.clock, Role.IS, renewals)
    assert again.startswith("request:") and again != reference


def test_is_key_not_held_here_is_only_noticed(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    cert_id, _, _ = _issue_is_due(pki, in_hsm=False, seq=7)
    [(due, reference)] = decisions.run_renewals(world.store, world.clock, Role.IS, hsm_is_renewals(pki))
    assert due.certificate_id == cert_id and reference == "noticed"
    with world.store.transaction() as tx:
        assert tx.session.scalars(select(Key).where(Key.role == Role.IS)).all() == []  # no key generated
