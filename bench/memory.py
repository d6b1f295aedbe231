"""Memory per player: what ``LavalinkClient`` keeps for a guild that joined and plays.

Against the bench node (the fake Lavalink in its own process, so its memory is not counted),
the client joins N guilds (``connect``: voice state and voice server forwarded), starts a track
in each (``play``) and receives the ``TrackStartEvent`` and ``playerUpdate`` a node sends when a
track starts, which is all a playing guild holds
between frames: voice credentials, lock, playback record, last state, stall watch, mailbox.
``tracemalloc`` counts the live Python memory added (after ``gc.collect()``) divided by N.
A warm-up of a few guilds first keeps one-off costs (sockets, decoders, caches) out of it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from bench.musicbot import DiscordStandIn, until
from bench.node import NodeProcess
from bot.lavalink import LavalinkClient, NodeConfig
from peers.catalogue import youtube_track
from peers.tracks import encode_track

_BUDGET = 10 * 1024
_BATCH = 50


async def _join_and_play(client: LavalinkClient, first: int, count: int) -> None:
    async def one(index: int) -> None:
        guild_id = workload.GUILD_BASE + index
        await client.connect(guild_id, workload.CHANNEL_BASE + index)
        encoded = encode_track(youtube_track(index % 997, index))
        await client.play(guild_id, encoded, user_data={"requester": "123456789012345678"})

    for start in range(first, first + count, _BATCH):
        stop = min(start + _BATCH, first + count)
        await asyncio.gather(*(one(i) for i in range(start, stop)))


async def _updated(client: LavalinkClient, first: int, count: int) -> None:
    """Until every guild has the ``playerUpdate`` a node sends when its track starts."""
    guilds = [workload.GUILD_BASE + i for i in range(first, first + count)]
    await until(lambda: all(client.position(g) is not None for g in guilds), "player updates", 120)
    await asyncio.sleep(0.2)  # let every guild's mailbox deliver and retire its task


async def main(players: int) -> int:
    gateway = DiscordStandIn()
    async with NodeProcess(frames=1, guilds=1, playlist=1) as server:
        client = LavalinkClient([NodeConfig("bench", server.url, workload.PASSWORD)], gateway)
        gateway.client = client

        async def listener(event: object) -> None:
            return None  # the bot's listener would act; here only the client's memory counts

        client.set_listener(listener)
        await client.start(workload.BOT_USER_ID)
        try:
            await until(lambda: client.available, "the client to connect")
            warm = 100
            await _join_and_play(client, 0, warm)
            await _updated(client, 0, warm)

            gc.collect()
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            started = time.perf_counter()
            await _join_and_play(client, warm, players)
            await _updated(client, warm, players)
            gc.collect()
            after = tracemalloc.take_snapshot()
            took = time.perf_counter() - started
            tracemalloc.stop()
        finally:
            await client.close()

    diff = after.compare_to(before, "lineno")
    added = sum(stat.size_diff for stat in diff)
    per_player = added / players
    print(f"players: {players:,} joined + playing + one playerUpdate each ({took:.1f} s)")
    print(f"memory per player: {per_player:,.0f} bytes (budget {_BUDGET:,} bytes)")
    print("largest per-player costs (bytes per player, allocation site):")
    for stat in sorted(diff, key=lambda s: s.size_diff, reverse=True)[:8]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"  {stat.size_diff / players:>8,.0f}  {where}")
    verdict = "meets" if per_player < _BUDGET else "MISSES"
    print(f"{verdict} the < 10 KB per player target")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=10_000)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.players)))
