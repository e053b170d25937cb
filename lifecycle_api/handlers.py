"""What the Provider does with a countersigned request, per request type.

The workflow (Agency signs → Cơ yếu unit countersigns → Provider acts) is the same for
every request; what "acts" means — issue a DS certificate from the CSCA, a DV certificate
from the CVCA, revoke… — is a `RequestHandler` registered under its request type.  The
registry is deny-by-default too: an unregistered type is refused at submission, and a
handler names the parties that may submit it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from icao_pki.policy import DocumentType, Policy

from .deadlines import DeadlineRule
from .errors import InvalidInput
from .store import PartyType

if TYPE_CHECKING:
    from .auth import Caller
    from .services import Services
    from .store import StoreTx


@dataclass(frozen=True)
class RequestSnapshot:
    """The request as the handler sees it: immutable, already countersigned."""

    id: str
    request_type: str
    document_type: DocumentType | None
    applicant_organisation_id: int
    ministry: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class ActContext:
    """Everything a handler may use; it writes only through `tx` (the step's one transaction)."""

    tx: StoreTx
    request: RequestSnapshot
    now: datetime
    caller: Caller
    policy: Policy
    #: what the handler's `prepare` phase produced outside the transaction (signed products,
    #: generated keys), for `act` to store; None for handlers without a prepare phase
    prepared: Any = None
    #: the running service (for the sign component); set by the workflow
    services: Services | None = None


@dataclass(frozen=True)
class PrepareContext:
    """The sign phase (STYLE: decide / sign / store): runs outside any transaction, so the
    sign component can journal each HSM operation in its own committed transaction."""

    services: Services
    request: RequestSnapshot
    now: datetime
    caller: Caller
    policy: Policy


#: validate(payload, document_type, policy) raises InvalidInput or PolicyViolation
Validator = Callable[[Mapping[str, Any], DocumentType | None, Policy], None]
#: act(context) -> JSON-able result, stored on the request and sent to the applicant
Action = Callable[[ActContext], dict[str, Any]]
#: prepare(context) -> whatever `act` needs; may touch the HSM through the sign component
Prepare = Callable[[PrepareContext], Any]
#: discard(prepared, reason): the step failed after `prepare`; undo what the HSM holds (destroy keys)
Discard = Callable[[Any, str], None]


def _accept_any(payload: Mapping[str, Any], document_type: DocumentType | None, policy: Policy) -> None:
    return None


@dataclass(frozen=True)
class RequestHandler:
    request_type: str
    submitters: frozenset[PartyType]
    act: Action
    validate: Validator = _accept_any
    document_type_required: bool = True
    #: time the Provider has to act, from submission (e.g. Art. 19.2b for revocations); None: no deadline
    deadline: DeadlineRule | None = None
    description: str = ""
    prepare: Prepare | None = None
    discard: Discard | None = None
    #: check_submission(tx, caller, payload): object-level rules at submission (e.g. Art. 18
    #: authority for revocations), so a request the Provider could never act on is refused at once
    check_submission: Callable[[StoreTx, Caller, Mapping[str, Any]], None] | None = None
    #: after_rejection(services, request): undo what the request holds in the HSM (a DS key
    #: generated for it), after the rejection committed
    after_rejection: Callable[[Services, Any], None] | None = None


@dataclass
class HandlerRegistry:
    _handlers: dict[str, RequestHandler] = field(default_factory=dict)

    @classmethod
    def of(cls, handlers: Iterable[RequestHandler]) -> HandlerRegistry:
        registry = cls()
        for handler in handlers:
            registry.register(handler)
        return registry

    def register(self, handler: RequestHandler) -> None:
        if handler.request_type in self._handlers:
            raise ValueError(f"a handler for {handler.request_type!r} is already registered")
        if not handler.submitters:
            raise ValueError(f"handler {handler.request_type!r} names no submitting party")
        self._handlers[handler.request_type] = handler

    def get(self, request_type: str) -> RequestHandler:
        try:
            return self._handlers[request_type]
        except KeyError:
            raise InvalidInput(
                f"unknown request type {request_type!r}", request_type=request_type, known=sorted(self._handlers)
            ) from None

    def types(self) -> list[str]:
        return sorted(self._handlers)
