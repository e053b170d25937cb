"""A Cơ yếu unit whose policy is automatic countersigning, with its key held by the service's HSM."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from fixtures.orgpki import RevokedEntry
from lifecycle_api.client import PartyClient
from tests.api.orgpki_support import OrgIdentity
from tests.api.world import World
from tests.support.softsigner import SoftwareSigner

MFA = "Bộ Ngoại giao"


class DictKeyring:
    """Stands in for the HSM key store: label -> Signer."""

    def __init__(self, signers: dict) -> None:
        self.signers = signers

    def signer(self, label: str):
        if label not in self.signers:
            raise LookupError(f"no key labelled {label}")
        return self.signers[label]


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode()


def _setup_mfa(world: World, keyring, coyeu_identity: OrgIdentity, label: str) -> tuple[PartyClient, int]:
    """A ministry whose Cơ yếu unit auto-countersigns with a centrally held key; returns the agency's client."""
    provider = world["provider"].headers
    world.client.app.state.services.keyring = keyring
    unit = world.client.post("/v1/organisations", json={"name": "Cục Cơ yếu Bộ Ngoại giao", "party_type": "coyeu",
                                                        "country": "VN", "ministry": MFA, "auto_countersign": True},
                             headers=provider).json()
    r = world.client.post(f"/v1/organisations/{unit['id']}/certificates",
                          json={"der": _b64(coyeu_identity.certificate.der), "hsm_label": label}, headers=provider)
    assert r.status_code == 201, r.text
    assert r.json()["hsm_label"] == label
    agency = world.client.post("/v1/organisations", json={"name": "Cục Lãnh sự", "party_type": "agency",
                                                          "country": "VN", "ministry": MFA,
                                                          "document_types": ["passport"]}, headers=provider).json()
    ident = world.org_pki.identity("Cục Lãnh sự", "MNS:L0001")
    r = world.client.post(f"/v1/organisations/{agency['id']}/certificates", json={"der": _b64(ident.certificate.der)},
                          headers=provider)
    assert r.status_code == 201, r.text
    token = world.client.post(f"/v1/organisations/{agency['id']}/operators", json={"name": "lanh-su"},
                              headers=provider).json()["token"]
    client = PartyClient(http=world.client, token=token, organisation_id=agency["id"], clock=world.clock,
                         signer=ident.signer, certificate_der=ident.certificate.der)
    return client, unit["id"]


def test_auto_countersign_on_submission(world: World) -> None:
    coyeu = world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    client, unit_id = _setup_mfa(world, DictKeyring({"org-coyeu-00042": coyeu.signer}), coyeu, "org-coyeu-00042")
    req = client.submit("echo", {"months": 3}, document_type="passport")
    assert req["state"] == "countersigned"
    assert [(s["purpose"], s["organisation_id"]) for s in req["signatures"]] == [
        ("application", client.organisation_id), ("countersignature", unit_id)]
    provider_queue = world.client.get("/v1/queue", headers=world["provider"].headers).json()
    assert req["id"] in [r["id"] for r in provider_queue]
    with world.store.transaction() as tx:
        cms = next(s.cms_der for s in tx.request_signatures(req["id"]) if s.purpose.value == "countersignature")
    from lifecycle_api.signed_documents import parse_signed_document

    content = json.loads(parse_signed_document(cms).content)
    assert content["automatic"] is True and content["organisation_id"] == unit_id
    assert world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()["ok"] is True


def test_auto_countersign_other_ministries_still_wait(world: World) -> None:
    coyeu = world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    _setup_mfa(world, DictKeyring({"org-coyeu-00042": coyeu.signer}), coyeu, "org-coyeu-00042")
    assert world.submit().json()["state"] == "submitted"  # Bộ Công an's unit countersigns by hand


def test_auto_countersign_revoked_unit_certificate_leaves_request_queued(world: World) -> None:
    coyeu = world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    client, _unit_id = _setup_mfa(world, DictKeyring({"org-coyeu-00042": coyeu.signer}), coyeu, "org-coyeu-00042")
    world.clock.advance(hours=2)
    world.import_crls(revoked=[RevokedEntry(coyeu.certificate.serial, world.clock.now() - timedelta(hours=1))])
    req = client.submit("echo", {"months": 3}, document_type="passport")
    assert req["state"] == "submitted"
    with world.store.engine.connect() as conn:
        details = conn.execute(text("SELECT details FROM audit_log WHERE action = 'request.auto_countersign_skipped'"
                                    )).scalar_one()
    details = details if isinstance(details, dict) else json.loads(details)
    assert details["reason"].startswith("certificate-revoked")


def test_auto_countersign_key_must_match_certificate(sqlite_world: World) -> None:
    world = sqlite_world
    coyeu = world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    world.client.app.state.services.keyring = DictKeyring({"org-coyeu-00043": SoftwareSigner.generate("secp256r1")})
    r = world.client.post(f"/v1/organisations/{world['coyeu'].organisation_id}/certificates",
                          json={"der": _b64(coyeu.certificate.der), "hsm_label": "org-coyeu-00043"},
                          headers=world["provider"].headers)
    assert r.status_code == 422 and "does not match" in r.json()["detail"]
    r = world.client.post(f"/v1/organisations/{world['coyeu'].organisation_id}/certificates",
                          json={"der": _b64(coyeu.certificate.der), "hsm_label": "org-coyeu-09999"},
                          headers=world["provider"].headers)
    assert r.status_code == 422 and "cannot be used" in r.json()["detail"]


def test_auto_countersign_label_needs_a_key_store(sqlite_world: World) -> None:
    coyeu = sqlite_world.org_pki.identity("Cục Cơ yếu Bộ Ngoại giao", "MNS:C0003")
    r = sqlite_world.client.post(f"/v1/organisations/{sqlite_world['coyeu'].organisation_id}/certificates",
                                 json={"der": _b64(coyeu.certificate.der), "hsm_label": "org-coyeu-00042"},
                                 headers=sqlite_world["provider"].headers)
    assert r.status_code == 422 and "no key store" in r.json()["detail"]


@pytest.mark.hsm
def test_auto_countersign_with_softhsm_key(keystore, sqlite_world: World) -> None:
    world = sqlite_world
    label = str(keystore.next_label("org", "coyeu"))
    signer = keystore.generate_key(label, "secp256r1")
    cert = world.org_pki.pki.issue(signer, common_name="Cục Cơ yếu Bộ Ngoại giao (HSM)", uid="MNS:C0004",
                                   not_before=world.clock.now() - timedelta(days=1))
    client, unit_id = _setup_mfa(world, keystore, OrgIdentity(signer, cert), label)  # type: ignore[arg-type]
    req = client.submit("echo", {"months": 1}, document_type="passport")
    assert req["state"] == "countersigned"
    assert req["signatures"][1]["organisation_id"] == unit_id
