"""The sign component: the only code in lifecycle_api that holds a PKCS#11 `Signer` for a CA key.

The boulder split (STYLE.md): the workflow *decides* inside a transaction, this module
*signs* outside any transaction, and the workflow *stores* the product in the next one.
Around every HSM operation:

1. the decree's limits and the key's state and usage window are re-checked with the
   injected clock (`check_key`); the codecs' builders check `icao_pki.policy` again;
2. a journal row (`hsm_operations`, state *pending*) is committed in its own transaction
   before the HSM is touched — for a signature, the SHA-256 of exactly the bytes handed
   to the HSM is committed before the HSM sees them (`_JournalledSigner`), and a second
   signature through the same operation is refused (sign exactly once);
3. the product is verified (`verify` callback: the certificate against the CA key, the CRL
   against the CSCA…) before the row moves to *done*;
4. the workflow step that uses the product moves the row to *committed* inside its own
   transaction (`commit`), so a product is handed out only if its step commits.

A crash anywhere leaves rows *pending* / *done*; `recover()` (run at start-up) destroys
generated keys whose step never committed and marks orphaned signatures *abandoned*, each
with an audit record.  Keys that the database does not know are therefore never usable:
the only way a generated key becomes known is the committed step that adopts it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from cvc.certificate import CvCertificate
from cvc.certificate import parse_certificate as parse_cv_certificate
from icao_pki.certificate import Certificate as X509Certificate
from icao_pki.certificate import parse_certificate
from icao_pki.clock import Clock
from icao_pki.keystore import KeyNotFound, KeyStore
from icao_pki.policy import DEFAULT_POLICY, CertificateFormat, DocumentType, Policy, Role, Window
from icao_pki.signature import load_spki
from icao_pki.signer import HashAlgorithm, KeyKind, RsaPadding, Signer

from .errors import LifecycleError
from .store import (
    AuditEntry,
    Certificate,
    HsmOperationKind,
    HsmOperationState,
    Key,
    KeyState,
    Store,
    StoreTx,
)


class AuthorityError(LifecycleError):
    """The sign component refused: key mismatch, key not usable, signed twice, bad product."""

    kind = "authority-refused"


class RetiredCvcaKey(AuthorityError):
    """A CVCA key retired by its successor's ceremony was asked to sign (`check_key`, `sign`).

    Its own kind, naming the article and the CVCA that succeeded it, because the caller can act
    on it: whatever picked that key should pick the newest CVCA (`hierarchy.current_ca`)."""

    kind = "cvca-key-retired"


#: audit action of a CVCA key retired by its successor's ceremony (`ceremonies.retire_superseded_cvca`
#: writes it; `Authority.refuse_retired_cvca` reads it back to name the successor)
CVCA_KEY_RETIRED = "cvca_key.retired"


@dataclass(frozen=True)
class CaKey:
    """A CA certificate with the HSM key that signs for it, checked to match at load time."""

    certificate_id: int
    key_id: int
    label: str
    role: Role
    document_type: DocumentType
    certificate_format: CertificateFormat
    der: bytes
    usage: Window | None
    signer: Signer = field(repr=False)
    x509: X509Certificate | None = None
    cv: CvCertificate | None = None


@dataclass(frozen=True)
class GeneratedKey:
    label: str
    spec: str
    operation_id: int
    signer: Signer = field(repr=False)


@dataclass(frozen=True)
class Signed:
    der: bytes
    operation_id: int
    input_sha256: str


@dataclass
class RecoveryReport:
    destroyed_keys: list[str] = field(default_factory=list)
    abandoned_signatures: list[int] = field(default_factory=list)
    failed_generations: list[str] = field(default_factory=list)


def key_matches(signer: Signer, certificate_der: bytes, certificate_format: CertificateFormat,
                inherited_curve: Any = None) -> bool:
    """Does the HSM key behind `signer` carry the public key of this certificate?"""
    held = load_spki(signer.public_key_info())
    if CertificateFormat(certificate_format) is CertificateFormat.X509:
        return held == parse_certificate(certificate_der).public_key
    cv = parse_cv_certificate(certificate_der)
    return held == cv.public_key.public_key(inherited_curve or signer.curve)


class _JournalledSigner:
    """Hands exactly one signature to the HSM, after committing the hash of its input."""

    def __init__(self, inner: Signer, before_sign: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._before_sign = before_sign
        self.used = False

    @property
    def kind(self) -> KeyKind:
        return self._inner.kind

    @property
    def curve(self) -> Any:
        return self._inner.curve

    @property
    def rsa_bits(self) -> int | None:
        return self._inner.rsa_bits

    def public_key_info(self) -> bytes:
        return self._inner.public_key_info()

    def sign(self, data: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:
        if self.used:
            raise AuthorityError("this operation already made its one signature; a second one is refused")
        self.used = True
        self._before_sign(data)
        return self._inner.sign(data, hash_algorithm, rsa_padding)


class Authority:
    """The sign component.  One per process; thread-safe as far as the key store is."""

    def __init__(self, store: Store, keystore: KeyStore, clock: Clock, policy: Policy = DEFAULT_POLICY) -> None:
        self.store = store
        self.keystore = keystore
        self.clock = clock
        self.policy = policy

    # --- journal -------------------------------------------------------------------------

    def _journal(self, kind: HsmOperationKind, label: str, purpose: str, request_id: str | None,
                 details: dict[str, Any]) -> int:
        """The journal row, committed before the HSM is touched.  A signature by a retired CVCA
        key is refused here, in the same transaction, whatever loaded the key: `check_key` ran
        in an earlier transaction, and the successor's ceremony may have retired it since."""
        with self.store.transaction() as tx:
            if kind is HsmOperationKind.SIGN:
                key = tx.key_by_label(label)
                if key is not None:
                    self.refuse_retired_cvca(tx, key)
            op = tx.add_hsm_operation(kind=kind, hsm_label=label, purpose=purpose, request_id=request_id,
                                      details=details, now=self.clock.now())
            return op.id

    def _move(self, operation_id: int, expected: tuple[HsmOperationState, ...], new: HsmOperationState,
              **fields: Any) -> None:
        with self.store.transaction() as tx:
            tx.move_hsm_operation(operation_id, expected, new, now=self.clock.now(), **fields)

    def commit(self, tx: StoreTx, operation_id: int) -> None:
        """Inside the step that stores the product: the product now exists for the database."""
        tx.move_hsm_operation(operation_id, (HsmOperationState.DONE,), HsmOperationState.COMMITTED,
                              now=self.clock.now())

    def abandon(self, operation_id: int, reason: str) -> None:
        """A signature made for a step that then failed (e.g. another worker won the request):
        never handed out, recorded as abandoned."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.move_hsm_operation(operation_id, (HsmOperationState.DONE,), HsmOperationState.ABANDONED, now=now)
            tx.append_audit(at=now, action="hsm.signature_abandoned", entity_type="hsm_operation",
                            entity_id=operation_id, details={"reason": reason})

    # --- loading CA keys -----------------------------------------------------------------

    def load_ca(self, tx: StoreTx, certificate: Certificate, *, inherited_curve: Any = None) -> CaKey:
        """The CA's key, checked to be the key of its certificate (STYLE: at load time)."""
        if certificate.key_id is None:
            raise AuthorityError(f"certificate {certificate.id} has no key held by this service")
        key = tx.key(certificate.key_id)
        try:
            signer = self.keystore.signer(key.hsm_label)
        except KeyNotFound:
            raise AuthorityError(f"the HSM holds no key {key.hsm_label}", label=key.hsm_label) from None
        fmt = CertificateFormat(certificate.certificate_format)
        if not key_matches(signer, certificate.der, fmt, inherited_curve):
            raise AuthorityError(
                f"the HSM key {key.hsm_label} is not the key of certificate {certificate.id} ({certificate.subject})",
                label=key.hsm_label, certificate_id=certificate.id,
            )
        usage = None
        if key.usage_not_before is not None and key.usage_not_after is not None:
            usage = Window(key.usage_not_before, key.usage_not_after)
        return CaKey(
            certificate_id=certificate.id, key_id=key.id, label=key.hsm_label, role=Role(certificate.role),
            document_type=DocumentType(certificate.document_type), certificate_format=fmt, der=certificate.der,
            usage=usage, signer=signer,
            x509=parse_certificate(certificate.der) if fmt is CertificateFormat.X509 else None,
            cv=parse_cv_certificate(certificate.der) if fmt is CertificateFormat.CV else None,
        )

    def check_key(self, tx: StoreTx, ca: CaKey, now: datetime) -> None:
        """Before every signature: the key is active and inside its usage window (decree limit)."""
        key: Key = tx.key(ca.key_id)
        if key.state is not KeyState.ACTIVE:
            self.refuse_retired_cvca(tx, key)
            raise AuthorityError(f"key {key.hsm_label} is {key.state.value}, not active", label=key.hsm_label)
        if ca.usage is not None:
            self.policy.check_key_usage_at(ca.document_type, ca.role, ca.usage, now)

    def refuse_retired_cvca(self, tx: StoreTx, key: Key) -> None:
        """Raise `RetiredCvcaKey` if `key` is a CVCA key retired (or destroyed) since a newer CVCA
        succeeded it; otherwise return.

        Why a refusal of its own: after its link certificate an old CVCA key has nothing left to
        sign, and a DV certificate from it would chain to a CVCA that is being replaced.  The
        message names the decree's article for the CVCA (from the policy table, like every
        refusal of the limits) and the successor, read from the ceremony's audit entry."""
        if Role(key.role) is not Role.CVCA or key.state not in (KeyState.RETIRED, KeyState.DESTROYED):
            return
        article = self.policy.limit(key.document_type, Role.CVCA).article
        retired = tx.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "key", AuditEntry.entity_id == str(key.id),
                                     AuditEntry.action == CVCA_KEY_RETIRED)
            .order_by(AuditEntry.seq.desc()).limit(1)
        ).first()  # fmt: skip
        successor = retired.details.get("superseded_by") if retired is not None else None
        since = f" on {retired.at:%Y-%m-%d}" if retired is not None else ""
        by = f"CVCA {successor}" if successor else "a newer CVCA"
        raise RetiredCvcaKey(
            f"{article}: CVCA key {key.hsm_label} was retired{since} when {by} succeeded it ({key.state.value}); "
            "after its link certificate it signs nothing more — DV certificates come from the newest CVCA",
            article=article, label=key.hsm_label, state=key.state.value, superseded_by=successor,
        )

    def check_crl_key(self, tx: StoreTx, ca: CaKey) -> None:
        """Before a CRL signature: the key is still the CA's key in the HSM (active or retired).

        Not the usage window: that bounds *certificate* signing.  A CSCA keeps signing CRLs for
        as long as certificates it issued may be in use (9303-12 §4.1.5) — a DS certificate
        outlives its CSCA key's 5-year window by years, and revoking it (Art. 19) must still work."""
        key: Key = tx.key(ca.key_id)
        if key.state not in (KeyState.ACTIVE, KeyState.RETIRED):
            raise AuthorityError(f"key {key.hsm_label} is {key.state.value}; it can no longer sign CRLs",
                                 label=key.hsm_label)

    # --- keys ----------------------------------------------------------------------------

    def generate_key(self, document_type: DocumentType | str, role: Role | str, spec: str, *, purpose: str,
                     request_id: str | None = None) -> GeneratedKey:
        """A new key in the HSM, journalled first.  The key is usable by the service only
        once a committed step adopts it (`commit(tx, key.operation_id)`); otherwise
        `discard` (or `recover` after a crash) destroys it."""
        role_label = role.value if isinstance(role, Role) else str(role)  # e.g. "mls": no decree role
        label = str(self.keystore.next_label(DocumentType(document_type).value, role_label))
        op_id = self._journal(HsmOperationKind.GENERATE_KEY, label, purpose, request_id, {"spec": spec})
        try:
            signer = self.keystore.generate_key(label, spec, reason=purpose)
        except Exception as exc:
            self._move(op_id, (HsmOperationState.PENDING,), HsmOperationState.FAILED)
            raise AuthorityError(f"the HSM could not generate {label}: {exc}", label=label) from exc
        spki_sha256 = hashlib.sha256(signer.public_key_info()).hexdigest()
        self._move(op_id, (HsmOperationState.PENDING,), HsmOperationState.DONE, output_sha256=spki_sha256)
        return GeneratedKey(label=label, spec=spec, operation_id=op_id, signer=signer)

    def discard(self, key: GeneratedKey, reason: str, *, actor_organisation_id: int | None = None) -> None:
        """The step that generated `key` failed: destroy it in the HSM and record why."""
        self._destroy(key.operation_id, key.label, reason, actor_organisation_id)

    def _destroy(self, operation_id: int, label: str, reason: str, actor: int | None) -> None:
        try:
            self.keystore.destroy(label, reason=reason)
            existed = True
        except KeyNotFound:
            existed = False
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.move_hsm_operation(operation_id, (HsmOperationState.PENDING, HsmOperationState.DONE),
                                  HsmOperationState.DESTROYED, now=now)
            tx.append_audit(at=now, action="hsm.key_destroyed", entity_type="hsm_key", entity_id=label,
                            details={"reason": reason, "operation_id": operation_id, "existed": existed},
                            actor_organisation_id=actor)

    # --- signing -------------------------------------------------------------------------

    def sign(
        self,
        signer: Signer,
        label: str,
        build: Callable[[Signer], bytes],
        verify: Callable[[bytes], None],
        *,
        purpose: str,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Signed:
        """Journal, build (the builder lints and signs once), verify, mark done.

        `build` receives a signer that commits the hash of its input before the HSM sees it
        and refuses a second signature.  Anything raised leaves the row failed (nothing was
        signed) or done-but-unadopted (recovery abandons it); nothing is handed out."""
        op_id = self._journal(HsmOperationKind.SIGN, label, purpose, request_id, details or {})
        digest: list[str] = []

        def before_sign(data: bytes) -> None:
            digest.append(hashlib.sha256(data).hexdigest())
            with self.store.transaction() as tx:
                tx.move_hsm_operation(op_id, (HsmOperationState.PENDING,), HsmOperationState.PENDING,
                                      now=self.clock.now(), input_sha256=digest[0])

        journalled = _JournalledSigner(signer, before_sign)
        try:
            der = build(journalled)
            if not journalled.used:
                raise AuthorityError("the builder returned without signing")
            verify(der)
        except Exception as exc:
            state = HsmOperationState.ABANDONED if journalled.used else HsmOperationState.FAILED
            self._move(op_id, (HsmOperationState.PENDING,), state,
                       details={**(details or {}), "error": f"{type(exc).__name__}: {exc}"})
            raise
        self._move(op_id, (HsmOperationState.PENDING,), HsmOperationState.DONE,
                   output_sha256=hashlib.sha256(der).hexdigest())
        return Signed(der=der, operation_id=op_id, input_sha256=digest[0])

    # --- recovery ------------------------------------------------------------------------

    def recover(self, older_than: timedelta = timedelta(minutes=10)) -> RecoveryReport:
        """Start-up cleanup: settle every journal row a crash left pending or done.

        A generated key whose step never committed is destroyed in the HSM (the database
        never learnt of it, so nothing may use it); a signature whose step never committed
        is marked abandoned (the certificate or CRL was never stored nor handed out).
        `older_than` spares operations still in flight in another process."""
        report = RecoveryReport()
        cutoff = self.clock.now() - older_than
        with self.store.transaction() as tx:
            rows = [(r.id, r.kind, r.hsm_label, r.state) for r in tx.unsettled_hsm_operations(cutoff)]
        for op_id, kind, label, state in rows:
            if kind is HsmOperationKind.GENERATE_KEY:
                self._destroy(op_id, label, "recovery: the step that generated this key never committed", None)
                report.destroyed_keys.append(label)
            else:
                now = self.clock.now()
                with self.store.transaction() as tx:
                    tx.move_hsm_operation(op_id, (state,), HsmOperationState.ABANDONED, now=now)
                    tx.append_audit(at=now, action="hsm.signature_abandoned", entity_type="hsm_operation",
                                    entity_id=op_id, details={"label": label, "was": state.value})
                report.abandoned_signatures.append(op_id)
        return report
