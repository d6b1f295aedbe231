"""The bot as its users run it: ``python -m bot``, configured by the environment only."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.process import BotProcess, log_problems
from peers.voice import discord_voice_check
from tests.e2e.conftest import (
    GUILD,
    RICK,
    TAKE_ON_ME,
    VOICE_CHANNEL,
    bot_environment,
    catalogue,
    playing,
    wait_for_lavalink_session,
)


@contextlib.asynccontextmanager
async def bot_process(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path, **overrides: str
) -> AsyncIterator[BotProcess]:
    """The bot as a child process, configured like ``bot_environment`` plus ``overrides``."""
    env = bot_environment(discord, lavalink, tmp_path / "data" / "bot.db") | overrides
    proc = BotProcess(env, tmp_path, tmp_path / "bot.log")
    try:
        yield proc
    finally:
        await proc.reap()
    problems = log_problems(proc.log(), [discord.token, lavalink.password])
    assert not problems, "the bot's log:\n" + "\n".join(problems) + "\n\n" + proc.log()


async def _started_with_two_songs(
    bot: BotProcess, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    """The child is up, holds a Lavalink session, plays Rick with Take On Me queued."""
    await bot.start()
    await discord.wait_until_ready(timeout=30)
    await wait_for_lavalink_session(lavalink, timeout=20)
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()


async def test_kill_9_and_restart_brings_back_the_same_music(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    async with bot_process(discord, lavalink, tmp_path) as bot:
        await bot.start()
        await discord.wait_until_ready(timeout=30)
        first_session = await wait_for_lavalink_session(lavalink, timeout=20)

        reply = await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        assert "Now playing" in reply.text
        reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
        assert "position **1**" in reply.text
        await lavalink.wait_for(
            lambda: (p := lavalink.player(GUILD)) is not None and p.position > 1500,
            what="some playback",
        )

        await bot.kill9()
        player = lavalink.player(GUILD)
        assert player is not None
        position_at_kill = player.position
        await lavalink.wait_for(lambda: lavalink.sessions[first_session].paused, what="paused")

        ops_before = len(discord.voice_ops)
        await bot.start()
        await discord.wait_until_ready(timeout=30)
        # Same Lavalink session, resumed: the player never stopped.
        await lavalink.wait_for(
            lambda: not lavalink.sessions[first_session].paused, timeout=20, what="resume"
        )
        await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before, timeout=20)
        assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
        await lavalink.wait_for(
            lambda: (
                (p := lavalink.player(GUILD)) is not None
                and p.connected
                and p.voice is not None
                and p.voice["channelId"] == str(VOICE_CHANNEL)
            ),
            timeout=10,
            what="fresh voice credentials forwarded",
        )
        player = lavalink.player(GUILD)
        assert player is not None
        assert player.track is not None
        assert player.track.title == RICK.title
        assert player.position >= position_at_kill  # carried on, not restarted
        reply = await (await discord.invoke("queue")).reply()
        assert TAKE_ON_ME.title in reply.text
        assert "1 track in queue" in reply.text

        assert await bot.terminate() == 0


async def test_lavalink_killed_bot_process_leaves_voice_and_keeps_queue(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    async with bot_process(discord, lavalink, tmp_path) as bot:
        await _started_with_two_songs(bot, discord, lavalink)

        ops_before = len(discord.voice_ops)
        await lavalink.kill()
        op = await discord.wait_for_voice_op(GUILD, None, after=ops_before, timeout=15)
        assert op.channel_id is None
        reply = await (await discord.invoke("queue")).reply()
        assert "Never Gonna Give You Up" in reply.text
        assert TAKE_ON_ME.title in reply.text
        assert await bot.terminate() == 0


async def test_an_invalidated_gateway_session_plays_on_where_it_stopped(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    # Discord's voice server drops the bot with the session: Lavalink's voice socket closes.
    discord.voice_dropped_hooks.append(lambda guild, _channel: lavalink.close_voice(guild))
    lavalink.voice_check = discord_voice_check(discord)
    async with bot_process(discord, lavalink, tmp_path) as bot:
        await _started_with_two_songs(bot, discord, lavalink)
        await lavalink.wait_for(
            lambda: playing(p := lavalink.player(GUILD), RICK.title) and p.position > 1500,
            what="some playback",
        )
        identified = discord.identify_count
        await discord.drop_gateway(resumable=False)
        player = lavalink.player(GUILD)
        assert player is not None
        stopped = player.position
        await discord.wait_for(
            lambda: discord.identify_count > identified and discord.connected,
            timeout=15,
            what="a new gateway session",
        )
        await lavalink.wait_for(
            lambda: (
                discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
                and playing(p := lavalink.player(GUILD), RICK.title)
                and p.voice is not None
                and p.voice["sessionId"] == discord.bot_voice_session(GUILD)
            ),
            timeout=5,
            what="Rick heard again in the same channel",
        )
        player = lavalink.player(GUILD)
        assert player is not None
        assert stopped - 300 <= player.position <= stopped + 1000
        reply = await (await discord.invoke("skip")).reply()
        assert f"Now playing [{TAKE_ON_ME.title}]" in reply.text
        await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
        assert discord.gateway_errors == []
        assert await bot.terminate() == 0


async def test_first_run_says_what_it_connected_to_and_waits_quietly_for_lavalink(
    discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path
) -> None:
    """A first start with Lavalink not up yet (the usual `docker compose up` race): one
    warning with the fix, quiet retries, one line when Lavalink comes, and a summary of every
    connection with the invite link before "ready"."""
    await lavalink.stop()
    async with bot_process(discord, lavalink, tmp_path, LOG_LEVEL="DEBUG") as bot:
        await bot.start()
        await discord.wait_until_ready(timeout=30)
        await discord.wait_for(
            lambda: bot.log().count("failed again") >= 3, timeout=30, what="quiet retries"
        )
        await lavalink.start()
        await wait_for_lavalink_session(lavalink, timeout=30)
        await discord.wait_for(
            lambda: f"Lavalink node {lavalink_name(lavalink)} at " in bot.log(),
            what="the Lavalink summary line",
        )
        await discord.wait_for(lambda: "bot.app: ready" in bot.log(), what="ready")
        assert await bot.terminate() == 0
    lines = bot.log().splitlines()

    def only(fragment: str, level: str = "INFO") -> str:
        found = [line for line in lines if fragment in line and f" {level} " in line]
        assert len(found) == 1, (fragment, found)
        return found[0]

    url = lavalink.url
    warnings = [line for line in lines if " WARNING " in line and "Lavalink" in line]
    assert len(warnings) == 1, warnings
    assert f"unreachable at {url}: " in warnings[0]
    assert "is Lavalink running and LAVALINK_URL right?" in warnings[0]
    connected = only("connected after ")
    assert int(connected.split(" after ")[1].split()[0]) >= 4

    app_id = discord.bot_id
    discord_line = only("Discord: logged in as ")
    assert discord_line.endswith(
        f"Discord: logged in as musicbot (user id {discord.bot_id}, application id {app_id}), "
        "in 1 server"
    )
    invite = only("invite link: ")
    assert invite.endswith(
        f"https://discord.com/oauth2/authorize?client_id={app_id}"
        "&scope=bot+applications.commands&permissions=3230720"
    )
    database = only("database: ")
    assert database.endswith(f"database: SQLite database {tmp_path}/data/bot.db")
    node = only(f"Lavalink node {lavalink_name(lavalink)} at {url}: ")
    assert "Lavalink 4.2.2; sources: youtube" in node
    assert node.endswith("plugins: youtube-plugin 1.18.2")
    ready = only("bot.app: ready")
    assert lines.index(ready) > max(lines.index(x) for x in (discord_line, invite, database))
    # Not "ready" while Lavalink was down: first a line that says what it waits for.
    waiting = only("waiting for a Lavalink node")
    assert lines.index(waiting) < lines.index(connected) < lines.index(ready)
    assert ready.endswith(f"Lavalink node(s) {lavalink_name(lavalink)} connected")


def lavalink_name(lavalink: FakeLavalink) -> str:
    """The node's name as the bot's settings give it: ``host:port``."""
    return f"127.0.0.1:{lavalink.port}"


async def test_a_debug_run_in_json_never_shows_a_secret(
    discord: FakeDiscord, tmp_path: Path, pg_url: str
) -> None:
    """Play, skip, kill -9 and restart, then lose Lavalink, at DEBUG, with every secret set."""
    lavalink_password = "ll-Secret-Passw0rd-42"
    db_password = "pg-Secret-Passw0rd-42"
    # The test server trusts local connections, so the password is set but never checked.
    database_url = pg_url.replace("://musicbot@", f"://musicbot:{db_password}@")
    assert db_password in database_url
    lavalink = FakeLavalink(
        password=lavalink_password,
        catalogue=catalogue(),
        time_scale=1.0,
        player_update_interval=0.2,
    )
    await lavalink.start()
    try:
        async with bot_process(
            discord,
            lavalink,
            tmp_path,
            LAVALINK_PASSWORD=lavalink_password,
            DATABASE_URL=database_url,
            LOG_LEVEL="DEBUG",
            LOG_FORMAT="json",
        ) as bot:
            await _started_with_two_songs(bot, discord, lavalink)
            reply = await (await discord.invoke("skip")).reply()
            assert TAKE_ON_ME.title in reply.text
            await bot.kill9()
            ops_before = len(discord.voice_ops)
            await bot.start()
            await discord.wait_for_voice_op(GUILD, VOICE_CHANNEL, after=ops_before, timeout=20)
            await lavalink.wait_for(
                lambda: (
                    playing(p := lavalink.player(GUILD), TAKE_ON_ME.title)
                    and p.voice is not None
                    and p.voice["sessionId"] == discord.bot_voice_session(GUILD)
                ),
                timeout=20,
                what="back in voice after the restart",
            )
            ops_before = len(discord.voice_ops)
            await lavalink.kill()
            await discord.wait_for_voice_op(GUILD, None, after=ops_before, timeout=15)
            assert await bot.terminate() == 0
            log = bot.log()
    finally:
        await lavalink.stop()
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) > 50  # DEBUG really was on
    for line in lines:
        entry = json.loads(line)  # every line one JSON object
        assert {"time", "level", "logger", "message"} <= set(entry)
    assert any(json.loads(line)["level"] == "DEBUG" for line in lines)
    for secret in (discord.token, lavalink_password, db_password):
        assert secret not in log
        assert secret[:12] not in log
