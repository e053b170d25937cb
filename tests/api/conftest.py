from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.orgpki_support import OrgPkiForTests, make_test_org_pki
from tests.api.postgres_support import PgCluster, binaries_missing, pg_cluster
from tests.api.world import World, build_world


@pytest.fixture(scope="session")
def org_pki() -> OrgPkiForTests:
    return make_test_org_pki()


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    missing = binaries_missing()
    if missing:
        pytest.skip(f"PostgreSQL flow tests NOT RUN: {missing}")
    with pg_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.db'}"
    return request.getfixturevalue("pg").create_database()


@pytest.fixture
def world(database_url: str, org_pki: OrgPkiForTests) -> Iterator[World]:
    w = build_world(database_url, org_pki)
    yield w
    w.client.close()
    w.store.dispose()


@pytest.fixture
def sqlite_world(tmp_path: Path, org_pki: OrgPkiForTests) -> Iterator[World]:
    w = build_world(f"sqlite:///{tmp_path / 'lifecycle.db'}", org_pki)
    yield w
    w.client.close()
    w.store.dispose()
