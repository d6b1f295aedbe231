"""Several Lavalink nodes, and Lavalink misbehaving, as a user of the real bot notices them.

The bot runs in process (real hikari + lightbulb against the fake Discord) with its own
Lavalink client against two or three fake nodes. Each test says what a listener would hear
and checks it at the nodes: which node plays, what, from where, with which voice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.app import MusicBot
from bot.config import load_settings
from peers.fake_discord import FakeDiscord, VoiceOp
from peers.fake_lavalink import FakeLavalink, Player
from tests.e2e.conftest import (
    GUILD,
    GUILDS,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    VOICE_CHANNEL,
    ErrorLog,
    FakeGuild,
    MakeNodes,
    bot_environment,
    holder,
    holds,
    placements,
    playing,
    running_bot,
    wait_for_controller,
)

MAX_GAP_S = 5.0
"""The longest silence (and the most music skipped) a failover may cost a listener."""


def _started_at(node: FakeLavalink, guild_id: int) -> int:
    """The ``position`` of the last PATCH that started a track for the guild on ``node``."""
    for request in reversed(node.requests):
        body = request.json
        if (
            request.method == "PATCH"
            and request.path.endswith(f"/players/{guild_id}")
            and isinstance(body, dict)
            and isinstance(body.get("track"), dict)
        ):
            return int(body.get("position", 0))
    raise AssertionError(f"no track was started for guild {guild_id} on {node.url}")


async def _assert_queue(
    discord: FakeDiscord, *titles: str, upcoming: int, guild: FakeGuild = GUILDS[0]
) -> None:
    """/queue shows ``titles`` and ``upcoming`` waiting tracks, and playback is not interrupted."""
    reply = await (
        await discord.invoke("queue", guild_id=guild.id, user_id=guild.user, channel_id=guild.text)
    ).reply()
    for title in titles:
        assert title in reply.text
    assert f"{upcoming} track{'' if upcoming == 1 else 's'} in queue" in reply.text
    assert "interrupted" not in reply.text


def _leaves(discord: FakeDiscord, after: int, guild_id: int | None = None) -> list[VoiceOp]:
    return [
        op
        for op in discord.voice_ops[after:]
        if op.channel_id is None and (guild_id is None or op.guild_id == guild_id)
    ]


# The default grace (10 s) is longer than the client's failover delay (2 s): the players move
# when that delay ends. A grace shorter than the delay must move them too, not leave voice.
@pytest.mark.parametrize("grace", ["10", "1"])
async def test_a_killed_node_hands_its_player_to_another_at_its_position(
    discord: FakeDiscord, make_nodes: MakeNodes, errors: ErrorLog, tmp_path: Path, grace: str
) -> None:
    nodes = await make_nodes(3)
    env = bot_environment(discord, nodes, tmp_path / "bot.db", LAVALINK_NODE_LOSS_GRACE=grace)
    settings = load_settings(env, env_file=None)
    async with running_bot(settings, discord, nodes, errors):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await (await discord.invoke("play", {"query": "short song"})).reply()
        first = holder(nodes, GUILD)
        assert first is not None
        await nodes[first].wait_for(
            lambda: playing(p := nodes[first].player(GUILD), RICK.title) and p.position > 800,
            what="Rick playing for a while",
        )
        # A volume a listener chose must survive the move.
        reply = await (await discord.invoke("volume", {"level": 42})).reply()
        assert "42%" in reply.text
        old = nodes[first].player(GUILD)
        assert old is not None
        assert old.volume == 42
        old_voice, old_entry = dict(old.voice or {}), dict(old.user_data)
        ops_before, messages_before = len(discord.voice_ops), len(discord.messages)

        position_at_kill = old.position
        killed_at = time.monotonic()
        await nodes[first].kill()

        def moved() -> Player | None:
            index = holder(nodes, GUILD)
            return nodes[index].player(GUILD) if index is not None else None

        await nodes[0].wait_for(
            lambda: playing(moved(), RICK.title), timeout=MAX_GAP_S + 3, what="the failover"
        )
        gap = time.monotonic() - killed_at
        second = holder(nodes, GUILD)
        assert second is not None
        assert second != first
        new = nodes[second].player(GUILD)
        assert new is not None
        skipped_ms = _started_at(nodes[second], GUILD) - position_at_kill
        print(f"failover (grace {grace} s): silence {gap:.2f} s, music skipped {skipped_ms} ms")
        assert gap <= MAX_GAP_S
        assert -500 <= skipped_ms <= MAX_GAP_S * 1000

        # Same entry of the queue, same volume, not paused, the bot's own voice connection.
        assert new.user_data == old_entry
        assert (new.volume, new.paused) == (42, False)
        assert new.voice == old_voice
        assert new.connected

        # Another node was up, so Discord never saw the bot leave (nor re-join).
        assert discord.voice_ops[ops_before:] == []
        assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
        await _assert_queue(
            discord, "Never Gonna Give You Up", TAKE_ON_ME.title, SHORT_SONG.title, upcoming=2
        )
        assert not any(
            "lost the music server" in m.text for m in discord.messages[messages_before:]
        )

        # The dead node comes back as a fresh process: it must not get a second player.
        await nodes[first].start()
        await nodes[first].wait_for(
            lambda: any(not s.paused for s in nodes[first].sessions.values()),
            what="the bot back on the restarted node",
        )
        await holds(lambda: holder(nodes, GUILD) == second, 0.5, "the player stays put")

        # The bot keeps talking to the node that now holds the player.
        reply = await (await discord.invoke("skip")).reply()
        assert TAKE_ON_ME.title in reply.text
        await nodes[second].wait_for(
            lambda: playing(nodes[second].player(GUILD), TAKE_ON_ME.title), what="/skip there"
        )
        assert holder(nodes, GUILD) == second


async def test_a_node_back_from_a_partition_drops_its_stale_twin(
    discord: FakeDiscord, make_nodes: MakeNodes, errors: ErrorLog, tmp_path: Path
) -> None:
    nodes = await make_nodes(2)
    settings = load_settings(bot_environment(discord, nodes, tmp_path / "bot.db"), env_file=None)
    async with running_bot(settings, discord, nodes, errors):
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        first = holder(nodes, GUILD)
        assert first is not None
        other = 1 - first
        lost = nodes[first]
        await lost.wait_for(
            lambda: (
                all(s.resuming for s in lost.sessions.values())
                and playing(p := lost.player(GUILD), RICK.title)
                and p.position > 500
            ),
            what="a resumable session playing Rick",
        )
        # The listener paused.
        assert "Paused" in (await (await discord.invoke("pause")).reply()).text
        session_id = next(iter(lost.sessions))
        twin = lost.player(GUILD)
        assert twin is not None
        assert twin.paused
        entry, paused_at = dict(twin.user_data), twin.position
        ops_before = len(discord.voice_ops)

        # The bot loses sight of the node, which keeps running: its session waits to be
        # resumed. Three refused reconnects take the bot past the 2 s failover delay.
        lost.refuse_websocket(3)
        await lost.drop_connections()
        await nodes[other].wait_for(
            lambda: (p := nodes[other].player(GUILD)) is not None and p.connected,
            what="the failover",
        )
        moved = nodes[other].player(GUILD)
        assert moved is not None
        assert moved.track is not None
        assert moved.track.title == RICK.title
        assert moved.user_data == entry
        # Still paused, and exactly where the listener paused (give or take one update).
        assert moved.paused
        print(f"paused at {paused_at} ms, moved at {moved.position} ms")
        assert paused_at - 400 <= moved.position <= paused_at
        assert len(placements(nodes, GUILD)) == 2  # the twin, still in the paused session

        # The node is reachable again: the bot resumes its session and destroys the twin.
        await lost.wait_for(
            lambda: holder_or_none(nodes) == other, timeout=15, what="the stale twin destroyed"
        )
        assert session_id in lost.sessions
        assert not lost.sessions[session_id].paused
        resumes = [r for r in lost.requests if r.headers.get("Session-Id") == session_id]
        assert resumes
        assert resumes[-1].status == 101
        assert any(
            r.method == "DELETE" and r.path.endswith(f"/sessions/{session_id}/players/{GUILD}")
            for r in lost.requests
        )
        assert nodes[other].player(GUILD) is moved
        assert moved.paused
        assert _leaves(discord, ops_before) == []
        reply = await (await discord.invoke("queue")).reply()
        assert "Never Gonna Give You Up" in reply.text
        assert "interrupted" not in reply.text


def holder_or_none(nodes: list[FakeLavalink]) -> int | None:
    """The holding node once exactly one player is left (None while there are two)."""
    found = placements(nodes, GUILD)
    return found[0][0] if len(found) == 1 else None


async def play_in(discord: FakeDiscord, guild: FakeGuild, query: str) -> str:
    """``/play query`` run by the guild's user from its text channel; the reply's text."""
    interaction = await discord.invoke(
        "play", {"query": query}, guild_id=guild.id, user_id=guild.user, channel_id=guild.text
    )
    return (await interaction.reply()).text


async def test_new_players_go_to_the_least_loaded_node(
    discord_guilds: FakeDiscord, make_nodes: MakeNodes, errors: ErrorLog, tmp_path: Path
) -> None:
    discord = discord_guilds
    busy, idle = await make_nodes(2)
    busy.system_load = 0.9  # reported in the first stats, before any player exists
    settings = load_settings(
        bot_environment(discord, [busy, idle], tmp_path / "bot.db"), env_file=None
    )
    async with running_bot(settings, discord, [busy, idle], errors) as app:
        for guild in GUILDS[:2]:
            assert "Now playing" in await play_in(discord, guild, "take on me")
        # Both land on the idle node, although it then plays two players and the busy one none.
        assert [holder([busy, idle], g.id) for g in GUILDS[:2]] == [1, 1]

        # The busy node calms down and says so; the next guild goes there.
        busy.system_load = 0.05
        busy.send_stats()
        idle.send_stats()
        await busy.wait_for(
            lambda: (
                app.lavalink.stats[f"127.0.0.1:{busy.port}"].cpu.system_load < 0.1
                and app.lavalink.stats[f"127.0.0.1:{idle.port}"].playing_players == 2
            ),
            what="the new stats to reach the bot",
        )
        third = GUILDS[2]
        assert "Now playing" in await play_in(discord, third, "never gonna give you up")
        assert holder([busy, idle], third.id) == 0
        await busy.wait_for(lambda: playing(busy.player(third.id), RICK.title), what="playing")


async def test_every_node_lost_leaves_voice_in_every_guild_and_all_come_back(
    discord_guilds: FakeDiscord, make_nodes: MakeNodes, errors: ErrorLog, tmp_path: Path
) -> None:
    discord = discord_guilds
    nodes = await make_nodes(2)
    guilds = GUILDS[:2]
    settings = load_settings(bot_environment(discord, nodes, tmp_path / "bot.db"), env_file=None)
    titles = {guilds[0].id: RICK.title, guilds[1].id: TAKE_ON_ME.title}
    async with running_bot(settings, discord, nodes, errors):
        for guild, first, second in (
            (guilds[0], "never gonna give you up", "short song"),
            (guilds[1], "take on me", "short song"),
        ):
            for query in (first, second):
                await play_in(discord, guild, query)
        # One guild per node: the whole cluster goes down, not just one node's share.
        assert {holder(nodes, g.id) for g in guilds} == {0, 1}

        def under_way(gid: int) -> bool:
            index = holder(nodes, gid)
            return (
                index is not None
                and playing(p := nodes[index].player(gid), titles[gid])
                and p.position > 500
            )

        await nodes[0].wait_for(
            lambda: all(under_way(g.id) for g in guilds), what="both guilds playing"
        )
        at_kill = {}
        for node in nodes:
            for session in node.sessions.values():
                for gid, player in session.players.items():
                    at_kill[gid] = player.position
        ops_before = len(discord.voice_ops)
        for node in nodes:
            await node.kill()

        # Past the grace (1 s) the bot leaves voice everywhere: Lavalink cannot do it for it.
        for guild in guilds:
            await discord.wait_for_voice_op(guild.id, None, after=ops_before, timeout=10)
            assert discord.bot_voice_channel(guild.id) is None
        await discord.wait_for(
            lambda: (
                {m.channel_id for m in discord.messages if "lost the music server" in m.text}
                == {g.text for g in guilds}
            ),
            what="a notice in each guild",
        )
        for guild in guilds:
            reply = await (
                await discord.invoke(
                    "queue", guild_id=guild.id, user_id=guild.user, channel_id=guild.text
                )
            ).reply()
            assert titles[guild.id].split(" - ")[-1] in reply.text
            assert "interrupted" in reply.text
            assert "1 track in queue" in reply.text

        # Both nodes return (fresh processes): each guild plays again, once, where it was.
        ops_before = len(discord.voice_ops)
        for node in nodes:
            await node.start()
        for guild in guilds:
            await discord.wait_for_voice_op(guild.id, guild.voice, after=ops_before, timeout=20)

        def back(gid: int) -> bool:
            index = holder(nodes, gid)
            return index is not None and playing(nodes[index].player(gid), titles[gid])

        await nodes[0].wait_for(
            lambda: all(back(g.id) for g in guilds), timeout=10, what="both guilds back"
        )
        await discord.wait_for(
            lambda: (
                {m.channel_id for m in discord.messages if "I'm back" in m.text}
                == {g.text for g in guilds}
            ),
            what="a comeback notice in each guild",
        )
        for guild in guilds:
            index = holder(nodes, guild.id)
            assert index is not None
            resumed_at = _started_at(nodes[index], guild.id)
            print(f"guild {guild.id}: killed at {at_kill[guild.id]} ms, back at {resumed_at} ms")
            assert at_kill[guild.id] - 500 <= resumed_at <= at_kill[guild.id] + 3000
            reply = await (
                await discord.invoke(
                    "queue", guild_id=guild.id, user_id=guild.user, channel_id=guild.text
                )
            ).reply()
            assert "interrupted" not in reply.text
            assert "1 track in queue" in reply.text


# --- Lavalink misbehaving --------------------------------------------------------------------


GARBAGE = (
    "{not json",
    "[]",
    '{"op": "future-op", "data": 1}',
    '{"op": "playerUpdate", "guildId": "%(g)s"}',
    '{"op": "playerUpdate", "guildId": "%(g)s", "state": {"position": "soon"}}',
    '{"op": "event", "type": "FutureEvent", "guildId": "%(g)s"}',
    '{"op": "event", "type": "TrackEndEvent", "guildId": "%(g)s"}',
    '{"op": "event", "type": "TrackEndEvent", "guildId": "%(g)s", "track": null,'
    ' "reason": "finished"}',
    '{"op": "event", "type": "TrackEndEvent", "guildId": "%(g)s", "track": {}, "reason": "x"}',
    '{"op": "event", "type": "WebSocketClosedEvent", "guildId": "nope", "code": 4006}',
    '{"op": "stats"}',
    '{"op": "ready", "resumed": "maybe"}',
)


async def test_garbage_frames_do_not_break_playback(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "short song"})).reply()
    await (await discord.invoke("play", {"query": "take on me"})).reply()
    ops_before = len(discord.voice_ops)
    for frame in GARBAGE:
        await lavalink.send_raw(frame % {"g": GUILD} if "%(g)s" in frame else frame)
    # Short Song (3 s) still ends by itself and the next one starts, shown as usual.
    await wait_for_controller(discord, TAKE_ON_ME.title)
    await lavalink.wait_for(
        lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title), what="Take On Me playing"
    )
    reply = await (await discord.invoke("queue")).reply()
    assert "Take On Me" in reply.text
    assert "0 tracks in queue" in reply.text
    assert discord.voice_ops[ops_before:] == []  # no re-join for a 4006 of no guild


async def test_a_lavalink_error_on_search_gets_a_polite_reply(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    lavalink.fail_next("/v4/loadtracks", 500)
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert reply.ephemeral
    assert "music server had a problem" in reply.text
    assert discord.bot_voice_channel(GUILD) is None
    assert lavalink.player(GUILD) is None
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert "Now playing" in reply.text


async def test_lavalink_refusing_the_voice_connection_is_not_blamed_on_permissions(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    # The PATCH carrying the voice credentials fails, and so do both retries.
    lavalink.fail_next("/players/", 500, count=3)
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert reply.ephemeral
    assert "music server" in reply.text
    assert "connect and speak" not in reply.text  # the permissions are fine
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert "Now playing" in reply.text
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))


async def test_lavalink_refusing_to_play_leaves_voice_and_keeps_the_song(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink
) -> None:
    await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
    await (await discord.invoke("skip")).reply()  # the queue drains; the bot stays in voice
    assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
    lavalink.fail_next("/players/", 500, count=3)  # the PATCH that starts it, and retries
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert reply.ephemeral
    assert "couldn't play **a-ha - Take On Me**" in reply.text
    assert "when the server is back" not in reply.text  # the server is up: no false promise
    await discord.wait_for(
        lambda: discord.bot_voice_channel(GUILD) is None, what="the bot to leave voice"
    )
    reply = await (await discord.invoke("queue")).reply()
    assert "Take On Me" in reply.text
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
    assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL


@pytest.mark.parametrize("request_name", ["voice", "play"])
async def test_one_failed_player_update_is_retried_not_a_departure(
    bot: MusicBot, discord: FakeDiscord, lavalink: FakeLavalink, request_name: str
) -> None:
    if request_name == "play":
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("skip")).reply()  # the bot stays in voice, idle
    lavalink.fail_next("/players/", 500)  # one bad moment
    reply = await (await discord.invoke("play", {"query": "take on me"})).reply()
    assert not reply.ephemeral
    assert "Now playing" in reply.text
    await lavalink.wait_for(lambda: playing(lavalink.player(GUILD), TAKE_ON_ME.title))
    assert discord.bot_voice_channel(GUILD) == VOICE_CHANNEL
    failed = [r for r in lavalink.requests if r.method == "PATCH" and r.status == 500]
    assert len(failed) == 1


async def test_a_session_that_expired_while_away_is_rebuilt_at_its_position(
    discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path
) -> None:
    # Lavalink keeps a dropped session 1 s only; the bot would leave voice after 30 s.
    env = bot_environment(
        discord,
        lavalink,
        tmp_path / "bot.db",
        LAVALINK_RESUME_TIMEOUT="1",
        LAVALINK_NODE_LOSS_GRACE="30",
    )
    async with running_bot(load_settings(env, env_file=None), discord, lavalink, errors) as app:
        await (await discord.invoke("play", {"query": "never gonna give you up"})).reply()
        await (await discord.invoke("play", {"query": "take on me"})).reply()
        await lavalink.wait_for(
            lambda: (
                playing(p := lavalink.player(GUILD), RICK.title)
                and p.position > 800
                and all(s.resuming for s in lavalink.sessions.values())
            ),
            what="Rick playing in a resumable session",
        )
        old_session = next(iter(lavalink.sessions))
        old = lavalink.player(GUILD)
        assert old is not None
        old_voice, old_entry = dict(old.voice or {}), dict(old.user_data)
        ops_before, messages_before = len(discord.voice_ops), len(discord.messages)

        # The bot's socket drops; two refused reconnects keep it away past the 1 s timeout.
        lavalink.refuse_websocket(2)
        position_at_drop = old.position
        await lavalink.drop_connections()
        await lavalink.wait_for(
            lambda: old_session not in lavalink.sessions, what="the session to expire"
        )
        await lavalink.wait_for(
            lambda: playing(lavalink.player(GUILD), RICK.title), timeout=15, what="the rebuild"
        )
        new_session = next(s for s in lavalink.sessions.values() if not s.paused)
        assert new_session.id != old_session
        assert any(r.headers.get("Session-Id") == old_session for r in lavalink.requests)
        player = lavalink.player(GUILD)
        assert player is not None
        assert player.user_data == old_entry
        assert player.voice == old_voice  # Discord's voice connection never changed
        skipped = _started_at(lavalink, GUILD) - position_at_drop
        print(f"expired session: rebuilt {skipped} ms after where the drop cut in")
        assert -500 <= skipped <= 5000
        assert discord.voice_ops[ops_before:] == []
        assert discord.messages[messages_before:] == []  # nothing to apologise for
        reply = await (await discord.invoke("queue")).reply()
        assert "interrupted" not in reply.text
        assert "1 track in queue" in reply.text
        assert app.service is not None
        assert app.service.queue(GUILD).interrupted is False
