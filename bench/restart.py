"""Restart figures: the real ``python -m bot`` against the fake Discord and fake Lavalink.

For 1, 10 and 100 guilds (each playing its own track with one more queued, 1-4 listeners
each), this breaks the bot in the four ways the tests do and measures, through the peers only:

* ``back s``: from the restart (bot process spawned, or Lavalink listening again) until every
  guild is in its voice channel with fresh credentials, playing its track again;
* ``pos err ms``: the largest distance between where a guild's track came back and where the
  music stopped for its listeners (resumed: where the never-stopped player is now);
* ``cmds/60s``: the most gateway commands (heartbeats and IDENTIFY included) the bot sent
  in any 60 s on the connection that did the re-joins, and ``op4`` how many were voice joins
  or leaves. Discord closes a connection past 120.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.restart [--guilds 1 10 100]``. Position reports
come every 5 s by default, as from a real Lavalink (``--update-interval``). Each row is printed
as its scenario finishes; a scenario that fails prints why, and the next one starts once every
guild plays again (the fleet is given up only if that does not happen).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.fleet import Fleet, fleet_catalogue, fleet_environment, plan_fleet
from peers.process import BotProcess, log_problems

WARM_UP_MS = 3000
BACK_TIMEOUT = 300.0


@dataclasses.dataclass
class Row:
    guilds: int
    scenario: str
    back_s: float
    pos_err_ms: int
    busiest: int
    op4: int


def _live_session(lavalink: FakeLavalink) -> str:
    return next(s.id for s in lavalink.sessions.values() if not s.paused)


def _position_error(
    back: dict[int, tuple[float, int]], expected: dict[int, int], since: float | None
) -> int:
    """``expected`` positions held at ``since`` by a still-running player, or frozen (None)."""
    errors = []
    for gid, (at, pos) in back.items():
        target = expected[gid] + (int((at - since) * 1000) if since is not None else 0)
        errors.append(abs(pos - target))
    return max(errors)


@dataclasses.dataclass
class Bench:
    """One fleet, one bot process (restarted many times), and the rows measured so far."""

    fleet: Fleet
    bot: BotProcess
    update_interval: float
    rows: list[Row] = dataclasses.field(default_factory=list)
    random: random.Random = dataclasses.field(default_factory=lambda: random.Random(2026))

    @property
    def discord(self) -> FakeDiscord:
        return self.fleet.discord

    @property
    def lavalink(self) -> FakeLavalink:
        return self.fleet.lavalink

    def _gateway(self, conn: int) -> tuple[int, int]:
        ops = self.discord.connection_ops[conn:]
        busiest = max(
            (self.discord.busiest_window(connection=conn + i) for i in range(len(ops))),
            default=0,
        )
        return busiest, sum(op == 4 for log in ops for _, op in log)

    def _row(
        self, scenario: str, started: float, back: dict[int, tuple[float, int]], err: int, conn: int
    ) -> None:
        took = max(t for t, _ in back.values()) - started
        row = Row(len(self.fleet.plans), scenario, took, err, *self._gateway(conn))
        self.rows.append(row)
        print_row(row)

    async def recover(self) -> None:
        """After a failed scenario: Lavalink and the bot running, every guild playing again."""
        if not self.lavalink.running:
            await self.lavalink.start()
        if not self.bot.running:
            await self.bot.start()
        await self.fleet.wait_all_back(BACK_TIMEOUT)

    async def _settle(self) -> None:
        """Wait a random part of a report interval more: a crash comes at any moment."""
        await self.discord.wait_until_ready(timeout=60)
        await asyncio.sleep(self.update_interval * (1 + self.random.random()))

    async def _restart(self, scenario: str, expected: dict[int, int], since: float | None) -> None:
        conn = len(self.discord.connection_ops)
        sessions = self.fleet.voice_sessions()
        started = time.monotonic()
        await self.bot.start()
        back = await self.fleet.wait_all_back(BACK_TIMEOUT, not_before=sessions)
        self._row(scenario, started, back, _position_error(back, expected, since), conn)

    async def start(self) -> None:
        await self.fleet.start_playing(self.bot, WARM_UP_MS)

    async def kill_resumed(self) -> None:
        """kill -9 with Lavalink up: the session resumes; the players never stopped."""
        await self._settle()
        await self.bot.kill9()
        killed_at, at_kill = time.monotonic(), self.fleet.positions()
        await self._restart("kill -9, resumed", at_kill, killed_at)

    async def sigterm_resumed(self) -> None:
        """SIGTERM: positions stored, session kept, exit 0 within 10 s; the next run resumes."""
        await self._settle()
        code = await self.bot.terminate(signal.SIGTERM, timeout=10)
        assert code == 0, f"exit status {code} after SIGTERM"
        stopped_at, at_stop = time.monotonic(), self.fleet.positions()
        self.bot.env["LAVALINK_RESUME_TIMEOUT"] = "1"  # set on resume, for kill_expired
        await self._restart("SIGTERM, resumed", at_stop, stopped_at)

    async def kill_expired(self) -> None:
        """kill -9 and down past the resume timeout: every player rebuilt from the database."""
        await self._settle()
        session = _live_session(self.lavalink)
        await self.lavalink.wait_for(lambda: self.lavalink.sessions[session].timeout == 1)
        await self.bot.kill9()
        last_heard = self.fleet.positions()
        while session in self.lavalink.sessions:  # the music plays on until the expiry
            last_heard = self.fleet.positions()
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        await self._restart("kill -9, session expired", last_heard, None)

    async def lavalink_restart(self) -> None:
        """Lavalink dies, the bot stays: it leaves voice after the grace, rebuilds on return."""
        await self._settle()
        conn = len(self.discord.connection_ops) - 1
        at_kill = self.fleet.positions()
        await self.lavalink.kill()
        await self.discord.wait_for(
            lambda: all(self.discord.bot_voice_channel(p.id) is None for p in self.fleet.plans),
            timeout=BACK_TIMEOUT,
            what="the bot to leave voice",
        )
        started = time.monotonic()
        await self.lavalink.start()
        back = await self.fleet.wait_all_back(BACK_TIMEOUT)
        self._row("Lavalink restart", started, back, _position_error(back, at_kill, None), conn)


async def run_fleet(count: int, update_interval: float, workdir: Path) -> list[Row]:
    plans = plan_fleet(count)
    async with FakeDiscord(guilds=[p.guild for p in plans]) as discord:
        lavalink = FakeLavalink(
            catalogue=fleet_catalogue(plans), player_update_interval=update_interval
        )
        await lavalink.start()
        env = fleet_environment(discord, lavalink, workdir / "bot.db")
        bot = BotProcess(env, workdir, workdir / "bot.log")
        bench = Bench(Fleet(discord, lavalink, plans), bot, update_interval)
        scenarios = [
            bench.kill_resumed, bench.sigterm_resumed, bench.kill_expired, bench.lavalink_restart
        ]  # fmt: skip
        try:
            await bench.start()
            for scenario in scenarios:
                try:
                    await scenario()
                except (AssertionError, TimeoutError, RuntimeError) as exc:
                    name = scenario.__name__.replace("_", " ")
                    print(f"{count:>6}  {name:<26}FAILED: {exc!r}"[:200], flush=True)
                    await bench.recover()
            code = await bot.terminate(signal.SIGTERM, timeout=10)
            assert code == 0, f"exit status {code} after SIGTERM"
        finally:
            await bot.reap()
            await lavalink.stop()
        problems = log_problems(bot.log(), [discord.token, lavalink.password])
        if problems or discord.rate_limited:
            print(f"!! {count} guilds: rate limited {discord.rate_limited}x; {problems[:5]}")
    return bench.rows


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--update-interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(
        f"{'guilds':>6}  {'scenario':<26}{'back s':>7}{'pos err ms':>12}{'cmds/60s':>10}{'op4':>5}"
    )
    for count in args.guilds:
        with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
            await run_fleet(count, args.update_interval, Path(tmp))
    return 0


def print_row(row: Row) -> None:
    print(
        f"{row.guilds:>6}  {row.scenario:<26}{row.back_s:>7.2f}{row.pos_err_ms:>12}"
        f"{row.busiest:>10}{row.op4:>5}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
