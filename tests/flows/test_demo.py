"""The demo bootstrap: idempotent, credentials 0600, and a DS flow works on what it built
(the Agency signs with its HSM-held key, the Cơ yếu unit countersigns automatically)."""

from __future__ import annotations

import base64
import json
import secrets
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fixtures.demo import bootstrap_demo, demo_settings
from icao_pki.clock import FakeClock
from lifecycle_api.app import create_app
from lifecycle_api.settings import ScryptParameters, Settings, load_certificate_file
from lifecycle_api.signed_documents import build_signed_document
from lifecycle_api.store import PartyType, Store
from lifecycle_api.store.migrate import upgrade
from tests.api.world import START

pytestmark = pytest.mark.hsm


def test_demo_bootstrap_is_idempotent_and_usable(tmp_path: Path, keystore) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    store = Store(url)
    clock = FakeClock(START)
    settings = Settings(database_url=url, scrypt=ScryptParameters(n=2**4, r=8, p=1))
    first = bootstrap_demo(store, keystore, clock, data_dir=tmp_path / "var", settings=settings)
    assert first.created
    assert stat.S_IMODE(first.credentials_path.stat().st_mode) == 0o600
    with store.transaction() as tx:
        counts = tx.row_counts()
        assert {o.party_type for o in tx.organisations()} == set(PartyType)
    clock.advance(hours=1)
    again = bootstrap_demo(store, keystore, clock, data_dir=tmp_path / "var", settings=settings)
    assert not again.created and again.org_pki_roots == first.org_pki_roots
    with store.transaction() as tx:
        later = tx.row_counts()
    assert later["organisations"] == counts["organisations"] and later["certificates"] == counts["certificates"]
    assert later["crls"] == counts["crls"] + 2  # only fresh government-CA CRLs

    creds = json.loads(first.credentials_path.read_text())["parties"]
    app = create_app(demo_settings(settings, first), clock, store=store, keyring=keystore)
    client = TestClient(app)
    agency = creds["agency"]
    h = {"Authorization": f"Bearer {agency['token']}"}
    key = client.post("/v1/ds/keys", json={"document_type": "passport"}, headers=h).json()
    content = {"kind": "request", "organisation_id": agency["organisation_id"], "request_type": "ds_certificate",
               "document_type": "passport", "payload": {"hsm_label": key["hsm_label"], "csr": key["csr"]},
               "nonce": secrets.token_hex(8)}
    cert_der = load_certificate_file(Path(agency["certificate"]))[0]
    doc = build_signed_document(json.dumps(content).encode(), keystore.signer(agency["key_label"]), cert_der,
                                clock.now())
    r = client.post("/v1/requests", json={"document": base64.b64encode(doc).decode()}, headers=h)
    assert r.status_code == 201, r.text
    # the Cơ yếu unit's key is held centrally (automatic countersignature) and the demo Provider's
    # policy issues DS certificates at once, as its service account
    body = r.json()
    assert body["state"] == "completed", body
    assert [s["purpose"] for s in body["signatures"]] == ["application", "countersignature"]
    cert = client.get(f"/v1/certificates/{body['result']['certificate_id']}", headers=h)
    assert cert.status_code == 200 and cert.json()["role"] == "ds", cert.text
    client.close()
    store.dispose()

