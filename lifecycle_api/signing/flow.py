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

The Cơ yếu unit countersigns (automatically if it is configured so) and the Provider acts
(at once, through `workflow.after_countersigned`, when its policy lists ``ds_certificate``),
which activates the key with its usage window and budget.  Until then `successor_pending`
is true for the document type.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from icao_pki.policy import DocumentType

from ..auth import Caller
from ..certificate_flows import DS, create_ds_key
from ..services import Services
from ..signed_documents import build_signed_document
from ..store import Operator, Request, RequestState, StoreTx
from ..workflow import after_countersigned, submit_request

SignDocument = Callable[[bytes, datetime], bytes]


@dataclass
class AgencyFlowRequester:
    services: Services
    agency_operator_id: int
    key_spec: str | None = None
    sign_document: SignDocument | None = None

    def _caller(self) -> Caller:
        with self.services.store.transaction() as tx:
            operator = tx.session.get(Operator, self.agency_operator_id)
            assert operator is not None, "unknown agency operator"
            org = tx.organisation(operator.organisation_id)
            return Caller(operator.id, operator.name, org.id, org.name, org.party_type, org.ministry)

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
        keyring = self.services.keyring
        with self.services.store.transaction() as tx:
            cert = tx.centrally_held_certificate(caller.organisation_id, now)
            if cert is None or keyring is None or cert.hsm_label is None:
                return None
            label, der = cert.hsm_label, cert.der

        def sign(content: bytes, when: datetime) -> bytes:
            return build_signed_document(content, keyring.signer(label), der, when)

        return sign

    def request_successor(self, document_type: DocumentType, predecessor_key_id: int, now: datetime) -> str:
        doc = DocumentType(document_type)
        caller = self._caller()
        key = create_ds_key(self.services, caller, doc, self.key_spec)
        payload = {"hsm_label": key["hsm_label"], "csr": key["csr"]}
        sign = self._signer(caller, now)
        if sign is None:
            with self.services.store.transaction() as tx:
                tx.enqueue_notification(organisation_id=caller.organisation_id, event="ds.successor_request_needed",
                                        payload={"document_type": doc.value, "predecessor_key_id": predecessor_key_id,
                                                 **payload}, now=now)
            return f"key:{key['key_id']}"
        content = {"kind": "request", "organisation_id": caller.organisation_id, "request_type": DS,
                   "document_type": doc.value, "payload": payload, "nonce": secrets.token_hex(8)}
        document = sign(json.dumps(content, ensure_ascii=False).encode(), now)
        with self.services.store.transaction() as tx:
            request_id = submit_request(tx, self.services, caller, document).id
        # countersigned automatically (Cơ yếu policy) and ds_certificate in the Provider's
        # auto-act list: the successor is issued now, end to end; otherwise it waits in the queues
        after_countersigned(self.services, request_id)
        return request_id
