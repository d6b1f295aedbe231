"""The bot's Lavalink client set up for a bench, shared by ``frames.py`` and ``paced.py``.

Set up as a bot uses it: ``LavalinkClient`` with ``set_listener``, every guild joined
(``connect``, voice forwarded by a stand-in for Discord) and playing (``play``), so the
per-guild bookkeeping runs as in the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping

from bench import workload
from bench.node import NodeProcess
from bot.lavalink import EventListener, LavalinkClient, NodeConfig, PlayerStateUpdate

__all__ = ["DiscordStandIn", "musicbot_client", "until"]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class DiscordStandIn:
    """Answers op 4 as Discord does: the bot's voice state, then the voice server."""

    def __init__(self) -> None:
        self.client: LavalinkClient | None = None

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
        client = self.client
        assert client is not None
        loop = asyncio.get_running_loop()
        loop.call_soon(client.handle_voice_state, guild_id, f"voice-{guild_id}", channel_id)
        if channel_id is not None:
            loop.call_soon(
                client.handle_voice_server, guild_id, f"token-{guild_id}", "c-ams.discord.media"
            )


@contextlib.asynccontextmanager
async def musicbot_client(
    server: NodeProcess,
    tracks: Mapping[int, str],
    listener: EventListener,
    on_position: Callable[[PlayerStateUpdate], None] | None = None,
) -> AsyncIterator[str]:
    """``LavalinkClient`` set up as a bot uses it, on ``listener`` (and ``on_position``, as
    the bot takes reports, if given): every guild of ``tracks`` joined (``connect``, voice
    forwarded) and playing its track (``play``). Yields the node's session id."""
    gateway = DiscordStandIn()
    client = LavalinkClient([NodeConfig("bench", server.url, workload.PASSWORD)], gateway)
    gateway.client = client
    client.set_listener(listener)
    if on_position is not None:
        client.on_position(on_position)
    await client.start(workload.BOT_USER_ID)
    try:
        await until(lambda: client.available, "musicbot to connect")
        for index, (guild_id, encoded) in enumerate(tracks.items()):
            await client.connect(guild_id, workload.CHANNEL_BASE + index)
            await client.play(guild_id, encoded)
        session_id = client.session_id("bench")
        assert session_id is not None
        yield session_id
    finally:
        await client.close()
