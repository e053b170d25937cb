"""The objects one running service shares: settings, clock, store, handlers, trust, calendar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from icao_pki.clock import Clock
from icao_pki.signer import Signer

from .authority import Authority
from .deadlines import DeadlineRule, WorkingCalendar
from .handlers import HandlerRegistry
from .settings import Settings
from .store import Store
from .trust import SignatureChecker


class Keyring(Protocol):
    """Where the service finds keys it may sign with for an organisation (centralised signing,
    letter 293).  `icao_pki.keystore.KeyStore` is one: ``signer(label)``."""

    def signer(self, label: str) -> Signer: ...


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    handlers: HandlerRegistry
    checker: SignatureChecker
    calendar: WorkingCalendar
    keyring: Keyring | None = None
    #: the sign component (CA keys in the HSM); None: the service cannot issue certificates
    authority: Authority | None = None

    @property
    def revocation_deadline(self) -> DeadlineRule:
        return DeadlineRule.parse(self.settings.revocation_deadline)
