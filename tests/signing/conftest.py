from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icao_pki.keystore import KeyStore
from tests.signing.support import SigningWorld, make_world


@pytest.fixture
def sworld(tmp_path: Path, keystore: KeyStore) -> Iterator[SigningWorld]:
    world = make_world(f"sqlite:///{tmp_path / 'signing.db'}", keystore)
    yield world
    world.store.dispose()


# the lifecycle API's parties (tests/api/world.py), for the HTTP routes
from tests.api.conftest import org_pki, pg, sqlite_template, sqlite_world  # noqa: E402, F401
from tests.flows.conftest import pki_sqlite, pki_sqlite_template  # noqa: E402, F401
