"""Alembic environment for the lifecycle system.

The database URL is, in order: the `sqlalchemy.url` option set by the caller
(`lifecycle_api.store.migrate`), the DATABASE_URL environment variable, the default
SQLite file.  Migrations are written by hand and checked against the models by
tests/api/test_migrations.py.
"""

from __future__ import annotations

from alembic import context

from lifecycle_api.settings import database_url_from_environment
from lifecycle_api.store.database import create_engine_for
from lifecycle_api.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or database_url_from_environment()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine_for(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
