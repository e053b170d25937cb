"""Outbox delivery: at-least-once, retries with backoff, signed payloads, dead letters."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx

from lifecycle_api.notifications import (
    MESSAGE_ID_HEADER,
    SIGNATURE_HEADER,
    PayloadSigner,
    backoff,
    deliver_due,
)
from lifecycle_api.signed_documents import OrgPkiTrust, verify_signed_document
from lifecycle_api.store import CrlScope, PartyType
from tests.api.world import World


def _receiver_org(world: World, url: str = "https://agency.example/hooks/icao-pki") -> int:
    with world.store.transaction() as tx:
        org = tx.add_organisation(name="Webhook receiver", party_type=PartyType.AGENCY, country="VN",
                                  ministry="Bộ Ngoại giao", document_types=["passport"], webhook_url=url,
                                  now=world.clock.now())
        for i in range(2):
            tx.enqueue_notification(organisation_id=org.id, event=f"test.{i}", payload={"n": i}, now=world.clock.now())
        return org.id


def _provider_signer(world: World) -> PayloadSigner:
    ident = world["provider"].identity
    return PayloadSigner(ident.signer, ident.certificate.der)


def test_notifications_delivered_signed_and_retried(sqlite_world: World) -> None:
    world = sqlite_world
    org_id = _receiver_org(world)
    seen: list[httpx.Request] = []
    fail_first = {"test.0"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        event = json.loads(request.content)["event"]
        if event in fail_first:
            fail_first.discard(event)
            return httpx.Response(503)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    first = deliver_due(world.store, client, clock=world.clock, payload_signer=_provider_signer(world),
                        first_retry=timedelta(seconds=30))
    assert len(first.delivered) == 1 and len(first.retrying) == 1 and first.dead == []

    # the signature header is a detached CMS over exactly the body, by the Provider's registered certificate
    request = seen[-1]
    trust = OrgPkiTrust(roots=(world.org_pki.pki.root.der,), intermediates=(world.org_pki.pki.sub_ca.der,))
    with world.store.transaction() as tx:
        verified = verify_signed_document(
            base64.b64decode(request.headers[SIGNATURE_HEADER]),
            expected_organisation_id=world["provider"].organisation_id,
            now=world.clock.now(),
            trust=trust,
            crls=lambda fp: (row.der if (row := tx.latest_crl(fp, CrlScope.ORG_PKI)) else None),
            registered=lambda fp: (r.organisation_id if (r := tx.organisation_certificate_by_fingerprint(fp)) else None),
            detached_content=request.content,
        )
    assert verified.content == request.content
    assert json.loads(request.content)["organisation_id"] == org_id
    assert request.headers[MESSAGE_ID_HEADER]

    # not due again before the backoff
    assert deliver_due(world.store, client, clock=world.clock, payload_signer=_provider_signer(world)).delivered == []
    world.clock.advance(seconds=31)
    again = deliver_due(world.store, client, clock=world.clock, payload_signer=_provider_signer(world))
    assert again.delivered == first.retrying
    with world.store.transaction() as tx:
        states = {(m.event, m.state.value, m.attempts) for m in tx.notifications(org_id)}
    assert states == {("test.0", "delivered", 2), ("test.1", "delivered", 1)}


def test_notifications_dead_after_max_attempts(sqlite_world: World) -> None:
    world = sqlite_world
    org_id = _receiver_org(world)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    dead: list[int] = []
    for _ in range(5):
        report = deliver_due(world.store, client, clock=world.clock, payload_signer=_provider_signer(world),
                             max_attempts=3, first_retry=timedelta(seconds=10))
        dead += report.dead
        world.clock.advance(minutes=10)
    assert len(dead) == 2
    with world.store.transaction() as tx:
        rows = tx.notifications(org_id)
        assert {m.state.value for m in rows} == {"dead"}
        assert all(m.attempts == 3 and "ConnectError" in (m.last_error or "") for m in rows)


def test_notifications_without_webhook_stay_for_polling(sqlite_world: World) -> None:
    world = sqlite_world
    rid = world.submit().json()["id"]
    calls: list[httpx.Request] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(200)))
    report = deliver_due(world.store, client, clock=world.clock, payload_signer=_provider_signer(world))
    assert calls == [] and report.delivered == []
    notes = world.client.get("/v1/notifications", headers=world["coyeu"].headers).json()
    assert [(n["event"], n["request_id"], n["state"]) for n in notes] == [
        ("request.awaiting_countersignature", rid, "pending")
    ]


def test_notifications_backoff_doubles_and_caps() -> None:
    first = timedelta(seconds=30)
    assert [backoff(first, n) for n in (1, 2, 3)] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert backoff(first, 40) == timedelta(hours=6)
