"""Shared fixtures: the PostgreSQL server the storage and end-to-end tests use.

``pg_url`` gives a test an empty database of its own on a server the tests start themselves
(see :mod:`tests.pg_server`). Without PostgreSQL binaries or asyncpg the PostgreSQL runs are
skipped with the reason, unless ``MUSICBOT_REQUIRE_POSTGRES=1`` (CI sets it): then they fail.
Each group's own fixtures live in its folder's ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.pg_server import PostgresServer, PostgresUnavailable, fresh_database, running_server


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


@pytest.fixture
async def pg_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own for this test."""
    async with fresh_database(postgres_server) as url:
        yield url
