"""The store: the only code in icao-pki that writes SQL.

`Store` owns the engine; `Store.transaction()` yields a `StoreTx`, the unit of work of one
workflow step.  The step commits or rolls back as a whole, so a refused step leaves
nothing behind.  State changes and counters are compare-and-set UPDATEs (``… WHERE state =
:expected``, ``… WHERE used + reserved + n <= max``); "0 rows changed" becomes a typed
error, never a read-modify-write in Python.
"""

from __future__ import annotations

from .database import Store, StoreTx, create_engine_for
from .models import (
    AuditEntry,
    Base,
    Certificate,
    CertificateStatus,
    Crl,
    CrlScope,
    Hierarchy,
    HsmOperation,
    HsmOperationKind,
    HsmOperationState,
    Key,
    KeyState,
    Operator,
    OperatorKind,
    Organisation,
    OrganisationCertificate,
    OutboxMessage,
    OutboxState,
    PartyType,
    PublishedKind,
    PublishedObject,
    Request,
    RequestSignature,
    RequestState,
    Revocation,
    SignaturePurpose,
)

__all__ = [
    "AuditEntry",
    "Base",
    "Certificate",
    "CertificateStatus",
    "Crl",
    "CrlScope",
    "Hierarchy",
    "HsmOperation",
    "HsmOperationKind",
    "HsmOperationState",
    "Key",
    "KeyState",
    "Operator",
    "OperatorKind",
    "Organisation",
    "OrganisationCertificate",
    "OutboxMessage",
    "OutboxState",
    "PartyType",
    "PublishedKind",
    "PublishedObject",
    "Request",
    "RequestSignature",
    "RequestState",
    "Revocation",
    "SignaturePurpose",
    "Store",
    "StoreTx",
    "create_engine_for",
]
