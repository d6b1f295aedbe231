"""A 1,000-track playlist ``loadtracks`` answer: bytes to ``LoadResult``, and over HTTP.

The answer is what a node sends for a YouTube playlist (protocol §2.4: ``loadType``
``playlist``, full Track objects with lavaplayer ``encoded`` strings). Two figures:

* parse: the bytes through a msgspec decoder for the public ``LoadResult`` type, as
  ``RestClient`` decodes ``/v4/loadtracks``, to a
  :class:`~bot.lavalink.PlaylistResult` of 1,000 typed tracks; median of many runs;
* end to end: ``LavalinkClient.load_tracks`` against the local bench node (the fake
  Lavalink in its own process, ``bench/node.py``):
  request, response, parse;
* stored: from the parsed answer until the rows are committed, as ``/play`` does it: each
  track made a queue entry (``new_entry``), then ``Repository.enqueue`` into a SQLite file on
  disk (as in production), a new guild each run. Goal (issue 14): under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import workload
from bench.musicbot import DiscordStandIn, until
from bench.node import NodeProcess
from bot.lavalink import LavalinkClient, LoadResult, NodeConfig, PlaylistResult
from bot.services.guild import new_entry
from bot.storage import PlayerRecord, Repository
from peers.catalogue import BENCH_PLAYLIST_URL, bench_playlist_answer

_BUDGET_MS = 50.0
_STORED_BUDGET_MS = 100.0


def _check(result: LoadResult, tracks: int) -> None:
    if not isinstance(result, PlaylistResult) or len(result.data.tracks) != tracks:
        raise RuntimeError(f"unexpected load result: {type(result).__name__}")


def _summary(label: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(
        f"{label:<44} median {median:6.2f} ms   min {samples[0]:6.2f} ms   "
        f"p95 {p95:6.2f} ms   ({len(samples)} runs)"
    )
    return median


def parse(tracks: int, runs: int) -> float:
    payload = bench_playlist_answer(tracks)
    # Through the public LoadResult type, decoded as RestClient.load_tracks decodes it: one
    # msgspec decoder for the type, strict=False (numbers in strings accepted, as from a node).
    decoder = msgspec.json.Decoder(LoadResult, strict=False)
    _check(decoder.decode(payload), tracks)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = decoder.decode(payload)
        samples.append((time.perf_counter() - start) * 1000)
        _check(result, tracks)
    print(f"answer: {len(payload):,} bytes, {tracks:,} tracks")
    return _summary("parse (bytes -> LoadResult)", samples)


async def end_to_end(tracks: int, runs: int) -> float:
    gateway = DiscordStandIn()
    async with NodeProcess(frames=1, guilds=1, playlist=tracks) as server:
        client = LavalinkClient([NodeConfig("bench", server.url, workload.PASSWORD)], gateway)
        gateway.client = client
        await client.start(workload.BOT_USER_ID)
        try:
            await until(lambda: client.available, "the client to connect")
            query = BENCH_PLAYLIST_URL
            _check(await client.load_tracks(query), tracks)  # warm the connection
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                result = await client.load_tracks(query)
                samples.append((time.perf_counter() - start) * 1000)
                _check(result, tracks)
        finally:
            await client.close()
    return _summary("end to end (load_tracks over local HTTP)", samples)


async def stored(tracks: int, runs: int) -> float:
    decoder = msgspec.json.Decoder(LoadResult, strict=False)
    result = decoder.decode(bench_playlist_answer(tracks))
    assert isinstance(result, PlaylistResult)
    with tempfile.TemporaryDirectory() as folder:
        repo = await Repository.open(f"sqlite+aiosqlite:///{folder}/bot.db")
        try:
            samples = []
            for guild_id in range(1, runs + 2):
                start = time.perf_counter()
                entries = [new_entry(track, requester_id=1) for track in result.data.tracks]
                _, added = await repo.enqueue(PlayerRecord(guild_id=guild_id), entries, start=True)
                if guild_id > 1:  # the first run warms the connection and the statement cache
                    samples.append((time.perf_counter() - start) * 1000)
                if len(added) != tracks:
                    raise RuntimeError(f"stored {len(added)} of {tracks} tracks")
        finally:
            await repo.close()
    return _summary("stored (answer -> entries -> rows committed)", samples)


def main(tracks: int, runs: int) -> int:
    median = parse(tracks, runs)
    asyncio.run(end_to_end(tracks, max(10, runs // 4)))
    kept = asyncio.run(stored(tracks, max(10, runs // 10)))
    verdict = "meets" if median < _BUDGET_MS else "MISSES"
    print(f"{verdict} the < {_BUDGET_MS:.0f} ms parse target")
    verdict = "meets" if kept < _STORED_BUDGET_MS else "MISSES"
    print(f"{verdict} the < {_STORED_BUDGET_MS:.0f} ms stored target")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    sys.exit(main(args.tracks, args.runs))
