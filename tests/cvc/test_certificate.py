"""Model, parser and encoder of CV certificates, requests and authenticated requests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvc import tlv
from cvc.algorithms import TaAlgorithm
from cvc.certificate import (
    AuthenticatedRequest,
    CvCertificate,
    CvRequest,
    encode_certificate,
    encode_certificate_body,
    encode_date,
    encode_request,
    encode_signed,
    parse_certificate,
    parse_cv,
    parse_request,
    read_cv_bytes,
)
from cvc.chat import Chat, ChatRole, TerminalType
from cvc.errors import CvcDecodeError, CvcEncodeError
from cvc.publickey import CvEcPublicKey, CvRsaPublicKey
from icao_pki.curves import curve_by_name
from tests.cvc.conftest import Chain


def test_certificate_fields_of_built_chain(bp_chain: Chain) -> None:
    cvca, dv, term = bp_chain.cvca, bp_chain.dv, bp_chain.terminal
    assert cvca.is_self_signed and cvca.role is ChatRole.CVCA and cvca.chat.hex == "C3"
    assert isinstance(cvca.public_key, CvEcPublicKey) and cvca.public_key.curve == curve_by_name("brainpoolP256r1")
    assert cvca.public_key.algorithm is TaAlgorithm.ECDSA_SHA_256
    assert dv.car == cvca.chr and dv.role is ChatRole.DV_DOMESTIC and dv.chat.hex == "83"
    assert not dv.public_key.has_domain_parameters
    assert term.car == dv.chr and term.role is ChatRole.TERMINAL and term.chat.hex == "01"
    assert term.chat.rights == ["read_dg3"] and term.terminal_type is TerminalType.IS
    assert len(cvca.signature) == 64


def test_certificate_reencodes_to_identical_bytes(bp_chain: Chain, rsa_chain: Chain) -> None:
    for cert in (bp_chain.cvca, bp_chain.dv, bp_chain.terminal, rsa_chain.cvca, rsa_chain.terminal):
        assert encode_certificate(cert) == cert.encoded
        assert parse_certificate(cert.encoded) == cert


def test_certificate_expiration_valid_through_whole_day(bp_chain: Chain) -> None:
    term = bp_chain.terminal
    last = term.expiration_date
    assert term.valid_at(datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=UTC))
    assert not term.valid_at(date.fromordinal(last.toordinal() + 1))


def test_request_and_authenticated_request_parse(bp_chain: Chain) -> None:
    from cvc.builders import build_authenticated_request, build_request

    req_der = build_request(bp_chain.dv_signer, chr="VNDVP00009", car=bp_chain.cvca.chr)
    req = parse_cv(req_der)
    assert isinstance(req, CvRequest) and req.car == bp_chain.cvca.chr and req.public_key.has_domain_parameters
    req.verify_inner_signature()
    assert encode_request(req) == req_der
    auth = parse_request(build_authenticated_request(req_der, bp_chain.cvca_signer, outer_car=bp_chain.cvca.chr))
    assert isinstance(auth, AuthenticatedRequest) and auth.outer_car == bp_chain.cvca.chr
    assert auth.outer_signed_data == req_der + tlv.encode(0x42, bp_chain.cvca.chr.encode())
    auth.request.verify_inner_signature()
    cvca_key = bp_chain.cvca.public_key.public_key()
    auth.verify_outer_signature(cvca_key, TaAlgorithm.ECDSA_SHA_256)
    with pytest.raises(CvcDecodeError, match="expected a CV certificate"):
        parse_certificate(auth.encoded)
    with pytest.raises(CvcDecodeError, match="expected a CV request"):
        parse_request(bp_chain.cvca.encoded)


def test_certificate_with_extensions_parses(bp_chain: Chain) -> None:
    from cvc.certificate import CertificateExtension

    cert = bp_chain.terminal
    ext = (
        CertificateExtension("0.4.0.127.0.7.3.1.3.1", tlv.encode(0x80, bytes(32))),
        CertificateExtension("1.3.6.1.4.1.99999.1", b""),
    )
    body = encode_certificate_body(
        car=cert.car,
        public_key=cert.public_key,
        chr=cert.chr,
        chat=cert.chat,
        effective_date=cert.effective_date,
        expiration_date=cert.expiration_date,
        extensions=ext,
    )
    parsed = parse_certificate(encode_signed(body, cert.signature))
    assert parsed.extensions == ext


def test_read_cv_bytes_accepts_hex_and_der(bp_chain: Chain) -> None:
    der = bp_chain.cvca.encoded
    assert read_cv_bytes(der) == der
    assert read_cv_bytes(der.hex().upper().encode() + b"\n") == der
    assert read_cv_bytes(b" ".join(der.hex()[i : i + 2].encode() for i in range(0, 20, 2))) == der[:10]


def test_dates_are_unpacked_bcd() -> None:
    assert encode_date(date(2026, 1, 5)) == bytes([2, 6, 0, 1, 0, 5])
    with pytest.raises(CvcEncodeError):
        encode_date(date(1999, 12, 31))


def _replace_field(cert: CvCertificate, tag: int, value: bytes) -> bytes:
    body = tlv.decode(cert.body)
    children = [tlv.encode(c.tag, value) if c.tag == tag else c.encoded for c in body.children()]
    return encode_signed(tlv.encode(0x7F4E, b"".join(children)), cert.signature)


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        (0x5F25, bytes([2, 6, 1, 3, 0, 1]), "invalid calendar date"),
        (0x5F25, bytes([2, 6, 0, 1, 0, 0x0A]), "BCD"),
        (0x5F24, bytes([2, 6, 0, 1]), "BCD"),
        (0x5F29, b"\x01", "profile identifier"),
        (0x42, b"VN\x01CA00001", "not allowed"),
        (0x42, b"", "1 to 16"),
    ],
)
def test_parse_rejects_bad_fields_with_offset_and_tag(bp_chain: Chain, tag: int, value: bytes, reason: str) -> None:
    data = _replace_field(bp_chain.dv, tag, value)
    with pytest.raises(CvcDecodeError) as info:
        parse_cv(data)
    assert reason in info.value.reason
    assert info.value.tag == tag
    assert data[info.value.offset : info.value.offset + (1 if tag < 0x100 else 2)] == tag.to_bytes(1 if tag < 0x100 else 2, "big")


def test_parse_rejects_out_of_order_and_missing_fields(bp_chain: Chain) -> None:
    body = tlv.decode(bp_chain.dv.body).children()
    swapped = [body[0], body[3], body[2], body[1], *body[4:]]
    with pytest.raises(CvcDecodeError, match="out-of-order"):
        parse_cv(encode_signed(tlv.encode(0x7F4E, b"".join(c.encoded for c in swapped)), b"\x01"))
    no_expiry = [c for c in body if c.tag != 0x5F24]
    with pytest.raises(CvcDecodeError, match="5F24"):
        parse_cv(encode_signed(tlv.encode(0x7F4E, b"".join(c.encoded for c in no_expiry)), b"\x01"))


def test_parse_rejects_partial_domain_parameters(bp_chain: Chain) -> None:
    key = tlv.decode(bp_chain.cvca.body).children()[2]
    kept = [c for c in key.children() if c.tag != 0x83]
    data = _replace_field(bp_chain.cvca, 0x7F49, b"".join(c.encoded for c in kept))
    with pytest.raises(CvcDecodeError, match="all present or all absent"):
        parse_cv(data)


def test_parse_rejects_point_off_curve(bp_chain: Chain) -> None:
    key = tlv.decode(bp_chain.cvca.body).children()[2]
    parts = []
    for c in key.children():
        parts.append(tlv.encode(0x86, c.value[:-1] + bytes([c.value[-1] ^ 1])) if c.tag == 0x86 else c.encoded)
    with pytest.raises(CvcDecodeError, match="not on") as info:
        parse_cv(_replace_field(bp_chain.cvca, 0x7F49, b"".join(parts)))
    assert info.value.tag == 0x86


# --- hypothesis: round trip of the model and mutation of real encodings -------------------

refs = st.builds(
    lambda c, m, s: c + m + s,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=9),
    st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=5, max_size=5),
)
dates = st.dates(date(2000, 1, 1), date(2099, 12, 31))
chats = st.one_of(
    st.builds(lambda t: Chat(TerminalType.IS.oid, t), st.binary(min_size=1, max_size=1)),
    st.builds(lambda t: Chat(TerminalType.AT.oid, t), st.binary(min_size=5, max_size=5)),
    st.builds(lambda t: Chat(TerminalType.ST.oid, t), st.binary(min_size=1, max_size=1)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(car=refs, chr=refs, chat=chats, eff=dates, exp=dates, sig=st.binary(min_size=1, max_size=300), rsa=st.booleans())
def test_certificate_hypothesis_round_trip(
    bp_chain: Chain, car: str, chr: str, chat: Chat, eff: date, exp: date, sig: bytes, rsa: bool
) -> None:
    key = (
        CvRsaPublicKey(TaAlgorithm.RSA_PSS_SHA_256, (1 << 2047) | 12345, 65537)
        if rsa
        else bp_chain.cvca.public_key
    )
    body = encode_certificate_body(
        car=car, public_key=key, chr=chr, chat=chat, effective_date=eff, expiration_date=exp
    )
    der = encode_signed(body, sig)
    cert = parse_certificate(der)
    assert (cert.car, cert.chr, cert.chat, cert.effective_date, cert.expiration_date, cert.signature) == (
        car, chr, chat, eff, exp, sig
    )
    assert cert.public_key == key
    assert encode_certificate(cert) == der


_SOURCES: list[bytes] = []


def _mutation_sources(chain: Chain) -> list[bytes]:
    """Certificates, a request and an authenticated request (built once)."""
    if not _SOURCES:
        from cvc.builders import build_authenticated_request, build_request

        req = build_request(chain.is_signer, chr="VNISM00001", car=chain.dv.chr)
        auth = build_authenticated_request(req, chain.dv_signer, outer_car=chain.dv.chr)
        _SOURCES.extend([chain.cvca.encoded, chain.dv.encoded, chain.terminal.encoded, req, auth])
    return _SOURCES


def _check_mutant(data: bytes) -> None:
    try:
        obj = parse_cv(data)
    except CvcDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert obj.encoded == data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_parse_mutations_raise_only_decode_errors(bp_chain: Chain, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(_mutation_sources(bp_chain)))
    op = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
    pos = data.draw(st.integers(0, len(source) - 1))
    if op == "flip":
        mutant = source[:pos] + bytes([source[pos] ^ data.draw(st.integers(1, 255))]) + source[pos + 1 :]
    elif op == "truncate":
        mutant = source[:pos]
    elif op == "insert":
        mutant = source[:pos] + data.draw(st.binary(min_size=1, max_size=4)) + source[pos:]
    elif op == "delete":
        mutant = source[:pos] + source[pos + 1 :]
    else:
        mutant = source[:pos] + bytes([data.draw(st.sampled_from([0x00, 0x80, 0x81, 0x82, 0x83, 0xFF, 0x1F]))]) + source[pos + 1 :]
    _check_mutant(mutant)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_parse_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    _check_mutant(data)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.binary(max_size=8), lambda inner: st.builds(
    lambda tag, kids: tlv.encode(tag, b"".join(kids)),
    st.sampled_from([0x7F21, 0x7F4E, 0x7F49, 0x7F4C, 0x65, 0x67, 0x73, 0x42, 0x5F20, 0x5F29, 0x5F37, 0x06, 0x53, 0x86]),
    st.lists(inner, max_size=4),
), max_leaves=12))
def test_parse_structured_garbage_raises_only_decode_errors(data: bytes) -> None:
    _check_mutant(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(car=st.one_of(st.none(), refs), chr=refs, outer=refs, sig=st.binary(min_size=1, max_size=80), osig=st.binary(min_size=1, max_size=80))
def test_request_hypothesis_round_trip(bp_chain: Chain, car: str | None, chr: str, outer: str, sig: bytes, osig: bytes) -> None:
    from cvc.certificate import encode_authenticated_request, encode_request_body

    body = encode_request_body(car=car, public_key=bp_chain.cvca.public_key, chr=chr)
    der = encode_signed(body, sig)
    req = parse_cv(der)
    assert isinstance(req, CvRequest)
    assert (req.car, req.chr, req.signature, req.public_key) == (car, chr, sig, bp_chain.cvca.public_key)
    assert encode_request(req) == der
    auth = parse_cv(encode_authenticated_request(der, outer, osig))
    assert isinstance(auth, AuthenticatedRequest)
    assert (auth.outer_car, auth.outer_signature, auth.request) == (outer, osig, req)


def test_holder_reference_rules() -> None:
    from cvc.reference import HolderReference, as_reference

    ref = HolderReference.parse("VNCVCAP00009")
    assert (ref.country, ref.mnemonic, ref.sequence) == ("VN", "CVCAP", "00009")
    assert str(ref.next_sequence()) == "VNCVCAP00010"
    assert str(HolderReference("VN", "DV", "0000Z").next_sequence()) == "VNDV00010"
    for bad in ("vnCVCA00001", "VNTOOLONGMNEMONIC00001", "VNCVCA00_01", "VNCVCA0000a", "VN0001"):
        with pytest.raises(CvcEncodeError):
            as_reference(bad)
    with pytest.raises(CvcEncodeError):
        HolderReference("VN", "DV", "99999").next_sequence()


def test_chat_build_rights_and_roles() -> None:
    chat = Chat.build("at", "dv_foreign", ["read_dg1", "read_dg22", "write_dg17", "write_dg22", "psa", "age_verification"])
    assert chat.role is ChatRole.DV_FOREIGN
    value = int(chat.hex, 16)
    assert value >> 38 == 0b01
    assert {b for b in range(38) if value >> b & 1} == {0, 8, 29, 30, 32, 37}
    assert sorted(chat.rights) == sorted(["age_verification", "read_dg1", "read_dg22", "psa", "write_dg22", "write_dg17"])
    with pytest.raises(CvcEncodeError, match="unknown IS right"):
        Chat.build("is", "terminal", ["read_dg5"])
    issuer = Chat.build("is", "cvca", ["read_dg3"])
    assert Chat.build("is", "dv_domestic", ["read_dg3", "read_dg4"]).narrowed_to(issuer).hex == "81"
    assert Chat.build("st", "terminal", ["generate_qualified_signature"]).hex == "02"
