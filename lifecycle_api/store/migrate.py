"""Run the Alembic migrations programmatically (`alembic upgrade head` without a shell)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: the repository's alembic.ini (migrations/ sits next to it)
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
