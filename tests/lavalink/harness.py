"""The Lavalink client tests' harness: a Discord stand-in, an event recorder, the tracks the
fake node serves, and clients started against one node or several.

A small stand-in for the Discord gateway answers op 4 the way Discord does (the bot's own
voice state, then a voice server update), so the client's voice forwarding runs for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from bot import lavalink
from bot.lavalink import LavalinkClient, NodeConfig
from peers.fake_lavalink import Catalogue, FakeLavalink
from peers.tracks import TrackInfo, encode_track

__all__ = [
    "BOT_USER",
    "CHANNEL",
    "GUILD",
    "LONG",
    "PACING",
    "SONG",
    "VOICE_RECHECK",
    "DiscordStandIn",
    "Recorder",
    "catalogue",
    "client_playing",
    "pool",
    "resumable_session",
    "started",
]

GUILD = 1234
CHANNEL = 5678
BOT_USER = 42
SONG = TrackInfo("song0000001", "A Song", "A Band", 2_000, uri="https://www.youtube.com/watch?v=s")
LONG = TrackInfo(
    "long0000001", "Long Song", "A Band", 600_000, uri="https://www.youtube.com/watch?v=l"
)


class DiscordStandIn:
    """Answers op 4 like Discord: own voice state (new session), then server update."""

    def __init__(self, server_first: bool = False) -> None:
        self.client: LavalinkClient | None = None
        self.ops: list[tuple[int, int | None]] = []
        self.server_first = server_first

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
        self.ops.append((guild_id, channel_id))
        client = self.client
        assert client is not None
        loop = asyncio.get_running_loop()
        session = secrets.token_hex(8)
        if channel_id is None:
            loop.call_soon(client.handle_voice_state, guild_id, session, None)
            return
        token = secrets.token_hex(8)
        state = (client.handle_voice_state, guild_id, session, channel_id)
        server = (client.handle_voice_server, guild_id, token, "fake-voice.discord.media:443")
        for call in (server, state) if self.server_first else (state, server):
            loop.call_soon(*call)


class Recorder:
    """The client's listener: keeps every event, wakes waiters on each one."""

    def __init__(self) -> None:
        self.events: list[lavalink.Event] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, event: lavalink.Event) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def of(self, kind: type[lavalink.Event]) -> list[lavalink.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, kind: type[lavalink.Event], count: int = 1, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.of(kind)) >= count)


PACING = lavalink.Pacing(rejoin_delays=(0.0, 0.5, 1.0), update_retries=(0.05, 0.2))
"""The client's back-offs, shortened: these tests check what happens between tries, not how
long they wait (tests/e2e/test_voice.py checks the production re-join back-off)."""
VOICE_RECHECK = 1.0
"""Seconds before re-sending voice after a transient close (3 s in production); still ten
of the fake node's player updates, so a socket that healed by itself is seen as healed."""


def catalogue() -> Catalogue:
    cat = Catalogue()
    cat.add_track(SONG)
    cat.add_track(LONG)
    cat.add_error("https://www.youtube.com/watch?v=gone", "This video is unavailable")
    return cat


async def started(
    node: FakeLavalink,
    *,
    server_first: bool = False,
    grace: float = 0.5,
    password: str = "",
    stall_timeout: float = 20.0,
) -> tuple[LavalinkClient, DiscordStandIn, Recorder]:
    discord = DiscordStandIn(server_first)
    client = LavalinkClient(
        [NodeConfig("main", node.url, password or node.password)],
        discord,
        node_loss_grace=grace,
        reconnect_cap=0.5,
        stall_timeout=stall_timeout,
        voice_recheck=VOICE_RECHECK,
        pacing=PACING,
    )
    discord.client = client
    events = Recorder()
    client.set_listener(events)
    await client.start(BOT_USER)
    return client, discord, events


async def resumable_session(client: LavalinkClient, node: FakeLavalink, events: Recorder) -> str:
    """Wait for the client's first session on ``node`` and for resuming to be on; its id."""
    await events.wait(lavalink.SessionReady)
    session = client.session_id("main")
    assert session is not None
    await node.wait_for(lambda: node.sessions[session].resuming, what="resuming on")
    return session


@contextlib.asynccontextmanager
async def client_playing(
    node: FakeLavalink,
) -> AsyncIterator[tuple[LavalinkClient, DiscordStandIn, Recorder]]:
    """A :func:`started` client, its session ready, joined to ``CHANNEL`` in ``GUILD`` and
    playing ``LONG``; closed on the way out, whatever the test did."""
    client, discord, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        await client.connect(GUILD, CHANNEL)
        await client.play(GUILD, encode_track(LONG))
        yield client, discord, events
    finally:
        await client.close()


async def pool(
    *nodes: FakeLavalink, failover: float = 0.3, grace: float = 5.0
) -> tuple[LavalinkClient, DiscordStandIn, Recorder]:
    discord = DiscordStandIn()
    client = LavalinkClient(
        [NodeConfig(f"node{i}", n.url, n.password) for i, n in enumerate(nodes)],
        discord,
        failover_delay=failover,
        node_loss_grace=grace,
        reconnect_cap=0.5,
        voice_recheck=VOICE_RECHECK,
        pacing=PACING,
    )
    discord.client = client
    events = Recorder()
    client.set_listener(events)
    await client.start(BOT_USER)
    await events.wait(lavalink.SessionReady, count=len(nodes))
    return client, discord, events
