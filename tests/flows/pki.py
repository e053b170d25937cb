"""A world with the PKI: every party (tests/api/world.py) plus the key ceremonies done through
the HTTP API with the session's SoftHSM2 token — passport and ID-card CSCAs, a passport
CVCA and DVCA — and Utopia (UTO) registered with its own CVCA.

Utopia's CVCA key and the IS operator's terminal keys stand for keys held elsewhere (a
foreign HSM, a terminal's token); the test keeps them in the same SoftHSM token under
labels of their own, because product code and tests sign only through PKCS#11.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cvc.builders import build_cvca_certificate
from icao_pki.keystore import KeyStore
from icao_pki.policy import cv_max_expiration
from icao_pki.signer import Signer
from tests.api.orgpki_support import OrgPkiForTests
from tests.api.world import START, World, build_world, clone_world


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass
class PkiWorld:
    world: World
    keystore: KeyStore
    officer2_token: str = ""
    ceremonies: dict[str, dict[str, Any]] = field(default_factory=dict)
    uto_cvca_label: str = ""
    uto_cvca_chr: str = ""
    uto_cvca_der: bytes = b""

    @property
    def client(self) -> Any:
        return self.world.client

    def headers(self, party: str) -> dict[str, str]:
        return self.world[party].headers

    @property
    def officer2(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.officer2_token}"}

    # --- ceremonies -----------------------------------------------------------------------

    def propose(self, **body: Any) -> Any:
        return self.client.post("/v1/ceremonies", json=body, headers=self.headers("provider"))

    def ceremony(self, **body: Any) -> dict[str, Any]:
        r = self.propose(**body)
        assert r.status_code == 201, r.text
        r = self.client.post(f"/v1/ceremonies/{r.json()['id']}/approve", headers=self.officer2)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "completed"
        return r.json()["result"]

    # --- the three-hop workflow ----------------------------------------------------------

    def submit(self, party: str, request_type: str, document_type: str | None, payload: dict[str, Any]) -> Any:
        return self.world.submit(party, request_type=request_type, document_type=document_type, payload=payload)

    def flow(self, party: str, request_type: str, document_type: str | None, payload: dict[str, Any],
             coyeu: str = "coyeu") -> dict[str, Any]:
        """Agency (or IS operator) signs → Cơ yếu countersigns → Provider acts; returns the request."""
        r = self.submit(party, request_type, document_type, payload)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        r = self.world.countersign(rid, party=coyeu)
        assert r.status_code == 200, r.text
        r = self.world.act(rid)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["state"] == "completed", body
        return body

    def ds_key(self, document_type: str = "passport", party: str = "agency") -> dict[str, Any]:
        r = self.client.post("/v1/ds/keys", json={"document_type": document_type}, headers=self.headers(party))
        assert r.status_code == 201, r.text
        return r.json()

    def terminal_key(self, spec: str = "brainpoolP256r1") -> tuple[str, Signer]:
        label = str(self.keystore.next_label("terminal", "is"))
        return label, self.keystore.generate_key(label, spec)


def build_pki_world(database_url: str, org_pki: OrgPkiForTests, keystore: KeyStore) -> PkiWorld:
    world = build_world(database_url, org_pki, keyring=keystore)
    pki = PkiWorld(world, keystore)
    provider = world["provider"].organisation_id
    r = world.client.post(f"/v1/organisations/{provider}/operators", json={"name": "provider-officer-2"},
                          headers=world["provider"].headers)
    assert r.status_code == 201, r.text
    pki.officer2_token = r.json()["token"]
    pki.ceremonies["passport_csca"] = pki.ceremony(kind="csca", document_type="passport")
    pki.ceremonies["idcard_csca"] = pki.ceremony(kind="csca", document_type="idcard")
    pki.ceremonies["passport_cvca"] = pki.ceremony(kind="cvca", document_type="passport")
    pki.ceremonies["passport_dvca"] = pki.ceremony(kind="dvca", document_type="passport")
    # Utopia: its CVCA (its own HSM in reality), registered as part of organisation setup
    label = str(keystore.next_label("uto", "cvca"))
    signer = keystore.generate_key(label, "brainpoolP256r1")
    today = START.date()
    pki.uto_cvca_chr = f"UTCVCA{int(label[-5:]):05d}"
    pki.uto_cvca_der = build_cvca_certificate(signer, chr=pki.uto_cvca_chr, effective_date=today,
                                              expiration_date=cv_max_expiration(today, 36), document_type="passport")
    pki.uto_cvca_label = label
    r = world.client.post(f"/v1/organisations/{world['foreign'].organisation_id}/cvca",
                          json={"der": b64(pki.uto_cvca_der)}, headers=world["provider"].headers)
    assert r.status_code == 201, r.text
    return pki


def clone_pki_world(template: PkiWorld, database_url: str) -> PkiWorld:
    world = clone_world(template.world, database_url, keyring=template.keystore)
    return PkiWorld(world, template.keystore, template.officer2_token, dict(template.ceremonies),
                    template.uto_cvca_label, template.uto_cvca_chr, template.uto_cvca_der)
