"""DS signing (the *sign* part): EF.SODs under exact, crash-safe signature counting, forced
rollover, retired-key destruction and the retirement of keys generated but never certified.
See `service.py`, `rollover.py` and `unused_keys.py`."""

from __future__ import annotations

from .rollover import (
    RolloverAction,
    RolloverDue,
    RolloverThresholds,
    SuccessorRequester,
    destroy_retired,
    due_destructions,
    due_rollovers,
    perform_rollovers,
    retire_expired,
)
from .service import DsSigningService, KeyUsage, NoSigningKey, SignedSod, SodInput, usage_report

__all__ = [
    "DsSigningService",
    "KeyUsage",
    "NoSigningKey",
    "RolloverAction",
    "RolloverDue",
    "RolloverThresholds",
    "SignedSod",
    "SodInput",
    "SuccessorRequester",
    "destroy_retired",
    "due_destructions",
    "due_rollovers",
    "perform_rollovers",
    "retire_expired",
    "usage_report",
]
