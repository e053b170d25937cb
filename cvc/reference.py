"""Certificate Holder / Certification Authority References (TR-03110-3 A.7.1, Table 15).

A reference is country code (2) + holder mnemonic (≤ 9) + sequence number (5).  A chip
identifies keys by it and SHOULD refuse to import a key whose CHR it already knows, so a
new key always gets a new sequence number (`next_sequence`) and a CHR is never reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import CvcEncodeError

_COUNTRY = re.compile(r"[A-Z]{2}")
_SEQUENCE = re.compile(r"[0-9A-Z]{5}")


_FORBIDDEN = re.compile("[^\x20-\x7e\xa0-\xff]")


def check_characters(text: str) -> None:
    """ISO/IEC 8859-1 without the control codes 00–1F and 7F–9F (D.2.1.4)."""
    bad = _FORBIDDEN.search(text)
    if bad:
        raise CvcEncodeError(f"character {bad.group()!r} is not allowed in a TR-03110 character string")


@dataclass(frozen=True)
class HolderReference:
    country: str
    mnemonic: str
    sequence: str

    def __post_init__(self) -> None:
        if not _COUNTRY.fullmatch(self.country):
            raise CvcEncodeError(f"country code {self.country!r} must be two ISO 3166-1 alpha-2 letters")
        if len(self.mnemonic) > 9:
            raise CvcEncodeError(f"holder mnemonic {self.mnemonic!r} is longer than 9 characters")
        check_characters(self.mnemonic)
        if not _SEQUENCE.fullmatch(self.sequence):
            raise CvcEncodeError(f"sequence number {self.sequence!r} must be 5 characters 0-9 or A-Z")

    def __str__(self) -> str:
        return f"{self.country}{self.mnemonic}{self.sequence}"

    @classmethod
    def parse(cls, text: str) -> HolderReference:
        if len(text) < 7:
            raise CvcEncodeError(f"reference {text!r} is shorter than country (2) + sequence (5)")
        return cls(text[:2], text[2:-5], text[-5:])

    def next_sequence(self) -> HolderReference:
        """Same country and mnemonic, sequence + 1 (numeric sequences keep their width)."""
        seq = self.sequence
        if seq.isdigit():
            value = int(seq) + 1
            if value > 99999:
                raise CvcEncodeError(f"sequence {seq} cannot be incremented")
            return HolderReference(self.country, self.mnemonic, f"{value:05d}")
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        chars = list(seq)
        for i in range(4, -1, -1):
            pos = digits.index(chars[i])
            if pos < len(digits) - 1:
                chars[i] = digits[pos + 1]
                return HolderReference(self.country, self.mnemonic, "".join(chars))
            chars[i] = "0"
        raise CvcEncodeError(f"sequence {seq} cannot be incremented")


def as_reference(value: HolderReference | str) -> str:
    """Validate a reference given as text or object; returns its text form."""
    if isinstance(value, HolderReference):
        return str(value)
    return str(HolderReference.parse(value))
