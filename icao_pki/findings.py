"""Findings: what a `check_*` function reports about a certificate, CRL, CMS object or document.

One type for the whole package, so lint, CRL, Master List and Passive Authentication
reports can be merged, filtered and printed alike.  `code` is stable for machines,
`message` is for people, `citation` names the rule (9303-12 table, RFC, decree article)
and `subject` the object it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    citation: str | None = None
    subject: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        text = f"{self.severity.value}: {self.message}"
        return f"{text} [{self.citation}]" if self.citation else text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity.value, "code": self.code, "message": self.message}
        if self.citation is not None:
            out["citation"] = self.citation
        if self.subject is not None:
            out["subject"] = self.subject
        return out
