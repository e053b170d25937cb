"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lifecycle_api.store import Base, create_engine_for
from lifecycle_api.store.migrate import downgrade, upgrade


def _diff(url: str) -> list:
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_upgrade_head_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert _diff(url) == []
    engine = create_engine_for(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_migrations_detect_a_missing_column(tmp_path: Path) -> None:
    """The comparison can fail: drop a column behind Alembic's back and it is reported."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE requests DROP COLUMN rejection_reason")
    engine.dispose()
    diffs = _diff(url)
    assert any("rejection_reason" in repr(d) for d in diffs)


def test_migrations_downgrade_to_base_removes_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    downgrade(url)
    engine = create_engine_for(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()
