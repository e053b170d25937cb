"""Wiring the schedules into a running service (`icao-pki serve`).

    runner = schedule_runner(app.state.services, keystore, provider_operator_id=…,
                             agency_operator_ids={DocumentType.PASSPORT: …, DocumentType.IDCARD: …})
    runner.start()   # leads the schedules while it holds the lock; followers retry
    …
    runner.stop()

The job store is the service's own database (table ``apscheduler_jobs``); the leader lock is
a PostgreSQL advisory lock or, on SQLite, a file lock next to the database.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta

import httpx

from icao_pki.keystore import KeyStore
from icao_pki.policy import DocumentType
from lifecycle_api.authority import Authority
from lifecycle_api.notifications import PayloadSigner, deliver_due
from lifecycle_api.services import Services
from lifecycle_api.signing.crl import HsmCrlIssuer
from lifecycle_api.signing.flow import AgencyFlowRequester
from lifecycle_api.signing.is_renewal import HsmIsRenewal
from lifecycle_api.signing.rollover import RolloverThresholds, SuccessorRequester
from lifecycle_api.store import StoreTx
from lifecycle_api.workflow import after_countersigned

from .actors import CeremonyProposer, FlowRenewals
from .jobs import JobContext, ScheduleRunner
from .leader import LeaderLock


class ByDocumentType:
    """A `SuccessorRequester` per document type (the passport Agency, the ID-card Agency)."""

    def __init__(self, requesters: Mapping[DocumentType, SuccessorRequester]) -> None:
        self.requesters = dict(requesters)

    def successor_pending(self, tx: StoreTx, document_type: DocumentType) -> bool:
        requester = self.requesters.get(DocumentType(document_type))
        return requester is not None and requester.successor_pending(tx, document_type)

    def stalled_successor(self, tx: StoreTx, document_type: DocumentType) -> int | None:
        requester = self.requesters.get(DocumentType(document_type))
        probe = getattr(requester, "stalled_successor", None)
        return probe(tx, document_type) if probe is not None else None

    def request_successor(self, document_type: DocumentType, predecessor_key_id: int, now: datetime) -> str:
        requester = self.requesters.get(DocumentType(document_type))
        if requester is None:
            raise LookupError(f"no Agency configured to request {DocumentType(document_type).value} DS keys")
        return requester.request_successor(document_type, predecessor_key_id, now)


def job_context(
    services: Services,
    keystore: KeyStore,
    *,
    provider_operator_id: int | None = None,
    agency_operator_ids: Mapping[DocumentType, int] | None = None,
    payload_signer: PayloadSigner | None = None,
    thresholds: RolloverThresholds | None = None,
    crl_interval: timedelta = timedelta(days=1),
    unused_key_max_age: timedelta | None = None,
) -> JobContext:
    """The jobs' context as `icao-pki serve` runs them, from the service's objects and settings.

    `unused_key_max_age` overrides the deployment's `Settings.unused_key_max_age`
    (``ICAO_PKI_UNUSED_KEY_MAX_AGE``); None, the default, takes it from the settings, so that the
    environment reaches the unused-key job without every caller passing it along."""
    # the sign component the service's flows use (journal, verify); one on `keystore` otherwise
    authority = services.authority or Authority(services.store, keystore, services.clock, services.settings.policy)
    successor = None
    agencies = {doc: AgencyFlowRequester(services, op) for doc, op in (agency_operator_ids or {}).items()}
    if agencies:
        successor = ByDocumentType(agencies)

    def submit_abroad(foreign_state_id: int, document_type: DocumentType, now: datetime) -> str | None:
        """Our DV's renewal abroad, requested by the Agency of its document type (None: notices)."""
        agency = agencies.get(DocumentType(document_type))
        return None if agency is None else agency.submit_dv_abroad(foreign_state_id, document_type, now)
    deliver = None
    if payload_signer is not None:
        settings = services.settings
        deliver = functools.partial(
            deliver_due, services.store, httpx.Client(timeout=10), clock=services.clock,
            payload_signer=payload_signer, max_attempts=settings.notification_max_attempts,
            first_retry=settings.notification_first_retry,
        )  # fmt: skip
    return JobContext(
        store=services.store, clock=services.clock, policy=services.settings.policy, keystore=keystore,
        successor=successor, thresholds=thresholds or RolloverThresholds(),
        renewals=(FlowRenewals(services, provider_operator_id, submit_abroad=submit_abroad if agencies else None,
                               is_renewal=HsmIsRenewal(services, authority))
                  if provider_operator_id is not None else None),
        ca_rollover=CeremonyProposer(services, provider_operator_id) if provider_operator_id is not None else None,
        crl_issuer=HsmCrlIssuer(authority, next_update=services.settings.crl_next_update),
        crl_interval=crl_interval, deliver_notifications=deliver,
        auto_act=functools.partial(after_countersigned, services),
        auto_act_types=tuple(services.settings.auto_act_request_types or ()),
        unused_key_max_age=(services.settings.unused_key_max_age if unused_key_max_age is None
                            else unused_key_max_age),
    )  # fmt: skip


def schedule_runner(services: Services, keystore: KeyStore, **kwargs: object) -> ScheduleRunner:
    ctx = job_context(services, keystore, **kwargs)  # type: ignore[arg-type]
    return ScheduleRunner(ctx, services.store.engine, LeaderLock(services.store.engine))
