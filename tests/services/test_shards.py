"""Two processes on one database, each with its own shards: each loads, restores and keeps
alive only its own guilds (issue 15)."""

from __future__ import annotations

from bot import lavalink
from bot.services import QueueService
from bot.services.heartbeat import process_key
from bot.shards import ShardSet, shard_of
from bot.storage import Repository
from tests.services.fakes import LISTENER, TEXT, Bot, FakeDiscordView, RecordingLavalink

ON_0 = [(n * 2) << 22 for n in range(1, 4)]
ON_1 = [(n * 2 + 1) << 22 for n in range(1, 3)]


async def test_each_process_loads_and_restores_only_its_own_guilds(bot: Bot, url: str) -> None:
    assert all(shard_of(g, 2) == 0 for g in ON_0)
    assert all(shard_of(g, 2) == 1 for g in ON_1)
    for guild_id in ON_0 + ON_1:
        await bot.service.play(guild_id, LISTENER, TEXT, "2 songs")
    await bot.repo.close()  # the single process stops; two take over its guilds

    processes = []
    for shard in (0, 1):
        repo = await Repository.open(url)
        lava = RecordingLavalink()
        service = QueueService(
            repo, lava, FakeDiscordView(), shards=ShardSet(frozenset({shard}), 2)
        )
        await service.load()
        processes.append((repo, lava, service))
    try:
        (_, lava_0, first), (_, lava_1, second) = processes
        assert first.guild_ids() == frozenset(ON_0)
        assert second.guild_ids() == frozenset(ON_1)
        for lava, service in ((lava_0, first), (lava_1, second)):
            await service.handle_event(lavalink.SessionReady(lava.node, "fresh", False))
            await service._reactions.drain(5)
        assert set(lava_0.players) == set(ON_0)  # each rebuilt its own, nobody else's
        assert set(lava_1.players) == set(ON_1)
        assert first.heartbeat._key != second.heartbeat._key
        assert first.heartbeat._key == process_key(ShardSet(frozenset({0}), 2))
    finally:
        for repo, _, service in processes:
            await service.controller.close()
            await service.heartbeat.close(last_beat=False)
            await repo.close()
