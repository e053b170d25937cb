"""Issuing CV certificates and requests through a `Signer` (never a key).

What each builder guarantees before it signs (TR-03110-3 C.1, TR-03139 §4, Decree 68/2024):

* the signer holds the issuer certificate's key (checked, not trusted);
* the issuer signs with the algorithm of its *own* key — for a CVCA link that is the OLD
  key's algorithm (EJBCA PR 500);
* effective date = issuance date (a parameter: codecs never read the clock); the validity
  lies inside the issuer's and within the decree's limit for the role (`policy`);
* domain parameters: self-signed CVCA always, link by choice, DV and terminal never,
  requests always; DV and terminal keys must lie on the CVCA's curve;
* issued rights are the requested rights AND the issuer's;
* the certified key has a TR-03110-3 size: RSA modulus 1024/1280/1536/2048/3072 bits with
  an exponent of at most 32 bits (A.7.3.2), EC curves of 160…512 bits (A.7.4.2);
* every signature is verified after it is made, over the exact bytes returned.

Each builder returns DER; parse it with `cvc.certificate.parse_cv` to inspect it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from icao_pki.curves import Curve
from icao_pki.policy import DEFAULT_POLICY, CertificateFormat, DocumentType, Policy, PolicyViolation, Role, Window
from icao_pki.signature import PublicKey, SignatureError, load_spki, pad_plain, verify_signature
from icao_pki.signer import KeyKind, Signer

from .algorithms import TaAlgorithm, algorithm_for_signer
from .certificate import (
    AuthenticatedRequest,
    CertificateExtension,
    CvCertificate,
    CvRequest,
    encode_authenticated_request,
    encode_certificate_body,
    encode_request_body,
    encode_signed,
    outer_signature_input,
    parse_cv,
    parse_request,
)
from .chat import RIGHTS, Chat, ChatRole, TerminalType
from .errors import CvcBuildError, CvcError, CvcPolicyViolation
from .publickey import from_public_key, key_size_problem
from .reference import as_reference


def _signer_key(signer: Signer) -> PublicKey:
    return load_spki(signer.public_key_info())


def _require_key_size(key: PublicKey, holder: str) -> None:
    """Refuse to certify (or request) a key of a size TR-03110-3 A.7.3.2/A.7.4.2 excludes."""
    problem = key_size_problem(key)
    if problem is not None:
        raise CvcBuildError(f"{holder}: {problem}")


def _sign(signer: Signer, algorithm: TaAlgorithm, data: bytes) -> bytes:
    """Sign with the issuer key's own algorithm and verify the result before returning it."""
    if algorithm.kind is not signer.kind:
        raise CvcBuildError(f"issuer algorithm {algorithm.label} does not fit the signer's {signer.kind.value.upper()} key")
    raw = signer.sign(data, algorithm.hash, algorithm.rsa_padding)
    key = _signer_key(signer)
    if signer.kind is KeyKind.EC:
        raw = pad_plain(raw, key.curve.order_bytes)  # type: ignore[union-attr]
    try:
        verify_signature(key, raw, data, algorithm.hash, ecdsa_format="plain", rsa_padding=algorithm.rsa_padding)
    except SignatureError as exc:
        raise CvcBuildError(f"the signer produced a signature that does not verify: {exc}") from None
    return raw


def _check_policy(policy: Policy, role: Role, document_type: DocumentType | str, validity: Window, issuer: Window | None) -> None:
    try:
        policy.check_certificate(
            role,
            DocumentType(document_type),
            validity,
            issuer_validity=issuer,
            certificate_format=CertificateFormat.CV,
        )
    except CvcPolicyViolation:
        raise
    except PolicyViolation as exc:
        raise CvcPolicyViolation(exc) from None


def _check_dates(effective_date: date, expiration_date: date) -> None:
    if expiration_date < effective_date:
        raise CvcBuildError(f"expiration date {expiration_date} precedes effective date {effective_date}")


def _check_issuer(signer: Signer, issuer: CvCertificate) -> Curve | None:
    """The signer must hold the key of `issuer`; returns the issuer's curve (None for RSA)."""
    held = _signer_key(signer)
    try:
        stated = issuer.public_key.public_key(signer.curve)
    except CvcError as exc:
        raise CvcBuildError(f"issuer certificate {issuer.chr}: {exc}") from None
    if stated != held:
        raise CvcBuildError(f"the signer's key is not the key of issuer certificate {issuer.chr}")
    return signer.curve


def _chat(terminal_type: TerminalType, role: ChatRole, rights: Iterable[str] | None, issuer: Chat | None) -> Chat:
    if rights is None:
        chat = issuer.with_role(role) if issuer else Chat.build(terminal_type, role, _all_named_rights(terminal_type))
    else:
        chat = Chat.build(terminal_type, role, rights)
    return chat.narrowed_to(issuer) if issuer else chat


def _all_named_rights(terminal_type: TerminalType) -> list[str]:
    return [name for name in RIGHTS[terminal_type] if not name.startswith("rfu")]


def _extensions(extensions: Iterable[CertificateExtension] | None) -> tuple[CertificateExtension, ...] | None:
    ext = tuple(extensions or ())
    return ext or None


# --- CVCA ---------------------------------------------------------------------------------


def build_cvca_certificate(
    signer: Signer,
    *,
    chr: str,
    effective_date: date,
    expiration_date: date,
    document_type: DocumentType | str,
    terminal_type: TerminalType | str = TerminalType.IS,
    rights: Iterable[str] | None = None,
    algorithm: TaAlgorithm | None = None,
    extensions: Iterable[CertificateExtension] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """A self-signed CVCA certificate: CAR = CHR, full domain parameters, role 11.

    `rights` default to every named right of the terminal type.
    """
    chr = as_reference(chr)
    _check_dates(effective_date, expiration_date)
    _check_policy(policy, Role.CVCA, document_type, Window(effective_date, expiration_date), None)
    alg = algorithm_for_signer(signer, algorithm)
    own = _signer_key(signer)
    _require_key_size(own, chr)
    key = from_public_key(own, alg, domain_parameters=True)
    chat = _chat(TerminalType(terminal_type), ChatRole.CVCA, rights, None)
    body = encode_certificate_body(
        car=chr,
        public_key=key,
        chr=chr,
        chat=chat,
        effective_date=effective_date,
        expiration_date=expiration_date,
        extensions=_extensions(extensions),
    )
    return encode_signed(body, _sign(signer, alg, body))


def build_cvca_link_certificate(
    old_signer: Signer,
    old_certificate: CvCertificate,
    new_certificate: CvCertificate,
    *,
    document_type: DocumentType | str,
    include_domain_parameters: bool = True,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """The link from the old CVCA key to the new one (TR-03139 §4.4.1).

    Carries the new CVCA's key, CHR, CHAT and validity; CAR = the old CHR; signed by the
    old key with the old key's algorithm.  The new certificate must be self-signed and
    take effect while the old one is valid.
    """
    _check_issuer(old_signer, old_certificate)
    if old_certificate.role is not ChatRole.CVCA:
        raise CvcBuildError(f"{old_certificate.chr} is not a CVCA certificate")
    new = new_certificate
    if new.role is not ChatRole.CVCA or not new.is_self_signed:
        raise CvcBuildError(f"{new.chr} is not a self-signed CVCA certificate")
    try:
        new.verify_signature(new.public_key.public_key(), new.public_key.algorithm)
    except CvcError as exc:
        raise CvcBuildError(f"new CVCA certificate does not verify: {exc}") from None
    if new.chr == old_certificate.chr:
        raise CvcBuildError(f"the new CVCA key reuses the CHR {new.chr}; a new key needs a new sequence number")
    if not old_certificate.valid_at(new.effective_date):
        raise CvcBuildError(
            f"the new CVCA takes effect {new.effective_date}, outside the old CVCA's validity "
            f"{old_certificate.effective_date} – {old_certificate.expiration_date}"
        )
    _check_policy(policy, Role.CVCA, document_type, new.validity, None)
    _require_key_size(new.public_key.public_key(), new.chr)
    key = new.public_key
    if not include_domain_parameters and key.kind is KeyKind.EC:
        key = from_public_key(key.public_key(), key.algorithm, domain_parameters=False)
    body = encode_certificate_body(
        car=old_certificate.chr,
        public_key=key,
        chr=new.chr,
        chat=new.chat,
        effective_date=new.effective_date,
        expiration_date=new.expiration_date,
        extensions=new.extensions,
    )
    return encode_signed(body, _sign(old_signer, old_certificate.public_key.algorithm, body))


# --- DV and terminal from a request -------------------------------------------------------


def _checked_request(request: CvRequest | AuthenticatedRequest | bytes, issuer: CvCertificate, curve: Curve | None) -> CvRequest:
    if isinstance(request, bytes):
        request = parse_request(request)
    inner = request.request if isinstance(request, AuthenticatedRequest) else request
    key = inner.public_key
    if key.kind is KeyKind.EC and not key.has_domain_parameters:
        raise CvcBuildError(f"request {inner.chr} lacks the domain parameters a request must carry")
    try:
        inner.verify_inner_signature()
    except CvcError as exc:
        raise CvcBuildError(f"request {inner.chr}: {exc}") from None
    if key.kind is not issuer.public_key.kind:
        raise CvcBuildError(f"request key is {key.kind.value.upper()} but the chain is {issuer.public_key.kind.value.upper()}")
    if curve is not None and key.curve != curve:
        raise CvcBuildError(
            f"request key is on {key.curve.name if key.curve else '?'} but keys under this CVCA inherit {curve.name}"
        )
    _require_key_size(key.public_key(), f"request {inner.chr}")
    if inner.car is not None and inner.car != issuer.chr:
        raise CvcBuildError(f"request {inner.chr} names CAR {inner.car}, not the issuer {issuer.chr}")
    if inner.chr == issuer.chr:
        raise CvcBuildError(f"request reuses the issuer's CHR {inner.chr}")
    return inner


def _issue_from_request(
    signer: Signer,
    issuer: CvCertificate,
    request: CvRequest | AuthenticatedRequest | bytes,
    *,
    role: ChatRole,
    policy_role: Role,
    effective_date: date,
    expiration_date: date,
    document_type: DocumentType | str,
    rights: Iterable[str] | None,
    algorithm: TaAlgorithm | None,
    extensions: Iterable[CertificateExtension] | None,
    policy: Policy,
) -> bytes:
    curve = _check_issuer(signer, issuer)
    inner = _checked_request(request, issuer, curve)
    _check_dates(effective_date, expiration_date)
    _check_policy(policy, policy_role, document_type, Window(effective_date, expiration_date), issuer.validity)
    if issuer.terminal_type is None:
        raise CvcBuildError(f"issuer {issuer.chr} has a proprietary CHAT type {issuer.chat.oid}")
    chat = _chat(issuer.terminal_type, role, rights, issuer.chat)
    holder_alg = algorithm or inner.public_key.algorithm
    key = from_public_key(inner.public_key.public_key(), holder_alg, domain_parameters=False)
    body = encode_certificate_body(
        car=issuer.chr,
        public_key=key,
        chr=inner.chr,
        chat=chat,
        effective_date=effective_date,
        expiration_date=expiration_date,
        extensions=_extensions(extensions),
    )
    return encode_signed(body, _sign(signer, issuer.public_key.algorithm, body))


def build_dv_certificate(
    signer: Signer,
    issuer: CvCertificate,
    request: CvRequest | AuthenticatedRequest | bytes,
    *,
    domestic: bool,
    effective_date: date,
    expiration_date: date,
    document_type: DocumentType | str,
    rights: Iterable[str] | None = None,
    algorithm: TaAlgorithm | None = None,
    extensions: Iterable[CertificateExtension] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """A DV certificate (domestic role 10 or foreign role 01) issued by the CVCA `issuer`.

    `rights` default to the CVCA's; they are always narrowed to the CVCA's.  The request's
    inner signature is verified; checking the outer signature of an authenticated request
    is the caller's decision (`AuthenticatedRequest.verify_outer_signature`).
    """
    if issuer.role is not ChatRole.CVCA:
        raise CvcBuildError(f"a DV certificate must be issued by a CVCA; {issuer.chr} is {issuer.role.value}")
    return _issue_from_request(
        signer,
        issuer,
        request,
        role=ChatRole.DV_DOMESTIC if domestic else ChatRole.DV_FOREIGN,
        policy_role=Role.DVCA,
        effective_date=effective_date,
        expiration_date=expiration_date,
        document_type=document_type,
        rights=rights,
        algorithm=algorithm,
        extensions=extensions,
        policy=policy,
    )


def build_terminal_certificate(
    signer: Signer,
    issuer: CvCertificate,
    request: CvRequest | AuthenticatedRequest | bytes,
    *,
    effective_date: date,
    expiration_date: date,
    document_type: DocumentType | str,
    rights: Iterable[str] | None = None,
    algorithm: TaAlgorithm | None = None,
    extensions: Iterable[CertificateExtension] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> bytes:
    """A terminal (IS/AT/ST, the DV's type) certificate issued by the DV `issuer`; role 00."""
    if not issuer.role.is_dv:
        raise CvcBuildError(f"a terminal certificate must be issued by a DV; {issuer.chr} is {issuer.role.value}")
    return _issue_from_request(
        signer,
        issuer,
        request,
        role=ChatRole.TERMINAL,
        policy_role=Role.IS,
        effective_date=effective_date,
        expiration_date=expiration_date,
        document_type=document_type,
        rights=rights,
        algorithm=algorithm,
        extensions=extensions,
        policy=policy,
    )


# --- requests -----------------------------------------------------------------------------


def build_request(
    signer: Signer,
    *,
    chr: str,
    car: str | None = None,
    algorithm: TaAlgorithm | None = None,
    extensions: Iterable[CertificateExtension] | None = None,
) -> bytes:
    """A certificate request for the signer's key: domain parameters included, inner
    signature made with the requested key itself.  `car` names the wanted issuer
    (mandatory for DV requests under TR-03139)."""
    alg = algorithm_for_signer(signer, algorithm)
    own = _signer_key(signer)
    _require_key_size(own, chr)
    key = from_public_key(own, alg, domain_parameters=True)
    body = encode_request_body(
        car=as_reference(car) if car is not None else None,
        public_key=key,
        chr=as_reference(chr),
        extensions=_extensions(extensions),
    )
    return encode_signed(body, _sign(signer, alg, body))


def build_authenticated_request(
    request: bytes,
    outer_signer: Signer,
    *,
    outer_car: str,
    outer_algorithm: TaAlgorithm | None = None,
) -> bytes:
    """Wrap a request: 67 { 7F21, 42 outer CAR, 5F37 over TLV(7F21) || TLV(42) }.

    The outer signer is the applicant's current key (renewal) or the domestic CVCA (initial
    request to a foreign state); `outer_algorithm` must be that key's certificate algorithm.
    """
    parsed = parse_cv(request)
    if not isinstance(parsed, CvRequest):
        raise CvcBuildError(f"only a plain request can be authenticated, got a {parsed.kind.replace('_', ' ')}")
    outer_car = as_reference(outer_car)
    if outer_car == parsed.chr:
        raise CvcBuildError("the outer signature must come from a key other than the requested one")
    alg = algorithm_for_signer(outer_signer, outer_algorithm)
    signed = outer_signature_input(parsed.encoded, outer_car)
    return encode_authenticated_request(parsed.encoded, outer_car, _sign(outer_signer, alg, signed))
