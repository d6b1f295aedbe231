"""Moving a test database between schema revisions, and reading what it holds (the migration
tests of every revision use these)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from bot.storage.migrate import alembic_config


def migrate(connection: sa.Connection, direction: str, revision: str) -> None:
    """``alembic upgrade|downgrade revision`` on an open connection (``run_sync``)."""
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, direction)(config, revision)


def tables(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())
