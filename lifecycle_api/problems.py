"""The one place that maps errors to HTTP: RFC 9457 problem+json.

Domain code raises typed errors carrying data (`LifecycleError`, `PolicyViolation`,
`SignedDocumentError`); this module chooses the status, and copies the article, reason and
data into the problem document so a client can act on them without parsing prose.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from icao_pki.policy import PolicyViolation

from .errors import (
    AuthenticationFailed,
    Conflict,
    CounterExhausted,
    Forbidden,
    HandlerFailed,
    InternalFailure,
    InvalidInput,
    LifecycleError,
    NotFound,
    ServiceUnavailable,
    StaleState,
)
from .signed_documents import MalformedDocument, SignedDocumentError, SignerNotRegistered, WrongParty

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://icao-pki.invalid/problems/"

log = logging.getLogger(__name__)

#: most specific first
STATUS: list[tuple[type[Exception], int, str]] = [
    (AuthenticationFailed, 401, "Authentication required"),
    (MalformedDocument, 400, "Malformed signed document"),
    (WrongParty, 403, "Signed by another organisation"),
    (SignerNotRegistered, 403, "Signer not registered"),
    (SignedDocumentError, 422, "Signature not valid under Art. 30–32"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (StaleState, 409, "State changed"),
    (ServiceUnavailable, 503, "Service unavailable"),
    (InternalFailure, 500, "Internal failure"),
    (CounterExhausted, 422, "Signature budget exhausted"),
    (InvalidInput, 422, "Invalid request"),
    (HandlerFailed, 500, "Provider action failed"),
    (LifecycleError, 400, "Refused"),
]


def problem(status: int, title: str, detail: str, kind: str, instance: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail, "instance": instance}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def lifecycle_problem(request: Request, exc: LifecycleError) -> JSONResponse:
    status, title = next((s, t) for cls, s, t in STATUS if isinstance(exc, cls))
    extra: dict[str, Any] = {"data": _jsonable(exc.data) or None}
    if isinstance(exc, SignedDocumentError):
        extra.update(reason=exc.reason, article=exc.article)
    else:
        extra["reason"] = exc.kind
        if isinstance(exc.data.get("article"), str):
            extra["article"] = exc.data["article"]
    kind = exc.reason if isinstance(exc, SignedDocumentError) else exc.kind
    return problem(status, title, exc.message, kind, request.url.path, **extra)


def policy_problem(request: Request, exc: PolicyViolation) -> JSONResponse:
    return problem(422, "Refused by Decree 68/2024", str(exc), "policy-violation", request.url.path,
                   article=exc.article, reason=exc.reason, limit=exc.limit)


def validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
    return problem(422, "Invalid request body", "the request does not match the schema", "validation",
                   request.url.path, errors=errors)


def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(exc.status_code, str(exc.detail), str(exc.detail), f"http-{exc.status_code}", request.url.path)


def unexpected_problem(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged", "internal",
                   request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LifecycleError, lifecycle_problem)  # type: ignore[arg-type]
    app.add_exception_handler(PolicyViolation, policy_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_problem)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_problem)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
