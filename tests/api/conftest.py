from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.orgpki_support import OrgPkiForTests, make_test_org_pki
from tests.api.postgres_support import PgCluster, binaries_missing, pg_cluster
from tests.api.world import World, build_world, clone_world, close_world


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, org_pki: OrgPkiForTests) -> tuple[World, Path]:
    """Every party registered once through the API; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "lifecycle.db"
    world = build_world(f"sqlite:///{path}", org_pki)
    close_world(world)
    return world, path


@pytest.fixture(scope="session")
def pg_template(pg: PgCluster, org_pki: OrgPkiForTests) -> tuple[World, str]:
    url = pg.create_database()
    world = build_world(url, org_pki)
    close_world(world)
    return world, url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "sqlite":
        template, path = request.getfixturevalue("sqlite_template")
        copy = tmp_path / "lifecycle.db"
        shutil.copyfile(path, copy)
        w = clone_world(template, f"sqlite:///{copy}")
    else:
        template, name = request.getfixturevalue("pg_template")
        w = clone_world(template, request.getfixturevalue("pg").create_database(template=name))
    yield w
    close_world(w)


@pytest.fixture
def sqlite_world(tmp_path: Path, sqlite_template: tuple[World, Path]) -> Iterator[World]:
    template, path = sqlite_template
    copy = tmp_path / "lifecycle.db"
    shutil.copyfile(path, copy)
    w = clone_world(template, f"sqlite:///{copy}")
    yield w
    close_world(w)
