"""What the client keeps per guild ends with the guild: nothing grows with guilds ever seen.

A bot in thousands of servers sees guilds come and go all day; a per-guild object left
behind by each (a mailbox, a position sample, a voice record) is memory that only grows.
"""

from __future__ import annotations

import asyncio
import gc

from bot import lavalink
from bot.lavalink import LavalinkClient, NodeConfig
from bot.lavalink.dispatch import Mailbox
from bot.lavalink.guild import GuildPlayer
from peers.fake_lavalink import FakeLavalink
from peers.tracks import encode_track
from tests.lavalink.harness import LONG, Recorder, catalogue, started

PLAYED = 300
"""Guilds played for real through the fake node (each costs three HTTP requests)."""
KICKED = 10_000
"""Guilds that join and are kicked: Discord's events only, the same per-guild records."""


def _left_behind() -> tuple[int, int]:
    gc.collect()
    objects = gc.get_objects()
    players = sum(isinstance(o, GuildPlayer) for o in objects)
    mailboxes = sum(isinstance(o, Mailbox) for o in objects)
    return players, mailboxes


async def test_guilds_played_and_forgotten_leave_nothing_behind() -> None:
    players_before, mailboxes_before = _left_behind()
    await _play_and_forget(range(10_000, 10_000 + PLAYED))
    await _kick_and_forget(range(KICKED))
    # Other tests' clients may be collected meanwhile: never more than before, not equal.
    players_after, mailboxes_after = _left_behind()
    assert players_after <= players_before
    assert mailboxes_after <= mailboxes_before


async def _play_and_forget(guilds: range) -> None:
    node = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.05)
    await node.start()
    client, _discord, events = await started(node)
    try:
        await events.wait(lavalink.SessionReady)
        encoded = encode_track(LONG)

        async def play(guild_id: int) -> None:
            await client.connect(guild_id, 99)
            await client.play(guild_id, encoded)

        await asyncio.gather(*(play(g) for g in guilds))
        await events.wait(lavalink.TrackStartEvent, len(guilds))
        # Every player reported its position: each guild holds a sample and a stall watch.
        await node.wait_for(
            lambda: all(client.position(g) is not None for g in guilds), what="the reports"
        )
        assert client.tracked_guilds >= len(guilds)
        for guild_id in guilds:
            await client.forget(guild_id)
        # Frames the node sent before its players were destroyed may still be in flight.
        await asyncio.sleep(0.2)
        await _delivered()
        assert client.tracked_guilds == 0
    finally:
        await client.close()
        await node.stop()


async def _kick_and_forget(guilds: range) -> None:
    """Join, server update, kick (delivered through the guild's mailbox), forget."""
    kicked = Recorder()
    client = LavalinkClient([NodeConfig("down", "http://127.0.0.1:9", "x")], _NoGateway())
    client.set_listener(kicked)
    for guild_id in guilds:
        client.handle_voice_state(guild_id, f"session-{guild_id}", 77)
        client.handle_voice_server(guild_id, "token", "voice.discord.media:443")
        client.handle_voice_state(guild_id, f"session-{guild_id}", None)
    await kicked.wait(lavalink.VoiceDisconnected, len(guilds), timeout=60)
    assert client.tracked_guilds >= len(guilds)
    for guild_id in guilds:
        await client.forget(guild_id)
    await _delivered()
    assert client.tracked_guilds == 0
    await client.close()


async def _delivered() -> None:
    """Wait until every guild's mailbox has delivered its events (and so is gone)."""
    async with asyncio.timeout(10):
        while mail := [t for t in asyncio.all_tasks() if t.get_name().startswith("lavalink-guild")]:
            await asyncio.wait(mail)


class _NoGateway:
    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
        raise AssertionError("a kicked or forgotten guild sends no op 4")
