"""A sharded restart: the real ``python -m bot`` with ``SHARD_COUNT`` 1 or 4, killed and back.

Issue 15, "Outgrowing one process": 1,000 guilds over 4 shards in one process; after a restart,
how long until all play again, and how busy each shard's gateway connection gets (goal: about
a quarter of the single-shard time, under 120 payloads in any 60 s per shard).

``--guilds`` guilds (1-4 listeners each, spread evenly over the shards and, within each shard,
over listener counts) hold a queue of 3-minute tracks, seeded as playing in their voice channel
through the bot's :class:`Repository` (as in ``bench/fleet.py``). For each ``--shards`` count:
the bot starts with that ``SHARD_COUNT`` and re-joins every guild (setup: its op 4 pacing, 110
per sliding minute per shard, makes that ~(N / shards - 110) / 110 minutes), then is killed
with ``kill -9`` and started again with the same ``SHARD_COUNT``. Lavalink's session is left
resumable, but the gateway sessions are new, so every guild is re-joined (op 4) on its shard.
Measured through the fakes only:

* ``back s``: from the new process spawned until every guild is in its channel again, on a
  voice session newer than before the kill, its player running a track over those credentials;
* per shard, the most gateway payloads (heartbeats and IDENTIFY included) in any 60 s on the
  connections opened after the restart, and the op 4 sent on them (Discord closes past 120);
* op 4 sent on a shard the guild is not on (Discord ignores them), 4008 closes, and whether the
  bot resumed its Lavalink session.

The fake Discord answers GET /gateway/bot with ``max_concurrency`` ``--max-concurrency`` (4:
hikari starts four shards at once; 1 would start them 5 s apart) and refuses a second IDENTIFY
per bucket within 5 s, as Discord does. Run: ``PYTHONPATH=. .venv/bin/python -m bench.reshard
[--guilds 1000] [--shards 1 4]``; each row is printed as its shard count finishes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench.fleet import SETTLE_S, TRACK_MS, UPDATE_INTERVAL, Bench, expected_join_s, seed
from bench.outside import Traffic, gateway_note
from bot.lavalink.hikari_glue import VOICE_UPDATES_PER_MINUTE
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.fleet import Fleet, fleet_environment, plan_fleet
from peers.gateway_shards import IDENTIFY_WINDOW
from peers.process import BotProcess, log_problems

__all__ = ["Row", "main"]


@dataclasses.dataclass
class Row:
    guilds: int
    shards: int
    setup_s: float
    back_s: float
    busiest: list[int]
    """Per shard: most payloads in any 60 s after the restart."""
    op4: list[int]
    """Per shard: op 4 sent after the restart."""
    wrong_shard: int
    closes: int
    resumed: bool


def _live_sessions(lavalink: FakeLavalink) -> set[str]:
    return {s.id for s in lavalink.sessions.values() if not s.paused}


def shard_gateway(discord: FakeDiscord, first: int, shards: int) -> tuple[list[int], list[int]]:
    """Per shard, over the connections from index ``first`` on: the busiest 60 s, the op 4s."""
    busiest, op4 = [], []
    for shard in range(shards):
        conns = [
            i
            for i in range(first, len(discord.connection_ops))
            if discord.connection_shards[i] == shard
        ]
        busiest.append(max((discord.busiest_window(connection=i) for i in conns), default=0))
        op4.append(sum(op == 4 for i in conns for _, op in discord.connection_ops[i]))
    return busiest, op4


async def _progress(fleet: Fleet, stale: dict[int, str | None], started: float) -> None:
    """A line a minute while the guilds come back (the 1-shard run takes minutes)."""
    while True:
        await asyncio.sleep(60)
        back = sum(fleet.playing_again(p, stale[p.id], own_track=False) for p in fleet.plans)
        print(f"  {time.monotonic() - started:6.0f} s: {back:,} back", flush=True)


async def restart(fleet: Fleet, bot: BotProcess, timeout: float) -> tuple[float, int, bool]:
    """kill -9 and start again; seconds until every guild plays again, the first connection
    index of the new process, and whether it resumed the Lavalink session it had."""
    sessions = _live_sessions(fleet.lavalink)
    stale = fleet.voice_sessions()
    first = len(fleet.discord.connection_ops)
    await bot.kill9()
    started = time.monotonic()
    await bot.start()
    shown = asyncio.create_task(_progress(fleet, stale, started))
    try:
        back = await fleet.wait_all_back(timeout, not_before=stale, own_track=False)
    finally:
        shown.cancel()
    took = max(t for t, _ in back.values()) - started
    return took, first, _live_sessions(fleet.lavalink) == sessions


async def run_one(guilds: int, shards: int, max_concurrency: int, workdir: Path) -> Row:
    plans = plan_fleet(guilds, shards=shards)
    join_s = expected_join_s(guilds, shards, max_concurrency)
    entries = math.ceil((2 * join_s + 600) * 1000 / TRACK_MS) + 2
    db = workdir / "bot.db"
    await seed(f"sqlite+aiosqlite:///{db}", plans, entries)
    print(
        f"{guilds:,} guilds on {shards} shard(s) ({math.ceil(guilds / shards)} a shard); joining "
        f"them takes ~{join_s / 60:.1f} min at start ({VOICE_UPDATES_PER_MINUTE} op 4 a minute "
        "per shard), and again after the restart",
        flush=True,
    )
    loop = asyncio.get_running_loop()
    async with FakeDiscord(
        guilds=[p.guild for p in plans], max_concurrency=max_concurrency
    ) as discord:
        discord.identify_window = IDENTIFY_WINDOW
        lavalink = FakeLavalink(player_update_interval=UPDATE_INTERVAL)
        lavalink.keep_sent = False
        await lavalink.start()
        env = {**fleet_environment(discord, lavalink, db), "SHARD_COUNT": str(shards)}
        bot = BotProcess(env, workdir, workdir / "bot.log")
        setup = Bench(discord, lavalink, plans, bot, Traffic(loop), 0, shards=shards)
        began = loop.time()
        try:
            setup_s = await setup.start()
            print(f"setup: every guild playing {setup_s:.1f} s after the start", flush=True)
            await asyncio.sleep(SETTLE_S)
            fleet = Fleet(discord, lavalink, plans)
            back_s, first, resumed = await restart(fleet, bot, join_s * 1.5 + 180)
            with contextlib.suppress(TimeoutError):
                await bot.terminate(signal.SIGTERM, timeout=20)
        finally:
            await bot.reap()
            await lavalink.stop()
        busiest, op4 = shard_gateway(discord, first, shards)
        print(f"gateway: {gateway_note(discord, began)}")
        problems = log_problems(bot.log(), [discord.token, lavalink.password])
        if problems or discord.identify_refusals:
            print(f"!! refused IDENTIFYs {discord.identify_refusals}; log: {problems[:5]}")
    wrong = len(discord.wrong_shard_voice_ops)
    return Row(guilds, shards, setup_s, back_s, busiest, op4, wrong, discord.rate_limited, resumed)


HEADER = (
    f"{'guilds':>6}{'shards':>7}{'setup s':>9}{'back s':>8}{'x 1 shard':>10}  "
    f"{'busiest 60 s per shard (op 4 sent)':<40}{'wrong-shard op4':>16}{'4008':>6}  resumed"
)


def print_row(row: Row, single: float | None) -> None:
    ratio = f"{row.back_s / single:.2f}" if single else "-"
    shards = ", ".join(f"{b} ({n})" for b, n in zip(row.busiest, row.op4, strict=True))
    print(
        f"{row.guilds:>6}{row.shards:>7}{row.setup_s:>9.1f}{row.back_s:>8.1f}{ratio:>10}  "
        f"{shards:<40}{row.wrong_shard:>16}{row.closes:>6}  {'yes' if row.resumed else 'NO'}",
        flush=True,
    )


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=1_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {load}")
    rows: list[Row] = []
    for shards in args.shards:
        with tempfile.TemporaryDirectory(prefix="bench-reshard-") as tmp:
            try:
                row = await run_one(args.guilds, shards, args.max_concurrency, Path(tmp))
            except (AssertionError, TimeoutError, RuntimeError) as exc:
                print(f"!! {shards} shard(s) FAILED: {exc!r}"[:300], flush=True)
                continue
        rows.append(row)
        print(HEADER)
        print_row(row, next((r.back_s for r in rows if r.shards == 1), None))
    single = next((r.back_s for r in rows if r.shards == 1), None)
    print(f"\n{HEADER}")
    for row in rows:
        print_row(row, single)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
