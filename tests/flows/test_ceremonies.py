"""Key ceremonies through the API: two distinct Provider officers, decree limits at proposal,
link certificates on rollover, the products pass the icao_pki and cvc validators; a CVCA
rollover retires the old CVCA key (refused from then on, destroyed once its certificate has
expired), a CSCA rollover keeps the old CSCA key for its CRLs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cvc.builders import build_authenticated_request, build_request
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import verify_chain_at
from icao_pki.certificate import parse_certificate
from icao_pki.keystore import KeyInactive
from icao_pki.lint import check_certificate
from icao_pki.policy import CertificateFormat, DocumentType, Role
from lifecycle_api.audit import verify_chain
from lifecycle_api.authority import RetiredCvcaKey
from lifecycle_api.hierarchy import day_end, day_start
from lifecycle_api.store import AuditEntry, Key, KeyState, PublishedKind
from schedules.jobs import JOBS, JobContext
from tests.api.world import close_world
from tests.flows.pki import PkiWorld, b64, build_pki_world, unb64

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


# --- a CVCA rollover retires the old CVCA key; an old CSCA key keeps signing CRLs ----------------


def _key_row(pki: PkiWorld, key_id: int) -> Key:
    with pki.world.store.transaction() as tx:
        key = tx.key(key_id)
        tx.session.expunge(key)
        return key


def _key_audit(pki: PkiWorld, key_id: int) -> list[AuditEntry]:
    with pki.world.store.transaction() as tx:
        entries = tx.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "key",
                                                              AuditEntry.entity_id == str(key_id))
                                     .order_by(AuditEntry.seq)).all()  # fmt: skip
        tx.session.expunge_all()
        return list(entries)


def _cvca_rollover(pki: PkiWorld) -> tuple[str, dict]:
    """The passport CVCA ceremony, proposed by the Provider's first officer, approved by the second."""
    r = pki.propose(kind="cvca", document_type="passport")
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    r = pki.client.post(f"/v1/ceremonies/{request_id}/approve", headers=pki.officer2)
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text
    return request_id, r.json()["result"]


def test_cvca_rollover_retires_the_old_key_in_the_ceremony_with_an_audit_entry(pki: PkiWorld) -> None:
    old_key_id = pki.ceremonies["passport_cvca"]["key_id"]
    old_label = _key_row(pki, old_key_id).hsm_label
    assert _key_row(pki, old_key_id).state is KeyState.ACTIVE
    request_id, result = _cvca_rollover(pki)
    assert result["retired_key_id"] == old_key_id
    assert _key_row(pki, old_key_id).state is KeyState.RETIRED
    assert _key_row(pki, result["key_id"]).state is KeyState.ACTIVE
    [retired] = [e for e in _key_audit(pki, old_key_id) if e.action == "cvca_key.retired"]
    assert retired.details["superseded_by"] == result["chr"]
    assert retired.details["superseded_by_certificate_id"] == result["certificate_id"]
    assert retired.details["link_certificate_id"] == result["link_certificate_id"]
    assert retired.details["ceremony_request_id"] == request_id
    assert retired.details["article"] == "Art. 23.2a"
    assert result["chr"] in retired.details["reason"] and "link certificate" in retired.details["reason"]
    with pki.world.store.transaction() as tx:
        proposer = tx.request(request_id).payload["proposed_by_operator_id"]
        [completed] = [e for e in tx.audit_entries() if e.action == "ceremony.completed" and e.entity_id == request_id]
        assert retired.at == completed.at and retired.seq < completed.seq  # the same store step
        assert retired.actor_operator_id == completed.actor_operator_id != proposer
        assert verify_chain(tx.audit_entries()).ok
        # the old CVCA signs nothing now: the CA the flows pick is the new one
        found = tx.active_ca(Role.CVCA, DocumentType.PASSPORT, pki.world.clock.now(),
                             certificate_format=CertificateFormat.CV)
        assert found is not None and found[1].id == result["key_id"]
    # retired, not destroyed: the key stays in the HSM until the old certificate has expired
    pki.keystore.signer(old_label)
    # the next rollover retires the key this one made, and only that
    _, again = _cvca_rollover(pki)
    assert again["retired_key_id"] == result["key_id"]
    assert _key_row(pki, result["key_id"]).state is KeyState.RETIRED
    assert [e.action for e in _key_audit(pki, old_key_id)].count("cvca_key.retired") == 1


def test_csca_rollover_keeps_the_old_csca_key_active_for_its_crls(pki_sqlite: PkiWorld) -> None:
    """Not the CVCA's case: an old CSCA key signs CRLs for as long as its DS certificates are valid."""
    pki = pki_sqlite
    old_key_id = pki.ceremonies["passport_csca"]["key_id"]
    result = pki.ceremony(kind="csca", document_type="passport")
    assert "retired_key_id" not in result
    assert _key_row(pki, old_key_id).state is KeyState.ACTIVE
    assert [e.action for e in _key_audit(pki, old_key_id) if e.action.endswith(".retired")] == []


def test_a_retired_cvca_key_refuses_to_sign_naming_the_article(pki_sqlite: PkiWorld) -> None:
    pki, world = pki_sqlite, pki_sqlite.world
    authority = world.client.app.state.services.authority
    old_cert_id = pki.ceremonies["passport_cvca"]["certificate_id"]
    _, result = _cvca_rollover(pki)
    now = world.clock.now()
    with world.store.transaction() as tx:
        old = authority.load_ca(tx, tx.certificate(old_cert_id))  # still in the HSM, still its key
        with pytest.raises(RetiredCvcaKey) as refused:
            authority.check_key(tx, old, now)
    message = str(refused.value)
    assert message.startswith(f"Art. 23.2a: CVCA key {old.label} was retired on {now:%Y-%m-%d}")
    assert f"CVCA {result['chr']} succeeded it" in message
    assert refused.value.data["article"] == "Art. 23.2a"
    assert refused.value.data["superseded_by"] == result["chr"]

    # whatever loaded the key before the ceremony: the sign component refuses before the HSM
    built = []

    def build(signer: object) -> bytes:
        built.append(signer)
        return b""

    before = world.row_counts()["hsm_operations"]
    with pytest.raises(RetiredCvcaKey, match=r"^Art\. 23\.2a: CVCA key"):
        authority.sign(old.signer, old.label, build, lambda der: None, purpose="DV certificate")
    assert built == [] and world.row_counts()["hsm_operations"] == before

    # the flows sign with the newest CVCA: a foreign DV certificate comes from it
    new_cvca = parse_cv(unb64(pki.client.get(f"/v1/certificates/{result['certificate_id']}",
                                             headers=pki.headers("provider")).json()["der"]))
    dv_label = str(pki.keystore.next_label("uto", "dv"))
    inner = build_request(pki.keystore.generate_key(dv_label, "brainpoolP256r1"), chr="UTDVVN00002",
                          car=new_cvca.chr)
    request = build_authenticated_request(inner, pki.keystore.signer(pki.uto_cvca_label),
                                          outer_car=pki.uto_cvca_chr)
    payload = {"cv_request": b64(request), "foreign_state_organisation_id": world["foreign"].organisation_id}
    dv = parse_cv(unb64(pki.flow("agency", "foreign_dv_certificate", "passport", payload)["result"]["der"]))
    assert dv.car == new_cvca.chr
    assert verify_chain_at(new_cvca, [dv], world.clock.now().date()).valid


@pytest.fixture
def own_pki(tmp_path: Path, org_pki, keystore) -> Iterator[PkiWorld]:  # type: ignore[no-untyped-def]
    """A PKI world of its own: the CVCA key its test destroys is not the one the session's
    template worlds share (every clone signs with the template's keys in the same token)."""
    pki = build_pki_world(f"sqlite:///{tmp_path / 'own.db'}", org_pki, keystore)
    yield pki
    close_world(pki.world)


def test_a_retired_cvca_key_is_destroyed_only_after_its_certificate_has_expired(own_pki: PkiWorld) -> None:
    pki, world = own_pki, own_pki.world
    old_key_id = pki.ceremonies["passport_cvca"]["key_id"]
    old_cert_id = pki.ceremonies["passport_cvca"]["certificate_id"]
    old_label = _key_row(pki, old_key_id).hsm_label
    context = JobContext(store=world.store, clock=world.clock, keystore=pki.keystore)

    def destruction() -> list[object]:
        return JOBS["ds-key-destruction"].run(context)

    assert destruction() == []  # active: never destroyed
    _, result = _cvca_rollover(pki)
    with world.store.transaction() as tx:
        old_cert = tx.certificate(old_cert_id)
        not_after, old_chr, expiration = old_cert.not_after, old_cert.chr, parse_cv(old_cert.der).expiration_date
    assert not_after == day_end(expiration)
    assert destruction() == []  # retired, its certificate still valid
    world.clock.set(day_start(expiration))
    assert destruction() == []
    world.clock.set(not_after)  # the last second of the expiration date: still valid
    assert destruction() == []
    pki.keystore.signer(old_label)
    assert _key_row(pki, old_key_id).state is KeyState.RETIRED

    world.clock.set(day_start(expiration + timedelta(days=1)))
    assert destruction() == [old_label]
    assert destruction() == []  # idempotent
    with pytest.raises(KeyInactive):
        pki.keystore.signer(old_label)
    key = _key_row(pki, old_key_id)
    assert key.state is KeyState.DESTROYED and key.destroyed_at == world.clock.now()
    [destroyed] = [e for e in _key_audit(pki, old_key_id) if e.action == "cvca_key.destroyed"]
    assert destroyed.details["outcome"] == "destroyed" and destroyed.details["certificates"] == [old_chr]
    assert destroyed.details["reason"].startswith("CVCA key retired when a newer CVCA succeeded it")
    assert destroyed.details["spki_sha256"]
    assert _key_row(pki, result["key_id"]).state is KeyState.ACTIVE  # the new CVCA's key untouched
    pki.keystore.signer(_key_row(pki, result["key_id"]).hsm_label)
    # its certificate, and the link to its successor, stay published
    with world.store.transaction() as tx:
        published = {o.certificate_id for kind in (PublishedKind.CVCA, PublishedKind.CVCA_LINK)
                     for o in tx.published(kind, document_type=DocumentType.PASSPORT) if o.withdrawn_at is None}
        assert verify_chain(tx.audit_entries()).ok
    assert {old_cert_id, result["certificate_id"], result["link_certificate_id"]} <= published
