"""Deny by default: every party × every endpoint, plus anonymous and forged callers.

The expected table is written here independently of the code; a route added to the app
without a row here fails `test_authorization_matrix_covers_every_route`.
"""

from __future__ import annotations

import base64
import itertools

import pytest
from fastapi import APIRouter, FastAPI

from lifecycle_api.app import PUBLIC_PATHS
from lifecycle_api.auth import assert_every_route_authorized, iter_routes
from tests.api.world import World

PARTY_KEYS = {"provider": "provider", "agency": "agency", "coyeu": "coyeu", "foreign_state": "foreign",
              "is_operator": "is_operator"}
ALL = frozenset(PARTY_KEYS)
PUBLIC = None
_counter = itertools.count()

#: (method, path, parties allowed)
MATRIX: list[tuple[str, str, frozenset[str] | None]] = [
    ("GET", "/v1/health", PUBLIC),
    ("POST", "/v1/organisations", frozenset({"provider"})),
    ("GET", "/v1/organisations", frozenset({"provider"})),
    ("GET", "/v1/organisations/{organisation_id}", ALL),
    ("POST", "/v1/organisations/{organisation_id}/certificates", frozenset({"provider"})),
    ("POST", "/v1/organisations/{organisation_id}/operators", frozenset({"provider"})),
    ("POST", "/v1/trust/crls", frozenset({"provider"})),
    ("POST", "/v1/requests", frozenset({"agency", "foreign_state", "is_operator"})),
    ("GET", "/v1/requests", ALL),
    ("GET", "/v1/requests/overdue", frozenset({"provider"})),
    ("GET", "/v1/requests/{request_id}", ALL),
    ("POST", "/v1/requests/{request_id}/countersign", frozenset({"coyeu"})),
    ("POST", "/v1/requests/{request_id}/reject", frozenset({"coyeu", "provider"})),
    ("POST", "/v1/requests/{request_id}/act", frozenset({"provider"})),
    ("GET", "/v1/queue", frozenset({"coyeu", "provider"})),
    ("GET", "/v1/notifications", ALL),
    ("GET", "/v1/audit/verify", frozenset({"provider"})),
    ("POST", "/v1/ceremonies", frozenset({"provider"})),
    ("POST", "/v1/ceremonies/{request_id}/approve", frozenset({"provider"})),
    ("POST", "/v1/ds/keys", frozenset({"agency"})),
    ("POST", "/v1/is/keys", frozenset({"agency", "is_operator"})),
    ("POST", "/v1/ds/{document_type}/sod", frozenset({"agency", "provider"})),
    ("POST", "/v1/ds/{document_type}/sod/batch", frozenset({"agency", "provider"})),
    ("GET", "/v1/ds/{document_type}/keys", frozenset({"agency", "provider"})),
    ("POST", "/v1/organisations/{organisation_id}/cvca", frozenset({"provider"})),
    ("POST", "/v1/cv/foreign-certificates", frozenset({"provider"})),
    ("POST", "/v1/publication/master-list", frozenset({"provider"})),
    ("GET", "/v1/certificates", ALL),
    ("GET", "/v1/certificates/{certificate_id}", ALL),
    ("GET", "/v1/pub", PUBLIC),
    ("GET", "/v1/pub/objects/{object_id}", PUBLIC),
    ("GET", "/v1/pub/crl/{document_type}", PUBLIC),
    ("GET", "/v1/pub/master-list", PUBLIC),
    ("GET", "/v1/pub/trusted-roots", PUBLIC),
]
#: FastAPI's own documentation routes, public and not part of the API
DOCS_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _body(path: str) -> dict | None:
    junk = base64.b64encode(b"\x30\x00").decode()
    if path == "/v1/organisations":
        return {"name": f"Org {next(_counter)}", "party_type": "is_operator", "country": "VN"}
    if path.endswith("/operators"):
        return {"name": f"op-{next(_counter)}"}
    if path.endswith("/certificates") or path.endswith("/crls"):
        return {"der": junk}
    if path.startswith("/v1/requests"):
        return {"document": junk}
    if path == "/v1/ceremonies":
        return {"kind": "csca", "document_type": "passport"}
    if path in ("/v1/ds/keys", "/v1/is/keys"):
        return {"document_type": "passport"}
    if path.endswith("/cvca"):
        return {"der": junk}
    if path == "/v1/cv/foreign-certificates":
        return {"der": junk, "request_id": "00000000-0000-0000-0000-0"}
    if path == "/v1/publication/master-list":
        return {}
    return None


def _call(world: World, method: str, path: str, headers: dict[str, str]):
    concrete = path.format(organisation_id=world["provider"].organisation_id, request_id="00000000-0000-0000-0000-0",
                           object_id=1, certificate_id=1, document_type="passport")
    body = _body(path) if method == "POST" else None
    return world.client.request(method, concrete, json=body, headers=headers)


def test_authorization_matrix_covers_every_route(sqlite_world: World) -> None:
    app = sqlite_world.client.app
    served = {(m, p) for p, r in iter_routes(app.routes) if p not in DOCS_PATHS
              for m in (getattr(r, "methods", None) or ()) if m != "HEAD"}
    assert served == {(m, p) for m, p, _ in MATRIX}
    # a public route is exactly a matrix row without parties, and nothing else is public
    assert {p for _, p, allowed in MATRIX if allowed is None} == set(PUBLIC_PATHS) - DOCS_PATHS


@pytest.mark.parametrize(("method", "path", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_authorization_matrix(sqlite_world: World, method: str, path: str, allowed: frozenset[str] | None) -> None:
    world = sqlite_world
    outcomes: dict[str, int] = {}
    for party, key in PARTY_KEYS.items():
        r = _call(world, method, path, world[key].headers)
        outcomes[party] = r.status_code
        if allowed is None or party in allowed:
            assert r.status_code not in (401, 403), f"{party} refused on {method} {path}: {r.text}"
        else:
            assert r.status_code == 403, f"{party} not refused on {method} {path}: {r.status_code} {r.text}"
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["reason"] == "forbidden"
    for name, headers in (("anonymous", {}), ("forged", {"Authorization": "Bearer 0123456789abcdef.not-the-secret"}),
                          ("garbage", {"Authorization": "Bearer nodot"}), ("basic", {"Authorization": "Basic eDp5"})):
        r = _call(world, method, path, headers)
        if allowed is None:
            assert r.status_code in (200, 404), f"{name} on public {method} {path}: {r.status_code}"
        else:
            assert r.status_code == 401, f"{name} on {method} {path}: {r.status_code}"
            assert r.headers.get("www-authenticate") == "Bearer"


def test_authorization_forged_secret_for_real_token_id(sqlite_world: World) -> None:
    token_id = sqlite_world["provider"].token.split(".")[0]
    r = sqlite_world.client.get("/v1/organisations", headers={"Authorization": f"Bearer {token_id}.guess"})
    assert r.status_code == 401


def test_authorization_request_visible_only_to_its_parties(sqlite_world: World) -> None:
    world = sqlite_world
    rid = world.submit().json()["id"]
    visible = {"provider", "agency", "coyeu"}
    for key in ("provider", "agency", "coyeu", "agency_mod", "coyeu_mod", "idcard_agency", "foreign", "is_operator"):
        r = world.client.get(f"/v1/requests/{rid}", headers=world[key].headers)
        assert r.status_code == (200 if key in visible else 404), key
        listed = [x["id"] for x in world.client.get("/v1/requests", headers=world[key].headers).json()]
        assert (rid in listed) == (key in visible), key


def test_authorization_party_sees_only_its_own_organisation(sqlite_world: World) -> None:
    world = sqlite_world
    own = world["agency"].organisation_id
    assert world.client.get(f"/v1/organisations/{own}", headers=world["agency"].headers).status_code == 200
    other = world["coyeu"].organisation_id
    assert world.client.get(f"/v1/organisations/{other}", headers=world["agency"].headers).status_code == 404


def test_authorization_unguarded_route_stops_the_app() -> None:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/leak")
    def leak() -> dict:
        return {}

    app.include_router(router)
    with pytest.raises(RuntimeError, match="/v1/leak"):
        assert_every_route_authorized(app.routes, PUBLIC_PATHS)


def test_authorization_a_token_accepted_before_is_refused_once_its_operator_is_deactivated(sqlite_world: World) -> None:
    """The verified-credential cache (lifecycle_api.credentials) must not outlive the operator row."""
    from lifecycle_api.store import Operator

    provider = sqlite_world["provider"]
    for _ in range(2):  # the second call is answered from the cache
        assert sqlite_world.client.get("/v1/organisations", headers=provider.headers).status_code == 200
    token_id = provider.token.split(".")[0]
    with sqlite_world.store.transaction() as tx:
        operator = tx.operator_by_token_id(token_id)
        assert operator is not None
        tx.session.get(Operator, operator.id).active = False
    r = sqlite_world.client.get("/v1/organisations", headers=provider.headers)
    assert r.status_code == 401 and r.json()["reason"] == "unauthenticated"
