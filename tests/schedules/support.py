"""Helpers shared by the schedule tests."""

from __future__ import annotations

import base64
from datetime import datetime

from lifecycle_api.signing.is_renewal import HsmIsRenewal
from schedules.actors import FlowRenewals
from tests.flows.pki import PkiWorld


def hsm_is_renewals(pki: PkiWorld) -> FlowRenewals:
    """The renewal actor the schedules use, renewing the IS operator's certificates whose key our
    HSM holds; the operator's request documents are signed with its test key."""
    world = pki.world
    services = world.client.app.state.services
    org = world["is_operator"].organisation_id
    with world.store.transaction() as tx:
        operator = tx.operators(org)[0].id
        provider_op = tx.operators(world["provider"].organisation_id)[0].id

    def sign(organisation_id: int, content: bytes, when: datetime) -> bytes:
        assert organisation_id == org
        return base64.b64decode(world.sign("is_operator", content, at=when))

    renewal = HsmIsRenewal(services, services.authority, operator_ids={org: operator}, sign_document=sign)
    return FlowRenewals(services, provider_op, is_renewal=renewal)
