"""Webhook delivery of the notification outbox: at-least-once, signed, with retries.

Notifications are written to the outbox in the same transaction as the event they report
(so an event is never lost and never announced without happening).  `deliver_due` POSTs
each due message to its organisation's webhook *outside* any transaction, then records the
outcome with a compare-and-set on the attempt count.  A message is marked delivered only
after a 2xx, so a crash between POST and record means a second delivery, never none —
receivers deduplicate on ``X-Icao-Pki-Message-Id``.

The body is canonical JSON; ``X-Icao-Pki-Signature`` carries a detached CMS SignedData
over exactly those bytes, made with the Provider's official-use certificate, so a receiver
checks it with the same Art. 30–32 verification as any other signed document.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from icao_pki.clock import Clock
from icao_pki.signer import Signer

from .audit import canonical_json
from .signed_documents import build_signed_document
from .store import OutboxMessage, Store

MESSAGE_ID_HEADER = "X-Icao-Pki-Message-Id"
SIGNATURE_HEADER = "X-Icao-Pki-Signature"
MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True)
class PayloadSigner:
    """The Provider's official-use key (in the HSM in production) and its certificate."""

    signer: Signer
    certificate_der: bytes

    def sign(self, body: bytes, when: datetime) -> str:
        return base64.b64encode(build_signed_document(body, self.signer, self.certificate_der, when, detached=True)).decode()


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


def message_body(message: OutboxMessage) -> bytes:
    return canonical_json(
        {
            "id": message.id,
            "event": message.event,
            "organisation_id": message.organisation_id,
            "request_id": message.request_id,
            "created_at": message.created_at.isoformat(),
            "payload": message.payload,
        }
    )


def backoff(first_retry: timedelta, attempts_after: int) -> timedelta:
    """first_retry, ×2 per further attempt, capped at MAX_BACKOFF."""
    return min(first_retry * (2 ** max(attempts_after - 1, 0)), MAX_BACKOFF)


def deliver_due(
    store: Store,
    client: httpx.Client,
    *,
    clock: Clock,
    payload_signer: PayloadSigner,
    max_attempts: int = 8,
    first_retry: timedelta = timedelta(seconds=30),
    limit: int = 100,
) -> DeliveryReport:
    """One pass of the delivery worker (a scheduler calls it periodically)."""
    report = DeliveryReport()
    with store.transaction() as tx:
        due: list[tuple[int, int, str, bytes]] = [
            (m.id, m.attempts, url, message_body(m)) for m, url in tx.due_notifications(clock.now(), limit)
        ]
    for message_id, attempts, url, body in due:
        now = clock.now()
        headers = {
            "Content-Type": "application/json",
            MESSAGE_ID_HEADER: str(message_id),
            SIGNATURE_HEADER: payload_signer.sign(body, now),
        }
        error: str | None = None
        try:
            response = client.post(url, content=body, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts_after = attempts + 1
        dead = error is not None and attempts_after >= max_attempts
        with store.transaction() as tx:
            recorded = tx.record_delivery(
                message_id,
                attempts_before=attempts,
                now=now,
                delivered=error is None,
                error=error,
                next_attempt_at=now + backoff(first_retry, attempts_after),
                dead=dead,
            )
        if not recorded:
            continue  # another worker recorded this attempt
        if error is None:
            report.delivered.append(message_id)
        elif dead:
            report.dead.append(message_id)
        else:
            report.retrying.append(message_id)
    return report


def notification_view(message: OutboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "event": message.event,
        "request_id": message.request_id,
        "payload": message.payload,
        "state": message.state.value,
        "attempts": message.attempts,
        "created_at": message.created_at,
        "delivered_at": message.delivered_at,
        "last_error": message.last_error,
    }
