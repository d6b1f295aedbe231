"""Run Alembic migrations on a live connection, at start-up.

The migration scripts live in the top-level ``migrations`` package so that the ``alembic``
command line works from a checkout too (see ``alembic.ini``).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import migrations

__all__ = ["alembic_config", "upgrade"]


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def upgrade(connection: sa.Connection) -> None:
    """Bring the schema behind ``connection`` to the newest revision (sync; run via run_sync)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
