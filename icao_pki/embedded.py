"""The embedded default deployment: everything under one data folder (``./var/``).

``make run`` and the CLI use it when no other configuration is given: a SoftHSM2 token
directory with its own ``softhsm2.conf``, a PIN file readable only by the owner, a SQLite
database and the key-store audit log.  A real deployment points ICAO_PKI_PKCS11_MODULE,
ICAO_PKI_TOKEN_LABEL, ICAO_PKI_HSM_PIN(_FILE) and DATABASE_URL elsewhere instead.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .keystore import (
    PIN_ENV,
    PIN_FILE_ENV,
    JsonlAuditSink,
    KeyStore,
    KeyStoreConfig,
    init_softhsm_token,
    softhsm_token_exists,
    write_softhsm_config,
)

DATA_DIR_ENV = "ICAO_PKI_DATA_DIR"
DEFAULT_TOKEN_LABEL = "icao-pki"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def from_env(cls) -> DataDir:
        return cls(Path(os.environ.get(DATA_DIR_ENV, "var")).resolve())

    @property
    def softhsm_conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def pin_file(self) -> Path:
        return self.root / "hsm-pin"

    @property
    def so_pin_file(self) -> Path:
        return self.root / "hsm-so-pin"

    @property
    def database(self) -> Path:
        return self.root / "icao-pki.db"

    @property
    def database_url(self) -> str:
        return os.environ.get("DATABASE_URL") or f"sqlite:///{self.database}"

    @property
    def key_audit_log(self) -> Path:
        return self.root / "audit" / "keystore.jsonl"

    def uses_embedded_hsm(self) -> bool:
        """True unless a deployment configured its own PKCS#11 module."""
        return not os.environ.get("ICAO_PKI_PKCS11_MODULE")

    def activate(self) -> None:
        """Point SoftHSM2 at this folder's token directory (before the PKCS#11 library loads)."""
        if self.uses_embedded_hsm() and self.softhsm_conf.exists():
            os.environ.setdefault("SOFTHSM2_CONF", str(self.softhsm_conf))

    def keystore_config(self) -> KeyStoreConfig:
        default_pin = self.pin_file if self.uses_embedded_hsm() and self.pin_file.exists() else None
        if os.environ.get(PIN_ENV) or os.environ.get(PIN_FILE_ENV):
            default_pin = None
        return KeyStoreConfig.from_env(default_pin_file=default_pin)

    def open_keystore(self) -> KeyStore:
        self.activate()
        return KeyStore.open(self.keystore_config(), audit=JsonlAuditSink(self.key_audit_log))


def _write_secret(path: Path) -> str:
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_hex(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def init_embedded_token(data_dir: DataDir, token_label: str = DEFAULT_TOKEN_LABEL) -> bool:
    """Create the folder, its SoftHSM2 configuration and token; idempotent.  True if the token is new."""
    data_dir.root.mkdir(parents=True, exist_ok=True)
    conf = write_softhsm_config(data_dir.root)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    env = dict(os.environ)
    if softhsm_token_exists(token_label, env):
        return False
    pin = _write_secret(data_dir.pin_file)
    so_pin = _write_secret(data_dir.so_pin_file)
    return init_softhsm_token(token_label, pin=pin, so_pin=so_pin, env=env)
