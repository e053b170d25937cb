"""Who is calling, and whether that party may call this endpoint.

Caller → operator (or service account) → organisation → party type.  Every route states
the parties it admits with `allow(...)`; `create_app` refuses to start if a non-public
route lacks one (deny by default), and `tests/api/test_authorization.py` walks every
party × every endpoint.  Object-level rules (a Cơ yếu unit acts only for its own
ministry's agencies) live in the workflow, which receives the `Caller`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .credentials import split_token, verify_secret
from .errors import AuthenticationFailed, Forbidden
from .store import Operator, PartyType, Store, StoreTx

_bearer = HTTPBearer(auto_error=False, description="`<token_id>.<secret>` issued to an operator or service account")


@dataclass(frozen=True)
class Caller:
    operator_id: int
    operator_name: str
    organisation_id: int
    organisation_name: str
    party_type: PartyType
    ministry: str | None


def caller_of(tx: StoreTx, operator: Operator) -> Caller:
    """The caller an operator acts as (its organisation read in `tx`): for the HTTP layer and for
    the service's own actors (schedules, rollover requesters) that act as a named operator."""
    org = tx.organisation(operator.organisation_id)
    return Caller(operator.id, operator.name, org.id, org.name, org.party_type, org.ministry)


def operator_caller(store: Store, operator_id: int, role: str) -> Caller:
    """`caller_of` for an operator id the deployment configured (`role` names it in the error)."""
    with store.transaction() as tx:
        operator = tx.session.get(Operator, operator_id)
        assert operator is not None, f"unknown {role} operator"
        return caller_of(tx, operator)


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    services = request.app.state.services
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationFailed("a bearer token is required")
    parts = split_token(credentials.credentials)
    if parts is None:
        raise AuthenticationFailed("malformed bearer token")
    token_id, secret = parts
    with services.store.transaction() as tx:
        operator = tx.operator_by_token_id(token_id)
        if operator is None or not operator.active or not verify_secret(secret, operator.credential_hash):
            raise AuthenticationFailed("unknown or revoked credential")
        return caller_of(tx, operator)


def allow(*parties: PartyType) -> Callable[..., Caller]:
    """Dependency admitting only callers of the named party types."""
    admitted = frozenset(PartyType(p) for p in parties)

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        caller = authenticate(request, credentials)
        if caller.party_type not in admitted:
            raise Forbidden(
                f"a {caller.party_type.value} may not call {request.method} {request.url.path}",
                party_type=caller.party_type.value,
                allowed=sorted(p.value for p in admitted),
            )
        return caller

    dependency.allowed_parties = admitted  # type: ignore[attr-defined]
    return dependency


ALL_PARTIES: tuple[PartyType, ...] = tuple(PartyType)


def route_parties(dependant: Any) -> frozenset[PartyType] | None:
    """The parties a route admits (from its `allow` dependency), or None if it has none."""
    for dep in dependant.dependencies:
        parties = getattr(dep.call, "allowed_parties", None)
        if parties is not None:
            return parties
        nested = route_parties(dep)
        if nested is not None:
            return nested
    return None


def iter_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(full path, route) for every route, descending into included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from iter_routes(included.routes, prefix + context_prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def assert_every_route_authorized(routes: Iterable[Any], public_paths: Iterable[str]) -> None:
    """Deny by default: a route that is neither public nor guarded stops the app from starting."""
    public = set(public_paths)
    for path, route in iter_routes(routes):
        if path in public:
            continue
        dependant = getattr(route, "dependant", None)
        if dependant is None or route_parties(dependant) is None:
            raise RuntimeError(f"route {sorted(getattr(route, 'methods', ()) or ())} {path} has no authorization dependency")
