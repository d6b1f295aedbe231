"""The op 4 limiter: never more than ``limit`` sends in any window, first come first served."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.lavalink.hikari_glue import SlidingWindowLimiter


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
