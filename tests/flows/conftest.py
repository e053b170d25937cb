"""PKI worlds on SQLite and PostgreSQL: built once per session (ceremonies included), copied per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import org_pki, pg  # noqa: F401  (session fixtures shared with tests/api)
from tests.api.world import close_world
from tests.flows.pki import PkiWorld, build_pki_world, clone_pki_world


@pytest.fixture(scope="session")
def pki_sqlite_template(tmp_path_factory: pytest.TempPathFactory, org_pki, keystore) -> tuple[PkiWorld, Path]:  # noqa: F811
    path = tmp_path_factory.mktemp("pki-template") / "lifecycle.db"
    pki = build_pki_world(f"sqlite:///{path}", org_pki, keystore)
    close_world(pki.world)
    return pki, path


@pytest.fixture(scope="session")
def pki_pg_template(pg, org_pki, keystore) -> tuple[PkiWorld, str]:  # noqa: F811
    url = pg.create_database()
    pki = build_pki_world(url, org_pki, keystore)
    close_world(pki.world)
    return pki, url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def pki(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PkiWorld]:
    if request.param == "sqlite":
        template, path = request.getfixturevalue("pki_sqlite_template")
        copy = tmp_path / "lifecycle.db"
        shutil.copyfile(path, copy)
        w = clone_pki_world(template, f"sqlite:///{copy}")
    else:
        template, name = request.getfixturevalue("pki_pg_template")
        w = clone_pki_world(template, request.getfixturevalue("pg").create_database(template=name))
    yield w
    close_world(w.world)


@pytest.fixture
def pki_sqlite(tmp_path: Path, pki_sqlite_template) -> Iterator[PkiWorld]:
    template, path = pki_sqlite_template
    copy = tmp_path / "lifecycle.db"
    shutil.copyfile(path, copy)
    w = clone_pki_world(template, f"sqlite:///{copy}")
    yield w
    close_world(w.world)
