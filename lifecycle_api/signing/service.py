"""The DS signing service: the only code that signs EF.SODs, and it never signs past a limit.

Boulder's split: this is the *sign* part.  It takes orders (data groups or their hashes),
picks the current DS key of the document type (`keys.signing_candidates`), and for every
signature:

1. holds a **reservation** for it — taken in blocks with the store's compare-and-set
   ``UPDATE keys SET reserved = reserved + n WHERE used + reserved + n <= max`` — so two
   processes, threads or API instances can never together pass the key's budget
   (Art. 23.1b / 26.1b: 100,000 documents);
2. re-checks the key's usage window (its PrivateKeyUsagePeriod, at most 3 months) with the
   injected clock (`Policy.check_key_usage_at`);
3. builds the EF.SOD with `icao_pki.sod.build_sod` (which verifies the signature it made);
4. **settles** the signatures it made (``reserved -= k, used += k``) in one transaction
   BEFORE any SOD of the call is returned.

So `signatures_used` counts exactly the SODs that left the service; a crash between
signing and settling leaves those slots in `signatures_reserved` ("reserved but unused"),
wasted, never exceeding.  Unused slots of a block are given back by `close()`.

Speed (bench/sign_bench.py): the first SOD of every lease is built by `build_sod`; the
others by `SodTemplate`, cut from that SOD and proven to reproduce it byte for byte (no
asn1crypto objects on the hot path).  Counting costs one SQL transaction per batch: the
settle tops the reservation up to a block in the same transaction.  Every signature is
verified under the DS certificate's key (STYLE.md; a token returning garbage must not leave
the building).  On SoftHSM2 an ECDSA P-256 verification costs about two thirds of the
signature, so in one thread verification and the SOD's Python halve the HSM's rate; with more
than one CPU (``verify_in="auto"``, the default) the signing thread only reserves, checks the
window and signs, and the SOD worker process (`worker`) prepares, verifies and assembles
around it, and signs a share of each chunk itself where it can log in to the token (it keeps
pace; the service counts and window-checks those slots too) — the batch is still returned
only when every signature of it has been verified, and a lost worker fails the batch closed.
`verify_every=n` (verify one fast-path signature in n; the first of every lease always,
inline only) remains for deployments that accept the risk; the default stays 1.

When the current key cannot reserve any more (budget spent) or its window has ended, the
next candidate (the successor issued by the rollover) is taken in the same call: the
switch is the CAS failing, so it is atomic across instances.  Slots another instance gives
back to an older key are taken before the successor's (`_settle`), and a key is retired only
once every one of its signatures is made, so a key ends at exactly its budget.  With no candidate the call
is refused with `NoSigningKey` naming the article, and an alert (audit + notification to
the Agency and the Provider) is raised.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from icao_pki.certificate import parse_certificate
from icao_pki.clock import Clock
from icao_pki.cms import CmsSignatureError, certificate_public_key, load_certificate_cached
from icao_pki.keystore import KeyStoreConfig
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Policy, PolicyViolation, Role, Window, add_months
from icao_pki.signature import plain_to_der
from icao_pki.signer import HashAlgorithm, KeyKind, RsaPadding, Signer
from icao_pki.sod import (
    LdsVersion,
    SodBuildError,
    build_lds_security_object,
    build_sod,
    check_data_group,
    check_data_group_numbers,
    check_lds_content,
    hash_data_groups,
)

from ..errors import CounterExhausted, InternalFailure, InvalidInput, ServiceUnavailable, StaleState
from ..store import PartyType, Store, StoreTx
from . import keys as keyq
from .keys import DsKeyView
from .sod_template import SodTemplate
from .verifier import signature_checker
from .worker import PrepItem, SodWorker, WorkerUnavailable

log = logging.getLogger(__name__)


#: the usage window must hold this long after the service's check for the worker to sign; the
#: worker signs only within this time of the check (`DsSigningService._delegate`)
DELEGATION_MARGIN = timedelta(seconds=60)


class SigningKeyStore(Protocol):
    """What the service needs of the HSM key store (`icao_pki.keystore.KeyStore` is one)."""

    def signer(self, label: str) -> Signer: ...


class NoSigningKey(CounterExhausted, ServiceUnavailable):
    """No DS key of the document type may sign now: budget spent or window over, no successor.

    A 503 over HTTP: the request is valid, the line must wait for the successor key."""

    kind = "no-signing-key"


class SigningFailed(InternalFailure):
    """The HSM produced a signature that does not verify under the DS certificate: nothing is handed out."""

    kind = "signing-failed"


class InvalidSodInput(InvalidInput):
    """The data groups or hashes cannot make an LDSSecurityObject (nothing was reserved or signed)."""

    kind = "invalid-sod-input"


@dataclass(frozen=True)
class SodInput:
    """One document: complete DG TLVs, or their hashes (computed with the service's hash algorithm)."""

    data_groups: Mapping[int, bytes] | None = None
    dg_hashes: Mapping[int, bytes] | None = None
    lds_version: LdsVersion | None = None


class SignedSod(NamedTuple):
    """One EF.SOD handed out, with the key that signed it.  A named tuple, not a frozen
    dataclass: a personalisation line makes hundreds per batch, and a frozen dataclass's
    field-by-field `__init__` cost a microsecond and a half of each."""

    sod: bytes
    key_id: int
    key_label: str
    certificate_id: int
    signed_at: datetime


_NEVER_FROM = datetime.max.replace(tzinfo=UTC)  # an empty range: the policy check decides
_NEVER_UNTIL = datetime.min.replace(tzinfo=UTC)


@dataclass
class _Lease:
    """Reserved-but-unused slots this instance holds on one key, with the key's signer."""

    key: DsKeyView
    signer: Signer
    certificate: bytes
    window: Window
    reserved: int = 0
    template: SodTemplate | None = None
    template_refused: bool = False
    reference: bytes = b""  # the SOD `build_sod` made first: the worker cuts its template from it
    watch_older: bool = True  # an older active key exists (its given-back slots come first)
    signed: int = 0
    certificate_key: Any = None
    check: Callable[[bytes, bytes], None] | None = None
    usable_from: datetime = _NEVER_FROM
    usable_until: datetime = _NEVER_UNTIL


@dataclass(frozen=True)
class KeyUsage:
    """Exact per-key report: `signed` SODs handed out, `reserved_unused` slots held or wasted by crashes."""

    key_id: int
    hsm_label: str
    document_type: str
    state: str
    signed: int
    reserved_unused: int
    max_signatures: int | None
    usage_not_before: datetime | None
    usage_not_after: datetime | None

    @property
    def within_limit(self) -> bool:
        return self.max_signatures is None or self.signed + self.reserved_unused <= self.max_signatures


def usage_report(store: Store, document_type: DocumentType | None = None) -> list[KeyUsage]:
    with store.transaction() as tx:
        return [
            KeyUsage(
                key_id=k.key_id,
                hsm_label=k.hsm_label,
                document_type=k.document_type.value,
                state=k.state.value,
                signed=k.signatures_used,
                reserved_unused=k.signatures_reserved,
                max_signatures=k.max_signatures,
                usage_not_before=k.usage_not_before,
                usage_not_after=k.usage_not_after,
            )
            for k in keyq.ds_keys(tx, document_type)
        ]


def ds_article(policy: Policy, document_type: DocumentType) -> str:
    return policy.limit(document_type, Role.DS).article


def alert_no_signing_key(tx: StoreTx, *, document_type: DocumentType, now: datetime, article: str, detail: str) -> None:
    """Audit entry + notification to the Agency serving the document type and to the Provider."""
    tx.append_audit(
        at=now, action="ds.signing_refused", entity_type="document_type", entity_id=document_type.value,
        details={"article": article, "detail": detail},
    )  # fmt: skip
    for org in tx.organisations():
        serves = document_type.value in (org.document_types or [])
        if org.party_type is PartyType.PROVIDER or (org.party_type is PartyType.AGENCY and serves):
            tx.enqueue_notification(
                organisation_id=org.id, event="ds.signing_refused",
                payload={"document_type": document_type.value, "article": article, "detail": detail}, now=now,
            )  # fmt: skip


@dataclass
class DsSigningService:
    """In-process DS signing.  One instance per process; thread-safe (signatures are serialised
    per instance, as the PKCS#11 session is).  Call `close()` to give back unused slots."""

    store: Store
    keystore: SigningKeyStore
    clock: Clock
    policy: Policy = DEFAULT_POLICY
    block_size: int = 64
    hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256
    rsa_padding: RsaPadding = RsaPadding.PKCS1V15
    alert_interval: timedelta = timedelta(hours=1)
    #: verify every n-th signature of the fast path (1 = every one, the default).  The first
    #: signature of every lease is always built and verified by `build_sod`.
    verify_every: int = 1
    #: where the work around each fast-path signature is done: "inline" (this thread: prepare,
    #: sign, verify, assemble, one SOD after the other) or "process" (`worker.SodWorker`: a
    #: worker process prepares chunk k+2 and verifies and assembles chunk k-1 while this thread
    #: signs chunk k; the batch is returned only once every signature of it is verified).
    #: "auto" (the default) is "process" on a machine with more than one CPU.  Batches smaller
    #: than `pipeline_min` stay inline: the round trip would cost more than it saves.
    verify_in: str = "auto"
    #: items per chunk (the first one a quarter of it); 128 measured 1-3 % faster than 64
    #: (bench/sign_bench.py's batch of 500): fewer messages and shares per batch
    verify_chunk: int = 128
    finish_every: int = 32
    pipeline_min: int = 16
    #: let the worker process sign a share of each chunk too, when it can log in to the token
    #: with the key store's configuration (`icao_pki.keystore.KeyStoreConfig`): on a machine
    #: whose CPUs also run the software HSM, the signing thread is otherwise the bottleneck
    delegate: bool = True
    #: signatures the worker process made (reported by the bench)
    worker_signed: int = field(default=0, init=False)
    _share: int = field(default=4, init=False, repr=False)
    _worker: SodWorker | None = field(default=None, init=False, repr=False)
    _leases: dict[DocumentType, _Lease] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _last_alert: dict[DocumentType, datetime] = field(default_factory=dict, init=False, repr=False)

    # --- public API -------------------------------------------------------------------------

    def sign_sod(
        self,
        document_type: DocumentType | str,
        data_groups: Mapping[int, bytes] | None = None,
        *,
        dg_hashes: Mapping[int, bytes] | None = None,
        lds_version: LdsVersion | None = None,
    ) -> SignedSod:
        return self.sign_batch(document_type, [SodInput(data_groups, dg_hashes, lds_version)])[0]

    def sign_batch(self, document_type: DocumentType | str, items: Sequence[SodInput]) -> list[SignedSod]:
        """Sign a personalisation line's batch; all SODs are counted before any is returned.

        Every item is checked before anything is reserved or signed (`InvalidSodInput`).  If
        the budget runs out mid-batch with no successor, the SODs already made are settled
        (counted) and `NoSigningKey` is raised carrying them as ``partial_sods`` (the same on
        any other error), so what was counted is what the caller receives — and only
        verified SODs are ever handed out."""
        doc = DocumentType(document_type)
        pipelined = self._pipelined(len(items))
        if pipelined:
            checked = [self._check(item) for item in items]
        else:
            prepared = [self._prepare(item) for item in items]
        results: list[SignedSod] = []
        with self._lock:
            made: dict[int, int] = {}
            try:
                if pipelined:
                    self._sign_pipelined(doc, items, checked, results, made)
                else:
                    for hashes, econtent, lds_version in prepared:
                        lease, now = self._usable_lease(doc, len(prepared) - len(results))
                        self._count(lease, made)
                        sod = self._build(lease, hashes, econtent, lds_version, now)
                        results.append(self._signed(sod, lease, now))
            except Exception as exc:
                # the SODs made before the refusal are counted: hand them out with the error
                exc.partial_sods = list(results)  # type: ignore[attr-defined]
                raise
            finally:
                if made:
                    self._settle(doc, made)
        return results

    def _pipelined(self, count: int) -> bool:
        if self.verify_every > 1 or count < self.pipeline_min:
            return False
        if self.verify_in == "auto":
            return (os.cpu_count() or 1) > 1
        return self.verify_in == "process"

    @staticmethod
    def _count(lease: _Lease, made: dict[int, int]) -> None:
        """One reserved slot becomes a signature: counted as used from here, since a signature
        the HSM made is a signature even if the SOD then fails its own verification."""
        lease.reserved -= 1
        made[lease.key.key_id] = made.get(lease.key.key_id, 0) + 1

    @staticmethod
    def _signed(sod: bytes, lease: _Lease, at: datetime) -> SignedSod:
        return SignedSod(sod, lease.key.key_id, lease.key.hsm_label, lease.key.certificate_id or 0, at)

    def _sign_pipelined(self, doc: DocumentType, items: Sequence[SodInput], checked: list[PrepItem],
                        results: list[SignedSod], made: dict[int, int]) -> None:
        """This thread reserves, checks the window and signs; the worker does the rest (module doc of
        `worker`) and, when it could log in to the token, signs the tail of each chunk but the last two."""
        start = 0
        while start < len(items):  # the worker needs a template (a lease's first SOD, built here)
            lease, now = self._usable_lease(doc, len(items) - start)
            if lease.template is not None:
                break
            self._count(lease, made)
            results.append(self._signed(self._build(lease, *self._prepare(items[start]), now), lease, now))
            start += 1
            if lease.template_refused:  # no fast path for this key: the rest inline, as before
                for item in items[start:]:
                    lease, now = self._usable_lease(doc, len(items) - len(results))
                    self._count(lease, made)
                    results.append(self._signed(self._build(lease, *self._prepare(item), now), lease, now))
                return
        if start == len(items):
            return
        if self._worker is None:
            self._worker = SodWorker()
        worker = self._worker
        hash_name = self.hash_algorithm.value
        chunks = _chunks(start, len(items), max(1, self.verify_chunk))
        preps: list[tuple[int, datetime]] = []
        # (finish id, who signed when, the delegation's lease if the worker signs them)
        finishing: list[tuple[int, list[tuple[_Lease, datetime]], _Lease | None]] = []
        delegated: dict[int, tuple[list[bytes], tuple[int, str] | None]] = {}  # finish id → answer
        failure: Exception | None = None
        current = -1
        clock_now, hash_algorithm, rsa_padding = self.clock.now, self.hash_algorithm, self.rsa_padding
        template_ids: dict[int, int] = {}  # key id → the worker's template id, this batch
        last_share: int | None = None  # the previous chunk's delegation (finish id)
        try:
            started = worker.alive
            worker.start()
            config = getattr(self.keystore, "config", None)
            if self.delegate and not started and isinstance(config, KeyStoreConfig):
                worker.open_hsm(config)
            self._template_id(worker, lease)  # the worker builds signed attributes with it

            def prep(k: int) -> None:
                signing_time = self.clock.now()
                preps.append((worker.prep(hash_name, signing_time, [checked[i] for i in chunks[k]]), signing_time))

            for k in range(min(2, len(chunks))):
                prep(k)
            for k, chunk in enumerate(chunks):
                current = k
                chunk_id, signing_time = preps[k]
                attrs = worker.prepped(chunk_id)
                if k + 2 < len(chunks):
                    prep(k + 2)
                share = None
                # from the first chunk (the worker has nothing to verify yet) to the third-last (at
                # the batch's end it must be free to verify what this thread signed)
                if k < len(chunks) - 2 and worker.can_sign:
                    share = self._delegate(worker, chunk_id, chunk, lease, signing_time, last_share, template_ids)
                    if share is not None:
                        last_share = share[0]
                        chunk = chunk[:len(chunk) - share[1]]
                parts: list[tuple[int | None, bytes]] = []
                metas: list[tuple[_Lease, datetime]] = []
                sent = 0
                # the batch waits for the worker's last verifications: hand the last chunk over in smaller parts
                every = self.finish_every if k < len(chunks) - 1 else max(1, self.finish_every // 4)
                try:
                    for offset, index in enumerate(chunk):
                        now = clock_now()
                        # the usual case inline (the same test `_usable_lease` makes first): this
                        # loop is all the signing thread does besides the HSM call
                        if not (lease.reserved > 0 and lease.usable_from <= now <= lease.usable_until):
                            lease, now = self._usable_lease(doc, len(items) - index)
                        lease.reserved -= 1  # as `_count`: a signature the HSM makes is counted
                        key_id = lease.key.key_id
                        made[key_id] = made.get(key_id, 0) + 1
                        if lease.template is None or signing_time < lease.usable_from:
                            # a new key's first SOD (its template) or a chunk prepared before the key's
                            # window opened: built here by `build_sod`, verified, signed now
                            parts.append((None, self._build(lease, *self._prepare(items[index]), now)))
                            metas.append((lease, now))
                            continue
                        template_id = template_ids.get(key_id)
                        if template_id is None:
                            template_id = template_ids[key_id] = self._template_id(worker, lease)
                        parts.append((template_id, lease.signer.sign(attrs[offset], hash_algorithm, rsa_padding)))
                        metas.append((lease, signing_time))
                        if len(parts) - sent >= every:
                            sent = _hand_over(worker, chunk_id, parts, metas, sent, finishing, last=False)
                finally:  # what was signed is verified and handed out, even if the chunk stopped
                    # `last` ends the chunk in the worker: its share of it was sent (and is done) before
                    _hand_over(worker, chunk_id, parts, metas, sent, finishing, last=True)
                    if share is not None:  # the worker's tail of the chunk follows this thread's head
                        finishing.append((share[0], [(share[2], signing_time)] * share[1], share[2]))
        except Exception as exc:
            failure = exc
            for chunk_id, _ in preps[current + 1:]:  # prepared, never to be signed
                try:
                    worker.drop(chunk_id)
                except WorkerUnavailable:
                    break
        # everything is signed: take the worker's own signatures into the count, then count it all
        # now, while the worker verifies the last ones (nothing is handed out before this commits;
        # `sign_batch` settles only what is left)
        released: dict[int, int] = {}
        try:
            for finish_id, metas, share_lease in finishing:
                if share_lease is None:
                    continue
                sods, bad, signed = worker.finished(finish_id)
                delegated[finish_id] = (sods, bad)
                key_id = share_lease.key.key_id
                made[key_id] = made.get(key_id, 0) + signed
                self.worker_signed += signed
                if len(metas) > signed:  # reserved for the worker, not signed: given back
                    released[key_id] = released.get(key_id, 0) + len(metas) - signed
        except WorkerUnavailable as exc:  # what it signed is unknown: its slots stay reserved (a crash's)
            failure = failure or exc
        if made or released:
            self._settle(doc, made, released)
            made.clear()
        try:
            for finish_id, metas, share_lease in finishing:
                if share_lease is None:
                    sods, bad, _ = worker.finished(finish_id)
                elif finish_id in delegated:
                    sods, bad = delegated[finish_id]
                else:
                    raise WorkerUnavailable("SOD worker stopped before its signatures were answered")
                results.extend(self._signed(sod, lease, at) for sod, (lease, at) in zip(sods, metas, strict=False))
                if bad is not None:
                    label = metas[bad[0]][0].key.hsm_label if metas else ""
                    worker.close()  # its remaining answers are of no use
                    raise SigningFailed(f"{label} produced a signature that does not verify: {bad[1]}"
                                        if share_lease is None else
                                        f"the SOD worker could not sign with {label}: {bad[1]}",
                                        key_label=label) from failure
        except WorkerUnavailable as exc:
            raise SigningFailed(f"signatures could not be verified, nothing unverified is handed out: {exc}",
                                key_label="") from failure
        if isinstance(failure, WorkerUnavailable):
            raise SigningFailed(f"signatures could not be verified, nothing unverified is handed out: {failure}",
                                key_label="") from None
        if failure is not None:
            raise failure

    def _delegate(self, worker: SodWorker, chunk_id: int, chunk: range, lease: _Lease, signing_time: datetime,
                  last_share: int | None, template_ids: dict[int, int]) -> tuple[int, int, _Lease] | None:
        """Reserve the tail of a chunk for the worker to sign: (finish id, size, lease), or None.

        Its size follows whether the worker kept up with the previous share (answered before
        this thread finished its own part): both processes then spend their CPU alike.  The
        usage window is checked here, for all of them, with the injected clock, and only a key
        whose window holds `DELEGATION_MARGIN` longer is shared; the worker refuses to sign once
        that margin has passed on the machine's monotonic clock (a stalled worker), so a
        signature is never made outside the window the service checked."""
        if last_share is not None:
            worker.poll()
            grow = worker.answered(last_share)
            self._share = min(self._share + 1, len(chunk) // 2) if grow else max(1, self._share - 1)
        size = min(self._share, len(chunk) - 1, max(1, len(chunk) // 2))
        now = self.clock.now()
        if (size < 1 or lease.template is None or lease.reserved < size or signing_time < lease.usable_from
                or not lease.usable_from <= now or now + DELEGATION_MARGIN > lease.usable_until):
            return None
        key_id = lease.key.key_id
        template_id = template_ids.get(key_id)
        if template_id is None:
            template_id = template_ids[key_id] = self._template_id(worker, lease)
        deadline = time.monotonic() + DELEGATION_MARGIN.total_seconds()
        lease.reserved -= size
        finish_id = worker.sign(chunk_id, len(chunk) - size, len(chunk), template_id, self.hash_algorithm.value,
                                self.rsa_padding.value, deadline)
        return finish_id, size, lease

    def _settle(self, doc: DocumentType, made: dict[int, int], released: dict[int, int] | None = None) -> None:
        """Count what was signed; in the same transaction top the lease's reservation up to a
        block when it runs low, so a personalisation line pays one SQL round trip per batch.

        A key whose every signature is now made is retired here.  If an older key has budget
        again (another instance gave slots back), this lease is given back instead, and the
        next call takes the older key (`signing_candidates`: oldest first) — so no slot of a
        key is left unused while its successor signs."""
        lease = self._leases.get(doc)
        topped = 0
        switch = False
        now = self.clock.now()
        released = released or {}
        with self.store.transaction() as tx:
            for key_id in {**made, **released}:
                spent = tx.settle_signatures(key_id, used=made.get(key_id, 0), released=released.get(key_id, 0))
                # while we hold slots of a key, not all of its signatures can have been made
                holding = lease is not None and lease.key.key_id == key_id and lease.reserved > 0
                if spent and not holding and keyq.retire_if_spent(tx, key_id):
                    tx.append_audit(at=now, action="ds_key.retired", entity_type="key", entity_id=key_id,
                                    details={"reason": "signature budget spent"})
            if lease is not None and lease.watch_older:
                older = keyq.older_key_with_budget(tx, lease.key, now)
                lease.watch_older = older is not None  # no older active key: none will appear
                if older:
                    switch = True
                    if lease.reserved:
                        tx.settle_signatures(lease.key.key_id, used=0, released=lease.reserved)
            elif lease is not None and lease.reserved < self.block_size // 4:
                try:
                    tx.reserve_signatures(lease.key.key_id, self.block_size)
                    topped = self.block_size
                except (CounterExhausted, StaleState):
                    pass  # the next call takes what is left (or switches key) on its own path
        if switch:
            self._leases.pop(doc, None)
        elif lease is not None:
            lease.reserved += topped

    def close(self) -> None:
        """Give back the reserved slots this instance did not use (and stop the worker)."""
        with self._lock:
            for doc in list(self._leases):
                self._release(doc)
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def held_reservations(self) -> dict[str, int]:
        return {lease.key.hsm_label: lease.reserved for lease in self._leases.values()}

    # --- internals --------------------------------------------------------------------------

    def _template_id(self, worker: SodWorker, lease: _Lease) -> int:
        known = worker.knows(lease.key.key_id)
        if known is not None:
            return known
        return worker.template(lease.key.key_id, lease.reference, lease.certificate, self.hash_algorithm.value,
                               lease.signer.kind is KeyKind.EC, lease.key.hsm_label)  # fmt: skip

    def _build(self, lease: _Lease, hashes: dict[int, bytes], econtent: bytes, lds_version: LdsVersion | None,
               now: datetime) -> bytes:
        lease.signed += 1
        template = lease.template
        if template is None:
            sod = build_sod(
                dg_hashes=hashes, ds_signer=lease.signer, ds_certificate=lease.certificate, signing_time=now,
                hash_algorithm=self.hash_algorithm, lds_version=lds_version, rsa_padding=self.rsa_padding,
            )  # fmt: skip
            if not lease.template_refused:
                lease.template = SodTemplate.from_reference(sod, self.hash_algorithm)
                lease.template_refused = lease.template is None
                lease.reference = sod
                lease.certificate_key = certificate_public_key(load_certificate_cached(lease.certificate))
                if lease.template is not None:
                    lease.check = signature_checker(lease.certificate_key, lease.template.signature_algorithm)
            return sod
        attrs = template.signed_attributes(econtent, now)
        raw = lease.signer.sign(attrs, self.hash_algorithm, self.rsa_padding)
        signature = plain_to_der(raw) if lease.signer.kind is KeyKind.EC else raw
        if self.verify_every <= 1 or lease.signed % self.verify_every == 0:
            try:
                assert lease.check is not None
                lease.check(signature, attrs)
            except CmsSignatureError as exc:
                raise SigningFailed(f"{lease.key.hsm_label} produced a signature that does not verify: {exc}",
                                    key_label=lease.key.hsm_label) from None
        return template.assemble(econtent, now, signature, attrs)

    def _check(self, item: SodInput) -> PrepItem:
        """Refuse a bad item before anything is reserved, without building it (the worker will)."""
        try:
            if (item.data_groups is None) == (item.dg_hashes is None):
                raise SodBuildError("give either data_groups or dg_hashes")
            if item.data_groups is not None:
                groups = _numbered_bytes(item.data_groups, "data group")
                for number, dg in groups.items():
                    check_data_group(number, dg)
                check_data_group_numbers(groups, self.hash_algorithm, item.lds_version)
                return groups, None, item.lds_version
            hashes = _numbered_bytes(item.dg_hashes or {}, "data-group hash")
            check_lds_content({k: len(v) for k, v in hashes.items()}, self.hash_algorithm, item.lds_version)
        except SodBuildError as exc:
            raise InvalidSodInput(str(exc)) from None
        return None, hashes, item.lds_version

    def _prepare(self, item: SodInput) -> tuple[dict[int, bytes], bytes, LdsVersion | None]:
        """The DG hashes and the LDSSecurityObject of a checked item, made in this thread."""
        groups, hashes, lds_version = self._check(item)
        if groups is not None:
            hashes = hash_data_groups(groups, self.hash_algorithm)
        return hashes, build_lds_security_object(hashes, self.hash_algorithm, lds_version), lds_version

    def _usable_lease(self, doc: DocumentType, need: int) -> tuple[_Lease, datetime]:
        """A lease with at least one reserved slot on a key whose usage window holds now."""
        for _ in range(16):
            lease = self._leases.get(doc)
            now = self.clock.now()
            if lease is not None:
                try:
                    # the policy's check, with its bounds computed once per lease (same result)
                    if not lease.usable_from <= now <= lease.usable_until:
                        self.policy.check_key_usage_at(doc, Role.DS, lease.window, now)
                except PolicyViolation:
                    self._release(doc, retire_window_at=now)
                    continue
                if lease.reserved > 0:
                    return lease, now
                if self._reserve(lease, need) > 0:
                    return lease, now
                self._release(doc)
                continue
            self._leases[doc] = self._new_lease(doc, now, need)
        raise StaleState(f"could not hold a {doc.value} DS key reservation after repeated contention")

    def _new_lease(self, doc: DocumentType, now: datetime, need: int) -> _Lease:
        with self.store.transaction() as tx:
            candidates = keyq.signing_candidates(tx, doc, now)
        for view in candidates:
            assert view.certificate_der is not None and view.usage_not_before and view.usage_not_after
            window = Window(view.usage_not_before, view.usage_not_after)
            pkup = parse_certificate(view.certificate_der).private_key_usage_period
            if pkup is not None:  # the tighter of the database and the certificate
                window = Window(max(window.start, pkup.start), min(window.end, pkup.end))
            try:
                self.policy.check_key_usage_at(doc, Role.DS, window, now)
            except PolicyViolation:
                continue
            months = self.policy.limit(doc, Role.DS).key_usage_months
            lease = _Lease(view, self.keystore.signer(view.hsm_label), view.certificate_der, window,
                           usable_from=window.start, usable_until=min(window.end, add_months(window.start, months)))
            if self._reserve(lease, need) > 0:
                return lease
            with self.store.transaction() as tx:
                if keyq.retire_if_spent(tx, view.key_id):
                    tx.append_audit(at=now, action="ds_key.retired", entity_type="key", entity_id=view.key_id,
                                    details={"reason": "signature budget spent", "label": view.hsm_label})
        self._refuse(doc, now)
        raise AssertionError("unreachable")

    def _reserve(self, lease: _Lease, need: int) -> int:
        """Reserve up to max(need, block) slots on the lease's key; fewer if that is all that is left."""
        want = max(need, self.block_size)
        with self.store.transaction() as tx:
            while want > 0:
                try:
                    tx.reserve_signatures(lease.key.key_id, want)
                    lease.reserved += want
                    return want
                except CounterExhausted as exc:
                    left = int(exc.data["max"]) - int(exc.data["used"]) - int(exc.data["reserved"])  # type: ignore[call-overload]
                    want = min(want - 1, left)
                except StaleState:
                    return 0
        return 0

    def _release(self, doc: DocumentType, *, retire_window_at: datetime | None = None) -> None:
        """Give the lease's unused slots back; retire its key if every signature is made (or,
        given `retire_window_at`, if its usage window is over)."""
        lease = self._leases.pop(doc, None)
        if lease is None:
            return
        with self.store.transaction() as tx:
            if lease.reserved:
                tx.settle_signatures(lease.key.key_id, used=0, released=lease.reserved)
                lease.reserved = 0
            now = self.clock.now()
            spent = keyq.retire_if_spent(tx, lease.key.key_id)
            if spent or (retire_window_at is not None
                         and keyq.retire_if_window_over(tx, lease.key.key_id, retire_window_at)):
                tx.append_audit(
                    at=now, action="ds_key.retired", entity_type="key", entity_id=lease.key.key_id,
                    details={"reason": "signature budget spent" if spent else "usage window over",
                             "label": lease.key.hsm_label},
                )  # fmt: skip

    def _refuse(self, doc: DocumentType, now: datetime) -> None:
        article = ds_article(self.policy, doc)
        limit = self.policy.limit(doc, Role.DS)
        detail = (
            f"{article}: no {doc.label} Document Signer key may sign now — every active key has used its "
            f"{limit.max_signatures:,} signatures or its {limit.key_usage} usage period, and no successor "
            "is active; signing stops rather than exceed the limit"
        )
        last = self._last_alert.get(doc)
        if last is None or now - last >= self.alert_interval:
            self._last_alert[doc] = now
            with self.store.transaction() as tx:
                alert_no_signing_key(tx, document_type=doc, now=now, article=article, detail=detail)
            log.error(detail)
        else:  # a line retrying every batch would fill the log with one line per batch
            log.info(detail)
        raise NoSigningKey(detail, document_type=doc.value, article=article)


def _hand_over(worker: SodWorker, chunk_id: int, parts: list[tuple[int | None, bytes]],
               metas: list[tuple[_Lease, datetime]], sent: int,
               finishing: list[tuple[int, list[tuple[_Lease, datetime]], _Lease | None]], *, last: bool) -> int:
    """Give the worker the signatures made since `sent` (a few at a time: it verifies while we
    sign, and the batch's end waits only for the last few); returns how many are handed over."""
    if len(parts) > sent:
        finishing.append((worker.finish(chunk_id, sent, parts[sent:], last), metas[sent:], None))
    elif last:
        worker.drop(chunk_id)
    worker.poll()  # take the worker's answers so it never waits on us
    return len(parts)


def _chunks(start: int, end: int, size: int) -> list[range]:
    """Items ``start…end`` in chunks of `size`, the first one a quarter of that: the signing
    thread waits for the worker to prepare the first chunk, and for nothing after it."""
    first = min(end, start + max(1, size // 4))
    return [range(start, first)] + [range(i, min(i + size, end)) for i in range(first, end, size)]


def _numbered_bytes(values: Mapping[Any, Any], what: str) -> dict[int, bytes]:
    """{DG number: bytes}, refusing what is neither (a number for bytes would make zero bytes)."""
    out: dict[int, bytes] = {}
    for key, value in values.items():
        if type(key) is int and type(value) is bytes:  # what every transport gives: no conversion
            out[key] = value
            continue
        try:
            number = int(key)
        except (TypeError, ValueError):
            raise SodBuildError(f"{what} number {key!r} is not a number") from None
        if not isinstance(value, bytes | bytearray | memoryview):
            raise SodBuildError(f"{what} {number} is {type(value).__name__}, not bytes")
        out[number] = bytes(value)
    return out


def sod_input_from_json(body: Mapping[str, Any]) -> SodInput:
    """Helper for transports: ``{"data_groups"|"dg_hashes": {"1": bytes, ...}}`` with int-able keys."""
    groups = body.get("data_groups")
    hashes = body.get("dg_hashes")
    return SodInput(
        data_groups=None if groups is None else {int(k): v for k, v in groups.items()},
        dg_hashes=None if hashes is None else {int(k): v for k, v in hashes.items()},
    )
