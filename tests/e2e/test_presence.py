"""Leaving and staying, end to end: everyone leaves -> pause; someone returns -> play on;
nobody returns within IDLE_TIMEOUT -> the bot leaves voice, keeps the queue, and says so."""

from __future__ import annotations

import dataclasses

from bot.config import Settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import ALICE, GUILD, RICK, VOICE_CHANNEL, ErrorLog, running_bot


def _paused(lavalink: FakeLavalink) -> bool | None:
    player = lavalink.player(GUILD)
    return None if player is None else player.paused


async def test_an_empty_channel_pauses_and_the_bot_leaves_after_the_idle_timeout(
    settings: Settings,
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
) -> None:
    settings = dataclasses.replace(settings, idle_timeout=0.8)
    async with running_bot(settings, discord, lavalink, errors):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await lavalink.wait_for(lambda: _paused(lavalink) is False, what="Rick playing")

        await discord.set_user_voice(GUILD, ALICE, None)
        await lavalink.wait_for(lambda: _paused(lavalink) is True, what="paused for nobody")
        await discord.set_user_voice(GUILD, ALICE, VOICE_CHANNEL)
        await lavalink.wait_for(lambda: _paused(lavalink) is False, what="playing on")

        await discord.set_user_voice(GUILD, ALICE, None)
        notice = await discord.wait_for_message("Everyone left", timeout=5)
        assert f"<#{VOICE_CHANNEL}>" in notice.text
        assert discord.bot_voice_channel(GUILD) is None
        await lavalink.wait_for(lambda: lavalink.player(GUILD) is None, what="player destroyed")

        # The queue was kept: back in voice, /play carries on with Rick first.
        await discord.set_user_voice(GUILD, ALICE, VOICE_CHANNEL)
        reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
        assert "position **1**" in reply.text  # behind Rick, who plays on
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.track is not None
            and p.track.title == RICK.title and not p.paused,
            what="Rick again, unpaused",
        )  # fmt: skip
