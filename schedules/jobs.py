"""The jobs: thin APScheduler 3 triggers, each calling ONE decision function with the context's clock.

Persistent job store (SQLAlchemy) ⇒ every job has an explicit id and is (re)registered with
``replace_existing=True`` (a restart replaces, never duplicates); ``coalesce=True`` (missed
runs collapse into one), ``max_instances=1``, a misfire grace time.  Every job is idempotent
and computes its due work from the database, so running it twice, late, or on a new leader
after a crash does the right thing.  The pickled job holds only ``(job id, context name)``;
the live objects (store, clock, HSM…) are registered in-process with `register_context`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from icao_pki.clock import Clock
from icao_pki.policy import DEFAULT_POLICY, Policy, Role
from lifecycle_api.signing import unused_keys
from lifecycle_api.signing.rollover import (
    RolloverThresholds,
    SuccessorRequester,
    destroy_retired,
    destroy_retired_cvca_keys,
    destroy_superseded_is_keys,
    due_rollovers,
    perform_rollovers,
    retire_expired,
    retire_superseded_is_keys,
)
from lifecycle_api.store import Store

from . import decisions
from .leader import LeaderLock

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    """What the jobs act with.  Optional actors fall back to recording the decision (notice)."""

    store: Store
    clock: Clock
    policy: Policy = DEFAULT_POLICY
    keystore: unused_keys.HsmKeys | None = None
    successor: SuccessorRequester | None = None
    thresholds: RolloverThresholds = field(default_factory=RolloverThresholds)
    renewals: decisions.RenewalRequester | None = None
    ca_rollover: decisions.CaRolloverActor | None = None
    crl_issuer: decisions.CrlIssuer | None = None
    crl_interval: timedelta = timedelta(days=1)
    deliver_notifications: Callable[[], Any] | None = None  # e.g. functools.partial(deliver_due, store, client, …)
    #: the Provider's automatic act (`workflow.after_countersigned` bound to the services) and
    #: the request types its policy acts on; None: stranded requests wait for an officer
    auto_act: Callable[[str], Any] | None = None
    auto_act_types: Sequence[str] = ()
    #: DS / IS keys generated in the HSM and still uncertified this long after, with no request
    #: in progress naming them, are destroyed (`lifecycle_api.signing.unused_keys`)
    unused_key_max_age: timedelta = unused_keys.DEFAULT_MAX_AGE


def _ds_rollover(ctx: JobContext) -> Any:
    if ctx.successor is None:
        return due_rollovers(ctx.store, ctx.clock, ctx.policy, ctx.thresholds)
    return perform_rollovers(ctx.store, ctx.clock, ctx.successor, ctx.policy, ctx.thresholds)


def _ds_destruction(ctx: JobContext) -> Any:
    """Retired keys out of the HSM: DS keys after their usage window, IS keys held for IS
    operators once superseded, then CVCA keys retired by their successor's ceremony once their
    certificate has expired (one job, so the job ids stay as the job store knows them)."""
    if ctx.keystore is None:
        return retire_expired(ctx.store, ctx.clock) + retire_superseded_is_keys(ctx.store, ctx.clock)
    return (destroy_retired(ctx.store, ctx.keystore, ctx.clock)
            + destroy_superseded_is_keys(ctx.store, ctx.keystore, ctx.clock)
            + destroy_retired_cvca_keys(ctx.store, ctx.keystore, ctx.clock))


def _unused_keys(ctx: JobContext) -> Any:
    """Keys generated for a certificate request that never came (or never finished) are retired;
    ``ds-key-destruction`` takes them out of the HSM.  Without the HSM an IS key is kept while
    its holder has any IS request in progress (only the key's public key could tell which)."""
    return unused_keys.retire_unused_keys(ctx.store, ctx.clock, ctx.unused_key_max_age, ctx.keystore)


def _renewals(role: Role) -> Callable[[JobContext], Any]:
    def job(ctx: JobContext) -> Any:
        return decisions.run_renewals(ctx.store, ctx.clock, role, ctx.renewals or decisions.RenewalNotices(ctx.store))

    return job


def _ca_rollover(role: Role) -> Callable[[JobContext], Any]:
    def job(ctx: JobContext) -> Any:
        actor = ctx.ca_rollover or decisions.CaRolloverNotices(ctx.store)
        return decisions.run_ca_rollovers(ctx.store, ctx.clock, role, actor)

    return job


def _crls(ctx: JobContext) -> Any:
    if ctx.crl_issuer is None:
        return decisions.due_crls(ctx.store, ctx.clock, ctx.crl_interval)
    return decisions.run_crls(ctx.store, ctx.clock, ctx.crl_issuer, ctx.crl_interval)


def _expiry(ctx: JobContext) -> Any:
    return decisions.expire_certificates(ctx.store, ctx.clock)


def _notifications(ctx: JobContext) -> Any:
    return None if ctx.deliver_notifications is None else ctx.deliver_notifications()


def _overdue(ctx: JobContext) -> Any:
    """Overdue requests are logged; countersigned requests whose automatic act was lost (a
    crash between countersignature and act) are acted on now (`decisions.stranded_auto_acts`)."""
    overdue = decisions.overdue_requests(ctx.store, ctx.clock)
    for req in overdue:
        log.warning("request %s (%s) is overdue since %s", req.id, req.request_type, req.deadline)
    acted = []
    if ctx.auto_act is not None:
        for request_id in decisions.stranded_auto_acts(ctx.store, ctx.clock, ctx.auto_act_types):
            log.warning("request %s was countersigned but its automatic act was lost: acting now", request_id)
            if ctx.auto_act(request_id) is not None:
                acted.append(request_id)
    return {"overdue": [req.id for req in overdue], "auto_acted": acted}


@dataclass(frozen=True)
class JobSpec:
    run: Callable[[JobContext], Any]
    interval: timedelta
    misfire_grace: timedelta


#: job id → (decision, default interval, misfire grace).  Ids are stable: they key the job store.
JOBS: dict[str, JobSpec] = {
    "ds-rollover-check": JobSpec(_ds_rollover, timedelta(minutes=15), timedelta(minutes=15)),
    "ds-key-destruction": JobSpec(_ds_destruction, timedelta(hours=1), timedelta(hours=1)),
    "unused-key-destruction": JobSpec(_unused_keys, timedelta(hours=6), timedelta(hours=6)),
    "is-renewals": JobSpec(_renewals(Role.IS), timedelta(hours=1), timedelta(hours=1)),
    "dv-renewals": JobSpec(_renewals(Role.DVCA), timedelta(hours=6), timedelta(hours=6)),
    "cvca-rollover": JobSpec(_ca_rollover(Role.CVCA), timedelta(days=1), timedelta(days=1)),
    "csca-rollover": JobSpec(_ca_rollover(Role.CSCA), timedelta(days=1), timedelta(days=1)),
    "crl-publication": JobSpec(_crls, timedelta(hours=1), timedelta(hours=1)),
    "certificate-expiry": JobSpec(_expiry, timedelta(hours=1), timedelta(hours=1)),
    "notification-delivery": JobSpec(_notifications, timedelta(minutes=1), timedelta(minutes=5)),
    "overdue-requests": JobSpec(_overdue, timedelta(hours=1), timedelta(hours=1)),
}

_CONTEXTS: dict[str, JobContext] = {}


def register_context(ctx: JobContext, name: str = "default") -> None:
    _CONTEXTS[name] = ctx


def run_job(job_id: str, context_name: str = "default") -> Any:
    """The function every stored job points at (a textual reference survives restarts)."""
    ctx = _CONTEXTS.get(context_name)
    if ctx is None:
        raise RuntimeError(f"no job context {context_name!r} registered in this process")
    return JOBS[job_id].run(ctx)


def run_all(ctx: JobContext) -> dict[str, Any]:
    """Every job once, in a fixed order (the simulation's tick; also handy for `make run` smoke tests)."""
    return {job_id: spec.run(ctx) for job_id, spec in JOBS.items()}


def build_scheduler(jobstore: str | Engine, *, tablename: str = "apscheduler_jobs") -> BackgroundScheduler:
    store = (
        SQLAlchemyJobStore(engine=jobstore, tablename=tablename)
        if isinstance(jobstore, Engine)
        else SQLAlchemyJobStore(url=jobstore, tablename=tablename)
    )
    return BackgroundScheduler(
        jobstores={"default": store},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone="UTC",
    )


def register_jobs(scheduler: BackgroundScheduler, context_name: str = "default",
                  intervals: dict[str, timedelta] | None = None) -> list[str]:
    """(Re-)register every job under its fixed id; safe to call on every start."""
    for job_id, spec in JOBS.items():
        every = (intervals or {}).get(job_id, spec.interval)
        scheduler.add_job(
            run_job, "interval", seconds=every.total_seconds(), args=[job_id, context_name], id=job_id,
            name=job_id, replace_existing=True, coalesce=True, max_instances=1,
            misfire_grace_time=int(spec.misfire_grace.total_seconds()),
        )  # fmt: skip
    return list(JOBS)


class ScheduleRunner:
    """Runs the scheduler only while this instance holds the leader lock; followers retry."""

    def __init__(self, ctx: JobContext, jobstore: str | Engine, lock: LeaderLock, *, context_name: str = "default",
                 retry: timedelta = timedelta(seconds=30), intervals: dict[str, timedelta] | None = None) -> None:
        self.ctx, self.jobstore, self.lock = ctx, jobstore, lock
        self.context_name, self.retry, self.intervals = context_name, retry, intervals
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        register_context(self.ctx, self.context_name)
        self._thread = threading.Thread(target=self._loop, name="schedule-leader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.scheduler is None and self.lock.try_acquire():
                scheduler = build_scheduler(self.jobstore)
                scheduler.start(paused=True)
                register_jobs(scheduler, self.context_name, self.intervals)
                scheduler.resume()
                self.scheduler = scheduler
                log.info("this instance leads the schedules")
            self._stop.wait(self.retry.total_seconds())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        self.lock.release()
