"""A throwaway signing environment: a SoftHSM2 token and a SQLite database in a temp folder,
a CSCA (key in the token, certificate and key rows in the store) and a `DirectDsIssuer`.

For the simulation (`icao-pki simulate`), the benchmark and the exactness tests — never for
a deployment.  SoftHSM2 reads SOFTHSM2_CONF once per process, so `open_sandbox` must run
before anything else in the process touches PKCS#11.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event

from icao_pki.certificate import build_csca_certificate, parse_certificate
from icao_pki.clock import Clock
from icao_pki.keystore import KeyStore, KeyStoreConfig, PinSource, init_softhsm_token, write_softhsm_config
from icao_pki.names import DistinguishedName
from icao_pki.policy import DEFAULT_POLICY, CertificateFormat, DocumentType, Policy, Role, Window, add_months

from ..store import KeyState, PartyType, PublishedKind, Store
from .successor import DirectDsIssuer

SANDBOX_PIN_ENV = "ICAO_PKI_SANDBOX_PIN"
CRL_URL = "http://pkd.sandbox.invalid/csca.crl"


def open_sandbox_keystore(folder: Path, clock: Clock | None = None) -> KeyStore:
    """A fresh SoftHSM2 token in `folder` (or the one already there); sets SOFTHSM2_CONF."""
    conf = write_softhsm_config(folder)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin_file = folder / "pin"
    if not pin_file.exists():
        pin_file.write_text(secrets.token_hex(8))
        pin_file.chmod(0o600)
    os.environ[SANDBOX_PIN_ENV] = pin_file.read_text()
    init_softhsm_token("icao-pki-sandbox", pin=pin_file.read_text(), so_pin=secrets.token_hex(8), env=dict(os.environ))
    return KeyStore.open(KeyStoreConfig(token_label="icao-pki-sandbox", pin=PinSource(env=SANDBOX_PIN_ENV)),
                         clock=clock)


@dataclass
class Sandbox:
    folder: Path
    store: Store
    keystore: KeyStore
    csca_label: str
    csca_der: bytes
    csca_certificate_id: int
    issuer: DirectDsIssuer
    agency_id: int
    provider_id: int

    def close(self, remove: bool = True) -> None:
        self.store.dispose()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def register_csca(store: Store, keystore: KeyStore, start: datetime, document_type: DocumentType,
                  policy: Policy = DEFAULT_POLICY, algorithm: str = "secp256r1") -> tuple[str, bytes, int]:
    """A CSCA key in the HSM, its self-signed certificate, and both recorded (key ACTIVE)."""
    label = str(keystore.next_label(document_type.value, "csca"))
    signer = keystore.generate_key(label, algorithm, reason="sandbox CSCA")
    limit = policy.limit(document_type, Role.CSCA)
    usage = Window(start, add_months(start, limit.key_usage_months))
    der = build_csca_certificate(
        signer, DistinguishedName("CSCA Sandbox", organizational_unit=document_type.label),
        validity=Window(start, add_months(start, limit.certificate_validity_months)), private_key_usage=usage,
        document_type=document_type, crl_distribution_points=[CRL_URL], policy=policy,
    )  # fmt: skip
    cert = parse_certificate(der)
    fingerprint = hashlib.sha256(der).hexdigest()
    with store.transaction() as tx:
        key = tx.add_key(hsm_label=label, role=Role.CSCA, document_type=document_type, algorithm=algorithm, now=start,
                         usage_not_before=usage.start, usage_not_after=usage.end, state=KeyState.ACTIVE)
        row = tx.add_certificate(
            key_id=key.id, certificate_format=CertificateFormat.X509, role=Role.CSCA, document_type=document_type,
            serial=f"{cert.serial_number:x}", subject=cert.subject_str, issuer=cert.issuer_str,
            not_before=cert.not_before, not_after=cert.not_after, der=der, fingerprint_sha256=fingerprint,
            created_at=start,
        )  # fmt: skip
        tx.add_published(kind=PublishedKind.CSCA, name=cert.subject_str, der=der, sha256=fingerprint, now=start,
                         document_type=document_type, certificate_id=row.id)
        tx.append_audit(at=start, action="csca.registered", entity_type="certificate", entity_id=row.id,
                        details={"label": label})
        return label, der, row.id


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def open_sandbox(clock: Clock, *, folder: Path | None = None, database_url: str | None = None,
                 policy: Policy = DEFAULT_POLICY, document_type: DocumentType = DocumentType.PASSPORT,
                 keystore: KeyStore | None = None) -> Sandbox:
    folder = folder or Path(tempfile.mkdtemp(prefix="icao-pki-sandbox-"))
    keystore = keystore or open_sandbox_keystore(folder, clock)
    store = Store(database_url or f"sqlite:///{folder / 'sandbox.db'}")
    if store.engine.dialect.name == "sqlite":  # throwaway: durability is not wanted, speed is
        event.listen(store.engine, "connect", _fast_sqlite)
    store.create_schema()
    now = clock.now().replace(microsecond=0)
    with store.transaction() as tx:
        agency = tx.add_organisation(name="Agency", party_type=PartyType.AGENCY, country="VN", ministry="MPS",
                                     document_types=[document_type], now=now).id
        provider = tx.add_organisation(name="Provider", party_type=PartyType.PROVIDER, country="VN",
                                       ministry="BCY", document_types=list(DocumentType), now=now).id
    label, der, cert_id = register_csca(store, keystore, now, document_type, policy)
    issuer = DirectDsIssuer(store, keystore, clock, label, der, policy=policy, crl_distribution_point=CRL_URL,
                             csca_certificate_id=cert_id)
    return Sandbox(folder, store, keystore, label, der, cert_id, issuer, agency, provider)
