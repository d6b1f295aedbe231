"""The Lavalink client tests' fixtures: a fake Lavalink node of their own per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from peers.fake_lavalink import FakeLavalink
from tests.lavalink.harness import catalogue


@pytest.fixture
async def node() -> AsyncIterator[FakeLavalink]:
    fake = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.1)
    await fake.start()
    yield fake
    await fake.stop()
