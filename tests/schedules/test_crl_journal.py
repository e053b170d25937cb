"""Periodic CRLs go through the sign component: journalled before the HSM, verified, committed with the CRL."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from icao_pki.crl import verify_crl
from lifecycle_api.authority import Authority
from lifecycle_api.signing.crl import HsmCrlIssuer
from lifecycle_api.store import AuditEntry, Crl, CrlScope, HsmOperation, HsmOperationState, PublishedObject
from schedules import decisions
from tests.flows.pki import PkiWorld

pytestmark = pytest.mark.hsm


def _issuer(pki: PkiWorld) -> HsmCrlIssuer:
    services = pki.world.client.app.state.services
    return HsmCrlIssuer(Authority(services.store, pki.keystore, services.clock, services.settings.policy))


def test_periodic_crl_is_journalled_verified_and_committed(pki_sqlite: PkiWorld) -> None:
    world = pki_sqlite.world
    world.clock.advance(days=1)
    dues = decisions.due_crls(world.store, world.clock)
    assert len(dues) == 2
    issuer = _issuer(pki_sqlite)
    crl_id = issuer.issue_crl(dues[0], world.clock.now())
    with world.store.transaction() as tx:
        crl = tx.session.get(Crl, crl_id)
        assert crl is not None and crl.crl_number == 2
        csca = tx.certificate(dues[0].csca_certificate_id).der
        [op] = tx.session.scalars(select(HsmOperation).where(HsmOperation.purpose == "CRL (periodic)")).all()
        published = tx.session.scalars(select(PublishedObject).where(PublishedObject.crl_id == crl_id)).one()
        der = crl.der
    verify_crl(der, csca)
    assert op.state is HsmOperationState.COMMITTED
    assert op.output_sha256 == hashlib.sha256(der).hexdigest()  # the verified product is what was stored
    assert op.input_sha256 is not None  # committed before the HSM signed
    assert published.der == der


def test_a_crl_that_cannot_be_stored_is_abandoned_not_published(pki_sqlite: PkiWorld,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle_api.store.database import StoreTx

    world = pki_sqlite.world
    world.clock.advance(days=1)
    due = decisions.due_crls(world.store, world.clock)[0]
    issuer = _issuer(pki_sqlite)
    with world.store.transaction() as tx:
        before = len(tx.session.scalars(select(Crl).where(Crl.scope == CrlScope.CSCA)).all())

    def failing_add_crl(self: StoreTx, **fields: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(StoreTx, "add_crl", failing_add_crl)
    with pytest.raises(RuntimeError, match="disk full"):
        issuer.issue_crl(due, world.clock.now())
    monkeypatch.undo()
    with world.store.transaction() as tx:
        after = len(tx.session.scalars(select(Crl).where(Crl.scope == CrlScope.CSCA)).all())
        [op] = tx.session.scalars(select(HsmOperation).where(HsmOperation.purpose == "CRL (periodic)")).all()
        audit = tx.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "hsm_operation",
                                                                   AuditEntry.entity_id == str(op.id))).all()
    assert after == before  # nothing stored nor published
    assert op.state is HsmOperationState.ABANDONED  # the signature is accounted for, never handed out
    assert audit == ["hsm.signature_abandoned"]
    issuer.issue_crl(due, world.clock.now())  # the next run issues it
