"""The capacity-planner seed: the real signing service, schedules and request flow on a fake clock.

`run_simulation` opens a throwaway SoftHSM2 token and SQLite database (`lifecycle_api.signing.
sandbox`), registers a CSCA, a CVCA, a domestic DV and an IS operator with its IS
certificate, and then lives day by day: at midnight every schedule runs once
(`schedules.jobs.run_all`: DS rollover, destruction, IS/DV renewals, CVCA/CSCA checks, CRLs,
expiry, …); during the day the personalisation line signs `sods_per_day` SODs in four
batches through `DsSigningService`.  Every SOD handed out is tallied per DS key and time, so
the report can prove afterwards — independently of the service's own counters — that no key
signed more than its budget or outside its usage window, that every certificate issued
respects the decree's limits, and whether signing (or IS coverage) ever stopped.

DS keys come through the request flow a deployment runs: the schedules run with the job
context `icao-pki serve` builds (`schedules.runtime.job_context`), whose rollover job asks the
Agency's `lifecycle_api.signing.flow.AgencyFlowRequester` for successors.  So each DS key — the
first one too, asked for by the same requester before day one — is generated in the HSM with
its CSR (a P-256 key: `SIM_DS_KEY_SPEC`), asked for in a ``ds_certificate`` request signed with the
Agency's official-use key, countersigned automatically by its ministry's Cơ yếu unit, and
issued by the Provider's automatic-act account (`workflow.after_countersigned`).  `SimFlow`
sets up what that flow checks (Art. 30–32) in the throwaway world; `check_ds_requests` then
proves from the database that every DS certificate came from a completed request for
exactly its key.  Going through the flow costs a second or two per simulated year, so
there is no direct-issuance shortcut: it would also skip the checks the Provider's act makes
(the CSCA's key must be inside its usage window, for one).

CVCA, DV and IS certificates are issued directly (`SimCvAuthority`): the simulation measures
the schedules and the counters; the CV request flows have their own tests.  Nor does it roll
the CVCA or the CSCA over (two-officer key ceremonies; their jobs only record the notice): as
the CVCA's 3 years end, DV and IS renewals are refused (`SimCvAuthority.request_renewal`) and
the report counts the days without IS coverage; once the CSCA key's 5-year usage window is
over, the Provider's act refuses the next DS request (no active CSCA), the request stays
countersigned, and signing stops when the last DS key runs out — as it would in a deployment
that skipped the CSCA ceremony.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from sqlalchemy import select

from cvc.builders import build_cvca_certificate, build_dv_certificate, build_request, build_terminal_certificate
from cvc.certificate import parse_certificate as parse_cv
from fixtures.orgpki import SUB_CA_YEARS, DemoOrgPki, build_demo_org_pki
from icao_pki.certificate import Certificate as X509Certificate
from icao_pki.certificate import CertificateVerifyError, parse_certificate
from icao_pki.clock import FakeClock
from icao_pki.keystore import KeyLabel, KeyStore, KeyStoreConfigError
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
from lifecycle_api.app import create_app
from lifecycle_api.certificate_flows import DS as DS_REQUEST
from lifecycle_api.csr import parse_and_verify_csr
from lifecycle_api.errors import InvalidInput
from lifecycle_api.hierarchy import day_end, day_start
from lifecycle_api.organisations import create_operator, create_organisation, register_certificate
from lifecycle_api.services import Services
from lifecycle_api.settings import Settings
from lifecycle_api.signing import DsSigningService, NoSigningKey, SodInput, usage_report
from lifecycle_api.signing.flow import AgencyFlowRequester
from lifecycle_api.signing.sandbox import Sandbox, open_sandbox
from lifecycle_api.store import (
    AuditEntry,
    Certificate,
    CertificateStatus,
    KeyState,
    OperatorKind,
    PartyType,
    Request,
    RequestState,
    SignaturePurpose,
    StoreTx,
)

from .decisions import RenewalDue
from .jobs import run_all
from .runtime import ByDocumentType, job_context

DOC = DocumentType.PASSPORT
CV_SPEC = "brainpoolP256r1"


#: the simulated government CA's sub-CA (`fixtures.orgpki`) lives SUB_CA_YEARS; every official-use
#: certificate, hence every signed request, ends with it
MAX_YEARS = SUB_CA_YEARS - 1
#: the Provider's service account that issues DS certificates as soon as they are countersigned
AUTO_ACT_OPERATOR = "auto-act"
#: the government CA's CRLs are reissued this long before their nextUpdate (its sub-CA CRL lives
#: 7 days); an official-use certificate is renewed this long before it expires
CRL_MARGIN = timedelta(days=1)
ORG_CERTIFICATE_LEAD = timedelta(days=30)
#: the Agency's DS key type in the simulation.  A deployment's passport default is brainpoolP256r1
#: (`certificate_flows.DEFAULT_DS_SPEC`); SoftHSM2 signs (and OpenSSL verifies) P-256 about five
#: times faster, and the schedules and counters under test do not depend on the curve
SIM_DS_KEY_SPEC = "secp256r1"


@dataclass(frozen=True)
class SimEvent:
    at: datetime
    #: ds-first | ds-rollover | ds-switch | ds-destroyed | is-destroyed | is-renewal | dv-renewal | renewal-refused |
    #: cvca | csca | crl | expiry | refused
    kind: str
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
        """Renew, unless the issuer's own expiry caps the renewal at the due certificate's end.

        A certificate never outlives its issuer, and the simulation does not roll the CVCA over:
        near the CVCA's end a "renewed" DV would expire with the one it replaces, so the schedule
        would find both due again the next day, and every copy after that — doubling daily.  Such
        a renewal is refused (named in the timeline); coverage then lapses, which the report's
        IS-coverage days show."""
        issuer = parse_cv(self.cvca_der if due.role is Role.DVCA else self.dv_der)
        if day_end(issuer.expiration_date) <= due.not_after:
            return (f"not renewed: its issuer {issuer.chr} expires {issuer.expiration_date} "
                    "(the simulation does not roll the CVCA over)")
        if due.role is Role.DVCA:
            self.dv_label, self.dv_der = self._issue_dv()
            return parse_cv(self.dv_der).chr
        return self._issue_is()


def _next_update(crl_der: bytes) -> datetime:
    next_update: datetime = asn1_crl.CertificateList.load(crl_der)["tbs_cert_list"]["next_update"].native
    return next_update

@dataclass
class _OfficialUse:
    """An organisation whose official-use key the service's HSM holds (centralised signing)."""

    organisation_id: int
    name: str
    uid: str
    label: str
    not_after: datetime


class SimFlow:
    """What the Agency → Cơ yếu → Provider flow needs, set up in the throwaway world with the
    helpers a deployment's administration uses (`create_app`, `create_organisation`,
    `create_operator`, `register_certificate`, `fixtures.orgpki`):

    * the government CA of official-use certificates, its root and sub-CA keys in the token,
      trusted by the service's settings; `refresh` reissues its CRLs before they lapse (a
      signed document is only accepted against a current CRL, Art. 31) and renews the
      parties' certificates before they expire;
    * the sandbox's Agency with its official-use key held centrally and a service account the
      rollover schedule acts as (`AgencyFlowRequester`);
    * its ministry's Cơ yếu unit, countersigning automatically with its centrally held key;
    * the Provider's policy: ``ds_certificate`` requests are issued as soon as they are
      countersigned, by its service account `AUTO_ACT_OPERATOR`.
    """

    def __init__(self, box: Sandbox, clock: FakeClock, policy: Policy, ds_key_spec: str | None = None) -> None:
        self.box, self.clock = box, clock
        now = clock.now()
        keystore = box.keystore
        root_label = str(keystore.next_label("orgpki", "root"))
        root = keystore.generate_key(root_label, "secp256r1", reason="simulated government root CA")
        sub_label = str(keystore.next_label("orgpki", "subca"))
        sub_ca = keystore.generate_key(sub_label, "secp256r1", reason="simulated government sub-CA")
        self.pki: DemoOrgPki = build_demo_org_pki(root, sub_ca, not_before=now - timedelta(days=1))
        settings = Settings(
            database_url=box.store.engine.url.render_as_string(hide_password=False), policy=policy,
            org_pki_roots=(self.pki.root.der,), org_pki_intermediates=(self.pki.sub_ca.der,),
            auto_act_request_types=(DS_REQUEST,), auto_act_operator=AUTO_ACT_OPERATOR,
        )  # fmt: skip
        self.services: Services = create_app(settings, clock, store=box.store, keyring=keystore).state.services
        self.crl_number = 0
        self.crls_until = now
        self._issue_crls(now)
        with box.store.transaction() as tx:
            agency = tx.organisation(box.agency_id)
            agency_name, ministry = agency.name, agency.ministry
            coyeu = create_organisation(tx, self.services, None, name=f"Cơ yếu unit of {ministry}",
                                        party_type=PartyType.COYEU, country="VN", ministry=ministry,
                                        auto_countersign=True).id
            agency_operator = create_operator(tx, self.services, None, box.agency_id, name="ds-rollover-schedule",
                                              kind=OperatorKind.SERVICE_ACCOUNT).operator.id
            create_operator(tx, self.services, None, box.provider_id, name=AUTO_ACT_OPERATOR,
                            kind=OperatorKind.SERVICE_ACCOUNT)
        self.parties = [self._official_use(box.agency_id, agency_name, "MNS:A0001", now),
                        self._official_use(coyeu, f"Cơ yếu unit of {ministry}", "MNS:C0001", now)]
        self.coyeu_id = coyeu
        self.requester = AgencyFlowRequester(self.services, agency_operator, key_spec=ds_key_spec)

    def _official_use(self, organisation_id: int, name: str, uid: str, now: datetime) -> _OfficialUse:
        label = str(self.box.keystore.next_label("org", f"sim{organisation_id}"))
        self.box.keystore.generate_key(label, "secp256r1", reason=f"official-use key of {name}")
        party = _OfficialUse(organisation_id, name, uid, label, now)
        self._certify(party, now)
        return party

    def _certify(self, party: _OfficialUse, now: datetime) -> None:
        """A new official-use certificate (Art. 9.2: at most 5 years) for the party's held key."""
        cert = self.pki.issue(self.box.keystore.signer(party.label), common_name=party.name, uid=party.uid,
                              not_before=now - timedelta(hours=1), years=5)
        with self.box.store.transaction() as tx:
            row = register_certificate(tx, self.services, None, party.organisation_id, cert.der, hsm_label=party.label)
            party.not_after = row.not_after

    def _issue_crls(self, now: datetime) -> None:
        self.crl_number += 1
        this_update = now - timedelta(minutes=5)
        sub_ca_crl = self.pki.sub_ca_crl(this_update=this_update, number=self.crl_number)
        root_crl = self.pki.root_crl(this_update=this_update, number=self.crl_number)
        with self.box.store.transaction() as tx:
            for der in (sub_ca_crl, root_crl):
                self.services.checker.import_crl(tx, der, now)
        self.crls_until = min(_next_update(sub_ca_crl), _next_update(root_crl))

    def refresh(self, now: datetime) -> None:
        """The government CA's upkeep, ahead of the day's schedules."""
        if now + CRL_MARGIN >= self.crls_until:
            self._issue_crls(now)
        for party in self.parties:
            if party.not_after - now <= ORG_CERTIFICATE_LEAD:
                self._certify(party, now)

    def request_first_key(self, now: datetime) -> str:
        """The first DS key through the same requester the rollover job uses; 0 = no predecessor,
        as `perform_rollovers` passes when a document type has no signing key at all."""
        return self.requester.request_successor(DOC, 0, now)


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
    #: every DS certificate with the ds_certificate request it came from (`check_ds_requests`)
    ds_requests: list[dict[str, Any]] = field(default_factory=list)
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
        through = (f"{self.counts.get('ds_requests_completed', 0)} of {self.counts.get('ds_certificates', 0)} "
                   "DS certificates through completed ds_certificate requests")
        lapsed = f"; IS coverage lapsed on {len(self.is_uncovered_days)} day(s)" if self.is_uncovered_days else ""
        return (f"{self.signed:,} of {self.requested:,} SODs signed ({through}); limit exceeded: "
                f"{'YES' if self.limit_exceeded else 'no'}; signing stopped: "
                f"{'YES' if self.signing_stopped else 'no'}{lapsed}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "sods_per_day": self.sods_per_day,
            "requested": self.requested, "signed": self.signed, "refused": self.refused,
            "limit_exceeded": self.limit_exceeded, "signing_stopped": self.signing_stopped,
            "violations": self.violations, "is_uncovered_days": self.is_uncovered_days, "counts": self.counts,
            "keys": self.keys, "ds_requests": self.ds_requests,
            "events": [{"at": e.at.isoformat(), "kind": e.kind, "detail": e.detail} for e in self.events],
        }  # fmt: skip


def describe_successor(box: Sandbox, reference: str) -> str:
    """What became of a successor asked for: the request's state and, once completed, the DS key
    and certificate it produced; why not, when the Provider's automatic act failed."""
    with box.store.transaction() as tx:
        if reference.startswith("key:"):  # no signed request: the Agency was notified to submit it itself
            key = tx.key(int(reference.removeprefix("key:")))
            return f"key {key.hsm_label} ({key.state.value}), no request"
        req = tx.request(reference)
        if req.state is RequestState.COMPLETED and req.result:
            return (f"request {req.id} {req.state.value}: {req.result.get('hsm_label')} certified "
                    f"(certificate {req.result.get('certificate_id')})")
        why = tx.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "request", AuditEntry.entity_id == req.id,
                                     AuditEntry.action.in_(("request.auto_act_failed", "request.auto_act_skipped",
                                                            "request.auto_countersign_skipped")))
            .order_by(AuditEntry.seq.desc()).limit(1)
        ).first()  # fmt: skip
        reason = f" ({why.action}: {why.details.get('message') or why.details.get('reason')})" if why else ""
        return f"request {req.id} {req.state.value}{reason}"


def _key_role(label: str) -> str | None:
    try:
        return KeyLabel.parse(label).role
    except KeyStoreConfigError:
        return None


def _job_events(at: datetime, results: dict[str, Any], describe: Callable[[str], str]) -> list[SimEvent]:
    out = []
    for action in results.get("ds-rollover-check") or []:
        due = getattr(action, "due", None)
        if due is not None:
            used = f"{due.used + due.reserved:,} of {due.max_signatures:,} used/reserved" \
                if due.max_signatures is not None else "no signing key"
            out.append(SimEvent(at, "ds-rollover", f"successor for {due.hsm_label} ({due.reason}: {used}) → "
                                                   f"{describe(action.reference)}"))
    # the destruction job destroys retired DS keys and superseded IS keys alike: the label names the role
    out += [SimEvent(at, "is-destroyed" if _key_role(label) == "is" else "ds-destroyed", f"{label} destroyed in the HSM")
            for label in results.get("ds-key-destruction") or [] if isinstance(label, str)]
    for job, kind in (("is-renewals", "is-renewal"), ("dv-renewals", "dv-renewal")):
        for due, result in results.get(job) or []:
            refused = isinstance(result, str) and result.startswith("not renewed")  # SimCvAuthority.request_renewal
            out.append(SimEvent(at, "renewal-refused" if refused else kind,
                                f"{due.subject} (expires {due.not_after:%Y-%m-%d}) → {result}"))
    for job, kind in (("cvca-rollover", "cvca"), ("csca-rollover", "csca")):
        for due, result in results.get(job) or []:
            if result != "already-noticed":  # the notice is recorded once; later runs only find it
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
    ds_key_spec: str = SIM_DS_KEY_SPEC,
) -> SimulationReport:
    """`keystore`: an already open key store to use instead of a throwaway token (tests).
    `ds_key_spec`: the key type the Agency asks for (`SIM_DS_KEY_SPEC` explains the default)."""
    if years < 1 or sods_per_day < 0:
        raise ValueError("years must be ≥ 1 and sods_per_day ≥ 0")
    if years > MAX_YEARS:
        raise ValueError(f"years must be ≤ {MAX_YEARS}: the simulated government CA's sub-CA lives {SUB_CA_YEARS} "
                         "years, and with it every official-use certificate that signs a request")
    own_folder = folder is None
    folder = folder or Path(tempfile.mkdtemp(prefix="icao-pki-simulate-"))
    clock = FakeClock(start)
    box = open_sandbox(clock, folder=folder, policy=policy, document_type=DOC, keystore=keystore)
    try:
        return _simulate(box, clock, policy, years, sods_per_day, batches_per_day, progress, ds_key_spec)
    finally:
        box.store.dispose()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)


def _simulate(box: Sandbox, clock: FakeClock, policy: Policy, years: int, sods_per_day: int, batches_per_day: int,
              progress: Callable[[datetime, int], None] | None, ds_key_spec: str) -> SimulationReport:
    start = clock.now()
    end = add_months(start, 12 * years)
    report = SimulationReport(start, end, sods_per_day)
    with box.store.transaction() as tx:
        is_operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                          ministry="MPS", now=start).id
    cv = SimCvAuthority(box, clock, policy, is_operator)

    def describe(reference: str) -> str:
        return describe_successor(box, reference)

    flow = SimFlow(box, clock, policy, ds_key_spec)
    report.events.append(SimEvent(start, "ds-first", f"first DS key → {describe(flow.request_first_key(start))}"))
    service = DsSigningService(box.store, box.keystore, clock, policy, block_size=max(256, sods_per_day))
    # the job context `icao-pki serve` runs (`schedules.runtime.job_context`: the services' sign
    # component for CRLs, …), with the Agency's requester per document type as it wires it — ours
    # asks for the simulation's DS key type — and the direct CV renewals
    ctx = replace(job_context(flow.services, box.keystore), successor=ByDocumentType({DOC: flow.requester}),
                  renewals=cv)
    tally: dict[str, list[Any]] = defaultdict(lambda: [0, None, None])  # label -> [count, first, last]
    current: str | None = None
    serial = 0
    dg2 = HashAlgorithm.SHA256.digest(b"DG2")
    day = start
    while day < end:
        clock.set(day)
        flow.refresh(day)
        report.events += _job_events(day, run_all(ctx), describe)
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
    check_ds_requests(box, flow, report)
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
        ds_certificates = sum(1 for r in rows if r.role is Role.DS)
    kinds = Counter(e.kind for e in report.events)
    report.counts = {
        "ds_keys": len(report.keys),
        "ds_certificates": ds_certificates, "ds_rollovers": kinds["ds-rollover"], "ds_destroyed": kinds["ds-destroyed"],
        "is_destroyed": kinds["is-destroyed"],
        "is_renewals": kinds["is-renewal"], "dv_renewals": kinds["dv-renewal"],
        "renewals_refused": kinds["renewal-refused"], "cvca_events": kinds["cvca"],
        "csca_events": kinds["csca"], "crls": kinds["crl"], "expired_revoked": statuses[CertificateStatus.EXPIRED],
    }  # fmt: skip



def check_ds_requests(box: Sandbox, flow: SimFlow, report: SimulationReport) -> None:
    """From the database alone: every DS certificate came from a completed
    ds_certificate request of the Agency, signed by it and countersigned by its Cơ yếu unit,
    naming exactly the certified key, whose CSR carries the certified public key; the
    certificate verifies under the CSCA; and no completed request lacks its certificate."""
    csca = parse_certificate(box.csca_der)
    with box.store.transaction() as tx:
        certificates = tx.session.scalars(
            select(Certificate).where(Certificate.role == Role.DS).order_by(Certificate.id)).all()
        requests = tx.session.scalars(select(Request).where(Request.request_type == DS_REQUEST)).all()
        for row in certificates:
            problem = _request_problem(tx, box, flow, csca, row)
            label = tx.key(row.key_id).hsm_label if row.key_id is not None else None
            request = tx.session.get(Request, row.request_id) if row.request_id is not None else None
            report.ds_requests.append({"certificate_id": row.id, "hsm_label": label, "request_id": row.request_id,
                                       "request_state": request.state.value if request is not None else None,
                                       "problem": problem})
            if problem is not None:
                report.violations.append(f"DS certificate {row.id} ({label}): {problem}")
        states = Counter(r.state for r in requests)
        certified = {r.request_id for r in certificates}
        for req in requests:
            if req.state is RequestState.COMPLETED and req.id not in certified:
                report.violations.append(f"ds_certificate request {req.id} completed without a DS certificate")
    report.counts["ds_requests_completed"] = states[RequestState.COMPLETED]
    report.counts["ds_requests_open"] = sum(n for state, n in states.items() if not state.terminal)
    report.counts["ds_requests_rejected"] = states[RequestState.REJECTED]


def _request_problem(tx: StoreTx, box: Sandbox, flow: SimFlow, csca: X509Certificate, row: Certificate) -> str | None:
    if row.request_id is None:
        return "issued without a request"
    req = tx.session.get(Request, row.request_id)
    if req is None or req.request_type != DS_REQUEST or req.state is not RequestState.COMPLETED:
        return (f"its request {row.request_id} is not a completed {DS_REQUEST} request"
                + (f" ({req.request_type}, {req.state.value})" if req is not None else ""))
    if req.applicant_organisation_id != box.agency_id:
        return f"request {req.id} was not made by the Agency"
    signatures = tx.request_signatures(req.id)
    if not any(s.purpose is SignaturePurpose.APPLICATION and s.organisation_id == box.agency_id for s in signatures):
        return f"request {req.id} carries no application signed by the Agency"
    if not any(s.purpose is SignaturePurpose.COUNTERSIGNATURE and s.organisation_id == flow.coyeu_id
               for s in signatures):
        return f"request {req.id} was not countersigned by the Cơ yếu unit"
    if row.key_id is None:
        return "no key row"
    label = tx.key(row.key_id).hsm_label
    if req.payload.get("hsm_label") != label:
        return f"request {req.id} names key {req.payload.get('hsm_label')}, the certificate is for {label}"
    if (req.result or {}).get("certificate_id") != row.id:
        return f"request {req.id} resulted in certificate {(req.result or {}).get('certificate_id')}"
    cert = parse_certificate(row.der)
    try:
        csr = parse_and_verify_csr(base64.b64decode(req.payload.get("csr", "")))
    except InvalidInput as exc:
        return f"request {req.id}'s CSR: {exc}"
    if cert.public_key != csr.public_key:
        return f"the certificate does not carry the public key of request {req.id}'s CSR"
    try:
        cert.verify_issued_by(csca)
    except CertificateVerifyError as exc:
        return f"not issued by the CSCA: {exc}"
    return None
