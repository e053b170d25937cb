"""A throwaway SoftHSM2 token for the test session.

SOFTHSM2_CONF is read when the PKCS#11 library initialises, once per process, so the
token directory is created and the variable set before any test touches the key store.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from icao_pki.keystore import (
    JsonlAuditSink,
    KeyStore,
    KeyStoreConfig,
    PinSource,
    default_module_path,
    init_softhsm_token,
    write_softhsm_config,
)

TEST_PIN_ENV = "ICAO_PKI_TEST_HSM_PIN"


def require_softhsm() -> None:
    if shutil.which("softhsm2-util") is None or not os.path.exists(default_module_path()):
        pytest.skip("SoftHSM2 is not installed (Debian package softhsm2; `make test` installs it)")


@pytest.fixture(scope="session")
def hsm_env() -> Iterator[dict[str, str]]:
    """Environment for a private SoftHSM2 token directory and one initialised token.

    The directory is not under pytest's basetemp: pytest prunes old basetemps, and a
    concurrent pytest run could delete a token out from under this one.
    """
    require_softhsm()
    data_dir = Path(tempfile.mkdtemp(prefix="icao-pki-softhsm-"))
    conf = write_softhsm_config(data_dir)
    previous = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", TEST_PIN_ENV)}
    pin = secrets.token_hex(8)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[TEST_PIN_ENV] = pin
    label = "icao-pki-test"
    init_softhsm_token(label, pin=pin, so_pin=secrets.token_hex(8), env=dict(os.environ))
    yield {
        "SOFTHSM2_CONF": str(conf),
        TEST_PIN_ENV: pin,
        "ICAO_PKI_HSM_PIN": pin,
        "ICAO_PKI_TOKEN_LABEL": label,
        "data_dir": str(data_dir),
    }
    shutil.rmtree(data_dir, ignore_errors=True)
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def keystore_config(hsm_env: dict[str, str]) -> KeyStoreConfig:
    return KeyStoreConfig(token_label=hsm_env["ICAO_PKI_TOKEN_LABEL"], pin=PinSource(env=TEST_PIN_ENV))


@pytest.fixture(scope="session")
def keystore(keystore_config: KeyStoreConfig, hsm_env: dict[str, str]) -> KeyStore:
    audit = JsonlAuditSink(Path(hsm_env["data_dir"]) / "key-audit.jsonl")
    return KeyStore.open(keystore_config, audit=audit)
