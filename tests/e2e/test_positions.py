"""Positions derived from the stored anchor match Lavalink's clock (issue 14), through the
real bot and the fake Lavalink, whose players keep their own clock (speed filters included)
and report it every 0.2 s here."""

from __future__ import annotations

import asyncio

from bot.app import MusicBot
from bot.services.positions import anchored
from bot.storage import PlayerRecord
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import GUILD

CLOSE_MS = 100


def _gap(bot: MusicBot, lavalink: FakeLavalink) -> int:
    """How far the stored anchor's position is from the fake node's clock, now."""
    assert bot.service is not None
    player = lavalink.player(GUILD)
    assert player is not None
    return abs(anchored(bot.service._guilds[GUILD]) - player.position)


async def _stored(bot: MusicBot) -> PlayerRecord:
    assert bot.repository is not None
    (stored,) = [g for g in await bot.repository.load_guilds() if g.player.guild_id == GUILD]
    return stored.player


async def test_the_anchor_follows_lavalink_across_seek_pause_and_speed_and_reports_write_nothing(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for_event(GUILD, "TrackStartEvent")
    await (await discord.invoke("seek", {"time": "1:00"})).reply()
    assert _gap(bot, lavalink) <= CLOSE_MS
    # Playing: ten reports come and go, the anchor keeps up and nothing is written.
    before = await _stored(bot)
    await asyncio.sleep(2.0)
    assert await _stored(bot) == before
    assert _gap(bot, lavalink) <= CLOSE_MS

    await (await discord.invoke("pause")).reply()
    assert _gap(bot, lavalink) <= CLOSE_MS
    await asyncio.sleep(0.5)  # both clocks stand still
    assert _gap(bot, lavalink) <= CLOSE_MS
    await (await discord.invoke("resume")).reply()
    await asyncio.sleep(0.5)
    assert _gap(bot, lavalink) <= CLOSE_MS

    await (await discord.invoke("filter", {"preset": "nightcore"})).reply()
    await asyncio.sleep(1.5)  # faster than the wall clock, on both sides
    assert _gap(bot, lavalink) <= CLOSE_MS
    await (await discord.invoke("filter", {"preset": "off"})).reply()
    await asyncio.sleep(0.5)
    assert _gap(bot, lavalink) <= CLOSE_MS

    # What is stored is what memory holds: a restart derives the same positions.
    assert bot.service is not None
    assert await _stored(bot) == bot.service._guilds[GUILD].player
