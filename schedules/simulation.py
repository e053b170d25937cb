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

The CVCA and the CSCA roll over through the key ceremonies of a deployment
(`lifecycle_api.ceremonies`), which need two distinct Provider officers: the CA-rollover
schedules propose as the Provider's service account (`schedules.actors.CeremonyProposer`,
which also records the notice — for a CSCA the 90-day notice, carried as the proposal's
``key_usage_from``), and a second officer approves the next morning (`SimCeremonies`).  The
ceremony makes the new key in the HSM, its certificate and the link certificate from the
previous one; for a CSCA also its first CRL and a new Master List.  The new CSCA certifies DS
keys once its usage period begins (the Provider's act picks the CSCA whose window holds the
moment), the previous one until then.  CVCA, DV and IS certificates are issued directly
(`SimCvAuthority`: the CV request flows have their own tests), each DV by the newest CVCA, so
after a CVCA ceremony the renewed DVs and their IS certificates chain to the new CVCA.  The
report proves from the database that every DV and IS certificate chains to a CVCA valid at
its issuance, every DS certificate to the CSCA whose key usage period held its issuance,
every new CA has its link certificate, and each ceremony had two officers
(`check_ca_rollovers`); a day counts as covered only if an IS certificate, its DV and its
CVCA are all valid.  Were a ceremony not approved, the consequences would show as they would
in a deployment: DV and IS renewals refused as the CVCA's 3 years end (days without IS
coverage), DS requests refused once the CSCA key's 5-year usage is over (signing stops).

A run must be longer than the CVCA's 3 years or the CSCA key's 5 years to cross their
rollovers — unless it starts with them part-way through their lives: `run_simulation`'s
``csca_age_months`` / ``cvca_age_months`` set the sandbox up that many months earlier (the
limits themselves always come from the policy).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from sqlalchemy import select

from cvc.builders import build_cvca_certificate, build_dv_certificate, build_request, build_terminal_certificate
from cvc.certificate import parse_certificate as parse_cv
from cvc.validation import check_chain_at
from fixtures.orgpki import SUB_CA_YEARS, DemoOrgPki, build_demo_org_pki
from icao_pki.certificate import Certificate as X509Certificate
from icao_pki.certificate import CertificateVerifyError, parse_certificate
from icao_pki.clock import FakeClock
from icao_pki.keystore import KeyLabel, KeyStore, KeyStoreConfigError
from icao_pki.masterlist import parse_master_list
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
from lifecycle_api.auth import operator_caller
from lifecycle_api.ceremonies import CEREMONY, approve
from lifecycle_api.certificate_flows import DS as DS_REQUEST
from lifecycle_api.csr import parse_and_verify_csr
from lifecycle_api.errors import InvalidInput, LifecycleError
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
    Key,
    KeyState,
    OperatorKind,
    PartyType,
    PublishedKind,
    Request,
    RequestState,
    SignaturePurpose,
    StoreTx,
)

from .actors import CeremonyProposer
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
#: the Provider's service account the CA-rollover schedule proposes key ceremonies as, and the
#: second officer (a person) who approves them (`SimCeremonies`)
CA_SCHEDULE_OPERATOR = "ca-rollover-schedule"
CEREMONY_OFFICER = "ceremony-officer"
#: the officer approves a proposal the day after it was made, in the morning between two of the
#: personalisation line's batches (signing goes on across the ceremony)
CEREMONY_APPROVAL_DELAY = timedelta(days=1)
OFFICER_HOUR = 10


@dataclass(frozen=True)
class SimEvent:
    at: datetime
    #: ds-first | ds-rollover | ds-switch | ds-destroyed | is-destroyed | cvca-destroyed | is-renewal | dv-renewal |
    #: renewal-refused |
    #: cvca | csca (the schedule's notice and ceremony proposal) | cvca-ceremony | csca-ceremony | ceremony-failed |
    #: crl | expiry | refused
    kind: str
    detail: str


class SimCvAuthority:
    """Our passport CVCA, a domestic DV and one IS operator's terminal; renews DV and IS
    certificates directly (a `RenewalRequester` for the schedules).

    Each DV is issued by the newest CVCA of the database whose key the HSM holds: the first
    one, made here, until a ``cvca`` key ceremony (`SimCeremonies`) has made its successor —
    from then on renewed DVs, and the IS certificates they issue, chain to the new CVCA (and
    through its link certificate to the old one).  `cvca_since` backdates the first CVCA's
    effective date: the simulation may start with a CVCA already part-way through its 3 years."""

    def __init__(self, box: Sandbox, clock: FakeClock, policy: Policy, is_operator_id: int,
                 cvca_since: date | None = None) -> None:
        self.box, self.clock, self.policy, self.is_operator_id = box, clock, policy, is_operator_id
        self.seq = Counter[str]()
        today = clock.now().date()
        effective = today if cvca_since is None else cvca_since
        label = str(box.keystore.next_label(DOC.value, "cvca"))
        signer = box.keystore.generate_key(label, CV_SPEC, reason="simulation CVCA")
        exp = cv_max_expiration(effective, policy.limit(DOC, Role.CVCA).certificate_validity_months)
        if not effective <= today <= exp:
            raise ValueError(f"the first CVCA ({effective} – {exp}) must be valid on the first day {today}")
        der = build_cvca_certificate(signer, chr=self._chr("CVCA"), effective_date=effective, expiration_date=exp,
                                     document_type=DOC, policy=policy)
        self._store(der, Role.CVCA, label, None)
        self.dv_label, self.dv_der, self._dv_id = self._issue_dv()
        self._issue_is()

    def current_cvca(self) -> tuple[str, bytes, int]:
        """(HSM label, certificate, row id) of the newest self-signed CVCA with a key of ours —
        expired too, so that a renewal past its end is refused naming it."""
        with self.box.store.transaction() as tx:
            cert, key = tx.session.execute(
                select(Certificate, Key).join(Key, Key.id == Certificate.key_id)
                .where(Certificate.role == Role.CVCA, Certificate.document_type == DOC,
                       Certificate.certificate_format == CertificateFormat.CV, Certificate.chr == Certificate.issuer)
                .order_by(Certificate.not_before.desc(), Certificate.id.desc()).limit(1)
            ).one()  # fmt: skip
            return key.hsm_label, cert.der, cert.id

    @property
    def cvca_label(self) -> str:
        return self.current_cvca()[0]

    @property
    def cvca_der(self) -> bytes:
        return self.current_cvca()[1]

    def _chr(self, mnemonic: str) -> str:
        self.seq[mnemonic] += 1
        return f"VN{mnemonic}{self.seq[mnemonic]:05d}"

    def _store(self, der: bytes, role: Role, key_label: str | None, org: int | None,
               issuer_id: int | None = None) -> int:
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
                document_type=DOC, chr=cv.chr, subject=cv.chr, issuer=cv.car, issuer_certificate_id=issuer_id,
                not_before=day_start(cv.effective_date), not_after=day_end(cv.expiration_date), der=der,
                fingerprint_sha256=hashlib.sha256(der).hexdigest(), created_at=now,
            ).id  # fmt: skip

    def _issue_dv(self) -> tuple[str, bytes, int]:
        today = self.clock.now().date()
        cvca_label, cvca_der, cvca_id = self.current_cvca()
        cvca = parse_cv(cvca_der)
        label = str(self.box.keystore.next_label(DOC.value, "dvca"))
        dv_signer = self.box.keystore.generate_key(label, CV_SPEC, reason="simulation DV")
        request = build_request(dv_signer, chr=self._chr("SIMDV"), car=cvca.chr)
        exp = min(cv_max_expiration(today, self.policy.limit(DOC, Role.DVCA).certificate_validity_months),
                  cvca.expiration_date)
        der = build_dv_certificate(self.box.keystore.signer(cvca_label), cvca, request, domestic=True,
                                   effective_date=today, expiration_date=exp, document_type=DOC, policy=self.policy)
        return label, der, self._store(der, Role.DVCA, label, self.box.provider_id, cvca_id)

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
        self._store(der, Role.IS, None, self.is_operator_id, self._dv_id)
        return parse_cv(der).chr

    def request_renewal(self, due: RenewalDue, now: datetime) -> str:
        """Renew, unless the issuer's own expiry caps the renewal at the due certificate's end.

        A certificate never outlives its issuer: near the end of a CVCA whose ceremony was not
        held, a "renewed" DV would expire with the one it replaces, so the schedule would find
        both due again the next day, and every copy after that — doubling daily.  Such a
        renewal is refused (named in the timeline); coverage then lapses, which the report's
        IS-coverage days show.  Once the ceremony has made the next CVCA, the DV renewal is
        issued by it."""
        issuer = parse_cv(self.cvca_der if due.role is Role.DVCA else self.dv_der)
        if day_end(issuer.expiration_date) <= due.not_after:
            return (f"not renewed: its issuer {issuer.chr} expires {issuer.expiration_date} "
                    "(no CVCA ceremony made its successor)")
        if due.role is Role.DVCA:
            self.dv_label, self.dv_der, self._dv_id = self._issue_dv()
            return f"{parse_cv(self.dv_der).chr} (issued by {parse_cv(self.dv_der).car})"
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


class SimCeremonies:
    """The two Provider officers a CA key ceremony needs (`lifecycle_api.ceremonies`).

    The CA-rollover schedules propose as the Provider's service account `CA_SCHEDULE_OPERATOR`
    (`schedules.actors.CeremonyProposer`, the actor `icao-pki serve` wires), which also records
    the notice; a schedule is never the second pair of eyes.  `approve_due` is the second
    officer, a distinct operator (a person) of the Provider: a day after the proposal it
    approves through `lifecycle_api.ceremonies.approve`, which makes the new key in the HSM, the
    self-signed certificate and the link certificate from the previous one (for a CSCA also its
    first CRL and a new Master List).  A CSCA proposal carries the 90-day notice's end as
    ``key_usage_from``, so the new CSCA certifies DS keys only from then on."""

    def __init__(self, services: Services, provider_id: int) -> None:
        self.services = services
        with services.store.transaction() as tx:
            self.schedule_operator_id = create_operator(tx, services, None, provider_id, name=CA_SCHEDULE_OPERATOR,
                                                        kind=OperatorKind.SERVICE_ACCOUNT).operator.id
            self.officer_id = create_operator(tx, services, None, provider_id, name=CEREMONY_OFFICER,
                                              kind=OperatorKind.OPERATOR).operator.id
        self.proposer = CeremonyProposer(services, self.schedule_operator_id)

    def approve_due(self, now: datetime) -> list[SimEvent]:
        """Approve every ceremony the schedule proposed at least `CEREMONY_APPROVAL_DELAY` ago.
        A refused approval is named in the timeline and stays open (tried again the next day)."""
        store = self.services.store
        with store.transaction() as tx:
            due = [r.id for r in tx.session.scalars(
                select(Request).where(Request.request_type == CEREMONY, Request.state == RequestState.SUBMITTED,
                                      Request.created_at <= now - CEREMONY_APPROVAL_DELAY)
                .order_by(Request.created_at)
            ) if r.payload.get("proposed_by_operator_id") == self.schedule_operator_id]  # fmt: skip
        if not due:
            return []
        officer = operator_caller(store, self.officer_id, "Provider officer")
        events = []
        for request_id in due:
            try:
                done = approve(self.services, officer, request_id)
            except (LifecycleError, PolicyViolation) as exc:
                events.append(SimEvent(now, "ceremony-failed", f"ceremony {request_id}: {type(exc).__name__}: {exc}"))
                continue
            events.append(self._describe(done, officer.operator_name, now))
        return events

    def _describe(self, done: Request, officer: str, now: datetime) -> SimEvent:
        result = done.result or {}
        kind = done.payload["kind"]
        with self.services.store.transaction() as tx:
            cert, key = tx.certificate(result["certificate_id"]), tx.key(result["key_id"])
            link = tx.certificate(result["link_certificate_id"]) if "link_certificate_id" in result else None
            published = tx.session.scalars(
                select(AuditEntry.action).where(AuditEntry.entity_type == "request", AuditEntry.entity_id == done.id,
                                                AuditEntry.action.like("ceremony.master_list_%"))
            ).first()  # fmt: skip
        who = f"ceremony {done.id} proposed by {done.payload.get('proposed_by')}, approved by {officer}"
        linked = f"link certificate {link.id} issued by {link.issuer}" if link is not None else "no link certificate"
        if kind == "cvca":
            return SimEvent(now, "cvca-ceremony", f"{who}: new CVCA {cert.chr} (key {key.hsm_label}, valid "
                                                  f"{cert.not_before:%Y-%m-%d} – {cert.not_after:%Y-%m-%d}); {linked}")
        if kind == "csca":
            usage = f"{key.usage_not_before:%Y-%m-%d} – {key.usage_not_after:%Y-%m-%d}"
            master_list = {"ceremony.master_list_published": "Master List published",
                           "ceremony.master_list_failed": "Master List NOT published"}.get(published or "", "no Master List")
            return SimEvent(now, "csca-ceremony", f"{who}: new CSCA {cert.subject} (key {key.hsm_label}, key usage "
                                                  f"{usage}, valid until {cert.not_after:%Y-%m-%d}); {linked}; "
                                                  f"{master_list}")
        return SimEvent(now, f"{kind}-ceremony", f"{who}: {cert.subject} (key {key.hsm_label})")


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


#: the timeline's kind of a key the destruction job destroyed, by the role its label names
_DESTROYED_KIND = {"is": "is-destroyed", "cvca": "cvca-destroyed"}


def _key_role(label: str) -> str | None:
    try:
        return KeyLabel.parse(label).role
    except KeyStoreConfigError:
        return None


def _job_events(at: datetime, results: dict[str, Any], describe: Callable[[str], str],
                reported: set[str] | None = None) -> list[SimEvent]:
    """`reported`: ceremony proposals already in the timeline — the rollover job finds its open
    proposal again each day until the officer approves it."""
    reported = set() if reported is None else reported
    out = []
    for action in results.get("ds-rollover-check") or []:
        due = getattr(action, "due", None)
        if due is not None:
            used = f"{due.used + due.reserved:,} of {due.max_signatures:,} used/reserved" \
                if due.max_signatures is not None else "no signing key"
            out.append(SimEvent(at, "ds-rollover", f"successor for {due.hsm_label} ({due.reason}: {used}) → "
                                                   f"{describe(action.reference)}"))
    # the destruction job destroys retired DS keys, superseded IS keys and CVCA keys retired by their
    # successor's ceremony alike: the label names the role
    out += [SimEvent(at, _DESTROYED_KIND.get(_key_role(label) or "", "ds-destroyed"), f"{label} destroyed in the HSM")
            for label in results.get("ds-key-destruction") or [] if isinstance(label, str)]
    for job, kind in (("is-renewals", "is-renewal"), ("dv-renewals", "dv-renewal")):
        for due, result in results.get(job) or []:
            refused = isinstance(result, str) and result.startswith("not renewed")  # SimCvAuthority.request_renewal
            out.append(SimEvent(at, "renewal-refused" if refused else kind,
                                f"{due.subject} (expires {due.not_after:%Y-%m-%d}) → {result}"))
    for job, kind in (("cvca-rollover", "cvca"), ("csca-rollover", "csca")):
        for due, result in results.get(job) or []:
            if result == "already-noticed" or result in reported:  # recorded once; later runs only find it
                continue
            if isinstance(result, str) and result.startswith("ceremony:"):
                reported.add(result)
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
    csca_age_months: int = 0,
    cvca_age_months: int = 0,
) -> SimulationReport:
    """`keystore`: an already open key store to use instead of a throwaway token (tests).
    `ds_key_spec`: the key type the Agency asks for (`SIM_DS_KEY_SPEC` explains the default).
    `csca_age_months`, `cvca_age_months`: how long the CSCA key and the CVCA have been in use
    when the simulation starts (a deployment in mid-life): the sandbox is set up that many
    months earlier, so a short run reaches their rollovers; every limit still comes from `policy`."""
    if years < 1 or sods_per_day < 0:
        raise ValueError("years must be ≥ 1 and sods_per_day ≥ 0")
    if years > MAX_YEARS:
        raise ValueError(f"years must be ≤ {MAX_YEARS}: the simulated government CA's sub-CA lives {SUB_CA_YEARS} "
                         "years, and with it every official-use certificate that signs a request")
    csca_usage = policy.limit(DOC, Role.CSCA).key_usage_months
    cvca_validity = policy.limit(DOC, Role.CVCA).certificate_validity_months
    if not 0 <= csca_age_months < csca_usage or not 0 <= cvca_age_months < cvca_validity:
        raise ValueError(f"the CSCA's age must be 0 to {csca_usage - 1} months (its key usage) and the CVCA's "
                         f"0 to {cvca_validity - 1} months (its validity): each must still be usable on the first day")
    own_folder = folder is None
    folder = folder or Path(tempfile.mkdtemp(prefix="icao-pki-simulate-"))
    clock = FakeClock(add_months(start, -csca_age_months))  # the sandbox's CSCA is made on its clock's today
    box = open_sandbox(clock, folder=folder, policy=policy, document_type=DOC, keystore=keystore)
    clock.set(start)
    try:
        return _simulate(box, clock, policy, years, sods_per_day, batches_per_day, progress, ds_key_spec,
                         add_months(start, -cvca_age_months).date())
    finally:
        box.store.dispose()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)


def _simulate(box: Sandbox, clock: FakeClock, policy: Policy, years: int, sods_per_day: int, batches_per_day: int,
              progress: Callable[[datetime, int], None] | None, ds_key_spec: str,
              cvca_since: date) -> SimulationReport:
    start = clock.now()
    end = add_months(start, 12 * years)
    report = SimulationReport(start, end, sods_per_day)
    with box.store.transaction() as tx:
        is_operator = tx.add_organisation(name="IS operator", party_type=PartyType.IS_OPERATOR, country="VN",
                                          ministry="MPS", now=start).id
    cv = SimCvAuthority(box, clock, policy, is_operator, cvca_since)

    def describe(reference: str) -> str:
        return describe_successor(box, reference)

    flow = SimFlow(box, clock, policy, ds_key_spec)
    ceremonies = SimCeremonies(flow.services, box.provider_id)
    report.events.append(SimEvent(start, "ds-first", f"first DS key → {describe(flow.request_first_key(start))}"))
    service = DsSigningService(box.store, box.keystore, clock, policy, block_size=max(256, sods_per_day))
    # the job context `icao-pki serve` runs (`schedules.runtime.job_context`: the services' sign
    # component for CRLs, …), with the Agency's requester per document type as it wires it — ours
    # asks for the simulation's DS key type —, the direct CV renewals, and the ceremony proposer
    # acting as the Provider's CA-rollover service account
    ctx = replace(job_context(flow.services, box.keystore), successor=ByDocumentType({DOC: flow.requester}),
                  renewals=cv, ca_rollover=ceremonies.proposer)
    # the working day: the line's batches, and the officer's morning (None)
    batches = [sods_per_day // batches_per_day + (1 if i < sods_per_day % batches_per_day else 0)
               for i in range(batches_per_day)]
    workday = sorted([(timedelta(hours=6 + i * 12 / batches_per_day), n) for i, n in enumerate(batches) if n]
                     + [(timedelta(hours=OFFICER_HOUR), None)], key=lambda moment: moment[0])
    tally: dict[str, list[Any]] = defaultdict(lambda: [0, None, None])  # label -> [count, first, last]
    current: str | None = None
    proposals: set[str] = set()
    serial = 0
    dg2 = HashAlgorithm.SHA256.digest(b"DG2")
    day = start
    while day < end:
        clock.set(day)
        flow.refresh(day)
        report.events += _job_events(day, run_all(ctx), describe, proposals)
        if not _is_covered(box, is_operator, day + timedelta(hours=12)):
            report.is_uncovered_days.append(day.date().isoformat())
        for at, n in workday:
            clock.set(day + at)
            if n is None:
                report.events += ceremonies.approve_due(clock.now())
                continue
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
    check_ca_rollovers(box, report)
    return report


def _cv_parent(tx: StoreTx, car: str) -> Certificate | None:
    """The certificate a CAR names, as a chip finds it: the self-signed CVCA of that CHR (not
    its link certificate, which has the same CHR), else the DV of that CHR."""
    rows = tx.session.scalars(
        select(Certificate).where(Certificate.certificate_format == CertificateFormat.CV, Certificate.chr == car,
                                  Certificate.document_type == DOC).order_by(Certificate.id)
    ).all()  # fmt: skip
    return next((r for r in rows if r.issuer == r.chr), rows[0] if rows else None)


def cv_chain_problem(tx: StoreTx, row: Certificate, at: date) -> str | None:
    """Why a DV or IS certificate does not chain, through the CARs, to one of our self-signed
    CVCAs with every certificate of the chain (the CVCA too) valid on `at`; None if it does."""
    chain = [parse_cv(row.der)]
    while not chain[0].is_self_signed:
        if len(chain) > 3:
            return f"no CVCA above {chain[0].chr} within three certificates"
        parent = _cv_parent(tx, chain[0].car)
        if parent is None:
            return f"its issuer {chain[0].car} is not in the database"
        chain.insert(0, parse_cv(parent.der))
    if len(chain) < 2:
        return "it is a CVCA"
    findings = check_chain_at(chain[0], chain[1:], at).findings
    return f"{findings[0]} (chain {' → '.join(c.chr for c in chain)}, on {at})" if findings else None


def _is_covered(box: Sandbox, organisation_id: int, when: datetime) -> bool:
    """An IS certificate of the operator valid at `when` whose DV and CVCA are valid then too:
    a terminal whose DV or CVCA has expired cannot authenticate to a chip."""
    with box.store.transaction() as tx:
        rows = tx.session.scalars(
            select(Certificate).where(
                Certificate.organisation_id == organisation_id, Certificate.role == Role.IS,
                Certificate.not_before <= when, Certificate.not_after >= when,
            ).order_by(Certificate.not_after.desc())
        ).all()  # fmt: skip
        return any(cv_chain_problem(tx, row, when.date()) is None for row in rows)


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
            if row.certificate_format is CertificateFormat.CV and row.role in (Role.DVCA, Role.IS):
                # issued under a CVCA valid on its effective date (after a rollover: the new one)
                problem = cv_chain_problem(tx, row, parse_cv(row.der).effective_date)
                if problem is not None:
                    report.violations.append(f"certificate {row.id} ({row.role.value} {row.chr}) does not chain to "
                                             f"a CVCA valid at its issuance: {problem}")
        statuses = Counter(r.status for r in rows)
        ds_certificates = sum(1 for r in rows if r.role is Role.DS)
    kinds = Counter(e.kind for e in report.events)
    report.counts = {
        "ds_keys": len(report.keys),
        "ds_certificates": ds_certificates, "ds_rollovers": kinds["ds-rollover"], "ds_destroyed": kinds["ds-destroyed"],
        "is_destroyed": kinds["is-destroyed"], "cvca_destroyed": kinds["cvca-destroyed"],
        "is_renewals": kinds["is-renewal"], "dv_renewals": kinds["dv-renewal"],
        "renewals_refused": kinds["renewal-refused"], "cvca_events": kinds["cvca"],
        "csca_events": kinds["csca"], "cvca_ceremonies": kinds["cvca-ceremony"],
        "csca_ceremonies": kinds["csca-ceremony"], "ceremonies_failed": kinds["ceremony-failed"],
        "crls": kinds["crl"], "expired_revoked": statuses[CertificateStatus.EXPIRED],
    }  # fmt: skip



def check_ds_requests(box: Sandbox, flow: SimFlow, report: SimulationReport) -> None:
    """From the database alone: every DS certificate came from a completed
    ds_certificate request of the Agency, signed by it and countersigned by its Cơ yếu unit,
    naming exactly the certified key, whose CSR carries the certified public key; the
    certificate was signed by the CSCA its row names, inside that CSCA key's usage period and
    while no newer CSCA's was running (`_csca_problem`); and no completed request lacks its
    certificate."""
    with box.store.transaction() as tx:
        cscas = _our_cscas(tx)
        certificates = tx.session.scalars(
            select(Certificate).where(Certificate.role == Role.DS).order_by(Certificate.id)).all()
        requests = tx.session.scalars(select(Request).where(Request.request_type == DS_REQUEST)).all()
        for row in certificates:
            problem = _request_problem(tx, box, flow, cscas, row)
            label = tx.key(row.key_id).hsm_label if row.key_id is not None else None
            request = tx.session.get(Request, row.request_id) if row.request_id is not None else None
            report.ds_requests.append({"certificate_id": row.id, "hsm_label": label, "request_id": row.request_id,
                                       "request_state": request.state.value if request is not None else None,
                                       "csca_certificate_id": row.issuer_certificate_id, "problem": problem})
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


def check_ca_rollovers(box: Sandbox, report: SimulationReport) -> None:
    """From the database alone, for every CSCA and CVCA a key ceremony made after the first:
    a link certificate signed by its predecessor carries its public key (for a CSCA, a Master
    List published since carries both), the predecessor's CVCA key was retired by the ceremony
    and destroyed after its certificate's validity (`_superseded_cvca_key_problem`; an old CSCA
    key keeps signing CRLs, so it is not retired), and the ceremony was proposed and approved by
    two distinct Provider operators (the audit log)."""
    with box.store.transaction() as tx:
        cscas = _our_cscas(tx)
        links = [parse_certificate(r.der) for r in tx.session.scalars(
            select(Certificate).where(Certificate.role == Role.CSCA, Certificate.key_id.is_(None),
                                      Certificate.certificate_format == CertificateFormat.X509))]
        master_lists = tx.published(PublishedKind.MASTER_LIST, current_only=False)
        for (old_id, old), (new_id, new) in itertools.pairwise(cscas):
            link = next((c for c in links if c.spki_der == new.spki_der and _verifies(c, old)), None)
            if link is None:
                report.violations.append(f"CSCA certificate {new_id} has no link certificate from CSCA {old_id}")
                continue
            if link.subject != new.subject:  # a relying party chains the DS certificates by name
                report.violations.append(f"the link certificate to CSCA certificate {new_id} names "
                                         f"{link.subject_str} instead of {new.subject_str}")
            if not any(row.published_at >= new.not_before and {new.der, link.der} <= set(parse_master_list(row.der).entries)
                       for row in master_lists):
                report.violations.append(f"no Master List published since CSCA certificate {new_id} lists it and "
                                         "its link certificate")
        cvca_rows = tx.session.scalars(
            select(Certificate).where(Certificate.role == Role.CVCA, Certificate.document_type == DOC,
                                      Certificate.certificate_format == CertificateFormat.CV)
            .order_by(Certificate.not_before, Certificate.id)).all()  # fmt: skip
        roots = [r for r in cvca_rows if r.chr == r.issuer]
        cvcas = [parse_cv(r.der) for r in roots]
        cv_links = [parse_cv(r.der) for r in cvca_rows if r.chr != r.issuer]
        for (old_row, old_cv), (_, new_cv) in itertools.pairwise(zip(roots, cvcas, strict=True)):
            point = getattr(new_cv.public_key, "point", None)
            found = [c for c in cv_links if c.chr == new_cv.chr and c.car == old_cv.chr and point is not None
                     and getattr(c.public_key, "point", None) == point
                     and check_chain_at(old_cv, [c], c.effective_date).valid]
            if not found:
                report.violations.append(f"CVCA {new_cv.chr} has no link certificate from {old_cv.chr}")
                continue
            problem = _superseded_cvca_key_problem(tx, old_row, new_cv.chr, report.end)
            if problem is not None:
                report.violations.append(problem)
        ceremonies = tx.session.scalars(select(Request).where(Request.request_type == CEREMONY)).all()
        for req in ceremonies:
            actors = {a.action: a.actor_operator_id for a in tx.session.scalars(
                select(AuditEntry).where(AuditEntry.entity_type == "request", AuditEntry.entity_id == req.id,
                                         AuditEntry.action.in_(("ceremony.proposed", "ceremony.completed"))))}
            done = actors.get("ceremony.completed")
            if req.state is RequestState.COMPLETED and (done is None or done == actors.get("ceremony.proposed")):
                report.violations.append(f"ceremony {req.id} was not approved by a second Provider operator")
    report.counts["cscas"] = len(cscas)
    report.counts["cvcas"] = len(cvcas)


def _superseded_cvca_key_problem(tx: StoreTx, old: Certificate, successor: str, until: datetime) -> str | None:
    """Why the key of CVCA certificate `old`, which the ceremony of `successor` linked from, is not
    where it should be at `until` (the run's end); None if it is.

    Once its successor's ceremony has signed the link it has nothing left to sign: it must have
    been retired by that ceremony (the audit entry names the successor), and destroyed once its
    certificate's validity ended — never before (the destruction's time is after the certificate's
    end), and no later than the first daily run after it when the run went on that long (two
    days' margin: the runs are a day apart)."""
    if old.key_id is None:
        return None
    key = tx.key(old.key_id)
    who = f"CVCA key {key.hsm_label} ({old.chr})"
    entries = {e.action: e for e in tx.session.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "key", AuditEntry.entity_id == str(key.id),
                                 AuditEntry.action.in_(("cvca_key.retired", "cvca_key.destroyed")))
        .order_by(AuditEntry.seq))}  # fmt: skip
    retired = entries.get("cvca_key.retired")
    if key.state not in (KeyState.RETIRED, KeyState.DESTROYED):
        return f"{who} is {key.state.value} after CVCA {successor} succeeded it"
    if retired is None:
        return f"{who} is {key.state.value} but no retirement was recorded when CVCA {successor} succeeded it"
    if retired.details.get("superseded_by") != successor:
        return f"{who} was retired naming {retired.details.get('superseded_by')}, not its successor {successor}"
    if key.state is KeyState.DESTROYED:
        if key.destroyed_at is None or key.destroyed_at <= old.not_after or "cvca_key.destroyed" not in entries:
            return (f"{who} was destroyed at {key.destroyed_at} (audited: {'cvca_key.destroyed' in entries}), "
                    f"not after its certificate's validity ended {old.not_after:%Y-%m-%d}")
        return None
    if until > old.not_after + timedelta(days=2):
        return f"{who} is still in the HSM though its certificate's validity ended {old.not_after:%Y-%m-%d}"
    return None


def _verifies(cert: X509Certificate, issuer: X509Certificate) -> bool:
    try:
        cert.verify_issued_by(issuer)
    except CertificateVerifyError:
        return False
    return True


def _our_cscas(tx: StoreTx) -> list[tuple[int, X509Certificate]]:
    """Our self-signed CSCA certificates (those with a key in the HSM; link certificates have
    none), oldest first."""
    rows = tx.session.scalars(
        select(Certificate).where(Certificate.role == Role.CSCA, Certificate.document_type == DOC,
                                  Certificate.certificate_format == CertificateFormat.X509,
                                  Certificate.key_id.is_not(None)).order_by(Certificate.not_before, Certificate.id)
    ).all()  # fmt: skip
    return [(r.id, parse_certificate(r.der)) for r in rows]


def _csca_problem(cert: X509Certificate, row: Certificate, cscas: list[tuple[int, X509Certificate]]) -> str | None:
    """The DS certificate's signature verifies under the CSCA its row names; it was issued
    (notBefore) inside that CSCA's private key usage period, when no newer CSCA's period had
    begun (from then on the new CSCA signs, ICAO 9303-12 §4.1.4), and it ends with its CSCA."""
    issued = cert.not_before
    signers = []
    for csca_id, csca in cscas:
        try:
            cert.verify_issued_by(csca)
        except CertificateVerifyError:
            continue
        signers.append((csca_id, csca))
    if not signers:
        return "not issued by any of our CSCAs"
    csca_id, csca = signers[0]
    if row.issuer_certificate_id != csca_id:
        return f"signed by CSCA certificate {csca_id}, its row names {row.issuer_certificate_id}"
    usage = csca.private_key_usage_period
    if usage is None or not usage.start <= issued <= usage.end:
        window = f"{usage.start:%Y-%m-%d} – {usage.end:%Y-%m-%d}" if usage is not None else "none"
        return f"issued {issued:%Y-%m-%d} outside its CSCA's key usage period ({window})"
    newer = [(i, c) for i, c in cscas if c.not_before > csca.not_before and c.private_key_usage_period is not None
             and c.private_key_usage_period.start <= issued <= c.private_key_usage_period.end]
    if newer:
        return (f"issued {issued:%Y-%m-%d} by CSCA certificate {csca_id} while the newer CSCA certificate "
                f"{newer[0][0]}'s key usage period had begun")
    if cert.not_after > csca.not_after:
        return f"valid until {cert.not_after:%Y-%m-%d}, after its CSCA ({csca.not_after:%Y-%m-%d})"
    return None


def _request_problem(tx: StoreTx, box: Sandbox, flow: SimFlow, cscas: list[tuple[int, X509Certificate]],
                     row: Certificate) -> str | None:
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
    return _csca_problem(cert, row, cscas)
