from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import org_pki, pg  # noqa: F401
from tests.api.world import close_world
from tests.flows.conftest import pki_pg_template, pki_sqlite, pki_sqlite_template  # noqa: F401
from tests.flows.pki import PkiWorld, clone_pki_world


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_pki(request: pytest.FixtureRequest) -> Iterator[PkiWorld]:
    """The PKI world on SQLite and on PostgreSQL, for schedules whose due work is SQL (correlated
    queries, compare-and-set)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("pki_sqlite")
        return
    template, name = request.getfixturevalue("pki_pg_template")
    world = clone_pki_world(template, request.getfixturevalue("pg").create_database(template=name))
    yield world
    close_world(world.world)
