"""The request workflow of Art. 25 / 28: Agency signs → Cơ yếu unit countersigns → Provider acts.

These are the *decide* functions: each takes the step's one transaction (`StoreTx`), the
services and the authenticated `Caller`, checks everything (signatures per Art. 30–32,
party and ministry, state), then writes through the store.  A refusal raises before the
transaction commits, so it leaves nothing behind.  State moves are compare-and-set, so two
Cơ yếu operators countersigning at once produce one countersignature and one 409.

Signed document contents are JSON (UTF-8) objects:

* request:          ``{"kind": "request", "organisation_id", "request_type", "document_type", "payload", "nonce"}``
* countersignature: ``{"kind": "countersignature", "organisation_id", "request_id", "application_sha256"}``
* rejection:        ``{"kind": "rejection", "organisation_id", "request_id", "reason"}``

``organisation_id`` binds the content to the acting organisation; ``application_sha256``
binds a countersignature to exactly the document the Agency signed.

Each hop is automatic when that party's policy says so (issue 6 §3): a Cơ yếu unit with
``auto_countersign`` countersigns inside the submission's transaction; the Provider acts on
the request types of ``Settings.auto_act_request_types`` through `after_countersigned`,
which every caller that has just committed a countersignature calls (the routes, the
schedules' Agency flow).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from icao_pki.policy import DocumentType, PolicyViolation

from .audit import canonical_json
from .auth import Caller
from .errors import Forbidden, HandlerFailed, InvalidInput, LifecycleError, NotFound, StaleState
from .handlers import ActContext, PrepareContext, RequestSnapshot
from .services import Services
from .signed_documents import SignedDocumentError, VerifiedSignature, build_signed_document
from .store import OperatorKind, PartyType, Request, RequestState, SignaturePurpose, Store, StoreTx


def _content(verified: VerifiedSignature, kind: str, caller: Caller) -> dict[str, Any]:
    try:
        content = json.loads(verified.content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the signed content is not UTF-8 JSON: {exc}") from None
    if not isinstance(content, dict) or content.get("kind") != kind:
        raise InvalidInput(f"the signed content must be a JSON object of kind {kind!r}")
    if content.get("organisation_id") != caller.organisation_id:
        raise InvalidInput(
            "the signed content names another organisation than the caller's",
            named=content.get("organisation_id"),
            caller=caller.organisation_id,
        )
    return content


def _record_signature(tx: StoreTx, services: Services, req_id: str, caller: Caller, verified: VerifiedSignature,
                      purpose: SignaturePurpose) -> None:
    tx.add_request_signature(
        request_id=req_id,
        organisation_id=caller.organisation_id,
        purpose=purpose,
        cms_der=verified.cms_der,
        content_sha256=verified.content_sha256,
        signer_fingerprint_sha256=verified.signer_fingerprint_sha256,
        signing_time=verified.signing_time,
        now=services.clock.now(),
    )


def _audit(tx: StoreTx, services: Services, caller: Caller, action: str, req: Request, **details: Any) -> None:
    tx.append_audit(
        at=services.clock.now(),
        action=action,
        entity_type="request",
        entity_id=req.id,
        details={"request_type": req.request_type, "state": req.state.value, **details},
        actor_organisation_id=caller.organisation_id,
        actor_operator_id=caller.operator_id,
    )


def _notify(tx: StoreTx, services: Services, organisation_ids: set[int], event: str, req: Request,
            extra: Mapping[str, Any] | None = None) -> None:
    payload = {"event": event, "request_id": req.id, "request_type": req.request_type, "state": req.state.value,
               **(extra or {})}
    for org_id in sorted(organisation_ids):
        tx.enqueue_notification(organisation_id=org_id, event=event, payload=payload, now=services.clock.now(),
                                request_id=req.id)


def _coyeu_ids(tx: StoreTx, req: Request) -> set[int]:
    return {o.id for o in tx.coyeu_units(req.ministry)} if req.ministry else set()


def _provider_ids(tx: StoreTx) -> set[int]:
    return {o.id for o in tx.organisations_of_type(PartyType.PROVIDER)}


# --- visibility ------------------------------------------------------------------------------


def can_see(caller: Caller, req: Request) -> bool:
    if caller.party_type is PartyType.PROVIDER:
        return True
    if req.applicant_organisation_id == caller.organisation_id:
        return True
    return caller.party_type is PartyType.COYEU and caller.ministry is not None and caller.ministry == req.ministry


def visible_request(tx: StoreTx, caller: Caller, request_id: str) -> Request:
    """The request, or NotFound when the caller may not know it exists."""
    req = tx.request(request_id)
    if not can_see(caller, req):
        raise NotFound(f"request {request_id} does not exist", request_id=request_id)
    return req


def list_requests(tx: StoreTx, caller: Caller) -> list[Request]:
    if caller.party_type is PartyType.PROVIDER:
        return list(tx.requests())
    if caller.party_type is PartyType.COYEU:
        return list(tx.requests(ministry=caller.ministry)) if caller.ministry else []
    return list(tx.requests(applicant_organisation_id=caller.organisation_id))


def queue(tx: StoreTx, caller: Caller) -> list[Request]:
    """What waits for the caller: a Cơ yếu unit's countersignature, or the Provider's action."""
    if caller.party_type is PartyType.COYEU:
        if not caller.ministry:
            return []
        return list(tx.requests(ministry=caller.ministry, states=[RequestState.SUBMITTED]))
    if caller.party_type is PartyType.PROVIDER:
        return list(tx.requests(states=[RequestState.COUNTERSIGNED]))
    raise Forbidden("only Cơ yếu units and the Provider have a queue")


# --- the steps -------------------------------------------------------------------------------


def submit_request(tx: StoreTx, services: Services, caller: Caller, document: bytes) -> Request:
    """Step 1: the applicant's signed request (Art. 25.1, 25.3, 28.1, 28.2)."""
    now = services.clock.now()
    verified = services.checker.verify(tx, document, caller.organisation_id, now)
    content = _content(verified, "request", caller)
    request_type = content.get("request_type")
    if not isinstance(request_type, str):
        raise InvalidInput("request_type is missing")
    handler = services.handlers.get(request_type)
    if caller.party_type not in handler.submitters:
        raise Forbidden(
            f"a {caller.party_type.value} may not submit {request_type} requests",
            allowed=sorted(p.value for p in handler.submitters),
        )
    org = tx.organisation(caller.organisation_id)
    document_type: DocumentType | None = None
    raw_doc = content.get("document_type")
    if raw_doc is not None:
        try:
            document_type = DocumentType(raw_doc)
        except ValueError:
            raise InvalidInput(f"unknown document type {raw_doc!r}") from None
        if document_type.value not in org.document_types:
            raise Forbidden(f"{org.name} does not serve {document_type.label} issuance", document_type=raw_doc)
    elif handler.document_type_required:
        raise InvalidInput(f"{request_type} requests need a document_type")
    payload = content.get("payload", {})
    if not isinstance(payload, dict):
        raise InvalidInput("payload must be a JSON object")
    handler.validate(payload, document_type, services.settings.policy)
    if handler.check_submission is not None:
        handler.check_submission(tx, caller, payload)
    if not org.ministry:
        raise InvalidInput(f"{org.name} has no ministry, so no Cơ yếu unit can countersign its requests")
    deadline = handler.deadline.due(now, services.calendar) if handler.deadline else None
    req = tx.add_request(
        request_id=str(uuid.uuid4()),
        request_type=request_type,
        document_type=document_type,
        applicant_organisation_id=org.id,
        ministry=org.ministry,
        payload=payload,
        deadline=deadline,
        now=now,
    )
    _record_signature(tx, services, req.id, caller, verified, SignaturePurpose.APPLICATION)
    _notify(tx, services, _coyeu_ids(tx, req), "request.awaiting_countersignature", req)
    _audit(tx, services, caller, "request.submitted", req, content_sha256=verified.content_sha256,
           signing_time=verified.signing_time.isoformat())
    return _auto_countersign(tx, services, req, verified.content_sha256)


def _auto_skipped(tx: StoreTx, now: datetime, request_id: str, unit_id: int, reason: str) -> None:
    tx.append_audit(at=now, action="request.auto_countersign_skipped", entity_type="request", entity_id=request_id,
                    details={"reason": reason}, actor_organisation_id=unit_id)


def _auto_countersign(tx: StoreTx, services: Services, req: Request, application_sha256: str) -> Request:
    """A Cơ yếu unit whose policy is to countersign at once, with its key held by the service's HSM.

    The countersignature is an ordinary signed document, checked by the same Art. 30–32
    verification as one sent by a client.  If the key or the check fails, the request simply
    waits in the unit's queue and the reason is audited: the Agency's valid submission stands.
    """
    if services.keyring is None or not req.ministry:
        return req
    for unit in tx.coyeu_units(req.ministry):
        if not unit.auto_countersign:
            continue
        now = services.clock.now()

        held = tx.centrally_held_certificate(unit.id, now)
        if held is None or held.hsm_label is None:
            _auto_skipped(tx, now, req.id, unit.id, "no valid certificate whose key the service holds")
            continue
        content = {"kind": "countersignature", "organisation_id": unit.id, "request_id": req.id,
                   "application_sha256": application_sha256, "automatic": True}
        try:
            signer = services.keyring.signer(held.hsm_label)
            document = build_signed_document(canonical_json(content), signer, held.der, now)
        except Exception as exc:  # the HSM's own errors (token absent, key destroyed…): leave it queued
            _auto_skipped(tx, now, req.id, unit.id, f"signing with {held.hsm_label} failed: {type(exc).__name__}: {exc}")
            continue
        try:
            verified = services.checker.verify(tx, document, unit.id, now)
        except SignedDocumentError as exc:
            _auto_skipped(tx, now, req.id, unit.id, f"{exc.reason}: {exc.message}")
            continue
        req = tx.transition_request(req.id, RequestState.SUBMITTED, RequestState.COUNTERSIGNED, now=now)
        tx.add_request_signature(
            request_id=req.id, organisation_id=unit.id, purpose=SignaturePurpose.COUNTERSIGNATURE,
            cms_der=verified.cms_der, content_sha256=verified.content_sha256,
            signer_fingerprint_sha256=verified.signer_fingerprint_sha256, signing_time=verified.signing_time, now=now,
        )
        _notify(tx, services, _provider_ids(tx) | {req.applicant_organisation_id, unit.id}, "request.countersigned",
                req, {"automatic": True})
        tx.append_audit(at=now, action="request.countersigned", entity_type="request", entity_id=req.id,
                        details={"request_type": req.request_type, "state": req.state.value, "automatic": True,
                                 "content_sha256": verified.content_sha256},
                        actor_organisation_id=unit.id)
        return req
    return req


def _application(tx: StoreTx, req: Request) -> str:
    for sig in tx.request_signatures(req.id):
        if sig.purpose is SignaturePurpose.APPLICATION:
            return sig.content_sha256
    raise NotFound(f"request {req.id} has no application signature")


def _require_own_ministry(caller: Caller, req: Request) -> None:
    if caller.party_type is not PartyType.COYEU or not caller.ministry or caller.ministry != req.ministry:
        raise Forbidden(
            "a Cơ yếu unit acts only for its own ministry's agencies",
            caller_ministry=caller.ministry,
            request_ministry=req.ministry,
        )


def countersign(tx: StoreTx, services: Services, caller: Caller, request_id: str, document: bytes) -> Request:
    """Step 2: the ministry's Cơ yếu unit countersigns exactly what the Agency signed."""
    req = visible_request(tx, caller, request_id)
    _require_own_ministry(caller, req)
    now = services.clock.now()
    verified = services.checker.verify(tx, document, caller.organisation_id, now)
    content = _content(verified, "countersignature", caller)
    if content.get("request_id") != req.id:
        raise InvalidInput("the countersignature names another request", named=content.get("request_id"))
    if content.get("application_sha256") != _application(tx, req):
        raise InvalidInput("the countersignature is not over the document the applicant signed")
    req = tx.transition_request(req.id, RequestState.SUBMITTED, RequestState.COUNTERSIGNED, now=now)
    _record_signature(tx, services, req.id, caller, verified, SignaturePurpose.COUNTERSIGNATURE)
    _notify(tx, services, _provider_ids(tx) | {req.applicant_organisation_id}, "request.countersigned", req)
    _audit(tx, services, caller, "request.countersigned", req, content_sha256=verified.content_sha256)
    return req


def reject(tx: StoreTx, services: Services, caller: Caller, request_id: str, document: bytes) -> Request:
    """A Cơ yếu unit refuses a submitted request, or the Provider a countersigned one, with a signed reason."""
    req = visible_request(tx, caller, request_id)
    if caller.party_type is PartyType.COYEU:
        _require_own_ministry(caller, req)
        expected = RequestState.SUBMITTED
    elif caller.party_type is PartyType.PROVIDER:
        expected = RequestState.COUNTERSIGNED
    else:
        raise Forbidden("only the Cơ yếu unit or the Provider may reject a request")
    now = services.clock.now()
    verified = services.checker.verify(tx, document, caller.organisation_id, now)
    content = _content(verified, "rejection", caller)
    if content.get("request_id") != req.id:
        raise InvalidInput("the rejection names another request", named=content.get("request_id"))
    reason = content.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a rejection needs a reason")
    req = tx.transition_request(req.id, expected, RequestState.REJECTED, now=now, rejection_reason=reason.strip())
    _record_signature(tx, services, req.id, caller, verified, SignaturePurpose.REJECTION)
    _notify(tx, services, {req.applicant_organisation_id} | _coyeu_ids(tx, req), "request.rejected", req,
            {"reason": req.rejection_reason, "rejected_by": caller.organisation_id})
    _audit(tx, services, caller, "request.rejected", req, reason=req.rejection_reason)
    return req


def whole_seconds(when: datetime) -> datetime:
    """Certificates and CRLs carry whole seconds (DER times); the sign phase decides in them."""
    return when.replace(microsecond=0)


def _snapshot(req: Request) -> RequestSnapshot:
    return RequestSnapshot(
        id=req.id,
        request_type=req.request_type,
        document_type=req.document_type,
        applicant_organisation_id=req.applicant_organisation_id,
        ministry=req.ministry,
        payload=dict(req.payload),
    )


def act(tx: StoreTx, services: Services, caller: Caller, request_id: str, prepared: Any = None) -> Request:
    """Step 3: the Provider acts on a countersigned request through the handler of its type.

    The request is claimed first (compare-and-set countersigned → completed) so two
    Provider workers never both act; the handler's writes and the result share the step's
    transaction, so a handler that raises leaves neither a half result nor a state change.
    """
    if caller.party_type is not PartyType.PROVIDER:
        raise Forbidden("only the Provider acts on requests")
    req = tx.request(request_id)
    handler = services.handlers.get(req.request_type)
    now = services.clock.now()
    req = tx.transition_request(req.id, RequestState.COUNTERSIGNED, RequestState.COMPLETED, now=now)
    result = handler.act(ActContext(tx=tx, request=_snapshot(req), now=now, caller=caller,
                                    policy=services.settings.policy, prepared=prepared,
                                    services=services))
    if not isinstance(result, dict):
        raise HandlerFailed(f"handler for {req.request_type} returned {type(result).__name__}, not a JSON object")
    req = tx.set_request_result(req.id, result, now=now)
    _notify(tx, services, {req.applicant_organisation_id}, "request.completed", req, {"result": result})
    _notify(tx, services, _coyeu_ids(tx, req), "request.completed", req)
    _audit(tx, services, caller, "request.completed", req)
    return req


def act_and_record(store: Store, services: Services, caller: Caller, request_id: str) -> Request:
    """`act` in its own transaction; if it fails, the refusal is audited in a second one.

    A handler with a `prepare` phase (the certificate flows) runs decide / sign / store:
    a read-only look at the request, then `prepare` outside any transaction (the sign
    component journals and signs), then `act` stores the product in one transaction.  If
    anything fails after `prepare`, `discard` destroys what the HSM generated for it."""
    prepared: Any = None
    handler = None
    try:
        if caller.party_type is not PartyType.PROVIDER:
            raise Forbidden("only the Provider acts on requests")
        with store.transaction() as tx:
            req = tx.request(request_id)
            handler = services.handlers.get(req.request_type)
            if handler.prepare is not None and req.state is not RequestState.COUNTERSIGNED:
                raise StaleState(f"request {request_id} is {req.state.value}, not countersigned",
                                 request_id=request_id, state=req.state.value, expected="countersigned")
            snapshot = _snapshot(req)
        if handler.prepare is not None:
            prepared = handler.prepare(PrepareContext(services=services, request=snapshot, now=whole_seconds(services.clock.now()),
                                                      caller=caller, policy=services.settings.policy))
        with store.transaction() as tx:
            return act(tx, services, caller, request_id, prepared)
    except Exception as exc:
        if prepared is not None and handler is not None and handler.discard is not None:
            handler.discard(prepared, f"request {request_id} failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, LifecycleError) and not isinstance(exc, HandlerFailed) and exc.kind in (
            "not-found", "forbidden", "stale-state", "invalid-input"
        ) and prepared is None:
            raise
        with store.transaction() as tx:
            tx.append_audit(
                at=services.clock.now(),
                action="request.act_failed",
                entity_type="request",
                entity_id=request_id,
                details={"error": type(exc).__name__, "message": str(exc)},
                actor_organisation_id=caller.organisation_id,
                actor_operator_id=caller.operator_id,
            )
        if isinstance(exc, LifecycleError | PolicyViolation):
            raise
        raise HandlerFailed(f"the {request_id} handler failed: {type(exc).__name__}: {exc}") from exc


# --- the Provider's policy: act at once on some request types ---------------------------------


def _auto_act_skipped(services: Services, request_id: str, provider_id: int | None, reason: str) -> None:
    with services.store.transaction() as tx:
        tx.append_audit(at=services.clock.now(), action="request.auto_act_skipped", entity_type="request",
                        entity_id=request_id, details={"reason": reason}, actor_organisation_id=provider_id)


def auto_act_caller(tx: StoreTx, services: Services) -> Caller | None:
    """The Provider operator that acts automatically: `Settings.auto_act_operator` by name, else
    the Provider's first active service account; None when there is none."""
    wanted = services.settings.auto_act_operator
    for org in tx.organisations_of_type(PartyType.PROVIDER):
        for op in tx.operators(org.id):
            if not op.active:
                continue
            if (op.name == wanted) if wanted else (op.kind is OperatorKind.SERVICE_ACCOUNT):
                return Caller(operator_id=op.id, operator_name=op.name, organisation_id=org.id,
                              organisation_name=org.name, party_type=PartyType.PROVIDER, ministry=org.ministry)
    return None


def after_countersigned(services: Services, request_id: str) -> Request | None:
    """Call after a countersignature has COMMITTED (by a client or automatically).

    When the Provider's policy (`Settings.auto_act_request_types`) lists the request's type,
    the Provider acts at once through `act_and_record` as its automatic operator (its own
    decide / sign / store transactions).  Returns the completed request, or None when the
    request is not countersigned, its type is not listed, or acting failed: a failure
    leaves the request countersigned in the Provider's queue and is audited
    (`request.auto_act_failed` with the error, besides `request.act_failed` that
    `act_and_record` writes for handler failures; `request.auto_act_skipped` when there is
    no operator to act as).  A concurrent act (stale state) is not a failure.  Never raises
    for a refusal of the act itself.
    """
    types = services.settings.auto_act_request_types
    if not types:
        return None
    with services.store.transaction() as tx:
        req = tx.request(request_id)
        if req.state is not RequestState.COUNTERSIGNED or req.request_type not in types:
            return None
        caller = auto_act_caller(tx, services)
        provider_id = next((o.id for o in tx.organisations_of_type(PartyType.PROVIDER)), None)
    if caller is None:
        wanted = services.settings.auto_act_operator
        _auto_act_skipped(services, request_id, provider_id,
                          f"no active Provider operator named {wanted!r}" if wanted
                          else "the Provider has no active service account to act as")
        return None
    try:
        return act_and_record(services.store, services, caller, request_id)
    except StaleState:  # another worker or an officer acted (or rejected) first
        return None
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("automatic act on %s failed: %s: %s", request_id,
                                            type(exc).__name__, exc)
        # act_and_record audits handler failures but re-raises plain refusals (invalid input,
        # forbidden) unaudited, as a person acting sees them; nobody sees an automatic act
        with services.store.transaction() as tx:
            tx.append_audit(at=services.clock.now(), action="request.auto_act_failed", entity_type="request",
                            entity_id=request_id,
                            details={"error": type(exc).__name__, "message": str(exc),
                                     "article": getattr(exc, "article", None)},
                            actor_organisation_id=caller.organisation_id, actor_operator_id=caller.operator_id)
        return None
