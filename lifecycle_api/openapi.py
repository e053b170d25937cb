"""The OpenAPI document: every operation with a summary, examples and its problem+json errors.

FastAPI derives schemas from the routes; this module adds what a reader of `/docs` needs
and the code cannot infer (issue 6 §10): one request and/or response example per
operation (`EXAMPLES`, keyed by method and path, so the routers — including the DS signing
routes of `lifecycle_api/signing/` — stay free of documentation data), a summary where a
route has none, and the RFC 9457 problem documents each operation can answer with (a
`Problem` schema, one example per status).  `install_openapi(app, public_paths)` is called
by `create_app`; `tests/api/test_openapi.py` fails for any operation without an example.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .problems import PROBLEM_BASE, PROBLEM_JSON

REQ_ID = "6f1c2a9e-3b7d-4c1e-9a58-2d4f0e8b7c11"
B64_CMS = "MIIGzQYJKoZIhvcNAQcCoIIGvjCCBroCAQExDzANBglghkgBZQMEAgEFADCB..."
B64_CERT = "MIICnDCCAkKgAwIBAgIUEL5Ri8pBmOvj5cYH0Jm7G8oOb2gwCgYIKoZIzj0EAwIw..."
B64_CV = "fyGCAbZ/ToIBbF8pAQBCDVZOQ1ZDQTAwMDAxfkkNBgoEAH8ABwICAgICA4YhBI..."
SHA = "3f8a1c0d5e7b9a2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5"
T0 = "2026-03-02T09:00:00Z"

SIGNATURE = {"organisation_id": 3, "purpose": "application", "signing_time": T0, "signer_fingerprint_sha256": SHA,
             "content_sha256": SHA}
REQUEST = {
    "id": REQ_ID, "request_type": "ds_certificate", "document_type": "passport", "applicant_organisation_id": 3,
    "ministry": "Bộ Công an", "state": "submitted",
    "payload": {"hsm_label": "passport-ds-00007", "csr": "MIIBKzCB0gIBADBw..."},
    "deadline": None, "rejection_reason": None, "result": None, "created_at": T0, "updated_at": T0,
    "signatures": [SIGNATURE],
}
CERTIFICATE = {
    "certificate_id": 12, "role": "ds", "document_type": "passport", "format": "x509",
    "serial": "5d0b3e1f9a7c2b44", "chr": None, "subject": "CN=Document Signer 00007,O=Cục Quản lý xuất nhập cảnh,C=VN",
    "issuer": "CN=CSCA Viet Nam,O=Ban Cơ yếu Chính phủ,C=VN", "not_before": "2026-03-02T09:00:00+00:00",
    "not_after": "2036-06-02T09:00:00+00:00", "fingerprint_sha256": SHA, "status": "active", "der": B64_CERT,
}
CV_CERTIFICATE = {**CERTIFICATE, "certificate_id": 21, "role": "dvca", "format": "cv", "serial": None,
                  "chr": "VNDVPP00002", "subject": "VNDVPP00002", "issuer": "VNCVCA00001", "der": B64_CV}
ORGANISATION = {"id": 3, "name": "Cục Quản lý xuất nhập cảnh", "party_type": "agency", "country": "VN",
                "ministry": "Bộ Công an", "document_types": ["passport"], "auto_countersign": False,
                "webhook_url": "https://xnc.example.gov.vn/icao-pki/notifications", "created_at": T0}
PUBLISHED = {"id": 4, "kind": "crl", "document_type": "passport", "name": "CRL of CSCA 00001 #2", "sha256": SHA,
             "published_at": "2026-03-02T09:00:00+00:00", "url": "/v1/pub/objects/4"}
SOD_OUT = {"sod": "dzCCBQ8GCSqGSIb3DQEHAqCCBQAwggT8AgEDMQ8wDQYJYIZIAWUDBAIBBQAw...", "key_id": 7,
           "key_label": "passport-ds-00007", "certificate_id": 12, "signed_at": T0}
SOD_IN = {"dg_hashes": {"1": "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=",
                        "2": "ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8="}}


def _countersigned(**changes: Any) -> dict[str, Any]:
    row = {**REQUEST, "state": "countersigned",
           "signatures": [SIGNATURE, {**SIGNATURE, "organisation_id": 4, "purpose": "countersignature"}]}
    return {**row, **changes}


#: (method, path) -> summary (used when the route has none), request and/or response example
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/v1/health"): {"response": {"status": "ok", "time": T0, "database": "postgresql",
                                         "request_types": ["ds_certificate", "is_certificate", "revocation"]}},
    ("get", "/v1/organisations"): {"response": [ORGANISATION]},
    ("post", "/v1/organisations"): {
        "request": {"name": "Cục Quản lý xuất nhập cảnh", "party_type": "agency", "country": "VN",
                    "ministry": "Bộ Công an", "document_types": ["passport"]},
        "response": ORGANISATION},
    ("get", "/v1/organisations/{organisation_id}"): {"response": ORGANISATION},
    ("post", "/v1/organisations/{organisation_id}/certificates"): {
        "request": {"der": B64_CERT, "hsm_label": None},
        "response": {"id": 5, "organisation_id": 3, "fingerprint_sha256": SHA,
                     "subject": "CN=Cục Quản lý xuất nhập cảnh,UID=MNS:A0001,O=Bộ Công an,C=VN",
                     "issuer": "CN=Cục Chứng thực số và Bảo mật thông tin,O=Ban Cơ yếu Chính phủ,C=VN",
                     "serial": "1a2b3c4d", "not_before": T0, "not_after": "2031-03-02T09:00:00Z", "hsm_label": None}},
    ("post", "/v1/organisations/{organisation_id}/operators"): {
        "request": {"name": "xnc-operator-1", "kind": "operator"},
        "response": {"id": 9, "organisation_id": 3, "name": "xnc-operator-1", "kind": "operator",
                     "token": "tok_5Jq2V8nX.f3b1c0e9a7d54c2b8e6f0a1d3c5b7e9f"}},
    ("post", "/v1/trust/crls"): {
        "request": {"der": "MIIBxjCBrwIBATAKBggqhkjOPQQDAjBV..."},
        "response": {"id": 2, "issuer_name": "CN=Cục Chứng thực số và Bảo mật thông tin,O=Ban Cơ yếu Chính phủ,C=VN",
                     "crl_number": 42, "this_update": T0, "next_update": "2026-03-09T09:00:00Z"}},
    ("get", "/v1/requests"): {"response": [REQUEST]},
    ("post", "/v1/requests"): {
        "description": "The document is a CMS SignedData over UTF-8 JSON "
                       '`{"kind": "request", "organisation_id": 3, "request_type": "ds_certificate", '
                       '"document_type": "passport", "payload": {"hsm_label": "passport-ds-00007", "csr": "…"}, '
                       '"nonce": "…"}` signed with the applicant\'s official-use certificate.',
        "request": {"document": B64_CMS}, "response": REQUEST},
    ("get", "/v1/requests/overdue"): {"response": [{**REQUEST, "request_type": "revocation",
                                                    "payload": {"certificate_id": 12, "reason": "key-compromise"},
                                                    "deadline": "2026-03-03T02:00:00Z"}]},
    ("get", "/v1/requests/{request_id}"): {"response": _countersigned()},
    ("post", "/v1/requests/{request_id}/countersign"): {
        "description": "The document signs "
                       '`{"kind": "countersignature", "organisation_id": 4, "request_id": "…", '
                       '"application_sha256": "<content_sha256 of the application signature>"}`.  When the '
                       "Provider's policy acts on this request type at once, the answer is already completed.",
        "request": {"document": B64_CMS}, "response": _countersigned()},
    ("post", "/v1/requests/{request_id}/reject"): {
        "description": 'The document signs `{"kind": "rejection", "organisation_id": 4, "request_id": "…", '
                       '"reason": "…"}`.',
        "request": {"document": B64_CMS},
        "response": {**REQUEST, "state": "rejected", "rejection_reason": "CSR subject does not name the Agency"}},
    ("post", "/v1/requests/{request_id}/act"): {
        "response": _countersigned(state="completed", result={**CERTIFICATE, "hsm_label": "passport-ds-00007",
                                                               "key_id": 7, "max_signatures": 100000})},
    ("get", "/v1/queue"): {"response": [REQUEST]},
    ("get", "/v1/notifications"): {"response": [{
        "id": 17, "event": "request.completed", "request_id": REQ_ID,
        "payload": {"event": "request.completed", "request_id": REQ_ID, "request_type": "ds_certificate",
                    "state": "completed"},
        "state": "delivered", "attempts": 1, "created_at": T0, "delivered_at": T0, "last_error": None}]},
    ("get", "/v1/audit/verify"): {"response": {"ok": True, "entries": 1284, "head_hash": SHA,
                                               "first_broken_seq": None, "reason": None}},
    ("post", "/v1/ceremonies"): {
        "request": {"kind": "csca", "document_type": "passport", "key_spec": "brainpoolP384r1",
                    "validity_months": 120, "key_usage_months": 36},
        "response": {**REQUEST, "request_type": "ceremony", "applicant_organisation_id": 1,
                     "ministry": "Ban Cơ yếu Chính phủ", "signatures": [],
                     "payload": {"kind": "csca", "document_type": "passport", "key_spec": "brainpoolP384r1",
                                 "proposed_by": 1}}},
    ("post", "/v1/ceremonies/{request_id}/approve"): {
        "response": {**REQUEST, "request_type": "ceremony", "state": "completed", "signatures": [],
                     "result": {"key_id": 3, "hsm_label": "passport-csca-00002", "certificate_id": 14,
                                "link_certificate_id": 15, "serial": "10a7946c2fab4281"}}},
    ("post", "/v1/ds/keys"): {
        "request": {"document_type": "passport", "key_spec": "brainpoolP256r1"},
        "response": {"key_id": 7, "hsm_label": "passport-ds-00007", "document_type": "passport",
                     "csr": "MIIBKzCB0gIBADBwMQswCQYDVQQGEwJWTjEg..."}},
    ("post", "/v1/is/keys"): {
        "description": "Generates the caller's IS key in the service's HSM on the curve of the DV chain and "
                       "returns its CV request (inner signature by the new key, CHR: the holder's next, CAR: our "
                       "DV valid now).  Submit it as an `is_certificate` request; when that request completes the "
                       "key becomes active, linked to its certificate, and the schedules renew it before expiry.",
        "request": {"document_type": "passport"},
        "response": {"key_id": 11, "hsm_label": "passport-is-00011", "document_type": "passport",
                     "spec": "brainpoolP256r1", "chr": "VNISP000500001", "car": "VNDVPVN00004",
                     "cv_request": "fyGCAT1/TpIBL18pAQBCDFZORFZQVk4wMDAwNH9JggEVBgoEAH8ABwICAgID..."}},
    ("post", "/v1/organisations/{organisation_id}/cvca"): {
        "description": "Registers a foreign state's self-signed CVCA, or a link certificate from one of its CVCAs "
                       "already registered (verified against it), for the EAC hierarchy named by `document_type` "
                       "(`passport` when omitted).  A link certificate must be registered for the document type of "
                       "the CVCA it links from.  DV requests abroad go to the state's newest CVCA of the request's "
                       "document type; foreign DV requests must be authenticated by one of that type.",
        "request": {"der": B64_CV, "document_type": "idcard"},
        "response": {**CV_CERTIFICATE, "role": "cvca", "document_type": "idcard", "chr": "UTCVCA00001",
                     "issuer": "UTCVCA00001", "subject": "UTCVCA00001"}},
    ("post", "/v1/cv/foreign-certificates"): {
        "request": {"request_id": REQ_ID, "der": B64_CV},
        "response": {**CV_CERTIFICATE, "issuer": "UTCVCA00001"}},
    ("post", "/v1/publication/master-list"): {
        "request": {"document_type": "passport"},
        "response": {**PUBLISHED, "id": 9, "kind": "master_list", "name": "Master List #3", "entries": 4,
                     "url": "/v1/pub/objects/9"}},
    ("get", "/v1/certificates"): {"response": [CERTIFICATE, CV_CERTIFICATE]},
    ("get", "/v1/certificates/{certificate_id}"): {"response": CERTIFICATE},
    ("get", "/v1/pub"): {"response": [PUBLISHED]},
    ("get", "/v1/pub/objects/{object_id}"): {"binary": ("application/pkix-cert", "DER certificate, CRL or CMS")},
    ("get", "/v1/pub/crl/{document_type}"): {"binary": ("application/pkix-crl", "DER CertificateList")},
    ("get", "/v1/pub/master-list"): {"binary": ("application/octet-stream", "DER CMS SignedData (CscaMasterList)")},
    ("get", "/v1/pub/trusted-roots"): {"response": [{**PUBLISHED, "kind": "csca", "name": "CSCA 00001",
                                                     "subject": "CN=CSCA Viet Nam,O=Ban Cơ yếu Chính phủ,C=VN",
                                                     "not_after": "2041-03-02T09:00:00+00:00", "der": B64_CERT}]},
    ("post", "/v1/ds/{document_type}/sod"): {
        "summary": "Sign one document's EF.SOD with the active DS key (Agency or Provider service account)",
        "description": "Data-group TLVs (`data_groups`) or their SHA-256 hashes (`dg_hashes`), base64, keyed by "
                       "DG number.  Each signature is counted against the key's budget before it is made.",
        "request": SOD_IN, "response": SOD_OUT},
    ("post", "/v1/ds/{document_type}/sod/batch"): {
        "summary": "Sign up to 1000 EF.SODs in one call; a batch refused midway returns the SODs made",
        "request": {"items": [SOD_IN, SOD_IN]},
        "response": {"items": [SOD_OUT, {**SOD_OUT, "sod": "dzCCBQ8GCSqGSIb3DQEHAqCCBQAwggT8AgEDMQ8w..."}],
                     "refused": 0, "refused_detail": None}},
    ("get", "/v1/ds/{document_type}/keys"): {
        "summary": "Every DS key of the document type with its exact count: signed, reserved but unused, left",
        "response": {"document_type": "passport", "article": "Art. 23.1b", "at": "2026-03-02T09:00:00Z", "keys": [
            {"key_id": 7, "key_label": "passport-ds-00007", "state": "retired", "certificate_id": 41,
             "signed": 100000, "reserved_unused": 0, "max_signatures": 100000, "remaining": 0,
             "usage_not_before": "2025-11-20T08:00:00Z", "usage_not_after": "2026-02-20T08:00:00Z",
             "within_limit": True, "signing_now": False},
            {"key_id": 8, "key_label": "passport-ds-00008", "state": "active", "certificate_id": 44,
             "signed": 61408, "reserved_unused": 512, "max_signatures": 100000, "remaining": 38080,
             "usage_not_before": "2026-02-01T08:00:00Z", "usage_not_after": "2026-05-01T08:00:00Z",
             "within_limit": True, "signing_now": True}]}},
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `reason` is a stable code, `article` names the decree's article.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string", "description": "stable code, e.g. certificate-revoked, stale-state"},
        "article": {"type": "string", "description": "Decree 68/2024 article for policy refusals, e.g. Art. 23.1b"},
        "limit": {"description": "the decree's limit a policy refusal exceeded"},
        "data": {"type": "object", "description": "the error's fields"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "schema validation errors"},
    },
}


def _problem(status: int, title: str, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": PROBLEM_BASE + reason, "title": title, "status": status, "detail": detail,
            "instance": "/v1/requests", "reason": reason, **extra}


PROBLEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("Malformed signed document", _problem(400, "Malformed signed document", "malformed",
                                                  "not a CMS SignedData with one signer")),
    "401": ("No or a bad bearer token", _problem(401, "Authentication required", "authentication-failed",
                                                 "a bearer token is required")),
    "403": ("The caller's party may not do this", _problem(
        403, "Forbidden", "forbidden", "a foreign_state may not call POST /v1/ds/keys",
        data={"party_type": "foreign_state", "allowed": ["agency"]})),
    "404": ("Not found, or not visible to the caller", _problem(404, "Not found", "not-found",
                                                               f"request {REQ_ID} does not exist")),
    "409": ("Replayed document or concurrent change", _problem(
        409, "State changed", "stale-state", f"request {REQ_ID} is completed, not submitted")),
    "422": ("Refused: decree limit (naming the article), signature under Art. 30–32, or invalid input", _problem(
        422, "Refused by Decree 68/2024", "policy-violation",
        "Art. 23.1b: DS private-key usage of 4 months exceeds 3 months", article="Art. 23.1b")),
    "500": ("Unexpected failure (logged, not detailed)", _problem(
        500, "Internal error", "internal", "an unexpected error occurred; it has been logged")),
    "503": ("The HSM key store or a usable key is missing", _problem(
        503, "Service unavailable", "service-unavailable",
        "DS signing is not enabled on this instance (it needs the HSM key store)")),
}


def _error_statuses(method: str, path: str, public: bool, has_body: bool) -> list[str]:
    statuses = ["422", "500"] if public else ["401", "403", "422", "500"]
    if "{" in path:
        statuses.append("404")
    if has_body and method == "post" and not public:
        statuses += ["409"]
    if path in ("/v1/requests", "/v1/requests/{request_id}/countersign", "/v1/requests/{request_id}/reject"):
        statuses.append("400")
    if path.startswith(("/v1/ds/", "/v1/is/", "/v1/ceremonies")) or path == "/v1/publication/master-list":
        statuses.append("503")
    return sorted(set(statuses))


def _success(responses: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    code = next(c for c in sorted(responses) if c.startswith("2"))
    return code, responses[code]


def enrich(schema: dict[str, Any], public_paths: frozenset[str]) -> dict[str, Any]:
    """Add examples, summaries and problem responses to a generated OpenAPI document (in place)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            spec = EXAMPLES.get((method, path), {})
            if spec.get("summary"):
                op["summary"] = spec["summary"]
            if spec.get("description") and not op.get("description"):
                op["description"] = spec["description"]
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and "request" in spec:
                body["example"] = spec["request"]
            _code, ok = _success(op["responses"])
            if "response" in spec:
                ok.setdefault("content", {}).setdefault("application/json", {})["example"] = spec["response"]
            if "binary" in spec:
                media, what = spec["binary"]
                ok["content"] = {media: {"schema": {"type": "string", "format": "binary"},
                                         "example": f"<{what}>"}}
                ok["description"] = what
            for status in _error_statuses(method, path, path in public_paths, body is not None):
                description, example = PROBLEMS[status]
                example = copy.deepcopy(example)
                example["instance"] = path
                op["responses"][status] = {
                    "description": description,
                    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"},
                                               "example": example}},
                }
    # FastAPI's own validation-error schemas are no longer referenced: errors are problem+json
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    return schema


def install_openapi(app: FastAPI, public_paths: frozenset[str]) -> None:
    """Serve the enriched document at /openapi.json (and so in /docs)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            app.openapi_schema = enrich(schema, public_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
