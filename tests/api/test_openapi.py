"""The OpenAPI document describes every operation with a summary, an example and its
problem+json errors; /docs and /openapi.json are served (issue 6 §10)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from lifecycle_api.app import PUBLIC_PATHS, create_app
from lifecycle_api.auth import iter_routes
from lifecycle_api.settings import Settings
from tests.api.world import World

AUTO_SUMMARY_WORDS = 2  # FastAPI's fallback summary is the function name title-cased ("Sign Sod")


def _operations(document: dict[str, Any]):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def _has_example(content: dict[str, Any]) -> bool:
    return any("example" in media or media.get("examples") for media in content.values())


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def test_every_operation_has_summary_example_and_problems(world: World) -> None:
    document = world.client.get("/openapi.json").json()
    missing: list[str] = []
    operations = list(_operations(document))
    for method, path, op in operations:
        name = f"{method.upper()} {path}"
        summary = op.get("summary") or ""
        if len(summary.split()) <= AUTO_SUMMARY_WORDS:
            missing.append(f"{name}: no real summary ({summary!r})")
        request = _has_example(op.get("requestBody", {}).get("content", {}))
        ok = [r for code, r in op["responses"].items() if code.startswith("2")]
        response = any(_has_example(r.get("content", {})) for r in ok)
        if not (request or response):
            missing.append(f"{name}: no example")
        if "requestBody" in op and not request:
            missing.append(f"{name}: request body without example")
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        if not errors:
            missing.append(f"{name}: no error responses")
        for code, r in errors.items():
            media = r.get("content", {}).get("application/problem+json")
            if media is None or media["schema"] != {"$ref": "#/components/schemas/Problem"}:
                missing.append(f"{name}: {code} is not problem+json")
            elif media["example"]["status"] != int(code):
                missing.append(f"{name}: {code} example has status {media['example']['status']}")
        if path not in PUBLIC_PATHS and not {"401", "403"} <= set(errors):
            missing.append(f"{name}: 401/403 not documented")
    assert missing == []
    # every route of the app is in the document (DS signing included), every $ref resolves
    routed = {(m.lower(), p) for p, r in iter_routes(world.client.app.routes)
              for m in (getattr(r, "methods", None) or ()) if getattr(r, "include_in_schema", False)} - {
        ("head", p) for p in PUBLIC_PATHS}
    documented = {(m, p) for m, p, _ in operations}
    assert routed - documented == set()
    assert ("post", "/v1/ds/{document_type}/sod") in documented
    schemas = document["components"]["schemas"]
    assert {r.rsplit("/", 1)[1] for r in _refs(document)} <= set(schemas)


def test_policy_refusal_matches_documented_problem(sqlite_world: World) -> None:
    r = sqlite_world.submit(payload={"months": 4})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    document = sqlite_world.client.get("/openapi.json").json()
    example = document["paths"]["/v1/requests"]["post"]["responses"]["422"]["content"][
        "application/problem+json"]["example"]
    assert set(example) <= set(document["components"]["schemas"]["Problem"]["properties"])
    assert set(r.json()) <= set(document["components"]["schemas"]["Problem"]["properties"])


def test_docs_and_openapi_json_are_served(tmp_path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/docs.db"))
    with TestClient(app) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        document = spec.json()
        assert document["openapi"].startswith("3.") and document["info"]["title"]
        post = document["paths"]["/v1/requests"]["post"]
        assert post["requestBody"]["content"]["application/json"]["example"]["document"]
        assert json.dumps(document, ensure_ascii=False).count("application/problem+json") > 30
