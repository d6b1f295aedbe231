"""Never silent: every guild that was playing plays again, and every reply is true.

The real bot against both fakes, each misbehaving as the real service can: Discord invalidates
the gateway session (op 9) and drops the bot from voice, asks it to reconnect (op 7), cuts the
socket (1006), fails the command sync; Lavalink dies, answers 500, hangs past the client's
time-out, drops ``userData`` (as NodeLink does), or loses a player behind the bot's back.
Each test prints how long the bot took to heal, for the issue's figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.app import MusicBot
from bot.config import load_settings
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.voice import discord_voice_check
from tests.e2e.conftest import (
    GUILD,
    GUILDS,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    VOICE_CHANNEL,
    ErrorLog,
    FakeGuild,
    bot_environment,
    catalogue,
    discord_guild,
    holds,
    playing,
    running_bot,
    wait_for_controller,
)

HEAL_WITHIN = 5.0
"""Seconds from the bot being able to act again to every guild playing again."""
POSITION_SLACK = 1000
"""How far (ms) from where the music stopped it may come back."""


async def _play(discord: FakeDiscord, guild: FakeGuild, query: str) -> str:
    interaction = await discord.invoke(
        "play", {"query": query}, guild_id=guild.id, user_id=guild.user, channel_id=guild.text
    )
    return (await interaction.reply()).text


async def _play_everywhere(discord: FakeDiscord, lavalink: FakeLavalink) -> None:
    for guild in GUILDS:
        assert "Now playing" in await _play(discord, guild, "never gonna give you up")
        assert "position" in await _play(discord, guild, "take on me")
    await lavalink.wait_for(
        lambda: all(
            playing(p := lavalink.player(g.id), RICK.title) and p.position > 1000 for g in GUILDS
        ),
        what="Rick playing a while in every guild",
    )


def _back(discord: FakeDiscord, lavalink: FakeLavalink, guild: FakeGuild, title: str) -> bool:
    """Heard again: the bot is in the guild's channel and Lavalink plays ``title`` there over
    the voice session Discord gave the bot last."""
    player = lavalink.player(guild.id)
    return (
        discord.bot_voice_channel(guild.id) == guild.voice
        and playing(player, title)
        and player.voice is not None
        and player.voice["channelId"] == str(guild.voice)
        and player.voice["sessionId"] == discord.bot_voice_session(guild.id)
    )


async def _wait_all_back(
    discord: FakeDiscord, lavalink: FakeLavalink, since: float, timeout: float = 15.0
) -> dict[int, tuple[float, int]]:
    """Each guild's (seconds after ``since``, a loop time, position) when it played Rick again."""
    loop = asyncio.get_running_loop()
    back: dict[int, tuple[float, int]] = {}
    deadline = loop.time() + timeout
    while len(back) < len(GUILDS):
        for guild in GUILDS:
            if guild.id not in back and _back(discord, lavalink, guild, RICK.title):
                player = lavalink.player(guild.id)
                assert player is not None
                back[guild.id] = (loop.time() - since, player.position)
        if loop.time() > deadline:
            missing = [g.id for g in GUILDS if g.id not in back]
            raise AssertionError(f"still silent after {timeout} s: {missing}")
        await asyncio.sleep(0.01)
    return back


def _report(case: str, back: dict[int, tuple[float, int]], stopped: dict[int, int]) -> None:
    worst = max(t for t, _ in back.values())
    drift = max(abs(pos - stopped[g]) for g, (_, pos) in back.items())
    print(f"\n{case}: every guild back {worst:.2f} s after the bot could act; "
          f"largest position error {drift} ms")  # fmt: skip


def _voice_server_drops(lavalink: FakeLavalink) -> Callable[[int, int], None]:
    """Discord's voice server dropping the bot: Lavalink's voice socket closes with 4014."""

    def drop(guild_id: int, _channel_id: int) -> None:
        if lavalink.player(guild_id) is not None:
            lavalink.close_voice(guild_id, 4014, "Disconnected.")

    return drop


@pytest.fixture
async def discord_world(errors: ErrorLog) -> AsyncIterator[tuple[FakeDiscord, FakeLavalink]]:
    """Three guilds, one node; Discord dropping the bot's voice closes Lavalink's voice socket
    (4014), as Discord's voice servers do."""
    lavalink = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.2)
    await lavalink.start()
    async with FakeDiscord(guilds=[discord_guild(g) for g in GUILDS]) as discord:
        discord.voice_dropped_hooks.append(_voice_server_drops(lavalink))
        lavalink.voice_check = discord_voice_check(discord)
        yield discord, lavalink
        assert not discord.unhandled, discord.unhandled
    await lavalink.stop()


@contextlib.asynccontextmanager
async def _bot(
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    tmp_path: Path,
    reconcile_interval: float = 5.0,
    **env: str,
) -> AsyncIterator[MusicBot]:
    settings = load_settings(
        bot_environment(discord, lavalink, tmp_path / "bot.db", **env), env_file=None
    )
    async with running_bot(
        settings, discord, lavalink, errors, reconcile_interval=reconcile_interval
    ) as app:
        yield app


# --- Discord --------------------------------------------------------------------------------


async def test_an_invalidated_gateway_session_rejoins_every_playing_guild(
    discord_world: tuple[FakeDiscord, FakeLavalink], errors: ErrorLog, tmp_path: Path
) -> None:
    discord, lavalink = discord_world
    async with _bot(discord, lavalink, errors, tmp_path):
        await _play_everywhere(discord, lavalink)
        identified = discord.identify_count
        await discord.drop_gateway(resumable=False)
        # Discord dropped the bot from voice: each player froze where the voice socket closed.
        stopped = {g.id: p.position for g in GUILDS if (p := lavalink.player(g.id)) is not None}
        assert all(discord.bot_voice_channel(g.id) is None for g in GUILDS)
        await discord.wait_for(
            lambda: discord.identify_count > identified and discord.connected,
            what="a new gateway session",
        )
        # From the IDENTIFY that opened the new session: the bot can act from then on.
        identify_at = next(t for t, op in discord.connection_ops[-1] if op == 2)
        back = await _wait_all_back(discord, lavalink, since=identify_at)
        _report("op 9 (session invalidated)", back, stopped)
        assert max(t for t, _ in back.values()) < HEAL_WITHIN
        for guild_id, (_, position) in back.items():
            assert stopped[guild_id] - 300 <= position <= stopped[guild_id] + POSITION_SLACK
        # A reply after the heal is true: /skip starts the next song, and it plays.
        guild = GUILDS[0]
        interaction = await discord.invoke(
            "skip", guild_id=guild.id, user_id=guild.user, channel_id=guild.text
        )
        reply = (await interaction.reply()).text
        assert f"Now playing [{TAKE_ON_ME.title}]" in reply, reply
        await lavalink.wait_for(lambda: _back(discord, lavalink, guild, TAKE_ON_ME.title))


@pytest.mark.parametrize("how", ["op 7", "1006"])
async def test_a_resumed_gateway_keeps_playing_without_rejoining(
    discord_world: tuple[FakeDiscord, FakeLavalink], errors: ErrorLog, tmp_path: Path, how: str
) -> None:
    discord, lavalink = discord_world
    async with _bot(discord, lavalink, errors, tmp_path):
        await _play_everywhere(discord, lavalink)
        resumed, joins = discord.resume_count, len(discord.voice_ops)
        if how == "op 7":
            await discord.request_reconnect()
        else:
            await discord.drop_gateway(resumable=True, abnormal=True)
        await discord.wait_for(
            lambda: discord.resume_count > resumed and discord.connected, what="a resume"
        )
        positions = {g.id: p.position for g in GUILDS if (p := lavalink.player(g.id)) is not None}
        await holds(
            lambda: all(_back(discord, lavalink, g, RICK.title) for g in GUILDS),
            1.5,
            "every guild playing on",
        )
        now = {g.id: p.position for g in GUILDS if (p := lavalink.player(g.id)) is not None}
        assert all(now[g.id] > positions[g.id] + 1000 for g in GUILDS), (positions, now)
        assert discord.voice_ops[joins:] == []  # voice survives a resume: nothing to re-join


async def test_voice_ops_carry_self_mute_and_self_deaf(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot(discord, lavalink, errors, tmp_path):
        await (await discord.invoke("play", {"query": "short song"})).reply()
        await discord.wait_for_message("The queue is finished", timeout=10)
        # The bot stays, idle; a deleted channel makes it leave with op 4 channel null.
        joined = discord.voice_ops[-1]
        assert (joined.channel_id, joined.self_mute, joined.self_deaf) == (
            VOICE_CHANNEL,
            False,
            True,
        )
        await discord.delete_channel(GUILD, VOICE_CHANNEL)
        await discord.wait_for_voice_op(GUILD, None)
        left = next(op for op in discord.voice_ops if op.channel_id is None)
        assert (left.self_mute, left.self_deaf) == (False, False)
        assert discord.gateway_errors == []


async def test_a_failed_command_sync_is_retried_and_ready_comes_after(
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Discord's daily limit on command creates: a 429 for longer than hikari waits (300 s),
    # so lightbulb's sync raises at once.
    discord.fail_command_sync(1, status=429, retry_after=3600)
    settings = load_settings(bot_environment(discord, lavalink, tmp_path / "bot.db"), env_file=None)
    app = MusicBot(settings)
    caplog.set_level(logging.INFO, logger="bot")
    await app.start()
    try:
        await discord.wait_until_ready(timeout=40)
        assert "play" in discord.registered_commands
        await discord.wait_for(
            lambda: any(r.getMessage().startswith("ready") for r in caplog.records),
            what="the ready line",
        )
        messages = [r.getMessage() for r in caplog.records if r.name.startswith("bot")]
        failed = [i for i, m in enumerate(messages) if "could not register the slash" in m]
        ready = [i for i, m in enumerate(messages) if m.startswith("ready")]
        assert failed, messages
        assert "trying again" in messages[failed[0]]
        assert ready[0] > failed[-1]  # "ready" only once the commands are there
        reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
        assert "Now playing" in reply.text
    finally:
        await app.close()


# --- Lavalink -------------------------------------------------------------------------------


async def test_a_lost_node_brings_the_music_back_where_it_stopped(
    errors: ErrorLog, tmp_path: Path
) -> None:
    # Reports every 5 s, as a real node sends them: the last one is up to 5 s old at the kill.
    lavalink = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=5.0)
    await lavalink.start()
    try:
        async with (
            FakeDiscord(guilds=[discord_guild(g) for g in GUILDS]) as discord,
            _bot(discord, lavalink, errors, tmp_path, LAVALINK_NODE_LOSS_GRACE="1"),
        ):
            await _play_everywhere(discord, lavalink)
            await asyncio.sleep(2.5)  # between two reports
            stopped = {g.id: p.position for g in GUILDS if (p := lavalink.player(g.id)) is not None}
            await lavalink.kill()
            for guild in GUILDS:
                await discord.wait_for_voice_op(guild.id, None, timeout=10)
            await lavalink.start()
            started = asyncio.get_running_loop().time()
            back = await _wait_all_back(discord, lavalink, since=started)
            _report("node lost and back", back, stopped)
            assert max(t for t, _ in back.values()) < HEAL_WITHIN
            for guild_id, (_, position) in back.items():
                assert stopped[guild_id] - 300 <= position <= stopped[guild_id] + POSITION_SLACK
    finally:
        await lavalink.stop()


async def test_a_skip_whose_update_times_out_once_is_retried_and_told_truly(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot(discord, lavalink, errors, tmp_path, LAVALINK_REQUEST_TIMEOUT="1"):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title))
        lavalink.delay_next("/players/", 2.5, method="PATCH")  # past the 1 s time-out
        reply = (await (await discord.invoke("skip")).reply(timeout=15)).text
        assert f"Skipped **{RICK.title}**. Now playing [{TAKE_ON_ME.title}]" in reply, reply
        await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
        # The late first attempt changes nothing: Take On Me plays on.
        await holds(
            lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title), 2.0, "Take On Me plays"
        )


async def test_a_skip_lavalink_keeps_refusing_says_what_happened(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    async with _bot(discord, lavalink, errors, tmp_path):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), RICK.title))
        lavalink.fail_next("/players/", 500, count=3)
        reply = (await (await discord.invoke("skip")).reply()).text
        assert f"Skipped **{RICK.title}**." in reply
        assert f"couldn't play **{TAKE_ON_ME.title}**" in reply
        assert "Now playing" not in reply
        # True: nothing plays, the bot left, and the song waits in the queue.
        await discord.wait_for(lambda: discord.bot_voice_channel(GUILD) is None, what="a leave")
        player = lavalink.player(GUILD)
        assert player is None or not player.running
        reply = (await (await discord.invoke("queue")).reply()).text
        assert TAKE_ON_ME.title in reply


async def test_a_server_that_drops_user_data_still_advances_the_queue(
    discord: FakeDiscord, errors: ErrorLog, tmp_path: Path
) -> None:
    lavalink = FakeLavalink(
        catalogue=catalogue(), time_scale=1.0, player_update_interval=0.2, echo_user_data=False
    )
    await lavalink.start()
    try:
        async with _bot(discord, lavalink, errors, tmp_path, reconcile_interval=0.3) as app:
            await (await discord.invoke("play", {"query": "short song"})).reply()
            await (await discord.invoke("play", {"query": "take on me"})).reply()
            # The 3 s song ends by itself; its end event carries no userData.
            await wait_for_controller(discord, TAKE_ON_ME.title)
            await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
            # Nor does the reconciler mistake the untagged track for a wrong one.
            passes = app.service.reconciler.passes if app.service else 0
            await holds(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title), 1.5, "plays on")
            assert app.service is not None
            assert app.service.reconciler.passes >= passes + 3
            starts = list(lavalink.events(GUILD, "TrackStartEvent"))
            assert len(starts) == 2
    finally:
        await lavalink.stop()


# --- the reconciler, one divergence at a time ---------------------------------------------


async def _settled_rick(discord: FakeDiscord, lavalink: FakeLavalink) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(
        lambda: playing(p := lavalink.player(GUILD), RICK.title) and p.position > 1200,
        what="Rick playing, settled (the reconciler waits two passes after a change)",
    )


def _heard(discord: FakeDiscord, lavalink: FakeLavalink, title: str) -> bool:
    return _back(discord, lavalink, GUILDS[0], title)


@pytest.mark.parametrize(
    "divergence", ["voice gone", "player gone", "wrong track", "paused", "frozen"]
)
async def test_the_reconciler_repairs_each_divergence(
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    tmp_path: Path,
    divergence: str,
) -> None:
    discord.voice_dropped_hooks.append(_voice_server_drops(lavalink))
    lavalink.voice_check = discord_voice_check(discord)
    async with _bot(discord, lavalink, errors, tmp_path, reconcile_interval=0.5):
        await _settled_rick(discord, lavalink)
        player = lavalink.player(GUILD)
        assert player is not None
        at = player.position
        if divergence == "voice gone":
            discord.drop_bot_voice(GUILD)
        elif divergence == "player gone":
            lavalink.drop_player(GUILD)
        elif divergence == "wrong track":
            lavalink.swap_track(GUILD, SHORT_SONG)
        elif divergence == "paused":
            lavalink.set_paused(GUILD, True)
        else:
            lavalink.stall(GUILD)
        injected = time.monotonic()
        # After a wrong track the position is the stored one (the other track's reports say
        # nothing of Rick's), so there only "Rick heard again" counts.
        floor = -1 if divergence == "wrong track" else at
        await lavalink.wait_for(
            lambda: (
                _heard(discord, lavalink, RICK.title)
                and (p := lavalink.player(GUILD)) is not None
                and p.position > floor
            ),
            timeout=10,
            what=f"Rick heard again after '{divergence}'",
        )
        print(f"\n{divergence}: healed in {time.monotonic() - injected:.2f} s")
        healed = lavalink.player(GUILD)
        assert healed is not None
        if divergence != "wrong track":  # the other track's reports say nothing of Rick's
            assert at - 300 <= healed.position <= at + 6000 + POSITION_SLACK
        # Healed for good: it keeps playing, and the queue is as it was.
        await holds(lambda: _heard(discord, lavalink, RICK.title), 1.5, "Rick plays on")
        reply = (await (await discord.invoke("queue")).reply()).text
        assert RICK.title in reply
        assert TAKE_ON_ME.title in reply


async def test_the_reconciler_is_silent_when_everything_matches(
    discord: FakeDiscord,
    lavalink: FakeLavalink,
    errors: ErrorLog,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _bot(discord, lavalink, errors, tmp_path, reconcile_interval=0.3) as app:
        await _settled_rick(discord, lavalink)
        assert app.service is not None
        caplog.set_level(logging.INFO)
        caplog.clear()
        requests_before = len(lavalink.requests)
        passes = app.service.reconciler.passes
        await asyncio.sleep(2.0)
        ran = app.service.reconciler.passes - passes
        assert ran >= 4
        sent = lavalink.requests[requests_before:]
        # One players list per pass, and nothing else: no change, no re-join, no log line.
        assert all(r.method == "GET" and r.path.endswith("/players") for r in sent), sent
        assert len(sent) <= ran
        assert [r.getMessage() for r in caplog.records if r.name.startswith("bot")] == []
        assert playing(lavalink.player(GUILD), RICK.title)
