"""The production `SuccessorRequester`: a successor DS key through the normal Agency → Cơ yếu →
Provider flow (issue 6's `ds_certificate` request, `lifecycle_api.certificate_flows`).

Acting for the Agency (its service account), the rollover job

1. generates the successor DS key in the service's HSM with its CSR (`create_ds_key`: the key
   row is GENERATED, holder the Agency) — from then on `keys.successors_of` sees a successor,
   so the rollover is not asked for twice;
2. submits the signed ``ds_certificate`` request.  The Agency's signature is made with its
   centrally held key (letter 293: `OrganisationCertificate.hsm_label`) or by the injected
   `sign_document`; if neither is available, the Agency is notified to submit the request
   itself with the CSR (the key is already there, the decision recorded).

A crash between steps 1 and 2 (the key row committed, no request submitted) would otherwise
stall the rollover for good: the generated key counts as a successor, so the rollover is no
longer due, and no request ever names it.  `stalled_successor` finds such a key (this
Agency's, generated more than `stall_after` ago, named by no DS request in any state) and
`request_successor` then submits the request for that very key — with a fresh CSR from the
HSM (journalled through the sign component) — instead of generating another.

When no Agency signature is available the key also has no request, by design: the Agency was
notified (``ds.successor_request_needed``) to submit it by hand.  Such a key must not count as
stalled again on every rollover run (every 15 minutes, each with a fresh CSR and another
notice): each notice is recorded in the audit log against the key
(``ds.successor_request_notified``), and a key notified less than `renotify_after` ago (default
a day) is not stalled.  The record is in the database, so a restart does not reset it.

The Cơ yếu unit countersigns (automatically if it is configured so) and the Provider acts
(at once, through `workflow.after_countersigned`, when its policy lists ``ds_certificate``),
which activates the key with its usage window and budget.  Until then `successor_pending`
is true for the document type.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from icao_pki.policy import DocumentType, Role

from ..auth import Caller, operator_caller
from ..authority import Signed
from ..certificate_flows import DS, DV_ABROAD, create_ds_key, ds_subject
from ..csr import build_csr, parse_and_verify_csr
from ..hierarchy import authority_of
from ..services import Services
from ..signed_documents import build_signed_document
from ..store import AuditEntry, Key, KeyState, Operator, Request, RequestState, StoreTx
from ..workflow import after_countersigned, submit_request

SignDocument = Callable[[bytes, datetime], bytes]

#: the Agency is asked to submit the successor's request itself (no signature available here)
SUCCESSOR_REQUEST_NEEDED = "ds.successor_request_needed"
#: audit action recording that notice against the key (entity "key"): when it was last sent
SUCCESSOR_REQUEST_NOTIFIED = "ds.successor_request_notified"


def central_document_signer(services: Services, organisation_id: int, now: datetime) -> SignDocument | None:
    """Signs request documents for an organisation whose official-use key this service's HSM
    holds (letter 293: centralised signing), with its certificate valid at `now`; None when
    there is no such key — the organisation must then sign and submit itself."""
    keyring = services.keyring
    with services.store.transaction() as tx:
        cert = tx.centrally_held_certificate(organisation_id, now)
        if cert is None or keyring is None or cert.hsm_label is None:
            return None
        label, der = cert.hsm_label, cert.der

    def sign(content: bytes, when: datetime) -> bytes:
        return build_signed_document(content, keyring.signer(label), der, when)

    return sign


@dataclass
class AgencyFlowRequester:
    services: Services
    agency_operator_id: int
    key_spec: str | None = None
    sign_document: SignDocument | None = None
    #: a generated key with no request is "stalled" (crash between key and request) after this
    stall_after: timedelta = timedelta(hours=1)
    #: a key whose Agency was asked to submit its request is not stalled again before this
    renotify_after: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.stall_after < timedelta(0) or self.renotify_after < timedelta(0):
            raise ValueError("stall_after and renotify_after must not be negative")

    def _caller(self) -> Caller:
        return operator_caller(self.services.store, self.agency_operator_id, "agency")

    def successor_pending(self, tx: StoreTx, document_type: DocumentType) -> bool:
        open_states = [s for s in RequestState if not s.terminal]
        return tx.session.scalars(
            select(Request.id).where(
                Request.state.in_(open_states), Request.request_type == DS,
                Request.document_type == DocumentType(document_type),
            ).limit(1)
        ).first() is not None  # fmt: skip

    def _signer(self, caller: Caller, now: datetime) -> SignDocument | None:
        if self.sign_document is not None:
            return self.sign_document
        return central_document_signer(self.services, caller.organisation_id, now)

    def stalled_successor(self, tx: StoreTx, document_type: DocumentType) -> int | None:
        """A generated DS key of this Agency that no DS request names and whose Agency was not
        asked to submit one within `renotify_after` (see the module doc)."""
        operator = tx.session.get(Operator, self.agency_operator_id)
        if operator is None:
            return None
        cutoff = self.services.clock.now() - self.stall_after
        keys = tx.session.scalars(
            select(Key).where(Key.role == Role.DS, Key.document_type == DocumentType(document_type),
                              Key.state == KeyState.GENERATED, Key.organisation_id == operator.organisation_id,
                              Key.created_at <= cutoff).order_by(Key.id)
        ).all()  # fmt: skip
        if not keys:
            return None
        named = {
            r.payload.get("hsm_label")
            for r in tx.session.scalars(select(Request).where(Request.request_type == DS,
                                                              Request.document_type == DocumentType(document_type)))
        }  # fmt: skip
        unnamed = [k.id for k in keys if k.hsm_label not in named]
        if not unnamed:
            return None
        notified = self._recently_notified(tx, unnamed, self.services.clock.now() - self.renotify_after)
        return next((key_id for key_id in unnamed if key_id not in notified), None)

    @staticmethod
    def _recently_notified(tx: StoreTx, key_ids: list[int], since: datetime) -> set[int]:
        """Keys whose Agency was asked to submit the request after `since` (indexed by entity)."""
        rows = tx.session.scalars(
            select(AuditEntry.entity_id).where(AuditEntry.entity_type == "key",
                                               AuditEntry.entity_id.in_([str(k) for k in key_ids]),
                                               AuditEntry.action == SUCCESSOR_REQUEST_NOTIFIED, AuditEntry.at > since)
        ).all()  # fmt: skip
        return {int(entity_id) for entity_id in rows}

    def _resume(self, caller: Caller, doc: DocumentType, key_id: int) -> tuple[dict[str, Any], Signed]:
        """A fresh CSR (proof of possession) for a stalled key, through the sign component."""
        authority = authority_of(self.services)
        with self.services.store.transaction() as tx:
            label = tx.key(key_id).hsm_label
        subject = ds_subject(doc, caller.organisation_name, label).to_asn1()
        csr = authority.sign(authority.keystore.signer(label), label, lambda s: build_csr(s, subject),
                             lambda der: _ok(parse_and_verify_csr(der)), purpose="DS CSR (stalled rollover resumed)",
                             details={"key_id": key_id})  # fmt: skip
        return {"key_id": key_id, "hsm_label": label, "csr": base64.b64encode(csr.der).decode()}, csr

    def request_successor(self, document_type: DocumentType, predecessor_key_id: int, now: datetime) -> str:
        doc = DocumentType(document_type)
        caller = self._caller()
        with self.services.store.transaction() as tx:
            stalled = self.stalled_successor(tx, doc)
        csr_op: Signed | None = None
        if stalled is not None:
            key, csr_op = self._resume(caller, doc, stalled)
        else:
            key = create_ds_key(self.services, caller, doc, self.key_spec)
        payload = {"hsm_label": key["hsm_label"], "csr": key["csr"]}
        try:
            return self._submit(caller, doc, predecessor_key_id, key, payload, csr_op, now)
        except Exception as exc:
            if csr_op is not None:
                authority_of(self.services).abandon(csr_op.operation_id, f"DS request not submitted: {exc}")
            raise

    def _submit(self, caller: Caller, doc: DocumentType, predecessor_key_id: int, key: dict[str, Any],
                payload: dict[str, Any], csr_op: Signed | None, now: datetime) -> str:
        sign = self._signer(caller, now)
        if sign is None:
            with self.services.store.transaction() as tx:
                tx.enqueue_notification(organisation_id=caller.organisation_id, event=SUCCESSOR_REQUEST_NEEDED,
                                        payload={"document_type": doc.value, "predecessor_key_id": predecessor_key_id,
                                                 **payload}, now=now)
                # the notice is the key's request for now: not stalled again before renotify_after
                tx.append_audit(at=now, action=SUCCESSOR_REQUEST_NOTIFIED, entity_type="key",
                                entity_id=key["key_id"], details={"hsm_label": key["hsm_label"],
                                                                  "resumed": csr_op is not None},
                                actor_organisation_id=caller.organisation_id)  # fmt: skip
                if csr_op is not None:
                    authority_of(self.services).commit(tx, csr_op.operation_id)
            return f"key:{key['key_id']}"

        def resumed(tx: StoreTx, request_id: str) -> None:
            if csr_op is not None:
                authority_of(self.services).commit(tx, csr_op.operation_id)
                tx.append_audit(at=now, action="ds.rollover_resumed", entity_type="key", entity_id=key["key_id"],
                                details={"request_id": request_id, "hsm_label": key["hsm_label"]},
                                actor_organisation_id=caller.organisation_id)  # fmt: skip

        return self._file(caller, sign, DS, doc, payload, now, resumed)

    def _file(self, caller: Caller, sign: SignDocument, request_type: str, doc: DocumentType,
              payload: dict[str, Any], now: datetime,
              also: Callable[[StoreTx, str], None] | None = None) -> str:
        """Sign and submit a request as the Agency (`also` runs in the submission's transaction),
        then let it go on: countersigned automatically (Cơ yếu policy) and acted on at once when
        its type is in the Provider's auto-act list; otherwise it waits in the queues."""
        content = {"kind": "request", "organisation_id": caller.organisation_id, "request_type": request_type,
                   "document_type": doc.value, "payload": payload, "nonce": secrets.token_hex(8)}
        document = sign(json.dumps(content, ensure_ascii=False).encode(), now)
        with self.services.store.transaction() as tx:
            request_id = submit_request(tx, self.services, caller, document).id
            if also is not None:
                also(tx, request_id)
        after_countersigned(self.services, request_id)
        return request_id

    def submit_dv_abroad(self, foreign_state_organisation_id: int, document_type: DocumentType,
                         now: datetime) -> str | None:
        """Our DV's renewal abroad, as this Agency's ``dv_request_abroad`` request: the outbound
        request the DV renewal schedule queues for the foreign state (`schedules.actors.FlowRenewals`).

        Signed like the DS successor's request (the Agency's centrally held key or the injected
        `sign_document`), then countersigned and acted on as the policies say; the Provider's act
        makes the CV request, outer-signed by the DV certificate falling due (TR-03139 Table 2).
        None when no Agency signature is available here: the schedule then notifies the Agency
        and the Provider instead."""
        caller = self._caller()
        sign = self._signer(caller, now)
        if sign is None:
            return None
        payload = {"foreign_state_organisation_id": foreign_state_organisation_id}
        return f"request:{self._file(caller, sign, DV_ABROAD, DocumentType(document_type), payload, now)}"


def _ok(_: object) -> None:
    return None
