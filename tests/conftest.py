"""Shared fixtures: the storage backends every storage test runs on.

``db_url`` gives each test an empty database, once on SQLite (a file in the test's temporary
folder) and once on PostgreSQL (a fresh database on a server the tests start themselves, see
:mod:`tests.pg_server`). Without PostgreSQL binaries or asyncpg the PostgreSQL runs are
skipped with the reason, unless ``MUSICBOT_REQUIRE_POSTGRES=1`` (CI sets it): then they fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.pg_server import PostgresServer, PostgresUnavailable, running_server
from tests.service_fakes import Bot

BACKENDS = ("sqlite", "postgres")


def _unavailable(reason: str) -> None:
    if os.environ.get("MUSICBOT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"MUSICBOT_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started on first use."""
    if importlib.util.find_spec("asyncpg") is None:
        _unavailable("the asyncpg driver is not installed (pip install -e '.[test]')")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_server())
        except PostgresUnavailable as exc:
            _unavailable(f"no PostgreSQL server could be started: {exc}")
        yield server


@contextlib.asynccontextmanager
async def fresh_database(server: PostgresServer) -> AsyncIterator[str]:
    """A new empty database on ``server`` (about 0.1 s), dropped afterwards."""
    import asyncpg  # noqa: PLC0415 - only when PostgreSQL is there

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(**server.connect_kwargs())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.url(name)
    finally:
        admin = await asyncpg.connect(**server.connect_kwargs())
        try:
            # FORCE: a test that failed half-way may have left a connection open.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own for this test."""
    async with fresh_database(postgres_server) as url:
        yield url


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


# --- the queue service over SQLite (e2e tests have their own ``bot``) -----------------------


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite file for one run of the queue service; a test may start a second run on it."""
    return f"sqlite+aiosqlite:///{tmp_path}/bot.db"


@pytest.fixture
async def bot(url: str) -> AsyncIterator[Bot]:
    """The queue service with its Lavalink and Discord stand-ins, on :func:`url`."""
    app = await Bot.start(url)
    yield app
    await app.repo.close()
