from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from icao_pki.keystore import KeyStore
from icao_pki.pa import verify_pa
from icao_pki.policy import DocumentType
from lifecycle_api.signing import DsSigningService, usage_report
from lifecycle_api.signing.routes import DsKeysOut, SodBatchOut, SodOut, mount_signing
from lifecycle_api.signing.successor import DirectDsIssuer
from tests.api.world import World
from tests.signing.support import data_groups, make_csca

pytestmark = pytest.mark.hsm


def _b64(groups: dict[int, bytes]) -> dict[str, str]:
    return {str(k): base64.b64encode(v).decode() for k, v in groups.items()}


@pytest.fixture
def api(sqlite_world: World, keystore: KeyStore) -> Iterator[tuple[World, DsSigningService, bytes]]:
    label, csca = make_csca(keystore, sqlite_world.clock.now())
    DirectDsIssuer(sqlite_world.store, keystore, sqlite_world.clock, label, csca).issue(DocumentType.PASSPORT)
    service = DsSigningService(sqlite_world.store, keystore, sqlite_world.clock, block_size=16)
    mount_signing(sqlite_world.client.app, service)  # type: ignore[arg-type]
    yield sqlite_world, service, csca
    service.close()


def test_agency_signs_a_sod_over_http(api) -> None:  # type: ignore[no-untyped-def]
    world, _, csca = api
    r = world.client.post("/v1/ds/passport/sod", json={"data_groups": _b64(data_groups(1))},
                          headers=world["agency"].headers)
    assert r.status_code == 200, r.text
    verify_pa(base64.b64decode(r.json()["sod"]), data_groups(1), trust=[csca], at=world.clock.now())


def test_readme_sod_example_passes_passive_authentication_with_no_findings(api) -> None:  # type: ignore[no-untyped-def]
    """The README's curl body, as written there: a newcomer's first SOD must be a clean one."""
    world, _, csca = api
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    match = re.search(r"-d '(\{\"data_groups\".*?)' http://127\.0\.0\.1:8000/v1/ds/passport/sod\n", readme, re.S)
    assert match, "the README's SOD example is gone"
    body = json.loads(match.group(1))
    r = world.client.post("/v1/ds/passport/sod", json=body, headers=world["agency"].headers)
    assert r.status_code == 200, r.text
    groups = {int(k): base64.b64decode(v) for k, v in body["data_groups"].items()}
    result = verify_pa(base64.b64decode(r.json()["sod"]), groups, trust=[csca], at=world.clock.now())
    # with the CRL that `make run` publishes this is empty (README); here there is none to give
    assert result.valid and [f.code for f in result.findings] == ["revocation-not-checked"]


def test_batch_counts_every_sod(api) -> None:  # type: ignore[no-untyped-def]
    world, service, csca = api
    items = [{"data_groups": _b64(data_groups(i))} for i in range(20)]  # past the worker's threshold
    r = world.client.post("/v1/ds/passport/sod/batch", json={"items": items}, headers=world["agency"].headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert len(body["items"]) == 20
    # the hand-written JSON is exactly what the declared response model would write
    assert SodBatchOut.model_validate(body).model_dump(mode="json") == body
    assert body["items"][0]["signed_at"].endswith("Z")
    verify_pa(base64.b64decode(body["items"][19]["sod"]), data_groups(19), trust=[csca], at=world.clock.now())
    single = world.client.post("/v1/ds/passport/sod", json={"data_groups": _b64(data_groups(20))},
                               headers=world["agency"].headers).json()
    assert SodOut.model_validate(single).model_dump(mode="json") == single
    service.close()
    assert [u.signed for u in usage_report(world.store)] == [21]


@pytest.mark.parametrize("party", ["coyeu", "foreign", "is_operator", "idcard_agency"])
def test_other_parties_may_not_sign(api, party: str) -> None:  # type: ignore[no-untyped-def]
    world, _, _ = api
    r = world.client.post("/v1/ds/passport/sod", json={"data_groups": _b64(data_groups(1))},
                          headers=world[party].headers)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_provider_person_may_not_sign_only_service_account(api) -> None:  # type: ignore[no-untyped-def]
    world, _, _ = api
    body = {"data_groups": _b64(data_groups(1))}
    assert world.client.post("/v1/ds/passport/sod", json=body, headers=world["provider"].headers).status_code == 403
    r = world.client.post(f"/v1/organisations/{world['provider'].organisation_id}/operators",
                          json={"name": "line-1", "kind": "service_account"}, headers=world["provider"].headers)
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    assert world.client.post("/v1/ds/passport/sod", json=body, headers=headers).status_code == 200


def test_exhausted_is_problem_json_naming_the_article(api) -> None:  # type: ignore[no-untyped-def]
    world, _, _ = api
    r = world.client.post("/v1/ds/idcard/sod", json={"data_groups": _b64(data_groups(1))},
                          headers=world["idcard_agency"].headers)
    # A valid request the line cannot be served now: 503 until the successor key is installed.
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["reason"] == "no-signing-key"
    assert "Art. 26.1b" in r.json()["detail"]


def test_signing_without_a_key_store_is_503(sqlite_world: World) -> None:
    r = sqlite_world.client.post("/v1/ds/passport/sod", json={"data_groups": _b64(data_groups(1))},
                                 headers=sqlite_world["agency"].headers)
    assert r.status_code == 503
    assert r.json()["reason"] == "service-unavailable"
    assert "not enabled" in r.json()["detail"]


def test_bad_input_is_422(api) -> None:  # type: ignore[no-untyped-def]
    world, _, _ = api
    r = world.client.post("/v1/ds/passport/sod", json={"data_groups": _b64({1: data_groups(1)[2]})},
                          headers=world["agency"].headers)
    assert r.status_code == 422
    assert r.json()["reason"] == "invalid-sod-input"


def test_batch_past_the_budget_returns_the_counted_sods(sqlite_world: World, keystore: KeyStore) -> None:
    from icao_pki.policy import Policy

    small = Policy.with_overrides({"passport.ds": {"max_signatures": 3}})
    label, csca = make_csca(keystore, sqlite_world.clock.now())
    DirectDsIssuer(sqlite_world.store, keystore, sqlite_world.clock, label, csca, policy=small).issue("passport")
    service = DsSigningService(sqlite_world.store, keystore, sqlite_world.clock, small, block_size=2)
    mount_signing(sqlite_world.client.app, service)  # type: ignore[arg-type]
    items = [{"data_groups": _b64(data_groups(i))} for i in range(5)]
    r = sqlite_world.client.post("/v1/ds/passport/sod/batch", json={"items": items},
                                 headers=sqlite_world["agency"].headers)
    assert r.status_code == 200, r.text
    assert (len(r.json()["items"]), r.json()["refused"]) == (3, 2)
    assert "Art. 23.1b" in r.json()["refused_detail"]
    service.close()
    assert [u.signed for u in usage_report(sqlite_world.store)] == [3]


def test_key_usage_report_is_exact_and_names_the_signing_key(api) -> None:  # type: ignore[no-untyped-def]
    from icao_pki.policy import DEFAULT_POLICY, Role

    world, service, _ = api
    items = [{"data_groups": _b64(data_groups(i))} for i in range(5)]
    assert world.client.post("/v1/ds/passport/sod/batch", json={"items": items},
                             headers=world["agency"].headers).status_code == 200
    r = world.client.get("/v1/ds/passport/keys", headers=world["agency"].headers)
    assert r.status_code == 200, r.text
    report = DsKeysOut.model_validate(r.json())
    assert report.article == DEFAULT_POLICY.limit(DocumentType.PASSPORT, Role.DS).article
    (key,) = report.keys
    held = service._leases[DocumentType.PASSPORT].reserved
    assert held > 0  # the running service holds the rest of its block
    assert (key.signed, key.reserved_unused, key.state, key.signing_now) == (5, held, "active", True)
    assert key.remaining == key.max_signatures - 5 - held and key.within_limit
    service.close()  # gives the held slots back: the count is then exactly what was signed
    (key,) = world.client.get("/v1/ds/passport/keys", headers=world["provider"].headers).json()["keys"]
    assert (key["signed"], key["reserved_unused"], key["remaining"]) == (5, 0, key["max_signatures"] - 5)
    assert [(u.signed, u.reserved_unused) for u in usage_report(world.store)] == [(5, 0)]


def test_key_usage_report_follows_the_switch_to_the_successor(sqlite_world: World, keystore: KeyStore) -> None:
    from icao_pki.policy import Policy

    small = Policy.with_overrides({"passport.ds": {"max_signatures": 3}})
    label, csca = make_csca(keystore, sqlite_world.clock.now())
    issuer = DirectDsIssuer(sqlite_world.store, keystore, sqlite_world.clock, label, csca, policy=small)
    first, second = issuer.issue("passport"), issuer.issue("passport")
    service = DsSigningService(sqlite_world.store, keystore, sqlite_world.clock, small, block_size=2)
    mount_signing(sqlite_world.client.app, service)  # type: ignore[arg-type]
    headers = sqlite_world["agency"].headers

    def report() -> dict[int, dict]:  # type: ignore[type-arg]
        r = sqlite_world.client.get("/v1/ds/passport/keys", headers=headers)
        assert r.status_code == 200, r.text
        return {k["key_id"]: k for k in r.json()["keys"]}

    assert [k["signing_now"] for k in report().values()] == [True, False]  # oldest first
    items = [{"data_groups": _b64(data_groups(i))} for i in range(4)]
    assert len(sqlite_world.client.post("/v1/ds/passport/sod/batch", json={"items": items},
                                        headers=headers).json()["items"]) == 4
    service.close()
    keys = report()
    assert (keys[first]["signed"], keys[first]["remaining"], keys[first]["state"]) == (3, 0, "retired")
    assert (keys[second]["signed"], keys[second]["remaining"]) == (1, 2)
    assert (keys[first]["signing_now"], keys[second]["signing_now"]) == (False, True)


@pytest.mark.parametrize(("party", "document_type", "status"), [
    ("coyeu", "passport", 403), ("foreign", "passport", 403), ("is_operator", "passport", 403),
    ("idcard_agency", "passport", 403), ("agency", "ePassport", 422), ("provider", "idcard", 200),
])
def test_key_usage_report_readers(api, party: str, document_type: str, status: int) -> None:  # type: ignore[no-untyped-def]
    world, _, _ = api
    r = world.client.get(f"/v1/ds/{document_type}/keys", headers=world[party].headers)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/problem+json")
    else:
        assert r.json()["keys"] == []  # no ID-card DS key in this world
