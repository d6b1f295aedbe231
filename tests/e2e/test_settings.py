"""/settings end to end: the real bot, the fake Discord and the fake Lavalink.

Shown and changed by a moderator (Manage Server), refused by Discord to anyone else, kept over
a restart; and each setting doing its work: the default volume, where notices go (or none),
24/7 and the idle timeout, the queue limits in /play, /play next and the fair queue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.app import MusicBot
from bot.config import Settings
from peers.fake_discord import MODERATOR_ROLE, FakeDiscord, default_guild
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import (
    ALICE,
    GUILD,
    PLAYLIST,
    PLAYLIST_URL,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    ErrorLog,
    controller_messages,
    holds,
    running_bot,
    wait_for_controller,
)

MUSIC_CHANNEL = 444444444444444449
"""A second text channel, for announcements."""
BOB = 555555555555555559
"""A member without Manage Server, in the voice channel too."""
HITS = [info.title for info in PLAYLIST]


@pytest.fixture
async def discord(errors: ErrorLog) -> AsyncIterator[FakeDiscord]:
    guild = default_guild()
    guild.text_channel_ids.append(MUSIC_CHANNEL)
    async with FakeDiscord(guilds=[guild]) as fake:
        yield fake
        assert not fake.unhandled, f"the bot called REST routes the fake lacks: {fake.unhandled}"


async def _say(discord: FakeDiscord, command: str, user: int = ALICE, **options: object) -> str:
    reply = await (await discord.invoke(command, options or None, user_id=user)).reply()
    return reply.text


async def _bob_joins(discord: FakeDiscord) -> None:
    await discord.add_member(GUILD, BOB, "bob")
    await discord.set_user_voice(GUILD, BOB, VOICE_CHANNEL)


def _upcoming(bot: MusicBot) -> list[tuple[str, int]]:
    assert bot.service is not None
    return [(e.title, e.requester_id) for e in bot.service.queue(GUILD, 100).upcoming]


def _live(lavalink: FakeLavalink) -> tuple[str | None, int | None]:
    player = lavalink.player(GUILD)
    if player is None:
        return None, None
    return (player.track.title if player.track else None), player.volume


async def test_settings_are_shown_changed_refused_and_kept_over_a_restart(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    async with running_bot(settings, discord, lavalink, errors):
        reply = await (await discord.invoke("settings show")).reply()
        assert reply.ephemeral
        fields = {f["name"]: f["value"] for f in reply.embeds[0]["fields"]}
        assert fields["DJ role"].startswith("none")
        assert fields["Default volume"].startswith("100%")
        assert fields["Announcements"] == "where the music was asked for"
        assert fields["Queue limit"] == "10000 songs"
        assert fields["Fair queue"].startswith("off")
        assert len(fields) == 10

        assert await _say(discord, "settings dj set", role=MODERATOR_ROLE) == (
            f"**DJ role**: <@&{MODERATOR_ROLE}> (and members with Manage Server)."
        )
        text = await _say(discord, "settings announce channel", channel=MUSIC_CHANNEL)
        assert text == f"**Announcements**: in <#{MUSIC_CHANNEL}>."
        assert await _say(discord, "settings track-limit", length="4:30") == (
            "**Song length limit**: 4:30 (live streams: any)."
        )
        text = await _say(discord, "settings track-limit", length="5 minutes")
        assert text.startswith("I can't read `5 minutes` as a length.")
        assert await _say(discord, "settings idle-timeout", time="0") == (
            "**Idle timeout**: none: I leave as soon as I'm alone or the queue has ended."
        )
        assert (await _say(discord, "settings 24-7", switch="on")).startswith("**24/7**: on")
        await _say(discord, "settings user-share", percent=20)
        await _say(discord, "settings vote-skip", percent=66)
        await _say(discord, "settings fair-queue", switch="on")
        await _say(discord, "settings queue-limit", length=50)
        await _say(discord, "settings volume", level=35)

        # Discord shows /settings to nobody without Manage Server, and takes it from nobody.
        await _bob_joins(discord)
        with pytest.raises(AssertionError, match="may not use /settings"):
            await discord.invoke("settings show", user_id=BOB)

    async with running_bot(settings, discord, lavalink, errors):
        text = await _say(discord, "settings show")
        for shown in (
            f"<@&{MODERATOR_ROLE}>", f"in <#{MUSIC_CHANNEL}>", "4:30 (live streams: any)",
            "none: 24/7 is on", "20% of the queue (10 songs)", "more than 66% of the listeners",
            "on: songs are taken in turn", "50 songs", "35% (each new queue starts at it)",
        ):  # fmt: skip
            assert shown in text, shown


async def test_volume_announcements_and_limits_apply_to_the_music(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await _say(discord, "settings volume", level=30)
    await _say(discord, "settings track-limit", length="3:40")
    await _say(discord, "settings announce channel", channel=MUSIC_CHANNEL)

    text = await _say(discord, "play", query="short song")
    assert text.startswith("Now playing")
    await lavalink.wait_for(lambda: _live(lavalink) == (SHORT_SONG.title, 30), what="at 30%")
    assert await _say(discord, "volume", level=80) == "Volume set to **80%**."
    await lavalink.wait_for(lambda: _live(lavalink)[1] == 80, what="/volume: the current one")
    # Rick (3:32) fits; Take On Me (3:45) does not.
    assert "position **1**" in await _say(discord, "play", query="never gonna give you up")
    text = await _say(discord, "play", query="take on me")
    assert text == "That song is 3:45 long: this server allows songs of up to 3:40."
    # The short song ends: the controller, in the announce channel, shows the next one.
    message_id = await wait_for_controller(discord, RICK.title)
    assert int(str(discord.channel_messages[message_id]["channel_id"])) == MUSIC_CHANNEL

    await _say(discord, "settings announce off")
    await discord.wait_for(lambda: message_id in discord.deleted_messages, what="controller gone")
    await _say(discord, "settings track-limit", length="off")
    await _say(discord, "settings queue-limit", length=3)
    text = await _say(discord, "play", query=PLAYLIST_URL)
    assert text.startswith("Queued **3** tracks from")
    assert "2 songs were left out: the queue is full (this server allows 3 songs)." in text
    # Announcements off: the short song ends by itself and the next one starts, untold.
    await _say(discord, "settings queue-limit", length=10)
    await _say(discord, "play", query="short song", next=True)
    text = await _say(discord, "skip")
    assert text.startswith(f"Skipped **{RICK.title}**")  # command replies are unaffected
    await lavalink.wait_for(
        lambda: _live(lavalink)[0] == HITS[0], timeout=10, what="the first hit, after the song"
    )
    await holds(
        lambda: not any(HITS[0] in m.text for m in discord.messages), 1.0, "announced while off"
    )
    assert controller_messages(discord) == []
    assert len(discord.messages) == 1  # the controller, posted once while announcements were on


async def test_play_next_and_the_fair_queue(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await _bob_joins(discord)
    await _say(discord, "play", user=BOB, query="never gonna give you up")
    await lavalink.wait_for(lambda: _live(lavalink)[0] == RICK.title, what="Rick playing")
    await _say(discord, "play", user=BOB, query="take on me")
    await _say(discord, "settings fair-queue", switch="on")
    text = await _say(discord, "play", query=PLAYLIST_URL)
    assert text.startswith("Queued **5** tracks")
    # Bob's Take On Me stays first; Alice's hits take turns after it.
    assert _upcoming(bot) == [(TAKE_ON_ME.title, BOB)] + [(h, ALICE) for h in HITS]
    await _say(discord, "play", user=BOB, query="short song")
    # Bob's second: after every member's second (Alice's came first), before her third.
    assert _upcoming(bot)[:5] == [
        (TAKE_ON_ME.title, BOB), (HITS[0], ALICE), (HITS[1], ALICE), (SHORT_SONG.title, BOB),
        (HITS[2], ALICE),
    ]  # fmt: skip
    text = await _say(discord, "play", query="never gonna give you up", next=True)
    assert text.endswith("to the queue at position **1**.")
    assert _upcoming(bot)[0] == (RICK.title, ALICE)
    await _say(discord, "skip")
    await lavalink.wait_for(lambda: _live(lavalink)[0] == RICK.title, what="Rick, next")
    assert bot.repository is not None
    stored = {g.player.guild_id: g for g in await bot.repository.load_guilds()}[GUILD]
    current = stored.player.current_entry_id
    assert [e.title for e in stored.entries if e.id != current] == [t for t, _ in _upcoming(bot)]


async def test_24_7_stays_and_an_idle_timeout_of_zero_leaves_at_once(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> None:
    settings = dataclasses.replace(settings, idle_timeout=0.5)
    async with running_bot(settings, discord, lavalink, errors):
        await _say(discord, "settings 24-7", switch="on")
        await _say(discord, "play", query="never gonna give you up")
        await lavalink.wait_for(lambda: _live(lavalink)[0] == RICK.title, what="Rick playing")
        await discord.set_user_voice(GUILD, ALICE, None)
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.paused, what="paused"
        )
        # The bot's own timeout (0.5 s) passes three times over: 24/7 stays.
        await holds(lambda: discord.bot_voice_channel(GUILD) == VOICE_CHANNEL, 1.5, "24/7 left")
        await discord.set_user_voice(GUILD, ALICE, VOICE_CHANNEL)
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and not p.paused, what="plays on"
        )
        await _say(discord, "settings 24-7", switch="off")
        await _say(discord, "settings idle-timeout", time="0")
        await discord.set_user_voice(GUILD, ALICE, None)
        notice = await discord.wait_for_message("Everyone left", timeout=3)
        assert notice.channel_id == TEXT_CHANNEL
        assert discord.bot_voice_channel(GUILD) is None
