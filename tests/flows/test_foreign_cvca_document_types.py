"""A foreign state's CVCAs per document type: registration, links, and the flows that use them.

A state may run one EAC hierarchy for its passports and another for its ID cards.  The PKI
world registers Utopia's passport CVCA (no document type given, so passport); these tests add
an ID-card CVCA of Utopia's and check each flow stays within its request's document type:
registration and listing, link certificates, our DV requests abroad (and the certificate that
comes back), and foreign DV requests authenticated by the state's CVCA.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cvc.builders import (
    build_authenticated_request,
    build_cvca_certificate,
    build_cvca_link_certificate,
    build_dv_certificate,
    build_request,
)
from cvc.certificate import AuthenticatedRequest, parse_request
from cvc.certificate import parse_certificate as parse_cv
from icao_pki.policy import DocumentType, cv_max_expiration
from icao_pki.signer import Signer
from lifecycle_api.certificate_flows import document_type_of
from lifecycle_api.errors import InvalidInput
from lifecycle_api.store import Certificate
from tests.flows.pki import PkiWorld, b64, unb64

pytestmark = pytest.mark.hsm


def _uto_key(pki: PkiWorld, mnemonic: str) -> tuple[str, Signer]:
    """A new CVCA key of Utopia's (its own HSM in reality) and the CHR it goes by."""
    label = str(pki.keystore.next_label("uto", "cvca"))
    return f"UT{mnemonic}{int(label[-5:]):05d}", pki.keystore.generate_key(label, "brainpoolP256r1")


def _uto_cvca(pki: PkiWorld, document_type: str, mnemonic: str = "CVCAID") -> tuple[str, Signer, bytes]:
    chr, signer = _uto_key(pki, mnemonic)
    today = pki.world.clock.now().date()
    der = build_cvca_certificate(signer, chr=chr, effective_date=today,
                                 expiration_date=cv_max_expiration(today, 36), document_type=document_type)
    return chr, signer, der


def _register(pki: PkiWorld, der: bytes, document_type: str | None = None):
    body = {"der": b64(der)} | ({"document_type": document_type} if document_type is not None else {})
    return pki.client.post(f"/v1/organisations/{pki.world['foreign'].organisation_id}/cvca", json=body,
                           headers=pki.headers("provider"))


def _listed(pki: PkiWorld, chr: str) -> list[dict]:
    rows = pki.client.get("/v1/certificates", headers=pki.headers("provider")).json()
    return [c for c in rows if c["role"] == "cvca" and c["chr"] == chr]


def _stored_document_type(pki: PkiWorld, certificate_id: int) -> DocumentType:
    with pki.world.store.transaction() as tx:
        row: Certificate = tx.certificate(certificate_id)
        return DocumentType(row.document_type)


def _uto_idcard(pki: PkiWorld) -> tuple[str, Signer, bytes]:
    """Utopia's ID-card CVCA, registered after its passport one (so it is the newest row)."""
    chr, signer, der = _uto_cvca(pki, "idcard")
    r = _register(pki, der, "idcard")
    assert r.status_code == 201, r.text
    return chr, signer, der


# --- registration ------------------------------------------------------------------------------


def test_registered_for_idcard_is_stored_and_listed_as_idcard(pki_sqlite: PkiWorld) -> None:
    chr, _, der = _uto_cvca(pki_sqlite, "idcard")
    r = _register(pki_sqlite, der, "idcard")
    assert r.status_code == 201, r.text
    assert r.json()["document_type"] == "idcard" and r.json()["chr"] == chr
    assert _stored_document_type(pki_sqlite, r.json()["certificate_id"]) is DocumentType.IDCARD
    assert [c["document_type"] for c in _listed(pki_sqlite, chr)] == ["idcard"]
    # Utopia's passport CVCA is still listed under passport
    assert [c["document_type"] for c in _listed(pki_sqlite, pki_sqlite.uto_cvca_chr)] == ["passport"]


def test_registered_without_document_type_is_passport(pki_sqlite: PkiWorld) -> None:
    # the world registered Utopia's first CVCA with {"der"} only
    [listed] = _listed(pki_sqlite, pki_sqlite.uto_cvca_chr)
    assert listed["document_type"] == "passport"
    chr, _, der = _uto_cvca(pki_sqlite, "passport", "CVCAPP")
    r = _register(pki_sqlite, der)
    assert r.status_code == 201, r.text
    assert r.json()["document_type"] == "passport" and r.json()["chr"] == chr
    assert _stored_document_type(pki_sqlite, r.json()["certificate_id"]) is DocumentType.PASSPORT


def test_unknown_document_type_refused(pki_sqlite: PkiWorld) -> None:
    chr, _, der = _uto_cvca(pki_sqlite, "idcard")
    r = _register(pki_sqlite, der, "visa")
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["loc"][-1] == "document_type" and "'passport' or 'idcard'" in error["msg"]
    assert _listed(pki_sqlite, chr) == []
    # callers outside the HTTP schema (the demo bootstrap) get the same refusal from the flow
    with pytest.raises(InvalidInput, match="unknown document type 'visa': expected one of passport, idcard"):
        document_type_of("visa")


def test_same_certificate_for_the_other_document_type_is_a_conflict(pki_sqlite: PkiWorld) -> None:
    r = _register(pki_sqlite, pki_sqlite.uto_cvca_der, "idcard")
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == f"{pki_sqlite.uto_cvca_chr} is already registered for passports"


# --- link certificates -------------------------------------------------------------------------


def _uto_link(pki: PkiWorld) -> tuple[str, bytes]:
    """Utopia's passport CVCA rolls over: the new CVCA and the link from the old key."""
    new_chr, _, new_der = _uto_cvca(pki, "passport", "CVCANEW")
    link = build_cvca_link_certificate(pki.keystore.signer(pki.uto_cvca_label), parse_cv(pki.uto_cvca_der),
                                       parse_cv(new_der), document_type="passport")
    return new_chr, link


def test_link_of_the_other_document_type_refused(pki_sqlite: PkiWorld) -> None:
    new_chr, link = _uto_link(pki_sqlite)
    r = _register(pki_sqlite, link, "idcard")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (f"{pki_sqlite.uto_cvca_chr} is registered as that state's CVCA for passports, "
                                  "not for ID cards")
    assert _listed(pki_sqlite, new_chr) == []
    # the same link, for the document type of the CVCA it links from, is registered
    r = _register(pki_sqlite, link, "passport")
    assert r.status_code == 201, r.text
    assert [c["document_type"] for c in _listed(pki_sqlite, new_chr)] == ["passport"]


def test_link_from_an_idcard_cvca_needs_idcard(pki_sqlite: PkiWorld) -> None:
    old_chr, old_signer, old_der = _uto_idcard(pki_sqlite)
    new_chr, _, new_der = _uto_cvca(pki_sqlite, "idcard", "CVCAIDN")
    link = build_cvca_link_certificate(old_signer, parse_cv(old_der), parse_cv(new_der), document_type="idcard")
    r = _register(pki_sqlite, link)  # the default, passport, is not the linked-from CVCA's type
    assert r.status_code == 422, r.text
    assert "for ID cards, not for passports" in r.json()["detail"]
    assert _listed(pki_sqlite, new_chr) == []
    r = _register(pki_sqlite, link, "idcard")
    assert r.status_code == 201, r.text
    assert r.json()["issuer"] == old_chr and r.json()["document_type"] == "idcard"
    assert [c["document_type"] for c in _listed(pki_sqlite, new_chr)] == ["idcard"]


# --- our DV abroad ---------------------------------------------------------------------------


def test_dv_abroad_for_idcard_goes_to_the_idcard_cvca(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    ours = pki.ceremony(kind="cvca", document_type="idcard")  # outer-signs the first request
    id_chr, id_signer, id_der = _uto_idcard(pki)
    state = pki.world["foreign"].organisation_id
    done = pki.flow("idcard_agency", "dv_request_abroad", "idcard", {"foreign_state_organisation_id": state})
    result = done["result"]
    assert result["car"] == id_chr
    request = parse_request(unb64(result["cv_request"]))
    assert isinstance(request, AuthenticatedRequest) and request.outer_car == ours["chr"]
    assert request.request.car == id_chr
    # a passport DV still goes to the passport CVCA, though the ID-card one was registered after it
    passport = pki.flow("agency", "dv_request_abroad", "passport", {"foreign_state_organisation_id": state})
    assert passport["result"]["car"] == pki.uto_cvca_chr
    # Utopia's ID-card CVCA certifies our DV; it verifies against that hierarchy, not the passport root
    today = pki.world.clock.now().date()
    der = build_dv_certificate(id_signer, parse_cv(id_der), unb64(result["cv_request"]), domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="idcard")
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": done["id"], "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 201, r.text
    assert r.json()["chr"] == result["chr"] and r.json()["document_type"] == "idcard"


def test_dv_abroad_certificate_from_the_other_hierarchy_refused(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    id_chr, id_signer, id_der = _uto_idcard(pki)
    state = pki.world["foreign"].organisation_id
    done = pki.flow("agency", "dv_request_abroad", "passport", {"foreign_state_organisation_id": state})
    assert done["result"]["car"] == pki.uto_cvca_chr
    # a certificate for our passport DV (same key and CHR) made by Utopia's ID-card CVCA
    today = pki.world.clock.now().date()
    ours = pki.keystore.signer(done["result"]["hsm_label"])
    misdirected = build_request(ours, chr=done["result"]["chr"], car=id_chr)
    der = build_dv_certificate(id_signer, parse_cv(id_der), misdirected, domestic=False,
                               effective_date=today, expiration_date=today + timedelta(days=80),
                               document_type="passport")
    r = pki.client.post("/v1/cv/foreign-certificates", json={"request_id": done["id"], "der": b64(der)},
                        headers=pki.headers("provider"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == (f"the certificate's CAR {id_chr} is registered as that state's CVCA for "
                                  "ID cards, not for passports")


def test_dv_abroad_for_idcard_refused_when_the_state_has_only_a_passport_cvca(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    state = pki.world["foreign"].organisation_id
    r = pki.submit("idcard_agency", "dv_request_abroad", "idcard", {"foreign_state_organisation_id": state})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    r = pki.world.act(rid)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "Utopia CVCA has no registered CVCA for ID cards valid now"


# --- foreign DV requests authenticated by the state's CVCA --------------------------------------


def _foreign_dv_request(pki: PkiWorld, our_cvca_chr: str, outer_signer: Signer, outer_car: str, seq: int) -> dict:
    label = str(pki.keystore.next_label("uto", "dv"))
    dv_signer = pki.keystore.generate_key(label, "brainpoolP256r1")
    inner = build_request(dv_signer, chr=f"UTDVVN{seq:05d}", car=our_cvca_chr)
    request = build_authenticated_request(inner, outer_signer, outer_car=outer_car)
    return {"cv_request": b64(request), "foreign_state_organisation_id": pki.world["foreign"].organisation_id}


def test_foreign_dv_request_authenticated_by_the_cvca_of_its_document_type(pki_sqlite: PkiWorld) -> None:
    pki = pki_sqlite
    ours_id = pki.ceremony(kind="cvca", document_type="idcard")
    ours_pp = pki.ceremonies["passport_cvca"]["chr"]
    id_chr, id_signer, _ = _uto_idcard(pki)
    # a passport DV's request outer-signed by Utopia's ID-card CVCA: refused by name
    payload = _foreign_dv_request(pki, ours_pp, id_signer, id_chr, 1)
    rid = pki.submit("agency", "foreign_dv_certificate", "passport", payload).json()["id"]
    assert pki.world.countersign(rid).status_code == 200
    r = pki.world.act(rid)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == f"{id_chr} is registered as that state's CVCA for ID cards, not for passports"
    # an ID-card DV's request outer-signed by it is certified by our ID-card CVCA
    payload = _foreign_dv_request(pki, ours_id["chr"], id_signer, id_chr, 2)
    result = pki.flow("idcard_agency", "foreign_dv_certificate", "idcard", payload)["result"]
    assert result["document_type"] == "idcard" and parse_cv(unb64(result["der"])).car == ours_id["chr"]
