"""The service tests' fixtures: the queue service over SQLite with its stand-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services.fakes import Bot


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
