"""The objects one running service shares: settings, clock, store, handlers, trust, calendar."""

from __future__ import annotations

from dataclasses import dataclass

from icao_pki.clock import Clock

from .deadlines import DeadlineRule, WorkingCalendar
from .handlers import HandlerRegistry
from .settings import Settings
from .store import Store
from .trust import SignatureChecker


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    handlers: HandlerRegistry
    checker: SignatureChecker
    calendar: WorkingCalendar

    @property
    def revocation_deadline(self) -> DeadlineRule:
        return DeadlineRule.parse(self.settings.revocation_deadline)
