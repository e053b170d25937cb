"""The strict TLV dialect of TR-03110-3 Appendix D."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvc import tlv
from cvc.errors import CvcDecodeError, CvcEncodeError


def test_tlv_short_and_long_lengths_round_trip() -> None:
    for size in (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF):
        value = bytes(size)
        encoded = tlv.encode(0x5F37, value)
        element = tlv.decode(encoded)
        assert (element.tag, element.value, element.encoded, element.offset) == (0x5F37, value, encoded, 0)


def test_tlv_length_octets_are_minimal() -> None:
    assert tlv.encode_length(0x7F) == b"\x7f"
    assert tlv.encode_length(0x80) == b"\x81\x80"
    assert tlv.encode_length(0x100) == b"\x82\x01\x00"
    with pytest.raises(CvcEncodeError):
        tlv.encode_length(0x10000)


@pytest.mark.parametrize(
    ("data", "reason", "offset", "tag"),
    [
        (b"\x42\x80\x00\x00", "indefinite", 0, 0x42),
        (b"\x42\x81\x05hello", "overlong", 0, 0x42),
        (b"\x42\x82\x00\x05hello", "overlong", 0, 0x42),
        (b"\x42\x83\x00\x00\x05hello", "maximum", 0, 0x42),
        (b"\x42\x05hell", "truncated", 0, 0x42),
        (b"\x42\x01h\x00", "trailing", 3, None),
        (b"\x5f", "truncated", 0, None),
        (b"\x5f\x81\x01\x00", "longer than two", 0, 0x5F),
        (b"\x5f\x10\x01\x00", "not minimal", 0, 0x5F),
        (b"", "truncated", 0, None),
        (b"\x00\x00", "invalid tag", 0, None),
        (b"\x42", "length expected", 0, 0x42),
        (b"\x42\x82\x01", "truncated length", 0, 0x42),
    ],
)
def test_tlv_rejects_bad_encodings(data: bytes, reason: str, offset: int, tag: int | None) -> None:
    with pytest.raises(CvcDecodeError) as info:
        tlv.decode(data)
    assert reason in info.value.reason
    assert info.value.offset == offset
    assert info.value.tag == tag


def test_tlv_nested_offsets_are_absolute() -> None:
    inner = tlv.encode(0x42, b"AB") + tlv.encode(0x5F20, b"\x01\x02\x03")
    outer = tlv.decode(tlv.encode(0x7F4E, inner))
    children = outer.children()
    assert [c.offset for c in children] == [3, 7]
    bad = tlv.encode(0x7F4E, tlv.encode(0x42, b"AB") + b"\x5f\x20\x05\x01")
    with pytest.raises(CvcDecodeError) as info:
        tlv.decode(bad).children()
    assert (info.value.offset, info.value.tag) == (7, 0x5F20)


def test_tlv_unsigned_integers_are_minimal() -> None:
    assert tlv.encode_unsigned(0) == b"\x00"
    assert tlv.encode_unsigned(0x80) == b"\x80"
    assert tlv.encode_unsigned(0x1_0001) == b"\x01\x00\x01"


tags = st.one_of(
    st.integers(1, 0xFE).filter(lambda t: t & 0x1F != 0x1F),
    st.builds(lambda a, b: (a << 8) | b, st.sampled_from([0x5F, 0x7F, 0x9F, 0xBF, 0xDF]), st.integers(0x1F, 0x7F)),
)


@settings(max_examples=300, deadline=None)
@given(tags, st.binary(max_size=600))
def test_tlv_hypothesis_round_trip(tag: int, value: bytes) -> None:
    encoded = tlv.encode(tag, value)
    element = tlv.decode(encoded)
    assert (element.tag, element.value, element.encoded) == (tag, value, encoded)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_tlv_any_bytes_decode_or_raise_typed_error(data: bytes) -> None:
    try:
        element = tlv.decode(data)
    except CvcDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert element.encoded == data
