"""The lifecycle service's error root.

Every refusal the service can make is one of these, carrying the data a caller needs
(the article, the reason, the entity).  Only `lifecycle_api.problems` turns them into
HTTP; the workflow, the store and the signed-document checks never think about status codes.
"""

from __future__ import annotations


class LifecycleError(Exception):
    """Root of every error raised by lifecycle_api."""

    #: short machine-readable kind, used as the problem type suffix
    kind = "lifecycle-error"

    def __init__(self, message: str, **data: object) -> None:
        self.message = message
        self.data = data
        super().__init__(message)


class NotFound(LifecycleError):
    kind = "not-found"


class AuthenticationFailed(LifecycleError):
    """No credential, or one that does not resolve to an active operator."""

    kind = "unauthenticated"


class Forbidden(LifecycleError):
    """The caller is known but its party may not do this (deny by default)."""

    kind = "forbidden"


class InvalidInput(LifecycleError):
    """A well-authenticated request whose content makes no sense (unknown request type, bad payload)."""

    kind = "invalid-input"


class Conflict(LifecycleError):
    """A duplicate: the same document submitted twice, a name already taken."""

    kind = "conflict"


class StaleState(LifecycleError):
    """A compare-and-set found the row no longer in the state the step expected."""

    kind = "stale-state"


class CounterExhausted(LifecycleError):
    """A key's signature budget (Art. 23.1b / 26.1b) cannot cover the reservation."""

    kind = "counter-exhausted"


class ServiceUnavailable(LifecycleError):
    """The request is valid but this instance cannot serve it now (no usable key, feature not configured)."""

    kind = "service-unavailable"


class InternalFailure(LifecycleError):
    """Our own output failed its own check (e.g. an HSM signature that does not verify); nothing was handed out."""

    kind = "internal-failure"


class HandlerFailed(LifecycleError):
    """The Provider's act step for a request type raised; the transaction was rolled back."""

    kind = "handler-failed"
