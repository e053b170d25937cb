"""A client for every party, so nobody hand-crafts CMS.

`PartyClient` builds the signed documents of `lifecycle_api.workflow` (request,
countersignature, rejection), signs them through the organisation's own `Signer` (its
PKCS#11 token in production) and calls the API.  Refusals come back as `ApiRefusal`
carrying the problem+json document.  The `icao-pki client …` commands are thin wrappers.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from icao_pki.clock import Clock
from icao_pki.signer import Signer

from .errors import LifecycleError
from .signed_documents import build_signed_document


class ApiRefusal(LifecycleError):
    """The service answered with a problem document."""

    kind = "api-refusal"

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        reason = problem.get("reason")
        article = problem.get("article")
        prefix = f"{article}: " if article else ""
        super().__init__(f"HTTP {status} {reason or ''}: {prefix}{problem.get('detail') or problem.get('title')}".strip())


@dataclass
class PartyClient:
    """One organisation's operator: its bearer token and its official-use signing key and certificate."""

    http: httpx.Client  # base_url set; an ASGI TestClient works too
    token: str
    organisation_id: int
    clock: Clock
    signer: Signer | None = None
    certificate_der: bytes | None = None

    # --- transport -------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {self.token}"})
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ApiRefusal(response.status_code, problem if isinstance(problem, dict) else {"detail": problem})
        return response.json()

    def sign(self, content: dict[str, Any]) -> str:
        """Canonical UTF-8 JSON, signed now with the organisation's certificate; base64 DER."""
        if self.signer is None or self.certificate_der is None:
            raise LifecycleError("this client has no signing key: configure the organisation's key and certificate")
        data = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        der = build_signed_document(data, self.signer, self.certificate_der, self.clock.now())
        return base64.b64encode(der).decode()

    # --- the workflow ----------------------------------------------------------------------

    def submit(self, request_type: str, payload: dict[str, Any], document_type: str | None = None) -> dict[str, Any]:
        content = {
            "kind": "request",
            "organisation_id": self.organisation_id,
            "request_type": request_type,
            "document_type": document_type,
            "payload": payload,
            "nonce": secrets.token_hex(16),
        }
        return self._call("POST", "/v1/requests", {"document": self.sign(content)})

    def countersign(self, request_id: str) -> dict[str, Any]:
        """Countersign exactly the document the applicant signed (its digest is read from the request)."""
        request = self.request(request_id)
        applications = [s for s in request["signatures"] if s["purpose"] == "application"]
        if len(applications) != 1:
            raise LifecycleError(f"request {request_id} has {len(applications)} application signatures")
        content = {
            "kind": "countersignature",
            "organisation_id": self.organisation_id,
            "request_id": request_id,
            "application_sha256": applications[0]["content_sha256"],
        }
        return self._call("POST", f"/v1/requests/{request_id}/countersign", {"document": self.sign(content)})

    def reject(self, request_id: str, reason: str) -> dict[str, Any]:
        content = {"kind": "rejection", "organisation_id": self.organisation_id, "request_id": request_id,
                   "reason": reason}
        return self._call("POST", f"/v1/requests/{request_id}/reject", {"document": self.sign(content)})

    def act(self, request_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/requests/{request_id}/act")

    # --- reading ---------------------------------------------------------------------------

    def request(self, request_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/requests/{request_id}")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/requests")

    def queue(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/queue")

    def notifications(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/notifications")

    def overdue(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/requests/overdue")

    def audit_verify(self) -> dict[str, Any]:
        return self._call("GET", "/v1/audit/verify")
