"""Provider administration: the parties, their official-use certificates and their operators."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from icao_pki.policy import DocumentType
from icao_pki.signature import load_spki

from .auth import Caller
from .credentials import hash_secret, new_token
from .errors import InvalidInput
from .services import Services
from .store import Operator, OperatorKind, Organisation, OrganisationCertificate, PartyType, StoreTx


def create_organisation(
    tx: StoreTx,
    services: Services,
    caller: Caller | None,
    *,
    name: str,
    party_type: PartyType,
    country: str,
    ministry: str | None = None,
    document_types: Sequence[DocumentType] = (),
    auto_countersign: bool = False,
    webhook_url: str | None = None,
) -> Organisation:
    party_type = PartyType(party_type)
    if party_type in (PartyType.AGENCY, PartyType.COYEU) and not ministry:
        raise InvalidInput(f"a {party_type.value} belongs to a ministry (Art. 24, 27)")
    if party_type is PartyType.AGENCY and not document_types:
        raise InvalidInput("an agency serves passport and/or ID-card issuance: name its document types")
    if auto_countersign and party_type is not PartyType.COYEU:
        raise InvalidInput("only a Cơ yếu unit countersigns")
    now = services.clock.now()
    org = tx.add_organisation(
        name=name,
        party_type=party_type,
        country=country,
        ministry=ministry,
        document_types=document_types,
        auto_countersign=auto_countersign,
        webhook_url=webhook_url,
        now=now,
    )
    tx.append_audit(
        at=now,
        action="organisation.created",
        entity_type="organisation",
        entity_id=org.id,
        details={"name": name, "party_type": party_type.value, "ministry": ministry, "country": country},
        actor_organisation_id=caller.organisation_id if caller else None,
        actor_operator_id=caller.operator_id if caller else None,
    )
    return org


def register_certificate(
    tx: StoreTx, services: Services, caller: Caller | None, organisation_id: int, der: bytes,
    hsm_label: str | None = None,
) -> OrganisationCertificate:
    """Register an official-use certificate for an organisation: it must chain to the configured root now.

    With `hsm_label` the service's HSM holds the key (centralised signing): the key must
    exist and match the certificate, or the registration is refused.
    """
    org = tx.organisation(organisation_id)
    now = services.clock.now()
    cert = services.checker.check_organisation_certificate(der, now)
    if hsm_label is not None:
        if services.keyring is None:
            raise InvalidInput("this service has no key store, so it cannot hold an organisation's key")
        try:
            held = load_spki(services.keyring.signer(hsm_label).public_key_info())
        except Exception as exc:  # the key store's own errors: missing, destroyed, token unavailable
            raise InvalidInput(f"key {hsm_label} cannot be used: {exc}") from None
        if held != load_spki(cert.public_key.dump()):
            raise InvalidInput(f"key {hsm_label} does not match the certificate's public key", hsm_label=hsm_label)
    row = tx.add_organisation_certificate(
        organisation_id=org.id,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        der=der,
        now=now,
        hsm_label=hsm_label,
    )
    tx.append_audit(
        at=now,
        action="organisation.certificate_registered",
        entity_type="organisation",
        entity_id=org.id,
        details={"fingerprint_sha256": row.fingerprint_sha256, "subject": row.subject, "hsm_label": hsm_label},
        actor_organisation_id=caller.organisation_id if caller else None,
        actor_operator_id=caller.operator_id if caller else None,
    )
    return row


@dataclass(frozen=True)
class NewOperator:
    operator: Operator
    token: str  # shown once, never stored


def create_operator(
    tx: StoreTx, services: Services, caller: Caller | None, organisation_id: int, *, name: str,
    kind: OperatorKind = OperatorKind.OPERATOR,
) -> NewOperator:
    org = tx.organisation(organisation_id)
    token_id, secret = new_token()
    now = services.clock.now()
    operator = tx.add_operator(
        organisation_id=org.id,
        name=name,
        kind=OperatorKind(kind),
        token_id=token_id,
        credential_hash=hash_secret(secret, services.settings.scrypt),
        now=now,
    )
    tx.append_audit(
        at=now,
        action="operator.created",
        entity_type="operator",
        entity_id=operator.id,
        details={"organisation_id": org.id, "name": name, "kind": operator.kind.value},
        actor_organisation_id=caller.organisation_id if caller else None,
        actor_operator_id=caller.operator_id if caller else None,
    )
    return NewOperator(operator, f"{token_id}.{secret}")


def bootstrap_provider(services: Services, *, name: str, operator_name: str = "admin") -> NewOperator:
    """First start: the Provider organisation and its first operator (there is nobody yet to authorise it)."""
    with services.store.transaction() as tx:
        org = create_organisation(tx, services, None, name=name, party_type=PartyType.PROVIDER, country="VN",
                                  ministry="Ban Cơ yếu Chính phủ",
                                  document_types=[DocumentType.PASSPORT, DocumentType.IDCARD])
        return create_operator(tx, services, None, org.id, name=operator_name)
