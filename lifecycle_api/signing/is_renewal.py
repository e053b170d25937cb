"""IS certificate renewal without a human, when the service's HSM holds the IS operator's key.

Issue 5: IS certificates (1 month, Art. 23.2c / 26.2c) are "renewed ahead of expiry by
authenticated requests".  A renewal is a CV request for a *new* IS key whose inner signature
is made by that new key and whose outer signature is made by the holder's *current* IS key
(TR-03110-3 C.2.6; `certificate_flows._check_renewal` checks it).  Only the holder of the
current key can make that outer signature, so the schedule can renew on the holder's behalf
only when the holder's IS key lives in this service's HSM — a `Key` row of role IS of the
holder organisation whose HSM public key is the current certificate's key (checked, never
assumed from the label).  Otherwise `HsmIsRenewal.renew` returns None and the schedule keeps
notifying the holder (`schedules.decisions.RenewalNotices`).

What it does, acting for the IS operator as its operator (an explicit mapping, or the
organisation's service account), through the sign component (`Authority`: journalled before
the HSM, verified after):

1. generates the new IS key in the HSM (same curve as the current key — the chain's domain
   parameters), with the next CHR of the holder (sequence + 1, never one already certified
   nor one promised to another key still waiting: `certificate_flows.next_is_chr`);
2. signs the inner request with the new key (CAR: our DV valid now), and the outer signature
   with the current IS key (outer CAR: the current certificate's CHR);
3. submits the ``is_certificate`` request signed with the IS operator's document key (its
   centrally held organisation key, or the injected `sign_document`); in the same
   transaction it records the new key (role IS, state GENERATED, holder the IS operator) and
   commits the three journal rows — a failure before that destroys the new key and abandons
   the signatures;
4. calls `workflow.after_countersigned`, so that when the Cơ yếu unit countersigns
   automatically and the Provider's policy lists ``is_certificate`` the certificate is
   issued at once; otherwise the request waits in the normal queues.  Issuing it makes the
   new key active and links the certificate to it (`certificate_flows.act_cv`), so it is the
   key the next renewal authenticates with; the old key is destroyed by the
   ``ds-key-destruction`` job once its certificate has expired (`rollover.destroy_superseded_is_keys`).

The holder's first IS key gets into the HSM through ``POST /v1/is/keys``
(`certificate_flows.create_is_key`).

Idempotent: an audit entry ``is.renewal_requested`` on the certificate names the request; a
second run returns it while that request is open or completed, and renews again only if it
ended otherwise (refused, failed).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cvc.builders import build_authenticated_request, build_request
from cvc.certificate import AuthenticatedRequest, parse_request
from cvc.certificate import parse_certificate as parse_cv_certificate
from cvc.validation import verify_request
from icao_pki.keystore import KeyInactive, KeyNotFound
from icao_pki.policy import CertificateFormat, DocumentType, Role

from ..auth import Caller, caller_of
from ..authority import Authority, GeneratedKey, Signed, key_matches
from ..certificate_flows import IS, RENEWAL_REQUESTED, next_is_chr
from ..hierarchy import cv_chain
from ..services import Services
from ..store import AuditEntry, Key, KeyState, OperatorKind, RequestState, StoreTx
from ..workflow import after_countersigned, submit_request
from .flow import central_document_signer

#: (organisation id, content, signing time) -> CMS signed document of that organisation
SignDocument = Callable[[int, bytes, datetime], bytes]


@dataclass(frozen=True)
class _Current:
    label: str
    chr: str
    der: bytes
    organisation_id: int
    document_type: DocumentType
    spec: str


@dataclass
class HsmIsRenewal:
    services: Services
    authority: Authority
    #: IS organisation id -> the operator the schedule acts as (default: its service account)
    operator_ids: Mapping[int, int] = field(default_factory=dict)
    sign_document: SignDocument | None = None

    def renew(self, certificate_id: int, now: datetime) -> str | None:
        """The renewal request id, or None when this service cannot renew for the holder."""
        store = self.services.store
        with store.transaction() as tx:
            existing = self._requested(tx, certificate_id)
            if existing is not None:
                return existing
            current = self._current(tx, certificate_id)
            if current is None:
                return None
            caller = self._caller(tx, current.organisation_id)
            dv_chr = self._dv_chr(tx, current, now)
            new_chr = next_is_chr(tx, current.organisation_id, current.document_type, after=current.chr)
        if caller is None:
            return None
        sign = self._document_signer(current.organisation_id, now)
        if sign is None:
            return None
        cv = parse_cv_certificate(current.der)
        algorithm = cv.public_key.algorithm
        current_signer = self.authority.keystore.signer(current.label)
        current_key = cv.public_key.public_key(current_signer.curve)
        new = self.authority.generate_key(current.document_type, Role.IS, current.spec,
                                          purpose=f"IS key renewing {current.chr}")  # fmt: skip
        signatures: list[Signed] = []
        try:
            inner = self.authority.sign(
                new.signer, new.label, lambda s: build_request(s, chr=new_chr, car=dv_chr, algorithm=algorithm),
                lambda der: _ok(verify_request(parse_request(der))), purpose="IS renewal request (inner)",
                details={"chr": new_chr, "renews": current.chr},
            )  # fmt: skip
            signatures.append(inner)

            def verify_outer(der: bytes) -> None:
                request = parse_request(der)
                assert isinstance(request, AuthenticatedRequest)
                verify_request(request, outer_key=current_key, outer_algorithm=algorithm)

            outer = self.authority.sign(
                current_signer, current.label,
                lambda s: build_authenticated_request(inner.der, s, outer_car=current.chr, outer_algorithm=algorithm),
                verify_outer, purpose="IS renewal request (outer, current IS key)",
                details={"chr": new_chr, "outer_car": current.chr},
            )  # fmt: skip
            signatures.append(outer)
            content = {"kind": "request", "organisation_id": current.organisation_id, "request_type": IS,
                       "document_type": current.document_type.value,
                       "payload": {"cv_request": base64.b64encode(outer.der).decode()},
                       "nonce": secrets.token_hex(8)}  # fmt: skip
            document = sign(json.dumps(content, ensure_ascii=False).encode(), now)
            with store.transaction() as tx:
                request_id = submit_request(tx, self.services, caller, document).id
                tx.add_key(hsm_label=new.label, role=Role.IS, document_type=current.document_type,
                           algorithm=current.spec, now=now, organisation_id=current.organisation_id,
                           state=KeyState.GENERATED)  # fmt: skip
                for op in (new.operation_id, inner.operation_id, outer.operation_id):
                    self.authority.commit(tx, op)
                tx.append_audit(at=now, action=RENEWAL_REQUESTED, entity_type="certificate", entity_id=certificate_id,
                                details={"request_id": request_id, "chr": new_chr, "outer_car": current.chr,
                                         "hsm_label": new.label},
                                actor_organisation_id=current.organisation_id)  # fmt: skip
        except Exception as exc:
            self._undo(new, signatures, f"IS renewal of {current.chr} failed: {type(exc).__name__}: {exc}")
            raise
        after_countersigned(self.services, request_id)
        return request_id

    # --- decisions (inside one read transaction) -------------------------------------------

    def _requested(self, tx: StoreTx, certificate_id: int) -> str | None:
        entries = tx.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "certificate", AuditEntry.entity_id == str(certificate_id),
                                     AuditEntry.action == RENEWAL_REQUESTED).order_by(AuditEntry.seq.desc())
        ).all()  # fmt: skip
        for entry in entries:
            request_id = entry.details.get("request_id")
            request = tx.request(request_id) if request_id else None
            if request is not None and (not request.state.terminal or request.state is RequestState.COMPLETED):
                return str(request_id)
        return None

    def _current(self, tx: StoreTx, certificate_id: int) -> _Current | None:
        row = tx.certificate(certificate_id)
        if row.role is not Role.IS or row.organisation_id is None or not row.chr:
            return None
        inherited = cv_chain(tx, row).trust.public_key.curve
        keys = tx.session.scalars(
            select(Key).where(Key.role == Role.IS, Key.organisation_id == row.organisation_id,
                              Key.state != KeyState.DESTROYED).order_by(Key.id.desc())
        ).all()  # fmt: skip
        # the key the certificate is linked to (issued for a key generated here) first; still checked
        keys = sorted(keys, key=lambda k: k.id != row.key_id)
        for key in keys:
            try:
                signer = self.authority.keystore.signer(key.hsm_label)
            except (KeyNotFound, KeyInactive):  # gone from the HSM (destroyed): not the current key
                continue
            if key_matches(signer, row.der, CertificateFormat.CV, inherited):
                spec = signer.curve.name if signer.curve is not None else f"rsa{signer.rsa_bits}"
                return _Current(key.hsm_label, row.chr, row.der, row.organisation_id,
                                DocumentType(row.document_type), spec)
        return None

    def _caller(self, tx: StoreTx, organisation_id: int) -> Caller | None:
        operators = tx.operators(organisation_id)
        wanted = self.operator_ids.get(organisation_id)
        operator = next((o for o in operators if o.id == wanted), None) if wanted is not None else next(
            (o for o in operators if o.kind is OperatorKind.SERVICE_ACCOUNT), None)
        return None if operator is None else caller_of(tx, operator)

    def _dv_chr(self, tx: StoreTx, current: _Current, now: datetime) -> str:
        found = tx.active_ca(Role.DVCA, current.document_type, now, certificate_format=CertificateFormat.CV)
        if found is not None and found[0].chr:
            return found[0].chr
        return parse_cv_certificate(current.der).car

    def _document_signer(self, organisation_id: int, now: datetime) -> Callable[[bytes, datetime], bytes] | None:
        if self.sign_document is not None:
            injected = self.sign_document
            return lambda content, when: injected(organisation_id, content, when)
        return central_document_signer(self.services, organisation_id, now)

    def _undo(self, new: GeneratedKey, signatures: list[Signed], reason: str) -> None:
        for signed in signatures:
            try:
                self.authority.abandon(signed.operation_id, reason)
            except Exception:
                pass
        self.authority.discard(new, reason)


def _ok(_: Any) -> None:
    return None
