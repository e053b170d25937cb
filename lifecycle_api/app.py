"""`create_app(settings, clock)`: the lifecycle management system's HTTP API."""

from __future__ import annotations

from fastapi import FastAPI

from icao_pki.clock import Clock, SystemClock

from .auth import assert_every_route_authorized
from .deadlines import DeadlineRule, WorkingCalendar
from .handlers import HandlerRegistry
from .problems import install_problem_handlers
from .routes import router
from .services import Keyring, Services
from .settings import Settings
from .signed_documents import OrgPkiTrust
from .store import Store
from .trust import SignatureChecker

#: routes anyone may call; every other route must carry an `allow(...)` dependency
PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    trust: OrgPkiTrust | None = None,
    handlers: HandlerRegistry | None = None,
    store: Store | None = None,
    keyring: Keyring | None = None,
) -> FastAPI:
    """Build the app.  `trust` is the government CA's root(s) and intermediates; without it
    no signed document can be accepted.  `handlers` maps request types to Provider actions.
    `keyring` (the HSM key store) lets the service sign for organisations whose key it holds
    (automatic countersigning); without it every countersignature comes from the client."""
    DeadlineRule.parse(settings.revocation_deadline)  # refuse a bad configuration at start
    services = Services(
        settings=settings,
        clock=clock or SystemClock(),
        store=store or Store(settings.database_url),
        handlers=handlers or HandlerRegistry(),
        checker=SignatureChecker(
            trust=trust or OrgPkiTrust(roots=settings.org_pki_roots, intermediates=settings.org_pki_intermediates),
            tolerance=settings.signing_time_tolerance,
            max_age=settings.signed_document_max_age,
        ),
        calendar=WorkingCalendar.with_extra(settings.extra_holidays, country=settings.holiday_country),
        keyring=keyring,
    )
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
    app.include_router(router)
    assert_every_route_authorized(app.routes, PUBLIC_PATHS)
    return app
