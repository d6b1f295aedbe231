"""The op 4 limiter: never more than ``limit`` sends in any window, first come first served."""

from __future__ import annotations

import asyncio
import time

import hikari
import pytest

from bot.lavalink.errors import VoiceConnectError
from bot.lavalink.hikari_glue import HikariVoiceGateway, SlidingWindowLimiter


async def test_every_window_holds_at_most_the_limit_in_arrival_order() -> None:
    limiter = SlidingWindowLimiter(3, 0.3)
    sent: list[tuple[int, float]] = []

    async def send(n: int) -> None:
        async with limiter.slot():
            sent.append((n, time.monotonic()))

    started = time.monotonic()
    await asyncio.gather(*(send(n) for n in range(8)))
    assert [n for n, _ in sent] == list(range(8))
    times = [t for _, t in sent]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 0.3) <= 3
    assert times[2] - started < 0.1  # the first three go at once: no needless waiting
    assert times[3] - times[0] >= 0.3
    assert times[6] - times[3] >= 0.3


async def test_a_slot_counts_from_when_its_send_finished() -> None:
    limiter = SlidingWindowLimiter(1, 0.2)
    async with limiter.slot():
        await asyncio.sleep(0.1)  # queued behind something else, e.g. hikari's own limiter
        finished = time.monotonic()
    async with limiter.slot():
        assert time.monotonic() - finished >= 0.2 - 0.01


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="limit"):
        SlidingWindowLimiter(0, 60.0)
    with pytest.raises(ValueError, match="period"):
        SlidingWindowLimiter(10, 0.0)


class _Shard:
    def __init__(self) -> None:
        self.is_alive = True
        self.is_connected = False


class _Bot:
    """The parts of hikari's GatewayBot the op 4 sender uses; one shard (resuming) unless
    told otherwise."""

    def __init__(self, shard_count: int = 1) -> None:
        self.shard_count = shard_count
        self.shards = {n: _Shard() for n in range(shard_count)}
        self.sent: list[tuple[int, int | None, float]] = []

    async def update_voice_state(
        self, guild_id: int, channel_id: int | None, *, self_mute: bool, self_deaf: bool
    ) -> None:
        shard = (guild_id >> 22) % self.shard_count
        if not self.shards[shard].is_connected:
            raise hikari.ComponentStateConflictError(f"shard {shard} is not connected")
        self.sent.append((guild_id, channel_id, time.monotonic()))


def _on_shard(shard: int, n: int, count: int = 2) -> int:
    """The ``n``-th guild id on ``shard`` of ``count``."""
    return ((n * count + shard) << 22) + 12345


async def test_each_shard_has_its_own_op4_budget() -> None:
    # Discord counts gateway commands per connection: a shard whose budget is spent holds
    # back its own guilds' joins, not another shard's.
    bot = _Bot(shard_count=2)
    for shard in bot.shards.values():
        shard.is_connected = True
    gateway = HikariVoiceGateway(bot, per_minute=2, period=0.5)  # type: ignore[arg-type]
    started = time.monotonic()
    first = [_on_shard(0, n) for n in range(3)]
    second = [_on_shard(1, n) for n in range(2)]
    await asyncio.gather(*(gateway.update_voice_state(g, 7) for g in first + second))
    at = {guild_id: t - started for guild_id, _, t in bot.sent}
    assert all(at[g] < 0.25 for g in second + first[:2])  # two each, at once
    assert at[first[2]] >= 0.5  # the third on shard 0 waited for its own window


async def test_an_op4_due_while_the_shard_resumes_waits_for_it_instead_of_being_lost() -> None:
    bot = _Bot()
    gateway = HikariVoiceGateway(bot)  # type: ignore[arg-type]
    leaving = asyncio.ensure_future(gateway.update_voice_state(42, None))
    await asyncio.sleep(0.2)  # the shard reconnects (a RESUME after a 4008 close)
    assert bot.sent == []
    resumed = time.monotonic()
    bot.shards[0].is_connected = True
    await asyncio.wait_for(leaving, 2)
    ((guild_id, channel_id, at),) = bot.sent
    assert (guild_id, channel_id) == (42, None)
    assert at >= resumed


async def test_an_op4_on_a_shard_that_is_shutting_down_fails_as_a_voice_error() -> None:
    bot = _Bot()
    bot.shards[0].is_alive = False  # stopping: nothing to wait for
    gateway = HikariVoiceGateway(bot)  # type: ignore[arg-type]
    with pytest.raises(VoiceConnectError, match="not connected"):
        await asyncio.wait_for(gateway.update_voice_state(42, None), 2)
    assert bot.sent == []
