"""The event loop's lag metric: a loop kept busy shows, a free one does not."""

from __future__ import annotations

import asyncio
import time

from bot.metrics import Metrics


def _over(metrics: Metrics, seconds: float) -> float:
    """How many probes found the loop later than ``seconds``."""
    registry = metrics.registry
    count = registry.get_sample_value("musicbot_event_loop_lag_seconds_count") or 0.0
    within = registry.get_sample_value(
        "musicbot_event_loop_lag_seconds_bucket", {"le": str(seconds)}
    )
    return count - (within or 0.0)


async def test_a_blocked_loop_shows_as_lag_and_a_free_one_does_not() -> None:
    metrics = Metrics()
    metrics.start_lag_probe(interval=0.02)
    try:
        await asyncio.sleep(0.2)  # free: every probe about on time (a busy machine aside)
        assert _over(metrics, 0.25) == 0
        time.sleep(0.3)  # noqa: ASYNC251 - the point: something blocks the loop
        await asyncio.sleep(0.1)
        assert _over(metrics, 0.25) == 1  # one probe, late by the block
        assert _over(metrics, 1.0) == 0
    finally:
        await metrics.close()
