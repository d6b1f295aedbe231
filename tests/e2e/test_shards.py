"""Several gateway shards in one process (issue 15): each guild's voice goes through its own
shard, and a bot left to Discord's recommendation runs as many shards as it is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from peers.fake_discord import FakeDiscord, shard_of, sharded_guild
from peers.fake_lavalink import FakeLavalink
from tests.e2e.conftest import ErrorLog, bot_environment, running_bot


@pytest.mark.parametrize("told", [True, False], ids=["SHARD_COUNT=2", "recommended"])
async def test_two_shards_play_in_their_own_guilds(
    lavalink: FakeLavalink, errors: ErrorLog, tmp_path: Path, told: bool
) -> None:
    guilds = [sharded_guild(1, 0, 2), sharded_guild(2, 1, 2), sharded_guild(3, 1, 2)]
    async with FakeDiscord(guilds=guilds, max_concurrency=2) as discord:
        env = bot_environment(discord, lavalink, tmp_path / "bot.db")
        if told:
            env["SHARD_COUNT"] = "2"
        else:
            discord.recommended_shards = 2
        settings = load_settings(env, env_file=None)
        async with running_bot(settings, discord, lavalink, errors) as app:
            assert sorted(app.bot.shards) == [0, 1]
            for guild in guilds:
                reply = await (
                    await discord.invoke(
                        "play",
                        {"query": "never gonna give you up"},
                        guild_id=guild.id,
                        user_id=guild.members[0],
                        channel_id=guild.text_channel_ids[0],
                    )
                ).reply()
                assert "Now playing" in reply.text
            for guild in guilds:
                await lavalink.wait_for(
                    lambda g=guild.id: (p := lavalink.player(g)) is not None and p.connected,
                    what=f"guild {guild.id} connected",
                )
            assert not discord.wrong_shard_voice_ops
            assert {(op.guild_id, op.shard) for op in discord.voice_ops} == {
                (g.id, shard_of(g.id, 2)) for g in guilds
            }
