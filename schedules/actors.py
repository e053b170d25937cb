"""Production actors for the CA rollover schedules, on top of issue 6's key ceremonies.

A CSCA (key 5 years) or CVCA (3 years) rollover is a key ceremony: one Provider officer
proposes, a *different* officer approves, and only then are the new key, the link
certificate (and, for a CSCA, the first CRL) made (`lifecycle_api.ceremonies`).  A schedule
must never be the second pair of eyes, so `CeremonyProposer` only *proposes* — as the
Provider's service account — and records the notice (for a CSCA the 90-day advance notice
to every Agency and foreign state, ICAO 9303-12 §4.1.4).  A CSCA proposal carries the notice's
end as ``key_usage_from``: approved any day, the new key signs no DS certificate before
receiving states have had their 90 days, and the previous CSCA signs until then.  An officer
approves; the ceremony then publishes the new Master List (new CSCA and link certificate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from icao_pki.policy import DocumentType, Role
from lifecycle_api.auth import Caller, operator_caller
from lifecycle_api.ceremonies import CEREMONY, propose
from lifecycle_api.certificate_flows import DV_ABROAD
from lifecycle_api.services import Services
from lifecycle_api.signing.is_renewal import HsmIsRenewal
from lifecycle_api.store import Certificate, Request, RequestState, StoreTx

from .decisions import CSCA_ADVANCE_NOTICE, CaRolloverDue, CaRolloverNotices, RenewalDue, RenewalNotices


@dataclass
class CeremonyProposer:
    services: Services
    provider_operator_id: int

    def _caller(self) -> Caller:
        return operator_caller(self.services.store, self.provider_operator_id, "Provider")

    def rollover(self, due: CaRolloverDue, now: datetime) -> str:
        reference = self.propose_once(due.role.value, due, now)
        CaRolloverNotices(self.services.store).rollover(due, now)
        return reference

    def propose_once(self, kind: str, due: CaRolloverDue, now: datetime) -> str:
        """Propose the `kind` ceremony unless one for the document type is already open."""
        with self.services.store.transaction() as tx:
            open_states = [s for s in RequestState if not s.terminal]
            pending = tx.session.scalars(
                select(Request).where(Request.request_type == CEREMONY, Request.state.in_(open_states),
                                      Request.document_type == due.document_type)
            ).all()
            existing = next((r.id for r in pending if r.payload.get("kind") == kind), None)
            if existing is None:
                payload = {"kind": kind, "document_type": due.document_type.value}
                if kind == "csca":  # the new key signs nothing before the notice's 90 days are over
                    payload["key_usage_from"] = (now + CSCA_ADVANCE_NOTICE).isoformat()
                existing = propose(tx, self.services, self._caller(), payload).id
                tx.append_audit(at=now, action=f"{kind}.rollover_proposed", entity_type="key", entity_id=due.key_id,
                                details={"ceremony_request_id": existing, "holder": due.hsm_label,
                                         "usage_not_after": due.usage_not_after.isoformat()})
        return f"ceremony:{existing}"


@dataclass
class FlowRenewals:
    """Production `RenewalRequester` for the IS and DV renewal schedules.

    * IS (1 month): renewed by an authenticated request whose outer signature is made with the
      holder's current IS key.  When that key is in this service's HSM, `is_renewal`
      (`lifecycle_api.signing.is_renewal.HsmIsRenewal`) makes and submits the request as the
      IS operator, so the renewal needs no human; otherwise only the holder can sign it, and
      the schedule records the due renewal and notifies it.
    * Our domestic DV (3 months, issued by our CVCA): a ``dvca`` key ceremony is proposed
      (once) by the Provider's service account; an officer approves.
    * Our DV abroad (issued by a foreign CVCA): the Agency's ``dv_request_abroad`` request is
      the outbound request queued for that state — submitted through `submit_abroad` when the
      deployment gives one and it can sign as the Agency (`icao-pki serve`:
      `AgencyFlowRequester.submit_dv_abroad`, the Agency's centrally held key), otherwise the
      Agency and Provider are notified with the foreign state named; once per renewal
      (`_abroad_requested_since`).  While the certificate falling due is still valid, that
      request is a successive one, outer-signed by its DV key (TR-03139 Table 2).
    """

    services: Services
    provider_operator_id: int
    #: (foreign state, document type, now) → a reference, or None when it cannot sign (notices then)
    submit_abroad: Callable[[int, DocumentType, datetime], str | None] | None = None
    is_renewal: HsmIsRenewal | None = None

    def request_renewal(self, due: RenewalDue, now: datetime) -> str:
        store = self.services.store
        if due.role is Role.IS and self.is_renewal is not None:
            request_id = self.is_renewal.renew(due.certificate_id, now)
            if request_id is not None:
                return f"request:{request_id}"
        if due.role is not Role.DVCA:
            return RenewalNotices(store).request_renewal(due, now)
        with store.transaction() as tx:
            row = tx.certificate(due.certificate_id)
            issuer = tx.session.scalars(
                select(Certificate).where(Certificate.chr == row.issuer, Certificate.role == Role.CVCA)
                .order_by(Certificate.id.desc()).limit(1)
            ).first()  # fmt: skip
            ours = issuer is not None and issuer.key_id is not None
            foreign_state = None if issuer is None else issuer.organisation_id
            pending = None if ours or foreign_state is None else _abroad_requested_since(tx, row, foreign_state)
        if ours:
            key_due = CaRolloverDue(0, Role.DVCA, due.document_type, due.subject, due.not_after)
            proposer = CeremonyProposer(self.services, self.provider_operator_id)
            return proposer.propose_once("dvca", key_due, now)
        if pending is not None:  # the foreign state has not answered yet: one request per renewal
            return f"already-requested:{pending}"
        if self.submit_abroad is not None and foreign_state is not None:
            submitted = self.submit_abroad(foreign_state, due.document_type, now)
            if submitted is not None:
                return submitted
        return RenewalNotices(store).request_renewal(due, now)


def _abroad_requested_since(tx: StoreTx, due: Certificate, foreign_state: int) -> str | None:
    """A ``dv_request_abroad`` to that state for the due certificate's document type made after
    the certificate was installed and not rejected: the renewal already asked for (its answer
    is the foreign state's, days away), so the next runs of the schedule do not ask again.  A rejected
    one is retried."""
    rows = tx.session.scalars(
        select(Request).where(Request.request_type == DV_ABROAD, Request.document_type == due.document_type,
                              Request.created_at > due.created_at, Request.state != RequestState.REJECTED)
        .order_by(Request.created_at)
    ).all()  # fmt: skip
    return next((r.id for r in rows if r.payload.get("foreign_state_organisation_id") == foreign_state), None)
