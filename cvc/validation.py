"""Chain validation, twice: as a chip does it, and as an issuer checks at a time T.

**Chip-side** (TR-03110-3 §2.5–2.6, A.7.2) — `verify_chain_as_chip(state, certificates)`:
a chip has no clock, only a *current date* and at most two trust points (CVCA keys).  It
imports certificates one by one: each CAR must be the CHR of the previously imported key
(the first one a trust point); the signature is checked with that key, the domain
parameters inherited from the CVCA; expired CVCA link certificates are accepted, expired
DV and terminal certificates are not ("not yet effective" is never checked); the current
date advances only from CVCA link, DV and *accurate* terminal certificates (issued by an
official domestic DV); the order CVCA → DV → terminal is enforced; the effective authorization
is the AND of the CHATs.  A link certificate is imported permanently as a new trust
point (the least recent one beyond two is dropped).  The state is immutable: a rejected
chain changes nothing (TR-03110 demands the date and trust-point update be atomic).

Which DV certificates move the date: the product follows the stricter reading of our brief
(issue 3, STANDARDS.md §3.1): only CVCA link, *official domestic* DV and accurate terminal
certificates move it, so a foreign DV never moves a chip's clock (the default,
`ChipState.foreign_dv_moves_date=False`).  TR-03110-3 v2.2 §2.5 words it "a DV Certificate";
`foreign_dv_moves_date=True` emulates chips that read it that way.  Terminal certificates of
a foreign DV never move the date.

**Issuer-side** — `check_chain_at` / `verify_chain_at`: every current certificate valid at
T (the expiration day counts in full), children inside their issuer's validity, rights
narrowed, domain parameters only where allowed, order and CARs as above.

Both report keys outside TR-03110-3's sizes (RSA modulus 1024/1280/1536/2048/3072 bits,
exponent ≤ 32 bits, A.7.3.2; EC curves 160…512 bits, A.7.4.2) with reason `key_size`: the
chip rejects such a certificate (or trust point), the issuer-side check lists it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from icao_pki.curves import Curve
from icao_pki.signature import EcPublicKey, PublicKey
from icao_pki.signer import KeyKind

from .algorithms import TaAlgorithm
from .certificate import AuthenticatedRequest, CvCertificate, CvRequest
from .chat import Chat, ChatRole, effective_authorization
from .errors import CvcValidationError
from .publickey import key_size_problem

#: a chip keeps at most this many trust points per application (TR-03110-3 A.7.2)
MAX_TRUST_POINTS = 2


@dataclass(frozen=True)
class ImportedKey:
    """A key a chip (or a validator) has accepted: what verifies the next certificate."""

    chr: str
    public_key: PublicKey
    algorithm: TaAlgorithm
    chat: Chat
    role: ChatRole
    effective_date: date
    expiration_date: date

    @property
    def curve(self) -> Curve | None:
        return self.public_key.curve if isinstance(self.public_key, EcPublicKey) else None


def _import(cert: CvCertificate, inherited: Curve | None) -> ImportedKey:
    try:
        key = cert.public_key.public_key(inherited)
    except CvcValidationError as exc:
        raise CvcValidationError(exc.reason, exc.message, chr=cert.chr) from None
    return ImportedKey(cert.chr, key, cert.public_key.algorithm, cert.chat, cert.role, cert.effective_date, cert.expiration_date)


def _check_key_size(key: ImportedKey) -> None:
    problem = key_size_problem(key.public_key)
    if problem is not None:
        raise CvcValidationError("key_size", problem, chr=key.chr)


def trust_point(cvca: CvCertificate, *, verify: bool = True) -> ImportedKey:
    """A trust point from a self-signed CVCA certificate (which must carry domain parameters)."""
    if cvca.role is not ChatRole.CVCA:
        raise CvcValidationError("not_cvca", f"a trust point must be a CVCA certificate, this is {cvca.role.value}", chr=cvca.chr)
    if cvca.public_key.kind is KeyKind.EC and not cvca.public_key.has_domain_parameters:
        raise CvcValidationError("domain_parameters", "a CVCA trust point must carry domain parameters", chr=cvca.chr)
    if not cvca.is_self_signed:
        raise CvcValidationError("not_self_signed", "a trust point must be a self-signed CVCA certificate", chr=cvca.chr)
    imported = _import(cvca, None)
    _check_key_size(imported)
    if verify:
        cvca.verify_signature(imported.public_key, imported.algorithm)
    return imported


# --- chip-side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChipState:
    """What a chip stores: enabled trust points (most recent first) and its current date."""

    trust_points: tuple[ImportedKey, ...]
    current_date: date
    #: TR-03110-3 v2.2 §2.5: any valid DV certificate updates the date (see module docstring)
    foreign_dv_moves_date: bool = False

    @classmethod
    def personalised(
        cls, cvca_certificates: Sequence[CvCertificate], personalisation_date: date, *, foreign_dv_moves_date: bool = False
    ) -> ChipState:
        """Personalisation: the newest CVCA key first (optionally the previous one), date set."""
        points = tuple(trust_point(c) for c in cvca_certificates)
        if not 1 <= len(points) <= MAX_TRUST_POINTS:
            raise CvcValidationError("trust_points", f"a chip holds 1 to {MAX_TRUST_POINTS} trust points, got {len(points)}")
        return cls(points, personalisation_date, foreign_dv_moves_date)

    def find(self, chr: str) -> ImportedKey | None:
        return next((p for p in self.trust_points if p.chr == chr), None)


@dataclass(frozen=True)
class ChipResult:
    state: ChipState
    #: the terminal's key for Terminal Authentication, or None if the chain stopped earlier
    terminal: ImportedKey | None
    effective_authorization: Chat | None
    imported: tuple[ImportedKey, ...] = field(default_factory=tuple)


def verify_chain_as_chip(state: ChipState, certificates: Sequence[CvCertificate]) -> ChipResult:
    """Import `certificates` (links, then DV, then terminal) as a chip would; raises
    `CvcValidationError` and leaves `state` untouched on the first failure."""
    if not certificates:
        raise CvcValidationError("empty_chain", "no certificates to import")
    trust_points = list(state.trust_points)
    current = state.current_date
    issuer = state.find(certificates[0].car)
    if issuer is None:
        raise CvcValidationError(
            "unknown_trust_point",
            f"CAR {certificates[0].car} is none of the chip's trust points ({', '.join(p.chr for p in trust_points)})",
            chr=certificates[0].chr,
        )
    anchor = issuer  # the CVCA key the chain hangs from (moves with links)
    imported: list[ImportedKey] = []
    chats: list[Chat] = [anchor.chat]
    terminal: ImportedKey | None = None
    for index, cert in enumerate(certificates):
        if index and cert.car != issuer.chr:
            raise CvcValidationError("car_mismatch", f"CAR {cert.car} is not the CHR of the previous key {issuer.chr}", chr=cert.chr)
        role = cert.role
        if issuer.role is ChatRole.CVCA:
            if role is ChatRole.TERMINAL:
                raise CvcValidationError("order", "a terminal certificate signed directly by a CVCA is rejected", chr=cert.chr)
        elif issuer.role.is_dv:
            if role is not ChatRole.TERMINAL:
                raise CvcValidationError("order", f"a DV may only certify terminals, not {role.value}", chr=cert.chr)
        else:
            raise CvcValidationError("order", "a terminal key cannot certify anything", chr=cert.chr)
        cert.verify_signature(issuer.public_key, issuer.algorithm)
        key = _import(cert, anchor.curve)
        _check_key_size(key)
        if role is ChatRole.CVCA:
            # expired CVCA link certificates MUST be accepted
            if current < cert.effective_date:
                current = cert.effective_date
            if any(p.chr == key.chr and p.public_key != key.public_key for p in trust_points):
                raise CvcValidationError("chr_reused", f"a different key with CHR {key.chr} is already a trust point", chr=cert.chr)
            trust_points = [key, *(p for p in trust_points if p.chr != key.chr)][:MAX_TRUST_POINTS]
            anchor = key
            chats = [anchor.chat]
        else:
            if cert.expiration_date < current:
                raise CvcValidationError(
                    "expired", f"expired on {cert.expiration_date}, before the chip's current date {current}", chr=cert.chr
                )
            moves_date = (
                role is ChatRole.DV_DOMESTIC
                or (role is ChatRole.DV_FOREIGN and state.foreign_dv_moves_date)
                or (role is ChatRole.TERMINAL and issuer.role is ChatRole.DV_DOMESTIC)  # accurate terminal
            )
            if moves_date and current < cert.effective_date:
                current = cert.effective_date
            chats.append(cert.chat)
            if role is ChatRole.TERMINAL:
                terminal = key
        imported.append(key)
        issuer = key
    auth = effective_authorization(chats) if terminal is not None else None
    return ChipResult(replace(state, trust_points=tuple(trust_points), current_date=current), terminal, auth, tuple(imported))


# --- issuer-side --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    reason: str
    chr: str
    message: str

    def __str__(self) -> str:
        return f"{self.chr}: {self.message}"


@dataclass(frozen=True)
class ChainReport:
    findings: tuple[Finding, ...]
    terminal: ImportedKey | None
    effective_authorization: Chat | None

    @property
    def valid(self) -> bool:
        return not self.findings


def check_chain_at(trust: CvCertificate, chain: Sequence[CvCertificate], at: date) -> ChainReport:
    """Issuer-side validation of `chain` below the CVCA certificate `trust` at day `at`.

    Returns every finding; an empty list means valid.  Signature failures stop the walk
    (nothing below a bad signature can be judged).
    """
    findings: list[Finding] = []

    def add(reason: str, cert: CvCertificate, message: str) -> None:
        findings.append(Finding(reason, cert.chr, message))

    try:
        anchor = trust_point(trust)
    except CvcValidationError as exc:
        return ChainReport((Finding(exc.reason, trust.chr, exc.message),), None, None)
    issuer, issuer_cert = anchor, trust
    chats = [anchor.chat]
    terminal: ImportedKey | None = None
    last_cvca_index = max((i for i, c in enumerate(chain) if c.role is ChatRole.CVCA), default=-1)
    if last_cvca_index == -1 and not trust.valid_at(at):
        add("expired" if at > trust.expiration_date else "not_yet_valid", trust, _outside(trust, at))
    for index, cert in enumerate(chain):
        if cert.car != issuer.chr:
            add("car_mismatch", cert, f"CAR {cert.car} is not the CHR of the previous certificate {issuer.chr}")
            break
        role = cert.role
        if cert.effective_date > cert.expiration_date:
            add("dates", cert, f"expiration {cert.expiration_date} precedes effective date {cert.effective_date}")
        if issuer.role is ChatRole.CVCA and role is ChatRole.TERMINAL:
            add("order", cert, "a terminal certificate signed directly by a CVCA is not allowed")
        elif issuer.role.is_dv and role is not ChatRole.TERMINAL:
            add("order", cert, f"a DV may only certify terminals, not {role.value}")
        elif issuer.role is ChatRole.TERMINAL:
            add("order", cert, "a terminal key cannot certify anything")
        try:
            cert.verify_signature(issuer.public_key, issuer.algorithm)
            key = _import(cert, anchor.curve)
        except CvcValidationError as exc:
            add(exc.reason, cert, exc.message)
            break
        if role is ChatRole.CVCA:
            if not issuer_cert.valid_at(cert.effective_date):
                add("nesting", cert, f"link takes effect {cert.effective_date}, outside the old CVCA's validity")
            if index == last_cvca_index and not cert.valid_at(at):
                add("expired" if at > cert.expiration_date else "not_yet_valid", cert, _outside(cert, at))
            anchor = key
            chats = [anchor.chat]
        else:
            if cert.public_key.has_domain_parameters:
                add("domain_parameters", cert, f"a {role.value} certificate must not carry domain parameters")
            if not cert.valid_at(at):
                add("expired" if at > cert.expiration_date else "not_yet_valid", cert, _outside(cert, at))
            if cert.effective_date < issuer.effective_date or cert.expiration_date > issuer.expiration_date:
                add(
                    "nesting",
                    cert,
                    f"validity {cert.effective_date} – {cert.expiration_date} is not within the issuer's "
                    f"{issuer.effective_date} – {issuer.expiration_date}",
                )
            if cert.chat.oid != issuer.chat.oid:
                add("chat_type", cert, f"CHAT type {cert.chat.oid} differs from the issuer's {issuer.chat.oid}")
            elif not cert.chat.rights_within(issuer.chat):
                add("rights", cert, f"rights {cert.chat.hex} exceed the issuer's {issuer.chat.hex}")
            chats.append(cert.chat)
            if role is ChatRole.TERMINAL:
                terminal = key
        problem = key_size_problem(key.public_key)
        if problem is not None:
            add("key_size", cert, problem)
        issuer, issuer_cert = key, cert
    auth = effective_authorization(chats) if terminal is not None else None
    return ChainReport(tuple(findings), terminal, auth)


def _outside(cert: CvCertificate, at: date) -> str:
    return f"not valid on {at}: validity {cert.effective_date} – {cert.expiration_date}"


def verify_chain_at(trust: CvCertificate, chain: Sequence[CvCertificate], at: date) -> ChainReport:
    """`check_chain_at` that raises `CvcValidationError` for the first finding."""
    report = check_chain_at(trust, chain, at)
    if report.findings:
        first = report.findings[0]
        raise CvcValidationError(first.reason, first.message, chr=first.chr)
    return report


def order_chain(trust: CvCertificate, certificates: Sequence[CvCertificate]) -> list[CvCertificate]:
    """Arrange certificates given in any order into a chain below `trust` (by CAR → CHR)."""
    remaining = [c for c in certificates if c.encoded != trust.encoded]
    chain: list[CvCertificate] = []
    current = trust.chr
    while remaining:
        nxt = next((c for c in remaining if c.car == current and c.chr != current), None)
        if nxt is None:
            raise CvcValidationError(
                "car_mismatch",
                f"no certificate continues the chain from {current}; left over: {', '.join(c.chr for c in remaining)}",
            )
        chain.append(nxt)
        remaining.remove(nxt)
        current = nxt.chr
    return chain



def verify_request(
    request: CvRequest | AuthenticatedRequest,
    *,
    outer_key: PublicKey | None = None,
    outer_algorithm: TaAlgorithm | None = None,
) -> CvRequest:
    """Check a (possibly authenticated) request before acting on it; returns the inner request.

    The inner signature must verify with the requested key, which (EC) must carry domain
    parameters (TR-03110-3 C.2).  For an authenticated request the caller supplies the key
    named by `outer_car` (the applicant's current certificate, or the domestic CVCA for an
    initial request to a foreign state); without it the outer signature is not checked, and
    a successive request (C.2.6) must not be accepted that way.
    """
    inner = request.request if isinstance(request, AuthenticatedRequest) else request
    if inner.public_key.kind is KeyKind.EC and not inner.public_key.has_domain_parameters:
        raise CvcValidationError("domain_parameters", "a request must carry the domain parameters", chr=inner.chr)
    problem = key_size_problem(inner.public_key.public_key())
    if problem is not None:
        raise CvcValidationError("key_size", problem, chr=inner.chr)
    inner.verify_inner_signature()
    if isinstance(request, AuthenticatedRequest) and outer_key is not None:
        if outer_algorithm is None:
            raise ValueError("outer_algorithm is needed with outer_key")
        request.verify_outer_signature(outer_key, outer_algorithm)
    return inner
