"""The party client drives the whole workflow without hand-built CMS."""

from __future__ import annotations

import pytest

from lifecycle_api.client import ApiRefusal, PartyClient
from tests.api.world import World


def _client(world: World, key: str) -> PartyClient:
    party = world[key]
    return PartyClient(http=world.client, token=party.token, organisation_id=party.organisation_id,
                       clock=world.clock, signer=party.identity.signer,
                       certificate_der=party.identity.certificate.der)


def test_client_full_flow(sqlite_world: World) -> None:
    agency, coyeu, provider = (_client(sqlite_world, k) for k in ("agency", "coyeu", "provider"))
    submitted = agency.submit("echo", {"months": 2}, document_type="passport")
    assert [r["id"] for r in coyeu.queue()] == [submitted["id"]]
    assert coyeu.countersign(submitted["id"])["state"] == "countersigned"
    assert [r["id"] for r in provider.queue()] == [submitted["id"]]
    done = provider.act(submitted["id"])
    assert done["state"] == "completed" and done["result"]["echo"] == {"months": 2}
    assert agency.request(submitted["id"])["result"] == done["result"]
    assert {n["event"] for n in agency.notifications()} >= {"request.countersigned", "request.completed"}
    assert provider.audit_verify()["ok"] is True


def test_client_reject_and_refusals(sqlite_world: World) -> None:
    agency, coyeu = _client(sqlite_world, "agency"), _client(sqlite_world, "coyeu")
    rid = agency.submit("echo", {}, document_type="passport")["id"]
    assert coyeu.reject(rid, "Thiếu chữ ký")["rejection_reason"] == "Thiếu chữ ký"
    with pytest.raises(ApiRefusal) as info:
        agency.submit("echo", {"months": 5}, document_type="passport")
    assert info.value.status == 422 and info.value.problem["article"] == "Art. 23.1b"
    assert "Art. 23.1b" in str(info.value)
    with pytest.raises(ApiRefusal) as info:
        agency.queue()
    assert info.value.status == 403
