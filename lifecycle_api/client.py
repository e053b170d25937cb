"""A client for every party, so nobody hand-crafts CMS.

`PartyClient` builds the signed documents of `lifecycle_api.workflow` (request,
countersignature, rejection), signs them through the organisation's own `Signer` (its
PKCS#11 token in production) and calls the API.  It covers every flow of REQUIREMENTS.md
§3: DS (`request_ds_certificate`: the service generates the DS key and its CSR, the
Agency signs the request), IS and IS renewal (`request_is_certificate` with a CV request
or an authenticated one; `request_is_certificate_in_hsm`: the service generates the IS key
in its HSM, so its schedules can renew it), a foreign DV's request brought in by the Agency
(`request_foreign_dv_certificate`), our DV abroad (`request_dv_abroad`, then
`exported_cv_request` and `import_foreign_certificate`), revocation (`request_revocation`,
Art. 17 reasons), key ceremonies (`propose_ceremony`, `approve_ceremony`) and the results
(`certificates`, `certificate`).  Refusals come back as `ApiRefusal`
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
        try:
            response = self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {self.token}"})
        except httpx.TransportError as exc:
            raise LifecycleError(f"cannot reach the lifecycle API at {self.http.base_url}: {exc}") from None
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

    # --- the certificate flows -------------------------------------------------------------

    def ds_key(self, document_type: str, key_spec: str | None = None) -> dict[str, Any]:
        """A DS key generated in the service's HSM for this Agency, with its PKCS#10 request."""
        body: dict[str, Any] = {"document_type": document_type}
        if key_spec:
            body["key_spec"] = key_spec
        return self._call("POST", "/v1/ds/keys", body)

    def request_ds_certificate(self, document_type: str, key_spec: str | None = None,
                               **options: int | None) -> dict[str, Any]:
        """DS flow, first hop: ask for a DS key and CSR, then sign and submit the ds_certificate
        request for it (`options`: key_usage_months, validity_months)."""
        key = self.ds_key(document_type, key_spec)
        payload = {"hsm_label": key["hsm_label"], "csr": key["csr"],
                   **{k: v for k, v in options.items() if v is not None}}
        return self.submit("ds_certificate", payload, document_type)

    def request_is_certificate(self, cv_request: bytes, document_type: str,
                               validity_days: int | None = None) -> dict[str, Any]:
        """IS certificate, or its renewal when `cv_request` is authenticated by the current IS key."""
        payload: dict[str, Any] = {"cv_request": base64.b64encode(cv_request).decode()}
        if validity_days is not None:
            payload["validity_days"] = validity_days
        return self.submit("is_certificate", payload, document_type)

    def is_key(self, document_type: str, car: str | None = None) -> dict[str, Any]:
        """An IS key generated in the service's HSM for this organisation, with its CV request
        (CHR: our next, CAR: `car` or our DV valid now), ready to submit as is_certificate."""
        body: dict[str, Any] = {"document_type": document_type}
        if car:
            body["car"] = car
        return self._call("POST", "/v1/is/keys", body)

    def request_is_certificate_in_hsm(self, document_type: str, validity_days: int | None = None,
                                      car: str | None = None) -> dict[str, Any]:
        """IS flow with the key held by the service: ask for the key and its CV request, then
        sign and submit the is_certificate request for it.  Once issued, the service's
        schedules renew it before expiry without a human."""
        key = self.is_key(document_type, car)
        return self.request_is_certificate(base64.b64decode(key["cv_request"]), document_type, validity_days)

    def request_foreign_dv_certificate(self, cv_request: bytes, foreign_state_organisation_id: int,
                                       document_type: str, validity_days: int | None = None) -> dict[str, Any]:
        """A foreign DV's request, brought in by the Agency: authenticated by its state's CVCA
        (initial) or by the DV's current certificate from our CVCA (successive, TR-03139)."""
        payload: dict[str, Any] = {"cv_request": base64.b64encode(cv_request).decode(),
                                   "foreign_state_organisation_id": foreign_state_organisation_id}
        if validity_days is not None:
            payload["validity_days"] = validity_days
        return self.submit("foreign_dv_certificate", payload, document_type)

    def request_dv_abroad(self, foreign_state_organisation_id: int, document_type: str) -> dict[str, Any]:
        """Our DV certified by a foreign CVCA: the Provider generates the key and CV request."""
        return self.submit("dv_request_abroad", {"foreign_state_organisation_id": foreign_state_organisation_id},
                           document_type)

    def exported_cv_request(self, request_id: str) -> bytes:
        """The CV request of a completed dv_request_abroad, to send to the foreign state."""
        req = self.request(request_id)
        if req["request_type"] != "dv_request_abroad":
            raise LifecycleError(f"request {request_id} is a {req['request_type']} request, not dv_request_abroad")
        if req["state"] != "completed" or not (req.get("result") or {}).get("cv_request"):
            raise LifecycleError(f"request {request_id} is {req['state']}: its CV request is not generated yet")
        return base64.b64decode(req["result"]["cv_request"])

    def import_foreign_certificate(self, request_id: str, certificate: bytes) -> dict[str, Any]:
        """Install the certificate the foreign CVCA issued for our DV (Provider)."""
        return self._call("POST", "/v1/cv/foreign-certificates",
                          {"request_id": request_id, "der": base64.b64encode(certificate).decode()})

    def request_revocation(self, certificate_id: int, reason: str, invalidity_date: str | None = None,
                           document_type: str | None = None) -> dict[str, Any]:
        """Revocation request with an Art. 17 reason (`icao_pki.crl.RevocationReason` value)."""
        payload: dict[str, Any] = {"certificate_id": certificate_id, "reason": reason}
        if invalidity_date:
            payload["invalidity_date"] = invalidity_date
        return self.submit("revocation", payload, document_type)

    def propose_ceremony(self, kind: str, document_type: str, **options: Any) -> dict[str, Any]:
        """A key ceremony (csca | cvca | dvca), proposed by one Provider officer."""
        body = {"kind": kind, "document_type": document_type, **{k: v for k, v in options.items() if v is not None}}
        return self._call("POST", "/v1/ceremonies", body)

    def approve_ceremony(self, request_id: str) -> dict[str, Any]:
        """A second Provider officer approves: the key is generated and the certificates signed."""
        return self._call("POST", f"/v1/ceremonies/{request_id}/approve")

    def certificates(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/certificates")

    def certificate(self, certificate_id: int) -> dict[str, Any]:
        return self._call("GET", f"/v1/certificates/{certificate_id}")

    def ds_keys(self, document_type: str) -> dict[str, Any]:
        """Every DS key of the document type with its exact count (signed, reserved but unused)."""
        return self._call("GET", f"/v1/ds/{document_type}/keys")

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
