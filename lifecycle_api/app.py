"""`create_app(settings, clock)`: the lifecycle management system's HTTP API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from icao_pki.clock import Clock, SystemClock
from icao_pki.keystore import KeyStore

from .auth import assert_every_route_authorized
from .authority import Authority
from .certificate_flows import register_certificate_handlers
from .deadlines import DeadlineRule, WorkingCalendar
from .handlers import HandlerRegistry
from .openapi import install_openapi
from .pki_routes import PUBLICATION_PATHS
from .pki_routes import router as pki_router
from .problems import install_problem_handlers
from .routes import router
from .services import Keyring, Services
from .settings import Settings
from .signed_documents import OrgPkiTrust
from .signing.routes import mount_signing
from .signing.service import DsSigningService
from .store import Store
from .trust import SignatureChecker

#: routes anyone may call; every other route must carry an `allow(...)` dependency
PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}) \
    | PUBLICATION_PATHS

#: routers mounted by `create_app`; the DS signing routes are added when a `KeyStore` is given
ROUTERS = (router, pki_router)


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    trust: OrgPkiTrust | None = None,
    handlers: HandlerRegistry | None = None,
    store: Store | None = None,
    keyring: Keyring | None = None,
    authority: Authority | None = None,
    extra_routers: tuple[Any, ...] = (),
) -> FastAPI:
    """Build the app.  `trust` is the government CA's root(s) and intermediates; without it
    no signed document can be accepted.  `handlers` maps request types to Provider actions.
    `keyring` (the HSM key store) lets the service sign for organisations whose key it holds
    (automatic countersigning); without it every countersignature comes from the client.
    `authority` is the sign component for CA keys; by default it is built on `keyring` when
    that is a `KeyStore`.  The certificate flows' handlers are registered next to `handlers`.
    `extra_routers` are mounted after ours (and must pass the deny-by-default check)."""
    DeadlineRule.parse(settings.revocation_deadline)  # refuse a bad configuration at start
    clock = clock or SystemClock()
    store = store or Store(settings.database_url)
    if authority is None and isinstance(keyring, KeyStore):
        authority = Authority(store, keyring, clock, settings.policy)
    services = Services(
        settings=settings,
        clock=clock,
        store=store,
        handlers=handlers or HandlerRegistry(),
        checker=SignatureChecker(
            trust=trust or OrgPkiTrust(roots=settings.org_pki_roots, intermediates=settings.org_pki_intermediates),
            tolerance=settings.signing_time_tolerance,
            max_age=settings.signed_document_max_age,
        ),
        calendar=WorkingCalendar.with_extra(settings.extra_holidays, country=settings.holiday_country),
        keyring=keyring,
        authority=authority,
    )
    register_certificate_handlers(services)
    unknown = sorted(set(settings.auto_act_request_types) - set(services.handlers.types()))
    if unknown:  # a typo in ICAO_PKI_AUTO_ACT would otherwise silently leave every request queued
        raise ValueError(f"auto_act_request_types names unknown request types {unknown}; "
                         f"known: {sorted(services.handlers.types())}")
    app = FastAPI(
        title="icao-pki lifecycle management system",
        version="0.1.0",
        description=(
            "The lifecycle management system of Decree 68/2024/NĐ-CP Art. 24–28: signed Agency → Cơ yếu unit → "
            "Provider request flows, audit and notifications. Errors are RFC 9457 problem+json."
        ),
    )
    app.state.services = services
    install_problem_handlers(app)
    for r in (*ROUTERS, *extra_routers):
        app.include_router(r)
    # issue 5: DS signing with exact counting (answers 503 without an HSM key store);
    # unused reserved slots are given back at shutdown
    signing = DsSigningService(store, keyring, clock, settings.policy) if isinstance(keyring, KeyStore) else None
    mount_signing(app, signing)
    if signing is not None:
        app.router.on_shutdown.append(signing.close)
    if authority is not None:
        # start-up cleanup: keys generated for steps that never committed are destroyed,
        # orphaned signatures abandoned (each audited); see Authority.recover
        app.router.on_startup.append(lambda: _recover(authority))
    assert_every_route_authorized(app.routes, PUBLIC_PATHS)
    install_openapi(app, PUBLIC_PATHS)  # examples and problem+json errors for every operation
    return app


def _recover(authority: Authority) -> None:
    report = authority.recover()
    if report.destroyed_keys or report.abandoned_signatures:
        import logging

        logging.getLogger(__name__).warning("start-up recovery: destroyed keys %s, abandoned signatures %s",
                                            report.destroyed_keys, report.abandoned_signatures)
