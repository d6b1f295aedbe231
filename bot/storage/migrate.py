"""Run Alembic migrations on a live connection, at start-up.

The migration scripts live in the top-level ``migrations`` package so that the ``alembic``
command line works from a checkout too (see ``alembic.ini``). A database already at
:data:`SCHEMA_HEAD` (every start but the first after an upgrade of the bot) is left alone
without importing Alembic at all: it would stay in memory for the process's life (~10 MB).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa

import migrations

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["SCHEMA_HEAD", "MigrationError", "alembic_config", "upgrade"]

SCHEMA_HEAD: Final = "0010"
"""The newest revision in ``migrations/versions`` (a test holds the two together)."""


_LOCK_KEY: Final = 0x6D75736963626F74  # "musicbot": the migration lock's id on PostgreSQL


class MigrationError(Exception):
    """The schema cannot be brought up to date (typically: written by a newer bot)."""


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - only when a migration runs

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def upgrade(connection: sa.Connection) -> None:
    """Bring the schema behind ``connection`` to the newest revision (sync; run via run_sync).

    On PostgreSQL, processes that start together (``SHARD_IDS``, one database) take turns: a
    lock held until the migration's transaction ends makes the second wait, then find the
    schema up to date, instead of creating the same tables at the same time and failing.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if stored_revision(connection) == SCHEMA_HEAD:
        return
    import alembic.util  # noqa: PLC0415 - see the module's docstring
    from alembic import command  # noqa: PLC0415

    config = alembic_config()
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except alembic.util.CommandError as exc:
        raise MigrationError(str(exc)) from None


def stored_revision(connection: sa.Connection) -> str | None:
    """The revision the database says it is at; ``None`` for a new (or pre-Alembic) one."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    return versions[0][0] if len(versions) == 1 else None
