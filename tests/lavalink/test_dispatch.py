"""The dispatcher says which guilds still have events on their way to the listener: the
reconciler leaves those guilds alone, since the node's view may be ahead of the service's."""

from __future__ import annotations

import asyncio
from typing import cast

from bot import lavalink
from bot.lavalink.dispatch import Dispatcher


async def test_a_guild_has_events_pending_until_the_listener_took_them() -> None:
    dispatcher = Dispatcher()
    release, both = asyncio.Event(), asyncio.Event()
    handled: list[object] = []

    async def slow_listener(event: lavalink.Event) -> None:
        await release.wait()
        handled.append(event)
        if len(handled) == 2:
            both.set()

    dispatcher.set_listener(slow_listener)
    first, second = object(), object()
    dispatcher.post(1, cast(lavalink.Event, first))
    dispatcher.post(1, cast(lavalink.Event, second))
    await asyncio.sleep(0)
    assert dispatcher.pending(1)
    assert not dispatcher.pending(2)
    release.set()
    async with asyncio.timeout(5):
        await both.wait()
    for _ in range(5):  # the mailbox is let go once its last delivery returned
        await asyncio.sleep(0)
    assert handled == [first, second]
    assert not dispatcher.pending(1)
    dispatcher.close()
