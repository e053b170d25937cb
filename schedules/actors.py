"""Production actors for the CA rollover schedules, on top of issue 6's key ceremonies.

A CSCA (key 5 years) or CVCA (3 years) rollover is a key ceremony: one Provider officer
proposes, a *different* officer approves, and only then are the new key, the link
certificate (and, for a CSCA, the first CRL) made (`lifecycle_api.ceremonies`).  A schedule
must never be the second pair of eyes, so `CeremonyProposer` only *proposes* — as the
Provider's service account — and records the notice (for a CSCA the 90-day advance notice
to every Agency and foreign state, ICAO 9303-12 §5.1.2); an officer approves, and then the
new Master List is published (`lifecycle_api.publication.publish_master_list`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from lifecycle_api.auth import Caller
from lifecycle_api.ceremonies import CEREMONY, propose
from lifecycle_api.services import Services
from lifecycle_api.store import Operator, Request, RequestState

from .decisions import CaRolloverDue, CaRolloverNotices


@dataclass
class CeremonyProposer:
    services: Services
    provider_operator_id: int

    def _caller(self) -> Caller:
        with self.services.store.transaction() as tx:
            operator = tx.session.get(Operator, self.provider_operator_id)
            assert operator is not None, "unknown Provider operator"
            org = tx.organisation(operator.organisation_id)
            return Caller(operator.id, operator.name, org.id, org.name, org.party_type, org.ministry)

    def rollover(self, due: CaRolloverDue, now: datetime) -> str:
        kind = due.role.value
        with self.services.store.transaction() as tx:
            open_states = [s for s in RequestState if not s.terminal]
            pending = tx.session.scalars(
                select(Request).where(Request.request_type == CEREMONY, Request.state.in_(open_states),
                                      Request.document_type == due.document_type)
            ).all()
            existing = next((r.id for r in pending if r.payload.get("kind") == kind), None)
            if existing is None:
                existing = propose(tx, self.services, self._caller(), {
                    "kind": kind, "document_type": due.document_type.value,
                }).id
                tx.append_audit(at=now, action=f"{kind}.rollover_proposed", entity_type="key", entity_id=due.key_id,
                                details={"ceremony_request_id": existing,
                                         "usage_not_after": due.usage_not_after.isoformat()})
        CaRolloverNotices(self.services.store).rollover(due, now)
        return f"ceremony:{existing}"
