"""A running lifecycle service with every party, its org certificate and its operator token.

Built through the HTTP API wherever the API exists (the Provider registers the parties,
their certificates and operators, and imports the government CA's CRLs), so these steps
are exercised by every flow test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fixtures.orgpki import RevokedEntry
from icao_pki.clock import FakeClock
from icao_pki.policy import PolicyViolation
from lifecycle_api.app import create_app
from lifecycle_api.deadlines import DeadlineRule
from lifecycle_api.handlers import ActContext, HandlerRegistry, RequestHandler
from lifecycle_api.organisations import bootstrap_provider
from lifecycle_api.settings import ScryptParameters, Settings
from lifecycle_api.signed_documents import OrgPkiTrust, build_signed_document
from lifecycle_api.store import PartyType, Store
from tests.api.orgpki_support import OrgIdentity, OrgPkiForTests

#: a Monday, no holiday
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MPS = "Bộ Công an"
MOD = "Bộ Quốc phòng"


def _echo(ctx: ActContext) -> dict[str, Any]:
    return {"echo": dict(ctx.request.payload), "acted_at": ctx.now.isoformat()}


def _explode(ctx: ActContext) -> dict[str, Any]:
    # writes something, then fails: the step's transaction must take the write back
    ctx.tx.add_published(kind="ds", name="half-done", der=b"\x30\x00", sha256="0" * 64, now=ctx.now)
    raise RuntimeError("HSM unavailable")


def _validate_limit(payload: Any, document_type: Any, policy: Any) -> None:
    if payload.get("months", 0) > 3:
        raise PolicyViolation("Art. 23.1b", f"DS private-key usage of {payload['months']} months exceeds 3 months")


def test_handlers() -> HandlerRegistry:
    agency = frozenset({PartyType.AGENCY})
    return HandlerRegistry.of([
        RequestHandler("echo", agency, _echo, validate=_validate_limit, description="test: returns the payload"),
        RequestHandler("explode", agency, _explode, description="test: fails after writing"),
        RequestHandler("urgent", agency, _echo, deadline=DeadlineRule.parse("1 working day")),
        RequestHandler("dv_foreign", frozenset({PartyType.FOREIGN_STATE}), _echo, document_type_required=False),
    ])


PARTIES: dict[str, dict[str, Any]] = {
    "agency": {"name": "Cục Quản lý xuất nhập cảnh", "party_type": "agency", "ministry": MPS,
               "document_types": ["passport"], "uid": "MNS:A0001"},
    "coyeu": {"name": "Cục Cơ yếu Bộ Công an", "party_type": "coyeu", "ministry": MPS, "uid": "MNS:C0001"},
    "agency_mod": {"name": "Cục Quản lý xuất nhập cảnh Bộ Quốc phòng", "party_type": "agency", "ministry": MOD,
                   "document_types": ["passport"], "uid": "MNS:A0002"},
    "coyeu_mod": {"name": "Cục Cơ yếu Bộ Quốc phòng", "party_type": "coyeu", "ministry": MOD, "uid": "MNS:C0002"},
    "idcard_agency": {"name": "Cục Cảnh sát quản lý hành chính về trật tự xã hội", "party_type": "agency",
                      "ministry": MPS, "document_types": ["idcard"], "uid": "MNS:A0003"},
    "foreign": {"name": "Utopia CVCA", "party_type": "foreign_state", "country": "UTO", "uid": "HC:UTO0001"},
    "is_operator": {"name": "Trạm kiểm soát cửa khẩu Nội Bài", "party_type": "is_operator", "ministry": MPS,
                    "document_types": ["passport"], "uid": "MNS:I0001"},
}


@dataclass
class Party:
    key: str
    organisation_id: int
    token: str
    identity: OrgIdentity

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    client: TestClient
    clock: FakeClock
    store: Store
    org_pki: OrgPkiForTests
    parties: dict[str, Party] = field(default_factory=dict)
    crl_number: int = 1

    def __getitem__(self, key: str) -> Party:
        return self.parties[key]

    # --- signing helpers ---------------------------------------------------------------------

    def sign(self, party: str, content: dict[str, Any] | bytes, at: datetime | None = None,
             identity: OrgIdentity | None = None) -> str:
        ident = identity or self.parties[party].identity
        data = content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False).encode()
        der = build_signed_document(data, ident.signer, ident.certificate.der, at or self.clock.now())
        return base64.b64encode(der).decode()

    def request_document(self, party: str = "agency", request_type: str = "echo", document_type: str | None = "passport",
                         payload: dict[str, Any] | None = None, **kw: Any) -> str:
        content = {"kind": "request", "organisation_id": self.parties[party].organisation_id,
                   "request_type": request_type, "document_type": document_type,
                   "payload": payload if payload is not None else {"months": 3}, "nonce": secrets.token_hex(8)}
        return self.sign(party, content, **kw)

    def submit(self, party: str = "agency", **kw: Any):
        return self.client.post("/v1/requests", json={"document": self.request_document(party, **kw)},
                                headers=self.parties[party].headers)

    def application_sha256(self, request_id: str) -> str:
        body = self.client.get(f"/v1/requests/{request_id}", headers=self.parties["coyeu"].headers).json()
        return next(s["content_sha256"] for s in body["signatures"] if s["purpose"] == "application")

    def countersign(self, request_id: str, party: str = "coyeu", application_sha256: str | None = None):
        digest = application_sha256 or self.application_sha256(request_id)
        content = {"kind": "countersignature", "organisation_id": self.parties[party].organisation_id,
                   "request_id": request_id, "application_sha256": digest}
        return self.client.post(f"/v1/requests/{request_id}/countersign", json={"document": self.sign(party, content)},
                                headers=self.parties[party].headers)

    def reject(self, request_id: str, reason: str, party: str = "coyeu"):
        content = {"kind": "rejection", "organisation_id": self.parties[party].organisation_id,
                   "request_id": request_id, "reason": reason}
        return self.client.post(f"/v1/requests/{request_id}/reject", json={"document": self.sign(party, content)},
                                headers=self.parties[party].headers)

    def act(self, request_id: str):
        return self.client.post(f"/v1/requests/{request_id}/act", headers=self.parties["provider"].headers)

    def import_crls(self, revoked: list[RevokedEntry] | None = None) -> None:
        """Fresh CRLs of the sub-CA and the root, issued an hour before the clock."""
        self.crl_number += 1
        now = self.clock.now()
        for der in (
            self.org_pki.pki.sub_ca_crl(this_update=now - timedelta(hours=1), number=self.crl_number,
                                        revoked=revoked or []),
            self.org_pki.pki.root_crl(this_update=now - timedelta(hours=1), number=self.crl_number),
        ):
            r = self.client.post("/v1/trust/crls", json={"der": base64.b64encode(der).decode()},
                                 headers=self.parties["provider"].headers)
            assert r.status_code == 201, r.text

    def row_counts(self) -> dict[str, int]:
        with self.store.transaction() as tx:
            return tx.row_counts()


def open_world(database_url: str, org_pki: OrgPkiForTests, handlers: HandlerRegistry | None = None,
               keyring: Any = None) -> World:
    """The service on an existing database (fresh clock at START); `keyring` (a KeyStore)
    gives it the HSM, and with it the sign component of the certificate flows."""
    clock = FakeClock(START)
    settings = Settings(database_url=database_url, scrypt=ScryptParameters(n=2**4, r=8, p=1))
    store = Store(database_url)
    trust = OrgPkiTrust(roots=(org_pki.pki.root.der,), intermediates=(org_pki.pki.sub_ca.der,))
    app = create_app(settings, clock, trust=trust, handlers=handlers or test_handlers(), store=store, keyring=keyring)
    client = TestClient(app, raise_server_exceptions=False)
    return World(client=client, clock=clock, store=store, org_pki=org_pki)


def clone_world(template: World, database_url: str, keyring: Any = None) -> World:
    """A world on a copy of the template's database: same parties and tokens, fresh clock."""
    world = open_world(database_url, template.org_pki, keyring=keyring)
    world.parties = dict(template.parties)
    world.crl_number = template.crl_number
    return world


def close_world(world: World) -> None:
    world.client.close()
    world.store.dispose()


def build_world(database_url: str, org_pki: OrgPkiForTests, handlers: HandlerRegistry | None = None,
                keyring: Any = None) -> World:
    """Create the schema and every party through the HTTP API."""
    schema = Store(database_url)
    schema.create_schema()
    schema.dispose()
    world = open_world(database_url, org_pki, handlers, keyring=keyring)
    client = world.client
    services = client.app.state.services
    admin = bootstrap_provider(services, name="Cục Chứng thực số và Bảo mật thông tin")
    provider_identity = org_pki.identity("Cục Chứng thực số và Bảo mật thông tin", "MNS:P0001")
    world.parties["provider"] = Party("provider", admin.operator.organisation_id, admin.token, provider_identity)
    headers = world.parties["provider"].headers
    world.import_crls()
    _register_certificate(world, admin.operator.organisation_id, provider_identity)
    for key, spec in PARTIES.items():
        body = {k: v for k, v in spec.items() if k != "uid"}
        body.setdefault("country", "VN")
        r = client.post("/v1/organisations", json=body, headers=headers)
        assert r.status_code == 201, r.text
        org_id = r.json()["id"]
        identity = org_pki.identity(spec["name"], spec["uid"])
        _register_certificate(world, org_id, identity)
        r = client.post(f"/v1/organisations/{org_id}/operators", json={"name": f"{key}-operator"}, headers=headers)
        assert r.status_code == 201, r.text
        world.parties[key] = Party(key, org_id, r.json()["token"], identity)
    return world


def _register_certificate(world: World, org_id: int, identity: OrgIdentity) -> None:
    r = world.client.post(f"/v1/organisations/{org_id}/certificates",
                          json={"der": base64.b64encode(identity.certificate.der).decode()},
                          headers=world.parties["provider"].headers)
    assert r.status_code == 201, r.text
    assert r.json()["fingerprint_sha256"] == hashlib.sha256(identity.certificate.der).hexdigest()
