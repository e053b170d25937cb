"""CSCA rollover through issue 6's ceremonies: the schedule proposes (never approves) and records the notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from icao_pki.policy import DocumentType, Role
from lifecycle_api.store import Crl, CrlScope, Key, KeyState, OperatorKind
from schedules import decisions
from schedules.actors import CeremonyProposer
from tests.flows.pki import PkiWorld

pytestmark = pytest.mark.hsm


def test_csca_rollover_is_proposed_once_and_ends_when_approved(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    services = world.client.app.state.services
    with world.store.transaction() as tx:
        csca = tx.session.scalars(select(Key).where(Key.role == Role.CSCA, Key.document_type == DocumentType.PASSPORT,
                                                    Key.state == KeyState.ACTIVE)).one()
        end = csca.usage_not_after
        provider = world["provider"].organisation_id
        account = tx.add_operator(organisation_id=provider, name="scheduler", kind=OperatorKind.SERVICE_ACCOUNT,
                                  token_id="sched-token-id", credential_hash="unused", now=world.clock.now()).id
    assert end is not None
    assert decisions.due_ca_rollovers(world.store, world.clock, Role.CSCA) == []
    world.clock.set(end - timedelta(days=100))
    dues = decisions.due_ca_rollovers(world.store, world.clock, Role.CSCA)
    assert {d.document_type for d in dues} == {DocumentType.PASSPORT, DocumentType.IDCARD}  # same ceremony day
    proposer = CeremonyProposer(services, account)
    first = dict((d.document_type, ref) for d, ref in decisions.run_ca_rollovers(world.store, world.clock, Role.CSCA,
                                                                                  proposer))
    again = dict((d.document_type, ref) for d, ref in decisions.run_ca_rollovers(world.store, world.clock, Role.CSCA,
                                                                                  proposer))
    assert first == again and first[DocumentType.PASSPORT].startswith("ceremony:")  # proposed once
    notices = [n for n in pki.client.get("/v1/notifications", headers=pki.headers("agency")).json()
               if n["event"] == "csca.rollover_notice"]
    assert len(notices) == 2  # one per CSCA, not one per run
    # a Provider officer (not the scheduler) approves: new key + link certificate
    request_id = first[DocumentType.PASSPORT].split(":", 1)[1]
    r = pki.client.post(f"/v1/ceremonies/{request_id}/approve", headers=pki.officer2)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "completed"
    remaining = decisions.due_ca_rollovers(world.store, world.clock, Role.CSCA)
    assert [d.document_type for d in remaining] == [DocumentType.IDCARD]


def test_domestic_dv_renewal_is_a_dvca_ceremony_proposed_once(pki_sqlite: PkiWorld) -> None:
    from lifecycle_api.store import Certificate
    from schedules.actors import FlowRenewals

    pki, world = pki_sqlite, pki_sqlite.world
    services = world.client.app.state.services
    with world.store.transaction() as tx:
        dv = tx.session.scalars(select(Certificate).where(Certificate.role == Role.DVCA,
                                                          Certificate.document_type == DocumentType.PASSPORT)).one()
        not_after = dv.not_after
        account = tx.add_operator(organisation_id=world["provider"].organisation_id, name="scheduler",
                                  kind=OperatorKind.SERVICE_ACCOUNT, token_id="sched-2", credential_hash="unused",
                                  now=world.clock.now()).id
    world.clock.set(not_after - timedelta(days=10))
    renewals = FlowRenewals(services, account)
    [(due, first)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, renewals)
    [(_, again)] = decisions.run_renewals(world.store, world.clock, Role.DVCA, renewals)
    assert first == again and first.startswith("ceremony:")
    r = pki.client.post(f"/v1/ceremonies/{first.split(':', 1)[1]}/approve", headers=pki.officer2)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    assert decisions.due_renewals(world.store, world.clock, Role.DVCA) == []  # the new DV is the same holder
    assert due.certificate_id == dv.id


def test_production_context_runs_every_job_once(pki_sqlite: PkiWorld) -> None:
    from schedules.jobs import JOBS, run_all
    from schedules.runtime import job_context

    world = pki_sqlite.world
    services = world.client.app.state.services
    with world.store.transaction() as tx:
        provider_op = tx.add_operator(organisation_id=world["provider"].organisation_id, name="scheduler",
                                      kind=OperatorKind.SERVICE_ACCOUNT, token_id="sched-3", credential_hash="unused",
                                      now=world.clock.now()).id
    ctx = job_context(services, pki_sqlite.keystore, provider_operator_id=provider_op)
    results = run_all(ctx)
    assert set(results) == set(JOBS)
    assert results["crl-publication"] == []  # the ceremonies issued each CSCA's first CRL just now
    world.clock.advance(days=1)
    assert len(run_all(ctx)["crl-publication"]) == 2  # daily: one new CRL per CSCA
    assert run_all(ctx)["crl-publication"] == []  # idempotent within the day
    with world.store.transaction() as tx:
        numbers = sorted(tx.session.scalars(select(Crl.crl_number).where(Crl.scope == CrlScope.CSCA)).all())
    assert numbers == [1, 1, 2, 2]


def test_scheduled_csca_rollover_keeps_the_old_key_through_the_notice_then_publishes_a_master_list(
        pki_sqlite: PkiWorld) -> None:
    """Approved the day after it was proposed, the new CSCA still signs nothing before the
    90-day notice is over; its certificate and link certificate are in a new Master List at once."""
    from icao_pki.masterlist import parse_master_list
    from icao_pki.policy import CertificateFormat
    from lifecycle_api.store import AuditEntry, Certificate

    pki, world = pki_sqlite, pki_sqlite.world
    services = world.client.app.state.services
    with world.store.transaction() as tx:
        old = tx.active_ca(Role.CSCA, DocumentType.PASSPORT, world.clock.now(),
                           certificate_format=CertificateFormat.X509)
        assert old is not None
        old_key_id, end = old[1].id, old[1].usage_not_after
        account = tx.add_operator(organisation_id=world["provider"].organisation_id, name="scheduler",
                                  kind=OperatorKind.SERVICE_ACCOUNT, token_id="sched-token-2",
                                  credential_hash="unused", now=world.clock.now()).id
    assert end is not None
    world.clock.set(end - timedelta(days=110))
    proposed_at = world.clock.now()
    refs = {d.document_type: ref for d, ref in decisions.run_ca_rollovers(
        world.store, world.clock, Role.CSCA, CeremonyProposer(services, account))}
    world.clock.advance(days=1)
    r = pki.client.post(f"/v1/ceremonies/{refs[DocumentType.PASSPORT].split(':', 1)[1]}/approve",
                        headers=pki.officer2)
    assert r.status_code == 200, r.text
    new_key_id = r.json()["result"]["key_id"]
    effective = proposed_at + decisions.CSCA_ADVANCE_NOTICE
    with world.store.transaction() as tx:
        new_key = tx.session.get(Key, new_key_id)
        assert new_key.usage_not_before == effective
        assert new_key.usage_not_after is not None and new_key.usage_not_after > end

        def signing_csca_key(at) -> int:  # type: ignore[no-untyped-def]
            found = tx.active_ca(Role.CSCA, DocumentType.PASSPORT, at, certificate_format=CertificateFormat.X509)
            assert found is not None
            return found[1].id

        assert signing_csca_key(world.clock.now()) == old_key_id
        assert signing_csca_key(effective - timedelta(seconds=1)) == old_key_id
        assert signing_csca_key(effective + timedelta(seconds=1)) == new_key_id
        new_csca, link = (tx.session.scalars(select(Certificate).where(
            Certificate.role == Role.CSCA, Certificate.document_type == DocumentType.PASSPORT,
            Certificate.request_id == r.json()["id"]).order_by(Certificate.id)).all())
        audit = [a.action for a in tx.session.scalars(select(AuditEntry).where(
            AuditEntry.entity_id == r.json()["id"])).all()]
    assert "ceremony.master_list_published" in audit
    ml = parse_master_list(pki.client.get("/v1/pub/master-list").content)
    assert {new_csca.der, link.der} <= set(ml.entries)


def test_csca_key_usage_from_is_checked_when_proposed(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    for body in ({"kind": "cvca", "document_type": "passport", "key_usage_from": "2030-01-01T00:00:00Z"},
                 {"kind": "csca", "document_type": "passport", "key_usage_from": "2030-01-01T00:00:00"},
                 {"kind": "csca", "document_type": "passport", "key_usage_from": "2999-01-01T00:00:00Z"}):
        r = pki.client.post("/v1/ceremonies", json=body, headers=pki.headers("provider"))
        assert r.status_code in (400, 422), (body, r.status_code, r.text)
