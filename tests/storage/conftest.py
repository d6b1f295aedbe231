"""The storage tests' fixtures: every test taking ``db_url`` runs on each backend.

``db_url`` gives each test an empty database, once on SQLite (a file in the test's temporary
folder) and once on PostgreSQL (a fresh database on the server of the root ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.pg_server import PostgresServer, fresh_database

BACKENDS = ("sqlite", "postgres")


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Where this test's SQLite database goes (the folder does not exist yet)."""
    return tmp_path / "nested" / "bot.db"


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, sqlite_path: Path) -> AsyncIterator[str]:
    """An empty database URL, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{sqlite_path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as url:
        yield url
