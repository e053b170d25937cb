"""The error root of the `cvc` package and its typed children.

Why typed errors with data: the lifecycle service maps them to problem+json, the CLI to a
one-line message, and tests assert on the offset/tag/reason rather than on message text.
Parse errors (bytes we received), build errors (something we refuse to sign) and
validation errors (a chain a chip would reject) are different failure phases.
"""

from __future__ import annotations

from icao_pki.policy import PolicyViolation


class CvcError(Exception):
    """Root of every error raised by the `cvc` package."""


class CvcDecodeError(CvcError, ValueError):
    """A byte string that is not a valid TR-03110 structure.

    `offset` is the absolute position of the offending element in the input, `tag` the
    tag being decoded there (None when the tag itself could not be read).
    """

    def __init__(self, reason: str, *, offset: int, tag: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        self.tag = tag
        where = f"at offset {offset}" + (f" (tag {tag:X})" if tag is not None else "")
        super().__init__(f"{reason} {where}")


class CvcEncodeError(CvcError, ValueError):
    """A value that cannot be written in a TR-03110 encoding (too long, bad characters, …)."""


class CvcBuildError(CvcError):
    """A builder refused to sign: the request or the parameters break TR-03110 or the chain."""


class CvcPolicyViolation(CvcBuildError, PolicyViolation):
    """A builder refused to sign because the decree's limits forbid it.

    Also a `PolicyViolation`, so callers that handle the decree's limits uniformly (X.509 and
    CV) keep working; `.article` names the article.
    """

    def __init__(self, violation: PolicyViolation) -> None:
        PolicyViolation.__init__(self, violation.article, violation.reason, limit=violation.limit)


class CvcValidationError(CvcError):
    """A certificate, request or chain that does not validate.

    `reason` is a short machine-friendly code (e.g. ``signature``, ``expired``,
    ``car_mismatch``), `chr` the holder reference of the offending certificate.
    """

    def __init__(self, reason: str, message: str, *, chr: str | None = None) -> None:
        self.reason = reason
        self.chr = chr
        self.message = message
        super().__init__(f"{chr}: {message}" if chr else message)
