"""The BER-TLV subset of BSI TR-03110-3 Appendix D, decoded strictly.

Why our own codec: CV certificates use a deliberately small TLV dialect (1–2-byte tags,
one to three length octets, at most 65,535 bytes) and a chip rejects anything else.  A
generic BER library would accept indefinite lengths, long-form tags and padded lengths.
Every element keeps the exact bytes it was decoded from (`Tlv.encoded`), because
signatures are verified over what was received, never over a re-encoding.

Any byte string either decodes or raises `CvcDecodeError` with the absolute offset and
the tag — never another exception and never a loop that depends on attacker data.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import CvcDecodeError, CvcEncodeError

MAX_LENGTH = 0xFFFF


class Tlv:
    """One decoded element: `tag` as an int (0x7F21), `value` the content octets,
    `encoded` the complete tag+length+value as received, `offset` where it started.

    A plain slotted class (not a frozen dataclass): the parser creates tens of these per
    certificate and construction cost shows in chain-validation throughput.
    """

    __slots__ = ("encoded", "offset", "tag", "value")

    def __init__(self, tag: int, value: bytes, encoded: bytes, offset: int) -> None:
        self.tag = tag
        self.value = value
        self.encoded = encoded
        self.offset = offset

    def __repr__(self) -> str:
        return f"Tlv(tag=0x{self.tag:X}, offset={self.offset}, value={self.value.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tlv) and (self.tag, self.encoded, self.offset) == (other.tag, other.encoded, other.offset)

    def __hash__(self) -> int:
        return hash((self.tag, self.encoded, self.offset))

    @property
    def value_offset(self) -> int:
        return self.offset + len(self.encoded) - len(self.value)

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        """Decode the value as a sequence of elements (constructed tags only)."""
        if not self.constructed:
            raise CvcDecodeError("primitive element has no children", offset=self.offset, tag=self.tag)
        return decode_sequence(self.value, base_offset=self.value_offset)


def is_constructed(tag: int) -> bool:
    first = tag >> 8 if tag > 0xFF else tag
    return bool(first & 0x20)


def _read_tag(data: bytes, pos: int, base: int) -> tuple[int, int]:
    end = len(data)
    if pos >= end:
        raise CvcDecodeError("truncated: tag expected", offset=base + pos)
    first = data[pos]
    if first == 0x00 or first == 0xFF:
        raise CvcDecodeError(f"invalid tag octet {first:02X}", offset=base + pos)
    if first & 0x1F != 0x1F:
        return first, pos + 1
    if pos + 1 >= end:
        raise CvcDecodeError("truncated: second tag octet expected", offset=base + pos)
    second = data[pos + 1]
    if second & 0x80:
        raise CvcDecodeError("tags longer than two octets are not allowed", offset=base + pos, tag=first)
    if second < 0x1F:
        raise CvcDecodeError("two-octet tag with a number below 31 is not minimal", offset=base + pos, tag=first)
    return (first << 8) | second, pos + 2


def _read_length(data: bytes, pos: int, base: int, tag: int, tag_offset: int) -> tuple[int, int]:
    end = len(data)
    if pos >= end:
        raise CvcDecodeError("truncated: length expected", offset=base + tag_offset, tag=tag)
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x80:
        raise CvcDecodeError("indefinite length is not allowed", offset=base + tag_offset, tag=tag)
    if first == 0x81:
        if pos + 1 >= end:
            raise CvcDecodeError("truncated length", offset=base + tag_offset, tag=tag)
        length = data[pos + 1]
        if length < 0x80:
            raise CvcDecodeError("overlong length encoding", offset=base + tag_offset, tag=tag)
        return length, pos + 2
    if first == 0x82:
        if pos + 2 >= end:
            raise CvcDecodeError("truncated length", offset=base + tag_offset, tag=tag)
        length = (data[pos + 1] << 8) | data[pos + 2]
        if length < 0x100:
            raise CvcDecodeError("overlong length encoding", offset=base + tag_offset, tag=tag)
        return length, pos + 3
    raise CvcDecodeError(
        f"length field of {first & 0x7F} octets exceeds the maximum of 2 (65,535 bytes)",
        offset=base + tag_offset,
        tag=tag,
    )


def decode_one(data: bytes, pos: int = 0, *, base_offset: int = 0) -> tuple[Tlv, int]:
    """Decode the element starting at `pos`; returns it and the position after it."""
    end = len(data)
    if pos + 1 < end and data[pos] & 0x1F != 0x1F and 0 < data[pos] < 0xFF and data[pos + 1] < 0x80:
        # fast path: one-octet tag, short-form length
        tag, length, vstart = data[pos], data[pos + 1], pos + 2
    else:
        tag, after_tag = _read_tag(data, pos, base_offset)
        length, vstart = _read_length(data, after_tag, base_offset, tag, pos)
    vend = vstart + length
    if vend > end:
        raise CvcDecodeError(
            f"truncated: value of {length} bytes but only {end - vstart} remain",
            offset=base_offset + pos,
            tag=tag,
        )
    return Tlv(tag, bytes(data[vstart:vend]), bytes(data[pos:vend]), base_offset + pos), vend


def decode(data: bytes, *, base_offset: int = 0) -> Tlv:
    """Decode exactly one element; trailing bytes are an error."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    element, end = decode_one(data, 0, base_offset=base_offset)
    if end != len(data):
        raise CvcDecodeError(f"{len(data) - end} trailing bytes after the element", offset=base_offset + end)
    return element


def decode_sequence(data: bytes, *, base_offset: int = 0) -> list[Tlv]:
    """Decode a concatenation of elements (the value of a constructed element)."""
    items: list[Tlv] = []
    pos = 0
    end = len(data)
    while pos < end:  # each step consumes at least two bytes, so this terminates
        element, pos = decode_one(data, pos, base_offset=base_offset)
        items.append(element)
    return items


# --- encoding -----------------------------------------------------------------------------


def encode_tag(tag: int) -> bytes:
    if 0 < tag <= 0xFF and tag & 0x1F != 0x1F:
        return bytes([tag])
    if 0xFF < tag <= 0xFFFF and (tag >> 8) & 0x1F == 0x1F and 0x1F <= tag & 0xFF < 0x80:
        return tag.to_bytes(2, "big")
    raise CvcEncodeError(f"tag {tag:X} is not a valid one- or two-octet tag")


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= MAX_LENGTH:
        return bytes([0x82, length >> 8, length & 0xFF])
    raise CvcEncodeError(f"value of {length} bytes exceeds the TR-03110 maximum of {MAX_LENGTH}")


def encode(tag: int, value: bytes) -> bytes:
    return encode_tag(tag) + encode_length(len(value)) + value


def encode_constructed(tag: int, children: Iterable[bytes]) -> bytes:
    return encode(tag, b"".join(children))


def encode_unsigned(value: int) -> bytes:
    """Minimal big-endian unsigned integer (TR-03110-3 D.2.1.1): no leading zero octet."""
    if value < 0:
        raise CvcEncodeError("unsigned integer must not be negative")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
