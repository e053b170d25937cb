"""Official-use signatures made with keys held in PKCS#11 (SoftHSM2), as deployments will.

Proves the `Signer` abstraction end to end: the government CA fixture issues certificates
with HSM keys, and an organisation whose key never leaves the token signs a request the
service accepts.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from fixtures.orgpki import build_demo_org_pki
from lifecycle_api.signed_documents import OrgPkiTrust, build_signed_document, verify_signed_document
from tests.api.world import MPS, World

pytestmark = pytest.mark.hsm


def test_hsm_org_pki_and_signed_document(keystore) -> None:
    root_signer = keystore.generate_key(keystore.next_label("orgpki", "root"), "secp256r1")
    sub_signer = keystore.generate_key(keystore.next_label("orgpki", "subca"), "secp256r1")
    org_signer = keystore.generate_key(keystore.next_label("org", "agency"), "secp256r1")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    pki = build_demo_org_pki(root_signer, sub_signer, not_before=start)
    cert = pki.issue(org_signer, common_name="Cục Quản lý xuất nhập cảnh", uid="MNS:HSM01", not_before=start)
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    der = build_signed_document(b'{"kind":"request"}', org_signer, cert.der, when)
    crls = {
        pki.sub_ca.fingerprint_sha256: pki.sub_ca_crl(this_update=when, number=1),
        pki.root.fingerprint_sha256: pki.root_crl(this_update=when, number=1),
    }
    verified = verify_signed_document(
        der, expected_organisation_id=7, now=when,
        trust=OrgPkiTrust(roots=(pki.root.der,), intermediates=(pki.sub_ca.der,)),
        crls=crls.get, registered={cert.fingerprint_sha256: 7}.get,
    )
    assert verified.organisation_id == 7 and len(verified.path) == 3


def test_hsm_agency_submits_through_the_api(keystore, sqlite_world: World) -> None:
    world = sqlite_world
    provider = world["provider"].headers
    org_signer = keystore.generate_key(keystore.next_label("org", "agency"), "secp256r1")
    cert = world.org_pki.pki.issue(org_signer, common_name="Cục Quản lý xuất nhập cảnh (HSM)", uid="MNS:HSM02",
                                   not_before=datetime(2025, 6, 1, tzinfo=UTC))
    org = world.client.post("/v1/organisations", json={"name": "Agency with HSM key", "party_type": "agency",
                                                       "country": "VN", "ministry": MPS,
                                                       "document_types": ["passport"]}, headers=provider).json()
    r = world.client.post(f"/v1/organisations/{org['id']}/certificates",
                          json={"der": base64.b64encode(cert.der).decode()}, headers=provider)
    assert r.status_code == 201, r.text
    token = world.client.post(f"/v1/organisations/{org['id']}/operators", json={"name": "svc"},
                              headers=provider).json()["token"]
    content = json.dumps({"kind": "request", "organisation_id": org["id"], "request_type": "echo",
                          "document_type": "passport", "payload": {"months": 1}, "nonce": "hsm"}).encode()
    document = build_signed_document(content, org_signer, cert.der, world.clock.now())
    r = world.client.post("/v1/requests", json={"document": base64.b64encode(document).decode()},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    assert r.json()["applicant_organisation_id"] == org["id"]
