"""A small DS-signing world: a store, a CSCA key in the session's SoftHSM2 token, parties."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from icao_pki.certificate import build_csca_certificate
from icao_pki.clock import FakeClock
from icao_pki.keystore import KeyStore
from icao_pki.names import DistinguishedName
from icao_pki.policy import DEFAULT_POLICY, DocumentType, Policy, Role, Window, add_months
from lifecycle_api.signing.successor import DirectDsIssuer
from lifecycle_api.store import PartyType, Store

T0 = datetime(2027, 1, 4, 8, 0, 0, tzinfo=UTC)

#: DG1 with the ICAO 9303-4 TD3 specimen MRZ; DG2 varies per document
MRZ = b"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<" + b"L898902C36UTO7408122F1204159ZE184226B<<<<<10"
DG1 = bytes([0x61, 0x5B, 0x5F, 0x1F, 0x58]) + MRZ


def data_groups(i: int) -> dict[int, bytes]:
    return {1: DG1, 2: bytes([0x75, 0x06, 0x01, 0x04]) + i.to_bytes(4, "big")[:4][-4:]}


@dataclass
class SigningWorld:
    store: Store
    keystore: KeyStore
    clock: FakeClock
    issuer: DirectDsIssuer
    policy: Policy
    csca_label: str
    csca_der: bytes
    agency_id: int
    provider_id: int


def make_csca(keystore: KeyStore, start: datetime, document_type: DocumentType = DocumentType.PASSPORT,
              policy: Policy = DEFAULT_POLICY) -> tuple[str, bytes]:
    label = str(keystore.next_label(document_type.value, "csca"))
    signer = keystore.generate_key(label, "secp256r1", reason="test CSCA")
    limit = policy.limit(document_type, Role.CSCA)
    der = build_csca_certificate(
        signer, DistinguishedName("CSCA Test", organizational_unit=document_type.label),
        validity=Window(start, add_months(start, limit.certificate_validity_months)),
        private_key_usage=Window(start, add_months(start, limit.key_usage_months)),
        document_type=document_type, crl_distribution_points=["http://pkd.test.invalid/csca.crl"], policy=policy,
    )  # fmt: skip
    return label, der


def make_world(url: str, keystore: KeyStore, *, policy: Policy = DEFAULT_POLICY, start: datetime = T0,
               create_schema: bool = True, csca: tuple[str, bytes] | None = None) -> SigningWorld:
    store = Store(url)
    if create_schema:
        store.create_schema()
    clock = FakeClock(start)
    with store.transaction() as tx:
        agency = tx.add_organisation(name="Cục Quản lý xuất nhập cảnh", party_type=PartyType.AGENCY, country="VN",
                                     ministry="MPS", document_types=[DocumentType.PASSPORT], now=start)
        provider = tx.add_organisation(name="Cục Chứng thực số", party_type=PartyType.PROVIDER, country="VN",
                                       ministry="BCY", now=start)
        ids = agency.id, provider.id
    label, der = csca or make_csca(keystore, start, policy=policy)
    issuer = DirectDsIssuer(store, keystore, clock, label, der, policy=policy)
    return SigningWorld(store, keystore, clock, issuer, policy, label, der, *ids)
