"""Alembic environment.

The bot passes its own connection in ``config.attributes["connection"]``. From the command
line (``alembic upgrade head``) the URL comes from ``DATABASE_URL`` or ``alembic.ini``, checked
and completed the way the bot does it (``postgresql://`` means asyncpg).

The scripts must work on SQLite and PostgreSQL alike: batch mode lets SQLite "alter" a table by
copying it, and is plain ``ALTER TABLE`` elsewhere.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import ConfigError, check_database_url
from bot.storage.tables import Base

target_metadata = Base.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them.
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # as the bot does
    engine = create_async_engine(parsed)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set DATABASE_URL to run migrations from the command line")
    try:
        url = check_database_url(url)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    asyncio.run(_run_from_url(url))
