"""Node loss and rebuilds, in process: queues are kept and the music comes back."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import GUILD, RICK, TAKE_ON_ME, VOICE_CHANNEL, ErrorLog, running_bot


def playing_title(lavalink: FakeLavalink) -> str | None:
    player = lavalink.player(GUILD)
    return player.track.title if player is not None and player.track is not None else None


async def test_node_lost_leaves_voice_keeps_queue_and_comes_back(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    async with running_bot(settings, discord, lavalink, errors) as app:
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.position > 300
        )
        ops_before = len(discord.voice_ops)

        await lavalink.kill()
        # After the grace period (1 s here) the bot leaves the channel Lavalink can't serve.
        await discord.wait_for_voice_op(GUILD, None, after=ops_before, timeout=10)
        assert discord.bot_voice_channel(GUILD) is None
        await discord.wait_for_message("lost the music server")

        reply = await (await discord.invoke("queue")).reply()
        assert "Never Gonna Give You Up" in reply.text
        assert "interrupted" in reply.text
        assert "Take On Me" in reply.text
        assert "1 track in queue" in reply.text

        # Lavalink comes back (a fresh process: no sessions): the bot rebuilds the player.
        ops_before = len(discord.voice_ops)
        await lavalink.start()
        await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before, timeout=20)
        await lavalink.wait_for(
            lambda: playing_title(lavalink) == RICK.title, timeout=10, what="Rick back on"
        )
        await discord.wait_for_message("I'm back. Playing **Rick Astley")
        player = lavalink.player(GUILD)
        assert player is not None
        # Back where the music stopped, less at most one position report (0.2 s here).
        assert player.position >= 300 - 200
        reply = await (await discord.invoke("queue")).reply()
        assert "interrupted" not in reply.text
        assert "Take On Me" in reply.text
        assert app.lavalink.available


async def test_restart_with_lost_session_rebuilds_from_the_database(
    settings: Settings,
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    tmp_path: Path,
) -> None:
    async with running_bot(settings, discord, lavalink, errors):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.position > 1000
        )

    # The bot is down; Lavalink restarts too, so the session cannot be resumed.
    before = lavalink.player(GUILD)
    assert before is not None
    position_before = before.position
    await lavalink.kill()
    await lavalink.start()

    async with running_bot(settings, discord, lavalink, errors):
        await lavalink.wait_for(
            lambda: playing_title(lavalink) == RICK.title, timeout=15, what="rebuilt player"
        )
        assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
        player = lavalink.player(GUILD)
        assert player is not None
        assert position_before - 500 <= player.position <= position_before + 5000
        reply = await (await discord.invoke("queue")).reply()
        assert TAKE_ON_ME.title in reply.text
        assert "1 track in queue" in reply.text
