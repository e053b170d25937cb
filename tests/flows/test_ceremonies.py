"""Key ceremonies through the API: two distinct Provider officers, decree limits at proposal,
link certificates on rollover, the products pass the icao_pki and cvc validators."""

from __future__ import annotations

import pytest

from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import verify_chain_at
from icao_pki.certificate import parse_certificate
from icao_pki.lint import check_certificate
from tests.flows.pki import PkiWorld, unb64

pytestmark = pytest.mark.hsm


def _published(pki: PkiWorld, kind: str) -> list[dict]:
    return [o for o in pki.client.get("/v1/pub").json() if o["kind"] == kind]


def test_ceremony_needs_a_second_officer(pki: PkiWorld) -> None:
    before = pki.world.row_counts()
    r = pki.propose(kind="cvca", document_type="idcard")
    assert r.status_code == 201, r.text
    r2 = pki.client.post(f"/v1/ceremonies/{r.json()['id']}/approve", headers=pki.headers("provider"))
    assert r2.status_code == 403
    assert "two distinct Provider officers" in r2.json()["detail"]
    for party in ("agency", "coyeu", "foreign", "is_operator"):
        r3 = pki.client.post(f"/v1/ceremonies/{r.json()['id']}/approve", headers=pki.headers(party))
        assert r3.status_code == 403
    after = pki.world.row_counts()
    assert after["keys"] == before["keys"] and after["certificates"] == before["certificates"]
    assert after["hsm_operations"] == before["hsm_operations"]  # nothing touched the HSM


@pytest.mark.parametrize(("body", "article"), [
    ({"kind": "csca", "document_type": "passport", "validity_months": 15 * 12 + 1}, "Art. 23.1a"),
    ({"kind": "csca", "document_type": "passport", "key_usage_months": 5 * 12 + 1}, "Art. 23.1a"),
    ({"kind": "csca", "document_type": "idcard", "validity_months": 27 * 12 + 1}, "Art. 26.1a"),
    ({"kind": "cvca", "document_type": "passport", "validity_months": 37}, "Art. 23.2a"),
    ({"kind": "cvca", "document_type": "idcard", "validity_months": 37}, "Art. 26.2a"),
    ({"kind": "dvca", "document_type": "passport", "validity_months": 4}, "Art. 23.2b"),
    ({"kind": "dvca", "document_type": "idcard", "validity_months": 4}, "Art. 26.2b"),
])
def test_ceremony_refused_beyond_decree_limits(pki_sqlite: PkiWorld, body: dict, article: str) -> None:
    before = pki_sqlite.world.row_counts()
    r = pki_sqlite.propose(**body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["article"] == article
    assert pki_sqlite.world.row_counts() == before


def test_csca_rollover_publishes_link_and_validates(pki: PkiWorld) -> None:
    old = parse_certificate(unb64(pki.client.get(
        f"/v1/certificates/{pki.ceremonies['passport_csca']['certificate_id']}", headers=pki.headers("provider"),
    ).json()["der"]))
    result = pki.ceremony(kind="csca", document_type="passport", key_spec="brainpoolP256r1")
    assert "link_certificate_id" in result
    link = parse_certificate(unb64(pki.client.get(f"/v1/certificates/{result['link_certificate_id']}",
                                                  headers=pki.headers("provider")).json()["der"]))
    new = parse_certificate(unb64(pki.client.get(f"/v1/certificates/{result['certificate_id']}",
                                                 headers=pki.headers("provider")).json()["der"]))
    link.verify_issued_by(old)
    assert link.public_key == new.public_key and link.subject == new.subject
    new.verify_issued_by(new)
    assert [f for f in check_certificate(new, "csca", "passport") if f.is_error] == []
    assert [f for f in check_certificate(link, "csca-link", "passport", issuer=old) if f.is_error] == []
    assert len(_published(pki, "csca_link")) == 1
    assert len(_published(pki, "csca")) == 3


def test_cvca_rollover_link_verifies(pki: PkiWorld) -> None:
    old_der = unb64(pki.client.get(f"/v1/certificates/{pki.ceremonies['passport_cvca']['certificate_id']}",
                                   headers=pki.headers("provider")).json()["der"])
    result = pki.ceremony(kind="cvca", document_type="passport")
    link = parse_cv(unb64(pki.client.get(f"/v1/certificates/{result['link_certificate_id']}",
                                         headers=pki.headers("provider")).json()["der"]))
    old = parse_cv(old_der)
    assert link.car == old.chr and link.chr == result["chr"]
    assert verify_chain_at(old, [link], pki.world.clock.now().date()).valid
