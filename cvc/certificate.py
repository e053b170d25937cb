"""CV certificates, requests and authenticated requests (TR-03110-3 Appendix C).

```
7F21 { 7F4E { 5F29, 42 CAR, 7F49, 5F20 CHR, 7F4C CHAT, 5F25, 5F24, 65? }, 5F37 }   certificate
7F21 { 7F4E { 5F29, 42?, 7F49 (with domain parameters), 5F20, 65? }, 5F37 }        request
67 { 7F21 request, 42 outer CAR, 5F37 outer signature over TLV(7F21) || TLV(42) }  authenticated request
```

Why the parsed objects keep `body` / `encoded`: signatures are verified over the bytes that
were received.  Field order is enforced; unknown tags are errors; the extensions (65) are
kept opaque per OID because a chip must not reject unknown extensions (and parsers that
choked on them are a recorded interoperability bug, STANDARDS.md §2.5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from icao_pki.curves import Curve
from icao_pki.lru import BoundedSet
from icao_pki.policy import Window
from icao_pki.signature import (
    PSS_ANY_SALT,
    PublicKey,
    RsaPublicKey,
    SignatureError,
    verify_signature,
)

from . import tlv
from .algorithms import TaAlgorithm
from .chat import Chat, ChatRole, TerminalType
from .errors import CvcDecodeError, CvcEncodeError, CvcValidationError
from .oid import decode_oid, encode_oid
from .publickey import CvPublicKey, encode_public_key, parse_public_key
from .reference import check_characters

TAG_CV_CERTIFICATE = 0x7F21
TAG_BODY = 0x7F4E
TAG_PROFILE = 0x5F29
TAG_CAR = 0x42
TAG_CHR = 0x5F20
TAG_CHAT = 0x7F4C
TAG_EFFECTIVE = 0x5F25
TAG_EXPIRATION = 0x5F24
TAG_EXTENSIONS = 0x65
TAG_DISCRETIONARY_TEMPLATE = 0x73
TAG_SIGNATURE = 0x5F37
TAG_AUTHENTICATION = 0x67
TAG_RELATIVE_AUTHORIZATION = 0x53
PROFILE_V1 = 0x00


# --- dates --------------------------------------------------------------------------------


def encode_date(value: date) -> bytes:
    """Six unpacked BCD digits YYMMDD; the year must lie in 2000–2099."""
    if isinstance(value, datetime):
        value = value.date()
    if not 2000 <= value.year <= 2099:
        raise CvcEncodeError(f"CV dates cover 2000-2099 only, got {value.isoformat()}")
    return bytes(int(ch) for ch in value.strftime("%y%m%d"))


def parse_date(element: tlv.Tlv) -> date:
    raw = element.value
    if len(raw) != 6 or any(d > 9 for d in raw):
        raise CvcDecodeError("date must be 6 unpacked BCD digits YYMMDD", offset=element.offset, tag=element.tag)
    try:
        return date(2000 + raw[0] * 10 + raw[1], raw[2] * 10 + raw[3], raw[4] * 10 + raw[5])
    except ValueError as exc:
        raise CvcDecodeError(f"invalid calendar date: {exc}", offset=element.offset, tag=element.tag) from None


def end_of_day(value: date) -> datetime:
    """An expiration date is valid through the whole day, GMT (cert-cvc 1.4.14)."""
    return datetime.combine(value, time.max, tzinfo=UTC)


# --- small elements -----------------------------------------------------------------------


def encode_reference(tag: int, text: str) -> bytes:
    check_characters(text)
    if not 1 <= len(text) <= 16:
        raise CvcEncodeError(f"reference {text!r} must be 1 to 16 characters")
    return tlv.encode(tag, text.encode("latin-1"))


def parse_reference(element: tlv.Tlv) -> str:
    if not 1 <= len(element.value) <= 16:
        raise CvcDecodeError("reference must be 1 to 16 characters", offset=element.offset, tag=element.tag)
    text = element.value.decode("latin-1")
    try:
        check_characters(text)
    except CvcEncodeError as exc:
        raise CvcDecodeError(str(exc), offset=element.offset, tag=element.tag) from None
    return text


def encode_chat(chat: Chat) -> bytes:
    return tlv.encode_constructed(
        TAG_CHAT, [tlv.encode(0x06, encode_oid(chat.oid)), tlv.encode(TAG_RELATIVE_AUTHORIZATION, chat.template)]
    )


def parse_chat(element: tlv.Tlv) -> Chat:
    children = element.children()
    if len(children) != 2 or children[0].tag != 0x06 or children[1].tag != TAG_RELATIVE_AUTHORIZATION:
        raise CvcDecodeError("CHAT must be 06 OID followed by 53 relative authorization", offset=element.offset, tag=element.tag)
    try:
        oid = decode_oid(children[0].value)
    except ValueError as exc:
        raise CvcDecodeError(f"malformed CHAT OID: {exc}", offset=children[0].offset, tag=0x06) from None
    template = children[1].value
    ttype = TerminalType.from_oid(oid)
    expected = ttype.template_length if ttype else None
    if not template or (expected is not None and len(template) != expected):
        raise CvcDecodeError(
            f"relative authorization of {len(template)} bytes; {ttype.value.upper() if ttype else 'CHAT'} needs {expected or 'at least 1'}",
            offset=children[1].offset,
            tag=TAG_RELATIVE_AUTHORIZATION,
        )
    return Chat(oid, template)


@dataclass(frozen=True)
class CertificateExtension:
    """One discretionary data template 73 { 06 OID, context-specific objects }; `content`
    holds the objects after the OID, as received."""

    oid: str
    content: bytes = b""

    def encode(self) -> bytes:
        return tlv.encode(TAG_DISCRETIONARY_TEMPLATE, tlv.encode(0x06, encode_oid(self.oid)) + self.content)


def parse_extensions(element: tlv.Tlv) -> tuple[CertificateExtension, ...]:
    result = []
    for template in element.children():
        if template.tag != TAG_DISCRETIONARY_TEMPLATE:
            raise CvcDecodeError("certificate extension must be a 73 template", offset=template.offset, tag=template.tag)
        inner = template.children()
        if not inner or inner[0].tag != 0x06:
            raise CvcDecodeError("certificate extension must start with an OID", offset=template.offset, tag=template.tag)
        try:
            oid = decode_oid(inner[0].value)
        except ValueError as exc:
            raise CvcDecodeError(f"malformed extension OID: {exc}", offset=inner[0].offset, tag=0x06) from None
        result.append(CertificateExtension(oid, b"".join(i.encoded for i in inner[1:])))
    return tuple(result)


def encode_extensions(extensions: tuple[CertificateExtension, ...]) -> bytes:
    return tlv.encode_constructed(TAG_EXTENSIONS, [e.encode() for e in extensions])


# --- the objects --------------------------------------------------------------------------


def verify_ta_signature(key: PublicKey, algorithm: TaAlgorithm, signature: bytes, data: bytes) -> None:
    """Verify a TR-03110 signature (ECDSA plain r||s, RSA v1.5 or PSS); raises `SignatureError`.

    We write RSA-PSS with salt = hash length; on reading we accept any salt length, because
    OpenPACE (OpenSSL's default) signs with the maximum salt length.  Key objects are cached
    by the shared verifier, which matters here: CVCA and DV keys verify many certificates.
    """
    verify_signature(
        key,
        signature,
        data,
        algorithm.hash,
        ecdsa_format="plain",
        rsa_padding=algorithm.rsa_padding,
        pss_salt_length=PSS_ANY_SALT,
    )


class VerifiedSignatureCache:
    """A bounded memory of certificate signatures that already verified.

    Why: a service validates the same DV and CVCA certificates over and over (every IS
    request, every chip simulation); the elliptic-curve verification is ~90 % of the
    cost.  The key is SHA-256 over the public key, the algorithm, the signed bytes and
    the signature, so a hit means "exactly these bytes verified under exactly this key
    before".  Only successes are remembered; `enabled = False` or `clear()` turns it off.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.enabled = True
        self._seen = BoundedSet(size)

    @staticmethod
    def key(key: PublicKey, algorithm: TaAlgorithm, signature: bytes, data: bytes) -> bytes:
        h = hashlib.sha256()
        if isinstance(key, RsaPublicKey):
            ident = b"rsa:" + tlv.encode_unsigned(key.n) + b":" + tlv.encode_unsigned(key.e)
        else:
            ident = b"ec:" + key.curve.name.encode() + b":" + key.point
        for part in (ident, algorithm.value.encode(), signature, data):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.digest()

    def __contains__(self, digest: bytes) -> bool:
        return self.enabled and digest in self._seen

    def add(self, digest: bytes) -> None:
        if self.enabled:
            self._seen.add(digest)

    def clear(self) -> None:
        self._seen.clear()


#: shared by every certificate/request verification in the process
SIGNATURE_CACHE = VerifiedSignatureCache()


def _verify(key: PublicKey, algorithm: TaAlgorithm, signature: bytes, data: bytes, what: str, chr: str) -> None:
    digest = SIGNATURE_CACHE.key(key, algorithm, signature, data) if SIGNATURE_CACHE.enabled else b""
    if digest and digest in SIGNATURE_CACHE:
        return
    try:
        verify_ta_signature(key, algorithm, signature, data)
    except SignatureError as exc:
        raise CvcValidationError("signature", f"{what} signature does not verify: {exc}", chr=chr) from None
    if digest:
        SIGNATURE_CACHE.add(digest)


@dataclass(frozen=True)
class CvCertificate:
    profile_identifier: int
    car: str
    public_key: CvPublicKey
    chr: str
    chat: Chat
    effective_date: date
    expiration_date: date
    extensions: tuple[CertificateExtension, ...] | None
    signature: bytes
    #: the 7F4E TLV exactly as received: the signature input
    body: bytes = field(repr=False)
    #: the whole 7F21 TLV exactly as received
    encoded: bytes = field(repr=False)

    kind = "certificate"

    @property
    def role(self) -> ChatRole:
        return self.chat.role

    @property
    def terminal_type(self) -> TerminalType | None:
        return self.chat.terminal_type

    @property
    def is_self_signed(self) -> bool:
        return self.car == self.chr

    @property
    def is_link(self) -> bool:
        return self.role is ChatRole.CVCA and not self.is_self_signed

    @property
    def validity(self) -> Window:
        return Window(self.effective_date, self.expiration_date)

    def valid_at(self, when: date | datetime) -> bool:
        """Dates are GMT; the expiration date is valid through the whole day."""
        day = when.astimezone(UTC).date() if isinstance(when, datetime) else when
        return self.effective_date <= day <= self.expiration_date

    def verify_signature(self, issuer_key: PublicKey, issuer_algorithm: TaAlgorithm) -> None:
        """Verify over the received 7F4E TLV with the *issuer's* key and algorithm."""
        _verify(issuer_key, issuer_algorithm, self.signature, self.body, "certificate", self.chr)


@dataclass(frozen=True)
class CvRequest:
    profile_identifier: int
    car: str | None
    public_key: CvPublicKey
    chr: str
    extensions: tuple[CertificateExtension, ...] | None
    signature: bytes
    body: bytes = field(repr=False)
    encoded: bytes = field(repr=False)

    kind = "request"

    def verify_inner_signature(self, inherited: Curve | None = None) -> None:
        """The inner signature proves possession of the requested key (made with it)."""
        key = self.public_key.public_key(inherited)
        _verify(key, self.public_key.algorithm, self.signature, self.body, "inner request", self.chr)


@dataclass(frozen=True)
class AuthenticatedRequest:
    request: CvRequest
    outer_car: str
    outer_signature: bytes
    #: TLV(7F21) || TLV(42) as received: the outer signature input
    outer_signed_data: bytes = field(repr=False)
    encoded: bytes = field(repr=False)

    kind = "authenticated_request"

    @property
    def chr(self) -> str:
        return self.request.chr

    def verify_outer_signature(self, outer_key: PublicKey, outer_algorithm: TaAlgorithm) -> None:
        """With the key named by `outer_car` (applicant's current key, or the domestic CVCA)."""
        _verify(outer_key, outer_algorithm, self.outer_signature, self.outer_signed_data, "outer request", self.chr)


CvObject = CvCertificate | CvRequest | AuthenticatedRequest


# --- encoding -----------------------------------------------------------------------------


def encode_certificate_body(
    *,
    car: str,
    public_key: CvPublicKey,
    chr: str,
    chat: Chat,
    effective_date: date,
    expiration_date: date,
    extensions: tuple[CertificateExtension, ...] | None = None,
    profile_identifier: int = PROFILE_V1,
) -> bytes:
    parts = [
        tlv.encode(TAG_PROFILE, bytes([profile_identifier])),
        encode_reference(TAG_CAR, car),
        encode_public_key(public_key),
        encode_reference(TAG_CHR, chr),
        encode_chat(chat),
        tlv.encode(TAG_EFFECTIVE, encode_date(effective_date)),
        tlv.encode(TAG_EXPIRATION, encode_date(expiration_date)),
    ]
    if extensions:
        parts.append(encode_extensions(extensions))
    return tlv.encode_constructed(TAG_BODY, parts)


def encode_request_body(
    *,
    car: str | None,
    public_key: CvPublicKey,
    chr: str,
    extensions: tuple[CertificateExtension, ...] | None = None,
    profile_identifier: int = PROFILE_V1,
) -> bytes:
    parts = [tlv.encode(TAG_PROFILE, bytes([profile_identifier]))]
    if car is not None:
        parts.append(encode_reference(TAG_CAR, car))
    parts += [encode_public_key(public_key), encode_reference(TAG_CHR, chr)]
    if extensions:
        parts.append(encode_extensions(extensions))
    return tlv.encode_constructed(TAG_BODY, parts)


def encode_signed(body: bytes, signature: bytes) -> bytes:
    """7F21 { body, 5F37 signature } — a certificate or a request."""
    return tlv.encode(TAG_CV_CERTIFICATE, body + tlv.encode(TAG_SIGNATURE, signature))


def encode_certificate(cert: CvCertificate) -> bytes:
    """Re-encode a certificate from its fields (the canonical encoding)."""
    body = encode_certificate_body(
        car=cert.car,
        public_key=cert.public_key,
        chr=cert.chr,
        chat=cert.chat,
        effective_date=cert.effective_date,
        expiration_date=cert.expiration_date,
        extensions=cert.extensions,
        profile_identifier=cert.profile_identifier,
    )
    return encode_signed(body, cert.signature)


def encode_request(req: CvRequest) -> bytes:
    body = encode_request_body(
        car=req.car, public_key=req.public_key, chr=req.chr, extensions=req.extensions, profile_identifier=req.profile_identifier
    )
    return encode_signed(body, req.signature)


def encode_authenticated_request(request_der: bytes, outer_car: str, outer_signature: bytes) -> bytes:
    return tlv.encode(
        TAG_AUTHENTICATION, request_der + encode_reference(TAG_CAR, outer_car) + tlv.encode(TAG_SIGNATURE, outer_signature)
    )


def outer_signature_input(request_der: bytes, outer_car: str) -> bytes:
    """TLV(7F21) || TLV(42): the outer CAR is signed too (cert-cvc 1.2.7 fix)."""
    return request_der + encode_reference(TAG_CAR, outer_car)


# --- decoding -----------------------------------------------------------------------------

_CERT_ORDER = (TAG_PROFILE, TAG_CAR, 0x7F49, TAG_CHR, TAG_CHAT, TAG_EFFECTIVE, TAG_EXPIRATION, TAG_EXTENSIONS)
_CERT_REQUIRED = frozenset(_CERT_ORDER[:-1])
_REQ_ORDER = (TAG_PROFILE, TAG_CAR, 0x7F49, TAG_CHR, TAG_EXTENSIONS)
_REQ_REQUIRED = frozenset((TAG_PROFILE, 0x7F49, TAG_CHR))


def _body_fields(
    body: tlv.Tlv, order: tuple[int, ...], required: frozenset[int], children: list[tlv.Tlv] | None = None
) -> dict[int, tlv.Tlv]:
    fields: dict[int, tlv.Tlv] = {}
    position = 0
    for item in body.children() if children is None else children:
        while position < len(order) and order[position] != item.tag:
            position += 1
        if position == len(order):
            raise CvcDecodeError("unexpected, repeated or out-of-order element in the body", offset=item.offset, tag=item.tag)
        fields[item.tag] = item
        position += 1
    missing = required - set(fields)
    if missing:
        names = ", ".join(f"{t:X}" for t in order if t in missing)
        raise CvcDecodeError(f"body lacks mandatory element(s) {names}", offset=body.offset, tag=body.tag)
    return fields


def _profile(element: tlv.Tlv) -> int:
    if element.value != bytes([PROFILE_V1]):
        raise CvcDecodeError("certificate profile identifier must be 00 (version 1)", offset=element.offset, tag=element.tag)
    return PROFILE_V1


def _split_signed(outer: tlv.Tlv) -> tuple[tlv.Tlv, tlv.Tlv]:
    if outer.tag != TAG_CV_CERTIFICATE:
        raise CvcDecodeError("CV certificate or request (7F21) expected", offset=outer.offset, tag=outer.tag)
    children = outer.children()
    if len(children) != 2 or children[0].tag != TAG_BODY or children[1].tag != TAG_SIGNATURE:
        raise CvcDecodeError("7F21 must contain exactly 7F4E body and 5F37 signature", offset=outer.offset, tag=outer.tag)
    if not children[1].value:
        raise CvcDecodeError("empty signature", offset=children[1].offset, tag=TAG_SIGNATURE)
    return children[0], children[1]


def _is_certificate_body(children: list[tlv.Tlv]) -> bool:
    return any(item.tag == TAG_CHAT for item in children)


def _certificate_from(
    outer: tlv.Tlv, body: tlv.Tlv, signature: tlv.Tlv, children: list[tlv.Tlv] | None = None
) -> CvCertificate:
    f = _body_fields(body, _CERT_ORDER, _CERT_REQUIRED, children)
    return CvCertificate(
        profile_identifier=_profile(f[TAG_PROFILE]),
        car=parse_reference(f[TAG_CAR]),
        public_key=parse_public_key(f[0x7F49]),
        chr=parse_reference(f[TAG_CHR]),
        chat=parse_chat(f[TAG_CHAT]),
        effective_date=parse_date(f[TAG_EFFECTIVE]),
        expiration_date=parse_date(f[TAG_EXPIRATION]),
        extensions=parse_extensions(f[TAG_EXTENSIONS]) if TAG_EXTENSIONS in f else None,
        signature=signature.value,
        body=body.encoded,
        encoded=outer.encoded,
    )


def _request_from(
    outer: tlv.Tlv, body: tlv.Tlv, signature: tlv.Tlv, children: list[tlv.Tlv] | None = None
) -> CvRequest:
    f = _body_fields(body, _REQ_ORDER, _REQ_REQUIRED, children)
    return CvRequest(
        profile_identifier=_profile(f[TAG_PROFILE]),
        car=parse_reference(f[TAG_CAR]) if TAG_CAR in f else None,
        public_key=parse_public_key(f[0x7F49]),
        chr=parse_reference(f[TAG_CHR]),
        extensions=parse_extensions(f[TAG_EXTENSIONS]) if TAG_EXTENSIONS in f else None,
        signature=signature.value,
        body=body.encoded,
        encoded=outer.encoded,
    )


def _authenticated_from(outer: tlv.Tlv) -> AuthenticatedRequest:
    children = outer.children()
    tags = [c.tag for c in children]
    if tags != [TAG_CV_CERTIFICATE, TAG_CAR, TAG_SIGNATURE]:
        raise CvcDecodeError("authenticated request must be 67 { 7F21, 42, 5F37 }", offset=outer.offset, tag=outer.tag)
    inner, car, sig = children
    body, inner_sig = _split_signed(inner)
    if _is_certificate_body(body.children()):
        raise CvcDecodeError("authenticated request wraps a certificate, not a request", offset=inner.offset, tag=inner.tag)
    if not sig.value:
        raise CvcDecodeError("empty outer signature", offset=sig.offset, tag=TAG_SIGNATURE)
    return AuthenticatedRequest(
        request=_request_from(inner, body, inner_sig),
        outer_car=parse_reference(car),
        outer_signature=sig.value,
        outer_signed_data=inner.encoded + car.encoded,
        encoded=outer.encoded,
    )


def parse_cv(data: bytes) -> CvObject:
    """Decode any of the three objects; raises `CvcDecodeError` (offset, tag) on bad input."""
    try:
        outer = tlv.decode(data)
        if outer.tag == TAG_AUTHENTICATION:
            return _authenticated_from(outer)
        body, signature = _split_signed(outer)
        children = body.children()
        if _is_certificate_body(children):
            return _certificate_from(outer, body, signature, children)
        return _request_from(outer, body, signature, children)
    except CvcDecodeError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError) as exc:  # defence in depth: never leak another type
        raise CvcDecodeError(f"malformed structure: {exc}", offset=0) from None


def parse_certificate(data: bytes) -> CvCertificate:
    obj = parse_cv(data)
    if not isinstance(obj, CvCertificate):
        raise CvcDecodeError(f"expected a CV certificate, got a {obj.kind.replace('_', ' ')}", offset=0, tag=_top_tag(obj))
    return obj


def parse_request(data: bytes) -> CvRequest | AuthenticatedRequest:
    obj = parse_cv(data)
    if isinstance(obj, CvCertificate):
        raise CvcDecodeError("expected a CV request, got a certificate", offset=0, tag=TAG_CV_CERTIFICATE)
    return obj


def _top_tag(obj: CvObject) -> int:
    return TAG_AUTHENTICATION if isinstance(obj, AuthenticatedRequest) else TAG_CV_CERTIFICATE


def read_cv_bytes(raw: bytes) -> bytes:
    """Files may hold raw DER or hex text (whitespace and ``:`` ignored)."""
    stripped = raw.strip()
    if stripped[:1] in (b"\x7f", b"\x67") and not _looks_hex(stripped):
        return raw
    if _looks_hex(stripped):
        text = b"".join(stripped.split()).replace(b":", b"")
        try:
            return bytes.fromhex(text.decode("ascii"))
        except ValueError:
            pass
    return raw


def _looks_hex(data: bytes) -> bool:
    allowed = set(b"0123456789abcdefABCDEF: \t\r\n")
    return bool(data) and all(b in allowed for b in data)
