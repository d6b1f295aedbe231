"""Two bot processes share one bot (issue 15): ``python -m bot`` twice, ``SHARD_COUNT=2`` and
``SHARD_IDS`` 0 and 1, on one PostgreSQL and two Lavalink nodes both of them use.

Each process answers and plays only on its own shard; a ``kill -9`` of one pauses only its
own guilds' Lavalink session, and its restart resumes that session (not the other's) with
the music where it was, while the other process's guilds never stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from peers.fake_discord import FakeDiscord, Guild, sharded_guild
from peers.fake_lavalink import FakeLavalink, Player
from peers.process import BotProcess, bot_environment, log_problems
from tests.e2e.conftest import RICK, catalogue


@contextlib.asynccontextmanager
async def _nodes() -> AsyncIterator[list[FakeLavalink]]:
    nodes = [
        FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.2)
        for _ in range(2)
    ]
    for node in nodes:
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            await node.stop()


def _player(nodes: list[FakeLavalink], guild_id: int) -> Player | None:
    found = [p for node in nodes if (p := node.player(guild_id)) is not None]
    return found[0] if found else None


def _playing(nodes: list[FakeLavalink], guild_id: int) -> bool:
    player = _player(nodes, guild_id)
    return player is not None and player.connected and player.running and not player.session.paused


async def _play(discord: FakeDiscord, guild: Guild) -> None:
    interaction = await discord.invoke(
        "play",
        {"query": "never gonna give you up"},
        guild_id=guild.id,
        user_id=guild.members[0],
        channel_id=guild.text_channel_ids[0],
    )
    assert "Now playing" in (await interaction.reply()).text


async def test_two_processes_split_the_shards_and_a_kill_9_brings_back_only_its_own(
    pg_url: str, tmp_path: Path
) -> None:
    mine, theirs = sharded_guild(1, 0, 2), sharded_guild(2, 1, 2)
    async with FakeDiscord(guilds=[mine, theirs], max_concurrency=2) as discord, _nodes() as nodes:

        def process(shard: int) -> BotProcess:
            env = bot_environment(
                discord, nodes, tmp_path / "unused.db",
                DATABASE_URL=pg_url, SHARD_COUNT="2", SHARD_IDS=str(shard),
            )  # fmt: skip
            return BotProcess(env, tmp_path, tmp_path / f"bot-{shard}.log")

        first, second = process(0), process(1)
        try:
            await first.start()
            await second.start()
            await discord.wait_until_ready(timeout=30)
            for node in nodes:  # each process holds its own session on each node
                await node.wait_for(lambda n=node: len(n.sessions) == 2, timeout=20)
            await _play(discord, mine)
            await _play(discord, theirs)
            for guild in (mine, theirs):
                await discord.wait_for(
                    lambda g=guild.id: _playing(nodes, g), timeout=10, what="both playing"
                )
            kept, lost = _player(nodes, theirs.id), _player(nodes, mine.id)
            assert kept is not None
            assert lost is not None
            assert kept.session is not lost.session  # two processes, two sessions

            await first.kill9()
            await discord.wait_for(lambda: lost.session.paused, timeout=10, what="paused")
            assert not kept.session.paused  # the other process's music plays on
            ops = len(discord.voice_ops)
            at_kill = lost.position

            first = process(0)
            await first.start()
            await discord.wait_until_ready(timeout=30, shards=[0])
            await discord.wait_for(
                lambda: not lost.session.paused and _playing(nodes, mine.id),
                timeout=20,
                what="the killed process's own session resumed",
            )
            back = _player(nodes, mine.id)
            assert back is lost  # the same player in the same session, resumed
            assert back.track is not None
            assert back.track.title == RICK.title
            assert back.position >= at_kill
            assert _player(nodes, theirs.id) is kept
            assert kept.running
            assert not kept.session.paused
            assert all(op.guild_id == mine.id for op in discord.voice_ops[ops:])
            assert not discord.wrong_shard_voice_ops
            assert await first.terminate() == 0
            assert await second.terminate() == 0
        finally:
            await first.reap()
            await second.reap()
        for bot in (first, second):
            problems = log_problems(bot.log(), [discord.token, nodes[0].password])
            assert not problems, "\n".join(problems)
