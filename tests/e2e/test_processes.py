"""Two bot processes share one bot (issue 15): ``python -m bot`` twice, ``SHARD_COUNT=2`` and
``SHARD_IDS`` 0 and 1, on one PostgreSQL and two Lavalink nodes both of them use.

Each process answers and plays only on its own shard; a ``kill -9`` of one pauses only its
own guilds' Lavalink session, and its restart resumes that session (not the other's) with
the music where it was, while the other process's guilds never stop.

Resharding: one process killed, two of a new layout started in its place. Each removes its
own guilds' players from the old, paused session before it starts them again, so every
guild plays once, on its new owner's session, with its queue and where its music stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bot.services.sessions import session_key
from bot.shards import ShardSet, shard_of
from bot.storage import Repository
from peers.fake_discord import FakeDiscord, Guild, sharded_guild
from peers.fake_lavalink import FakeLavalink, Player, RecordedRequest
from peers.process import BotProcess, bot_environment, log_problems
from tests.e2e.conftest import PLAYLIST, PLAYLIST_URL, RICK, catalogue, placements


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


async def _play(
    discord: FakeDiscord, guild: Guild, query: str = "never gonna give you up", says: str = ""
) -> None:
    interaction = await discord.invoke(
        "play",
        {"query": query},
        guild_id=guild.id,
        user_id=guild.members[0],
        channel_id=guild.text_channel_ids[0],
    )
    assert "Now playing" in (text := (await interaction.reply()).text)
    assert says in text


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


def _requests(
    nodes: list[FakeLavalink], method: str, session_id: str, guild_id: int
) -> list[RecordedRequest]:
    """Every ``method`` request any node got for the guild's player in ``session_id``."""
    path = f"/v4/sessions/{session_id}/players/{guild_id}"
    return [r for n in nodes for r in n.requests if r.method == method and r.path == path]


async def _stored(url: str) -> tuple[dict[int, tuple[int | None, list[int]]], dict[str, str]]:
    """Each stored guild's current entry and queued entries, and the stored session ids."""
    repo = await Repository.open(url)
    try:
        guilds = await repo.load_guilds()
        sessions = await repo.session_ids()
    finally:
        await repo.close()
    queues = {
        g.player.guild_id: (g.player.current_entry_id, [e.id for e in g.entries]) for g in guilds
    }
    return queues, sessions


def _moved_once(
    nodes: list[FakeLavalink], guild_id: int, old: Player, old_at: tuple[int, float], owner: str
) -> None:
    """The guild plays on one player only, in its new owner's session ``owner``: its old
    player was removed from the old session before the new one started, and the new one
    started where the old one was stopped (``old_at``: its position at a monotonic moment)."""
    ((_, player),) = placements(nodes, guild_id)  # the old session holds none any more
    assert player.session.id == owner
    assert player.track is not None
    assert player.track.title == PLAYLIST[0].title
    assert player.running
    removed = _requests(nodes, "DELETE", old.session.id, guild_id)
    assert [r.status for r in removed] == [204]
    assert removed[0].at - old_at[1] < 60  # removed, not expired (the resume timeout)
    stopped = old_at[0] + (removed[0].at - old_at[1]) * 1000  # the fake's clock, rate 1
    starts = _requests(nodes, "PATCH", player.session.id, guild_id)
    assert removed[0].at < starts[0].at
    (start,) = [r.json for r in starts if isinstance(r.json, dict) and "track" in r.json]
    assert abs(start["position"] - stopped) <= 1_000, (start, stopped)


async def test_a_single_process_resharded_into_two_plays_each_guild_once_where_it_stopped(
    pg_url: str, tmp_path: Path
) -> None:
    guilds = [sharded_guild(1, 0, 2), sharded_guild(2, 1, 2)]
    async with FakeDiscord(guilds=guilds, max_concurrency=2) as discord, _nodes() as nodes:

        def process(shard: int | None) -> BotProcess:
            layout = {"SHARD_COUNT": "1"}
            if shard is not None:
                layout = {"SHARD_COUNT": "2", "SHARD_IDS": str(shard)}
            env = bot_environment(
                discord, nodes, tmp_path / "unused.db", DATABASE_URL=pg_url, **layout
            )
            name = "single" if shard is None else f"half-{shard}"
            return BotProcess(env, tmp_path, tmp_path / f"{name}.log")

        single, halves = process(None), [process(0), process(1)]
        try:
            await single.start()
            await discord.wait_until_ready(timeout=30)
            for guild in guilds:
                await _play(discord, guild, PLAYLIST_URL, PLAYLIST[0].title)
            for guild in guilds:
                await discord.wait_for(lambda g=guild.id: _playing(nodes, g), what="playing")
            old = {guild.id: _player(nodes, guild.id) for guild in guilds}
            queues, _ = await _stored(pg_url)
            assert all(len(queues[g.id][1]) == len(PLAYLIST) for g in guilds)

            await single.kill9()
            old_at = {g: (p.position, time.monotonic()) for g, p in old.items() if p is not None}
            ops, started = len(discord.voice_ops), time.monotonic()
            for half in halves:
                await half.start()
            await discord.wait_until_ready(timeout=30)
            for guild in guilds:
                await discord.wait_for(
                    lambda g=guild.id: _playing(nodes, g) and _player(nodes, g) is not old[g],
                    timeout=30,
                    what=f"guild {guild.id} playing again",
                )
            print(f"resharded: both guilds back {time.monotonic() - started:.1f} s after start")
            stored_queues, sessions = await _stored(pg_url)
            assert stored_queues == queues  # nothing lost, nothing added
            for guild in guilds:
                was = old[guild.id]
                assert was is not None
                own = ShardSet(frozenset({shard_of(guild.id, 2)}), 2)
                ((index, _),) = placements(nodes, guild.id)
                owner = sessions[session_key(f"127.0.0.1:{nodes[index].port}", own)]
                _moved_once(nodes, guild.id, was, old_at[guild.id], owner)
            assert {(op.guild_id, op.shard) for op in discord.voice_ops[ops:]} == {
                (g.id, shard_of(g.id, 2)) for g in guilds
            }
            assert not discord.wrong_shard_voice_ops
            for half in halves:
                assert await half.terminate() == 0
        finally:
            await single.reap()
            for half in halves:
                await half.reap()
        for bot in (single, *halves):
            problems = log_problems(bot.log(), [discord.token, nodes[0].password])
            assert not problems, "\n".join(problems)
        for half in halves:  # each removed its own guild's player, not the other's
            assert "1 player(s) of this process's servers removed" in half.log()
