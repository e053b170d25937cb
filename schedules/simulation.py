"""The capacity-planner seed: the real signing service and schedules on a fake clock.

`run_simulation` opens a throwaway SoftHSM2 token and SQLite database (`lifecycle_api.signing.
sandbox`), registers a CSCA, a CVCA, a domestic DV and an IS operator with its IS
certificate, issues the first DS key, and then lives day by day: at midnight every schedule
runs once (`schedules.jobs.run_all`: DS rollover, destruction, IS/DV renewals, CVCA/CSCA
checks, CRLs, expiry, …); during the day the personalisation line signs `sods_per_day` SODs
in four batches through `DsSigningService`.  Every SOD handed out is tallied per DS key and
time, so the report can prove afterwards — independently of the service's own counters —
that no key signed more than its budget or outside its usage window, that every certificate
issued respects the decree's limits, and whether signing (or IS coverage) ever stopped.

Issuance here is direct (`DirectDsIssuer`, `SimCvAuthority`): the simulation measures the
schedules and the counters, not the request flow's round trips.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cvc.builders import build_cvca_certificate, build_dv_certificate, build_request, build_terminal_certificate
from cvc.certificate import parse_certificate as parse_cv
from icao_pki.certificate import parse_certificate
from icao_pki.clock import FakeClock
from icao_pki.keystore import KeyStore
from icao_pki.policy import (
    DEFAULT_POLICY,
    CertificateFormat,
    DocumentType,
    Policy,
    PolicyViolation,
    Role,
    Window,
    add_months,
    cv_max_expiration,
)
from icao_pki.signer import HashAlgorithm
from lifecycle_api.authority import Authority
from lifecycle_api.hierarchy import day_end, day_start
from lifecycle_api.signing import DsSigningService, NoSigningKey, SodInput, usage_report
from lifecycle_api.signing.crl import HsmCrlIssuer
from lifecycle_api.signing.sandbox import Sandbox, open_sandbox
from lifecycle_api.store import Certificate, CertificateStatus, KeyState, PartyType

from .decisions import RenewalDue
from .jobs import JobContext, run_all

DOC = DocumentType.PASSPORT
CV_SPEC = "brainpoolP256r1"


@dataclass(frozen=True)
class SimEvent:
    at: datetime
    kind: str  # ds-rollover | ds-switch | ds-destroyed | is-renewal | dv-renewal | cvca | csca | crl | expiry | refused
    detail: str


class SimCvAuthority:
    """Our passport CVCA, a domestic DV and one IS operator's terminal; renews DV and IS
    certificates directly (a `RenewalRequester` for the schedules)."""

    def __init__(self, box: Sandbox, clock: FakeClock, policy: Policy, is_operator_id: int) -> None:
        self.box, self.clock, self.policy, self.is_operator_id = box, clock, policy, is_operator_id
        self.seq = Counter[str]()
        today = clock.now().date()
        label = str(box.keystore.next_label(DOC.value, "cvca"))
        self.cvca_label = label
        signer = box.keystore.generate_key(label, CV_SPEC, reason="simulation CVCA")
        exp = cv_max_expiration(today, policy.limit(DOC, Role.CVCA).certificate_validity_months)
        self.cvca_der = build_cvca_certificate(signer, chr=self._chr("CVCA"), effective_date=today,
                                               expiration_date=exp, document_type=DOC, policy=policy)
        self._store(self.cvca_der, Role.CVCA, label, None)
        self.dv_label, self.dv_der = self._issue_dv()
        self._issue_is()

    def _chr(self, mnemonic: str) -> str:
        self.seq[mnemonic] += 1
        return f"VN{mnemonic}{self.seq[mnemonic]:05d}"

    def _store(self, der: bytes, role: Role, key_label: str | None, org: int | None) -> int:
        cv = parse_cv(der)
        now = self.clock.now()
        with self.box.store.transaction() as tx:
            key_id = None
            if key_label is not None:
                key_id = tx.add_key(hsm_label=key_label, role=role, document_type=DOC, algorithm=CV_SPEC, now=now,
                                    usage_not_before=day_start(cv.effective_date),
                                    usage_not_after=day_end(cv.expiration_date), state=KeyState.ACTIVE).id
            return tx.add_certificate(
                key_id=key_id, organisation_id=org, certificate_format=CertificateFormat.CV, role=role,
                document_type=DOC, chr=cv.chr, subject=cv.chr, issuer=cv.car,
                not_before=day_start(cv.effective_date), not_after=day_end(cv.expiration_date), der=der,
                fingerprint_sha256=hashlib.sha256(der).hexdigest(), created_at=now,
            ).id  # fmt: skip

    def _issue_dv(self) -> tuple[str, bytes]:
        today = self.clock.now().date()
        cvca = parse_cv(self.cvca_der)
        label = str(self.box.keystore.next_label(DOC.value, "dvca"))
        dv_signer = self.box.keystore.generate_key(label, CV_SPEC, reason="simulation DV")
        request = build_request(dv_signer, chr=self._chr("SIMDV"), car=cvca.chr)
        exp = min(cv_max_expiration(today, self.policy.limit(DOC, Role.DVCA).certificate_validity_months),
                  cvca.expiration_date)
        der = build_dv_certificate(self.box.keystore.signer(self.cvca_label), cvca, request, domestic=True,
                                   effective_date=today, expiration_date=exp, document_type=DOC, policy=self.policy)
        self._store(der, Role.DVCA, label, self.box.provider_id)
        return label, der

    def _issue_is(self) -> str:
        today = self.clock.now().date()
        dv = parse_cv(self.dv_der)
        label = str(self.box.keystore.next_label("terminal", "is"))
        terminal = self.box.keystore.generate_key(label, CV_SPEC, reason="simulation terminal (stands for its own token)")
        request = build_request(terminal, chr=self._chr("SIMIS"), car=dv.chr)
        exp = min(cv_max_expiration(today, self.policy.limit(DOC, Role.IS).certificate_validity_months),
                  dv.expiration_date)
        der = build_terminal_certificate(self.box.keystore.signer(self.dv_label), dv, request, effective_date=today,
                                         expiration_date=exp, document_type=DOC, policy=self.policy)
        self._store(der, Role.IS, None, self.is_operator_id)
        return parse_cv(der).chr

    def request_renewal(self, due: RenewalDue, now: datetime) -> str:
        if due.role is Role.DVCA:
            self.dv_label, self.dv_der = self._issue_dv()
            return parse_cv(self.dv_der).chr
        return self._issue_is()


@dataclass
class SimulationReport:
    start: datetime
    end: datetime
    sods_per_day: int
    requested: int = 0
    signed: int = 0
    refused: int = 0
    events: list[SimEvent] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    is_uncovered_days: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def limit_exceeded(self) -> bool:
        return bool(self.violations)

    @property
    def signing_stopped(self) -> bool:
        return self.refused > 0

    def summary(self) -> str:
        return (f"{self.signed:,} of {self.requested:,} SODs signed; limit exceeded: "
                f"{'YES' if self.limit_exceeded else 'no'}; signing stopped: "
                f"{'YES' if self.signing_stopped else 'no'}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "sods_per_day": self.sods_per_day,
            "requested": self.requested, "signed": self.signed, "refused": self.refused,
            "limit_exceeded": self.limit_exceeded, "signing_stopped": self.signing_stopped,
            "violations": self.violations, "is_uncovered_days": self.is_uncovered_days, "counts": self.counts,
            "keys": self.keys,
            "events": [{"at": e.at.isoformat(), "kind": e.kind, "detail": e.detail} for e in self.events],
        }  # fmt: skip


def _job_events(at: datetime, results: dict[str, Any]) -> list[SimEvent]:
    out = []
    for action in results.get("ds-rollover-check") or []:
        due = getattr(action, "due", None)
        if due is not None:
            out.append(SimEvent(at, "ds-rollover", f"successor {action.reference} for {due.hsm_label} ({due.reason}: "
                                                   f"{due.used + due.reserved:,} of {due.max_signatures:,} used/reserved)"))
    out += [SimEvent(at, "ds-destroyed", f"{label} destroyed in the HSM") for label in
            results.get("ds-key-destruction") or [] if isinstance(label, str)]
    for job, kind in (("is-renewals", "is-renewal"), ("dv-renewals", "dv-renewal")):
        for due, result in results.get(job) or []:
            out.append(SimEvent(at, kind, f"{due.subject} (expires {due.not_after:%Y-%m-%d}) → {result}"))
    for job, kind in (("cvca-rollover", "cvca"), ("csca-rollover", "csca")):
        for due, result in results.get(job) or []:
            out.append(SimEvent(at, kind, f"{due.hsm_label} usage ends {due.usage_not_after:%Y-%m-%d}: {result}"))
    for crl_id in results.get("crl-publication") or []:
        out.append(SimEvent(at, "crl", f"CRL row {crl_id}"))
    expired = results.get("certificate-expiry") or []
    if expired:
        out.append(SimEvent(at, "expiry", f"{len(expired)} certificate(s) expired and revoked (Art. 18.1)"))
    return out


def run_simulation(
    years: int = 2,
    sods_per_day: int = 420,
    *,
    start: datetime = datetime(2027, 1, 4, tzinfo=UTC),
    policy: Policy = DEFAULT_POLICY,
    folder: Path | None = None,
    batches_per_day: int = 4,
    progress: Callable[[datetime, int], None] | None = None,
    keystore: KeyStore | None = None,
) -> SimulationReport:
    """`keystore`: an already open key store to use instead of a throwaway token (tests)."""
    if years < 1 or sods_per_day < 0:
        raise ValueError("years must be ≥ 1 and sods_per_day ≥ 0")
    own_folder = folder is None
    folder = folder or Path(tempfile.mkdtemp(prefix="icao-pki-simulate-"))
    clock = FakeClock(start)
    box = open_sandbox(clock, folder=folder, policy=policy, document_type=DOC, keystore=keystore)
    try:
        return _simulate(box, clock, policy, years, sods_per_day, batches_per_day, progress)
    finally:
        box.store.dispose()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)


def _simulate(box: Sandbox, clock: FakeClock, policy: Policy, years: int, sods_per_day: int, batches_per_day: int,
              progress: Callable[[datetime, int], None] | None) -> SimulationReport:
    start = clock.now()
    end = add_months(start, 12 * years)
    report = SimulationReport(start, end, sods_per_day)
    with box.store.transaction() as tx:
        is_operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                          ministry="MPS", now=start).id
    cv = SimCvAuthority(box, clock, policy, is_operator)
    box.issuer.issue(DOC)
    service = DsSigningService(box.store, box.keystore, clock, policy, block_size=max(256, sods_per_day))
    ctx = JobContext(store=box.store, clock=clock, policy=policy, keystore=box.keystore, successor=box.issuer,
                     renewals=cv, crl_issuer=HsmCrlIssuer(Authority(box.store, box.keystore, clock, policy)))
    tally: dict[str, list[Any]] = defaultdict(lambda: [0, None, None])  # label -> [count, first, last]
    current: str | None = None
    serial = 0
    dg2 = HashAlgorithm.SHA256.digest(b"DG2")
    day = start
    while day < end:
        clock.set(day)
        report.events += _job_events(day, run_all(ctx))
        if not _is_covered(box, is_operator, day + timedelta(hours=12)):
            report.is_uncovered_days.append(day.date().isoformat())
        for i in range(batches_per_day):
            n = sods_per_day // batches_per_day + (1 if i < sods_per_day % batches_per_day else 0)
            if n == 0:
                continue
            clock.set(day + timedelta(hours=6 + i * 12 / batches_per_day))
            items = [SodInput(dg_hashes={1: HashAlgorithm.SHA256.digest(b"%d" % (serial + k)), 2: dg2})
                     for k in range(n)]
            serial += n
            report.requested += n
            try:
                signed = service.sign_batch(DOC, items)
            except NoSigningKey as exc:
                report.refused += n
                report.events.append(SimEvent(clock.now(), "refused", str(exc)))
                continue
            for s in signed:
                entry = tally[s.key_label]
                entry[0] += 1
                entry[1] = entry[1] or s.signed_at
                entry[2] = s.signed_at
                if s.key_label != current:
                    report.events.append(SimEvent(s.signed_at, "ds-switch", f"signing with {s.key_label}"))
                    current = s.key_label
            report.signed += len(signed)
        if progress is not None:
            progress(day, report.signed)
        day += timedelta(days=1)
    service.close()
    _check(box, policy, report, tally)
    return report


def _is_covered(box: Sandbox, organisation_id: int, when: datetime) -> bool:
    with box.store.transaction() as tx:
        return tx.session.scalars(
            select(Certificate.id).where(
                Certificate.organisation_id == organisation_id, Certificate.role == Role.IS,
                Certificate.not_before <= when, Certificate.not_after >= when,
            ).limit(1)
        ).first() is not None  # fmt: skip


def _check(box: Sandbox, policy: Policy, report: SimulationReport, tally: dict[str, list[Any]]) -> None:
    """Independent of the service's counters: what was handed out vs. budgets, windows, certificates."""
    limit = policy.limit(DOC, Role.DS)
    for usage in usage_report(box.store, DOC):
        count, first, last = tally.get(usage.hsm_label, [0, None, None])
        report.keys.append({"label": usage.hsm_label, "state": usage.state, "signed": usage.signed,
                            "handed_out": count, "reserved_unused": usage.reserved_unused,
                            "max": usage.max_signatures, "usage_not_before": str(usage.usage_not_before),
                            "usage_not_after": str(usage.usage_not_after),
                            "first_signature": str(first), "last_signature": str(last)})
        if count != usage.signed:
            report.violations.append(f"{usage.hsm_label}: {count} SODs handed out but {usage.signed} counted")
        if limit.max_signatures is not None and count > limit.max_signatures:
            report.violations.append(f"{usage.hsm_label}: {count:,} signatures exceed {limit.max_signatures:,}")
        if not usage.within_limit:
            report.violations.append(f"{usage.hsm_label}: used + reserved exceed the key's budget")
        if first is not None and usage.usage_not_before and usage.usage_not_after:
            window = Window(usage.usage_not_before, usage.usage_not_after)
            for when in (first, last):
                try:
                    policy.check_key_usage_at(DOC, Role.DS, window, when)
                except PolicyViolation as exc:
                    report.violations.append(f"{usage.hsm_label}: {exc}")
    with box.store.transaction() as tx:
        rows = tx.session.scalars(select(Certificate).order_by(Certificate.id)).all()
        for row in rows:
            try:
                if row.certificate_format is CertificateFormat.X509:
                    cert = parse_certificate(row.der)
                    policy.check_certificate(row.role, DOC, cert.validity, key_usage=cert.private_key_usage_period)
                else:
                    cvc = parse_cv(row.der)
                    policy.check_certificate(row.role, DOC, Window(cvc.effective_date, cvc.expiration_date),
                                             certificate_format=CertificateFormat.CV)
            except PolicyViolation as exc:
                report.violations.append(f"certificate {row.id} ({row.role.value}): {exc}")
        statuses = Counter(r.status for r in rows)
    kinds = Counter(e.kind for e in report.events)
    report.counts = {
        "ds_keys": len(report.keys), "ds_rollovers": kinds["ds-rollover"], "ds_destroyed": kinds["ds-destroyed"],
        "is_renewals": kinds["is-renewal"], "dv_renewals": kinds["dv-renewal"], "cvca_events": kinds["cvca"],
        "csca_events": kinds["csca"], "crls": kinds["crl"], "expired_revoked": statuses[CertificateStatus.EXPIRED],
    }  # fmt: skip

