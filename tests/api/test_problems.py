"""Every error leaves the API as RFC 9457 problem+json."""

from __future__ import annotations

from tests.api.world import World

PROBLEM = "application/problem+json"


def test_problems_unknown_route(sqlite_world: World) -> None:
    r = sqlite_world.client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == 404 and r.json()["instance"] == "/v1/nothing-here"


def test_problems_schema_validation(sqlite_world: World) -> None:
    r = sqlite_world.client.post("/v1/requests", json={"document": "%%% not base64"},
                                 headers=sqlite_world["agency"].headers)
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"].endswith("/validation") and r.json()["errors"]


def test_problems_malformed_document_is_400(sqlite_world: World) -> None:
    r = sqlite_world.client.post("/v1/requests", json={"document": "MAA="}, headers=sqlite_world["agency"].headers)
    assert r.status_code == 400
    assert r.json()["reason"] == "malformed"


def test_problems_missing_organisation_is_404(sqlite_world: World) -> None:
    r = sqlite_world.client.post("/v1/organisations/999/operators", json={"name": "x"},
                                 headers=sqlite_world["provider"].headers)
    assert r.status_code == 404 and r.json()["reason"] == "not-found"


def test_problems_duplicate_organisation_is_409(sqlite_world: World) -> None:
    body = {"name": "Cục Quản lý xuất nhập cảnh", "party_type": "agency", "country": "VN", "ministry": "Bộ Công an",
            "document_types": ["passport"]}
    r = sqlite_world.client.post("/v1/organisations", json=body, headers=sqlite_world["provider"].headers)
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM)


def test_problems_agency_without_ministry_is_422(sqlite_world: World) -> None:
    body = {"name": "Cơ quan lạc", "party_type": "agency", "country": "VN", "document_types": ["passport"]}
    r = sqlite_world.client.post("/v1/organisations", json=body, headers=sqlite_world["provider"].headers)
    assert r.status_code == 422 and "ministry" in r.json()["detail"]


def test_problems_health_is_public(sqlite_world: World) -> None:
    r = sqlite_world.client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["database"] == "sqlite" and "echo" in r.json()["request_types"]


def test_problems_openapi_lists_every_v1_route(sqlite_world: World) -> None:
    spec = sqlite_world.client.get("/openapi.json").json()
    assert "/v1/requests/{request_id}/countersign" in spec["paths"]
    assert "/v1/audit/verify" in spec["paths"]
