"""/pause, /resume, /volume, /loop and /filter end to end, and back after a rebuild."""

from __future__ import annotations

import pytest

from bot.app import MusicBot
from bot.config import Settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink, Player
from tests.e2e.conftest import GUILD, RICK, SHORT_SONG, TAKE_ON_ME, ErrorLog, running_bot


def live(lavalink: FakeLavalink) -> Player:
    player = lavalink.player(GUILD)
    assert player is not None
    return player


def title(lavalink: FakeLavalink) -> str | None:
    player = lavalink.player(GUILD)
    return player.track.title if player is not None and player.track is not None else None


async def test_pause_resume_and_volume_reach_the_player(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    reply = await (await discord.invoke("pause")).reply()
    assert reply.ephemeral
    assert "Nothing is playing" in reply.text

    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await lavalink.wait_for(lambda: live(lavalink).position > 200, what="Rick playing")

    reply = await (await discord.invoke("pause")).reply()
    assert "Paused" in reply.text
    assert live(lavalink).paused
    frozen = live(lavalink).position
    reply = await (await discord.invoke("pause")).reply()
    assert reply.ephemeral
    assert "already paused" in reply.text

    reply = await (await discord.invoke("volume", {"level": 40})).reply()
    assert "40%" in reply.text
    assert live(lavalink).volume == 40
    # Discord keeps the option within 0..200; a value past it still gets a polite answer.
    reply = await (await discord.invoke("volume", {"level": 900})).reply()
    assert reply.ephemeral
    assert "from 0 to 200" in reply.text
    assert live(lavalink).volume == 40

    reply = await (await discord.invoke("queue")).reply()
    assert "(paused)" in reply.text
    assert "volume 40%" in reply.text
    assert live(lavalink).position == frozen

    reply = await (await discord.invoke("resume")).reply()
    assert "Resumed" in reply.text
    assert not live(lavalink).paused
    await lavalink.wait_for(lambda: live(lavalink).position > frozen + 200, what="clock running")


async def test_loop_song_repeats_until_skipped_and_loop_queue_rotates(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    # The node's clock runs four times faster: the songs end by themselves in a quarter of the
    # time, with every event a real node sends, in the same order.
    lavalink.time_scale = 4.0
    await (await discord.invoke("play", {"query": "short song"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    reply = await (await discord.invoke("loop", {"mode": "track"})).reply()
    assert "Looping this song" in reply.text

    # The 3 s song (0.75 s here) ends by itself twice and starts again each time.
    ends = len(lavalink.events(GUILD, "TrackEndEvent"))
    await lavalink.wait_for(
        lambda: len(lavalink.events(GUILD, "TrackEndEvent")) >= ends + 2,
        timeout=12,
        what="two natural ends",
    )
    await lavalink.wait_for(lambda: title(lavalink) == SHORT_SONG.title, what="Short Song again")
    reply = await (await discord.invoke("queue")).reply()
    assert "loop: song" in reply.text
    assert "1 track in queue" in reply.text

    # Loop the whole queue: the song that ends goes to the back instead of away.
    await (await discord.invoke("loop", {"mode": "queue"})).reply()
    await lavalink.wait_for(
        lambda: title(lavalink) == TAKE_ON_ME.title, timeout=8, what="Take On Me next"
    )
    reply = await (await discord.invoke("queue")).reply()
    assert "Short Song" in reply.text
    assert "1 track in queue" in reply.text
    assert "loop: queue" in reply.text

    await (await discord.invoke("loop", {"mode": "off"})).reply()
    reply = await (await discord.invoke("skip")).reply()
    assert "Short Song" in reply.text
    await lavalink.wait_for(lambda: title(lavalink) == SHORT_SONG.title, what="Short Song")
    await discord.wait_for_message("The queue is finished", timeout=8)


@pytest.mark.parametrize("paused", [True, False])
async def test_settings_come_back_when_the_player_is_rebuilt_from_the_database(
    settings: Settings,
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    paused: bool,
) -> None:
    async with running_bot(settings, discord, lavalink, errors):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(lambda: live(lavalink).position > 1000, what="Rick playing")
        await (await discord.invoke("volume", {"level": 55})).reply()
        reply = await (await discord.invoke("filter", {"preset": "nightcore"})).reply()
        assert "nightcore" in reply.text
        assert live(lavalink).filters["timescale"]["pitch"] == 1.25
        await (await discord.invoke("loop", {"mode": "queue"})).reply()
        if paused:
            await (await discord.invoke("pause")).reply()
        position_before = live(lavalink).position

    # Bot and Lavalink restart; the session is gone, so the player is rebuilt from storage.
    await lavalink.kill()
    await lavalink.start()

    async with running_bot(settings, discord, lavalink, errors):
        await lavalink.wait_for(
            lambda: title(lavalink) == RICK.title, timeout=15, what="rebuilt player"
        )
        player = live(lavalink)
        assert player.paused is paused
        assert player.volume == 55
        assert player.filters["timescale"] == {"speed": 1.1, "pitch": 1.25, "rate": 1.0}
        if paused:
            assert position_before - 300 <= player.position <= position_before + 300
        else:
            assert player.position >= position_before - 300
        reply = await (await discord.invoke("queue")).reply()
        assert "loop: queue" in reply.text
        assert "filter: nightcore" in reply.text
        assert "volume 55%" in reply.text
        assert ("(paused)" in reply.text) is paused
