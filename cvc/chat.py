"""Certificate Holder Authorization Template (TR-03110-3 C.1.5, TR-03110-4 v2.2 Tables 2–4).

Why a dedicated model: the CHAT carries two different things in one bit string — the role
(top two bits: CVCA 11, DV domestic 10, DV foreign 01, terminal 00) and the access rights.
Users reason in right names (``read_dg3``), chips in bits; we show both, because a wrong
CHAT is invisible until a border gate refuses a passport (pycvc issue #5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .errors import CvcEncodeError
from .oid import ID_AT, ID_IS, ID_ST


class TerminalType(str, Enum):
    IS = "is"
    AT = "at"
    ST = "st"

    @property
    def oid(self) -> str:
        return {"is": ID_IS, "at": ID_AT, "st": ID_ST}[self.value]

    @property
    def template_length(self) -> int:
        return 5 if self is TerminalType.AT else 1

    @classmethod
    def from_oid(cls, oid: str) -> TerminalType | None:
        return _TYPE_BY_OID.get(oid)


_TYPE_BY_OID = {ID_IS: TerminalType.IS, ID_AT: TerminalType.AT, ID_ST: TerminalType.ST}


class ChatRole(str, Enum):
    """The role bits; the value is the JSON name."""

    CVCA = "cvca"
    DV_DOMESTIC = "dv_domestic"
    DV_FOREIGN = "dv_foreign"
    TERMINAL = "terminal"

    @property
    def bits(self) -> int:
        return {"cvca": 0b11, "dv_domestic": 0b10, "dv_foreign": 0b01, "terminal": 0b00}[self.value]

    @classmethod
    def from_bits(cls, bits: int) -> ChatRole:
        return {0b11: cls.CVCA, 0b10: cls.DV_DOMESTIC, 0b01: cls.DV_FOREIGN, 0b00: cls.TERMINAL}[bits & 0b11]

    @property
    def is_dv(self) -> bool:
        return self in (ChatRole.DV_DOMESTIC, ChatRole.DV_FOREIGN)


def _is_rights() -> dict[str, int]:
    return {"read_dg3": 0, "read_dg4": 1, "rfu2": 2, "rfu3": 3, "rfu4": 4, "rfu5": 5}


def _at_rights() -> dict[str, int]:
    names = {
        "age_verification": 0,
        "community_id_verification": 1,
        "restricted_identification": 2,
        "privileged_terminal": 3,
        "can_allowed": 4,
        "pin_management": 5,
        "install_certificate": 6,
        "install_qualified_certificate": 7,
    }
    for dg in range(1, 23):  # read DG1 at bit 8 … DG22 at bit 29
        names[f"read_dg{dg}"] = 7 + dg
    names["psa"] = 30
    names["rfu31"] = 31
    for dg in range(17, 23):  # write DG17 at bit 37 … DG22 at bit 32
        names[f"write_dg{dg}"] = 54 - dg
    return names


def _st_rights() -> dict[str, int]:
    return {"generate_signature": 0, "generate_qualified_signature": 1, "rfu2": 2, "rfu3": 3, "rfu4": 4, "rfu5": 5}


#: right name -> bit number (bit 0 = least significant bit of the last byte)
RIGHTS: dict[TerminalType, dict[str, int]] = {
    TerminalType.IS: _is_rights(),
    TerminalType.AT: _at_rights(),
    TerminalType.ST: _st_rights(),
}


@dataclass(frozen=True)
class Chat:
    """`oid` the terminal-type OID (id-IS/id-AT/id-ST or a proprietary one), `template` the
    relative authorization bytes (tag 53)."""

    oid: str
    template: bytes

    @property
    def terminal_type(self) -> TerminalType | None:
        return TerminalType.from_oid(self.oid)

    @property
    def role(self) -> ChatRole:
        return ChatRole.from_bits(self.template[0] >> 6) if self.template else ChatRole.TERMINAL

    @property
    def rights_mask(self) -> int:
        """The authorization bits without the role bits."""
        width = 8 * len(self.template)
        return int.from_bytes(self.template, "big") & ((1 << (width - 2)) - 1) if width else 0

    @property
    def rights(self) -> list[str]:
        """Names of the granted rights, lowest bit first; unnamed bits as ``bitN``."""
        table = RIGHTS.get(self.terminal_type) if self.terminal_type else None
        by_bit = {bit: name for name, bit in (table or {}).items()}
        mask = self.rights_mask
        return [by_bit.get(bit, f"bit{bit}") for bit in range(8 * len(self.template) - 2) if mask >> bit & 1]

    @property
    def hex(self) -> str:
        return self.template.hex().upper()

    def with_role(self, role: ChatRole) -> Chat:
        width = 8 * len(self.template)
        value = self.rights_mask | (role.bits << (width - 2))
        return Chat(self.oid, value.to_bytes(len(self.template), "big"))

    def narrowed_to(self, issuer: Chat) -> Chat:
        """These rights AND the issuer's, keeping our role: issued rights never exceed the issuer's."""
        if issuer.oid != self.oid or len(issuer.template) != len(self.template):
            raise CvcEncodeError(f"CHAT type {self.oid} differs from the issuer's {issuer.oid}")
        width = 8 * len(self.template)
        value = (self.rights_mask & issuer.rights_mask) | (self.role.bits << (width - 2))
        return Chat(self.oid, value.to_bytes(len(self.template), "big"))

    def rights_within(self, issuer: Chat) -> bool:
        return self.oid == issuer.oid and self.rights_mask & ~issuer.rights_mask == 0

    @classmethod
    def build(cls, terminal_type: TerminalType | str, role: ChatRole | str, rights: Iterable[str] = ()) -> Chat:
        """A CHAT from right names; unknown names are refused (no silent typo)."""
        ttype = TerminalType(terminal_type)
        table = RIGHTS[ttype]
        length = ttype.template_length
        value = ChatRole(role).bits << (8 * length - 2)
        for name in rights:
            if name.startswith("bit") and name[3:].isdigit() and int(name[3:]) < 8 * length - 2:
                value |= 1 << int(name[3:])
                continue
            if name not in table:
                raise CvcEncodeError(f"unknown {ttype.value.upper()} right {name!r}; known: {', '.join(table)}")
            value |= 1 << table[name]
        return cls(ttype.oid, value.to_bytes(length, "big"))


def effective_authorization(chats: Iterable[Chat]) -> Chat:
    """Bitwise AND of the relative authorizations (TR-03110-3 §2.7); role bits of the last."""
    chats = list(chats)
    if not chats:
        raise ValueError("no CHAT given")
    last = chats[-1]
    mask = last.rights_mask
    for chat in chats[:-1]:
        if chat.oid != last.oid or len(chat.template) != len(last.template):
            mask = 0
        else:
            mask &= chat.rights_mask
    width = 8 * len(last.template)
    return Chat(last.oid, (mask | (last.role.bits << (width - 2))).to_bytes(len(last.template), "big"))
