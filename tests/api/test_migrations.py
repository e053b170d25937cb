"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_migration_0007_names_certificates_sharing_a_car_and_chr(tmp_path: Path) -> None:
    """A database holding two CV certificates with one (CAR, CHR) cannot take the unique index:
    the upgrade stops naming them, and goes through once they are resolved."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0006")
    engine = create_engine_for(url)
    row = ("INSERT INTO certificates (certificate_format, role, document_type, status, chr, subject, issuer, "
           "not_before, not_after, der, fingerprint_sha256, created_at) VALUES ('cv', 'dv', 'passport', 'active', "
           "'UTDVVN00001', 'UTDVVN00001', 'VNCVCA00001', '2026-01-01', '2026-04-01', x'00', '{fp}', '2026-01-01')")
    with engine.begin() as conn:
        for fp in ("a" * 64, "b" * 64):
            conn.exec_driver_sql(row.format(fp=fp))
        # the same CHR under another CAR (our DV certified by two CVCAs) is no conflict
        conn.exec_driver_sql(row.format(fp="c" * 64).replace("'VNCVCA00001'", "'UTCVCA00001'"))
    with pytest.raises(RuntimeError, match=r"must be resolved before upgrading: "
                                           r"CAR VNCVCA00001 / CHR UTDVVN00001 \(2 certificates\)$"):
        upgrade(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM certificates WHERE fingerprint_sha256 = :fp", {"fp": "b" * 64})
    engine.dispose()
    upgrade(url)
    assert _diff(url) == []
