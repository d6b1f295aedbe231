"""Time to heal: the real ``python -m bot`` against the fakes, broken in the ways users meet.

Each guild of a fleet plays its own track with one more queued (1-4 listeners each); then
one thing goes wrong for every guild at once, and this measures through the peers only:

* ``heal s``: from the moment the bot can act again (its new gateway session identified, the
  Lavalink node listening again, the divergence injected) until every guild is in its voice
  channel with the latest credentials, playing its own track again;
* ``pos err ms``: the largest distance between where a guild's track came back and where the
  music stopped for its listeners (for a still-running player: where it is by then).

Scenarios: Discord invalidates the gateway session (op 9; voice dropped, Lavalink's voice
sockets closed 4014), asks for a reconnect (op 7), the socket is cut (1006); the Lavalink node
dies and comes back; and, found only by the reconciler's periodic pass (every 5 s): voice
dropped by Discord's voice server alone, the player lost by the node, the player paused
behind the bot's back, the position frozen.

Run: ``PYTHONPATH=. .venv/bin/python -m bench.heal [--guilds 3 30]``. Position reports come
every 5 s, as from a real Lavalink. Each scenario starts once the bot could send a leave and a
join per guild within its op 4 budget (110 per sliding minute), so the figures are the heal,
not the pacing of earlier scenarios' re-joins.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.fleet import Fleet, fleet_catalogue, fleet_environment, plan_fleet
from peers.process import BotProcess, log_problems
from peers.voice import discord_voice_check

WARM_UP_MS = 3000
HEAL_TIMEOUT = 60.0


@dataclasses.dataclass
class Row:
    guilds: int
    scenario: str
    heal_s: float
    pos_err_ms: int


@dataclasses.dataclass
class Bench:
    fleet: Fleet
    bot: BotProcess
    rows: list[Row] = dataclasses.field(default_factory=list)

    @property
    def discord(self) -> FakeDiscord:
        return self.fleet.discord

    @property
    def lavalink(self) -> FakeLavalink:
        return self.fleet.lavalink

    async def start(self) -> None:
        await self.fleet.start_playing(self.bot, WARM_UP_MS)

    async def measure(
        self,
        scenario: str,
        breaks: Callable[[], Awaitable[tuple[float, dict[int, int]]]],
        *,
        running: bool,
    ) -> None:
        """``breaks`` does the damage; it returns the loop time from which the bot can act and
        each guild's position when the music stopped (or, ``running``, when the damage began:
        the players played on through it, so the expected position moves with the clock).
        """
        await self._gateway_budget()
        await asyncio.sleep(2.5)  # between two position reports
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        since, stopped = await breaks()
        back: dict[int, tuple[float, int]] = {}
        deadline = loop.time() + HEAL_TIMEOUT
        while len(back) < len(self.fleet.plans):
            for plan in self.fleet.plans:
                if plan.id not in back and self.fleet.playing_again(plan):
                    player = self.lavalink.player(plan.id)
                    assert player is not None
                    back[plan.id] = (loop.time(), player.position)
            if loop.time() > deadline:
                missing = [p.id for p in self.fleet.plans if p.id not in back]
                raise AssertionError(f"{scenario}: {len(missing)} guild(s) still silent")
            await asyncio.sleep(0.01)
        errors = []
        for guild_id, (at, position) in back.items():
            target = stopped[guild_id] + (int((at - stopped_at) * 1000) if running else 0)
            errors.append(abs(position - target))
        took = max(at for at, _ in back.values()) - since
        self.rows.append(Row(len(self.fleet.plans), scenario, max(0.0, took), max(errors)))
        await asyncio.sleep(1.0)

    async def _gateway_budget(self) -> None:
        """Wait until the bot may send a leave and a join per guild within its op 4 budget.

        The bot paces op 4 at 110 per sliding minute (Discord closes the gateway past 120
        commands); scenarios run back to back would otherwise measure that pacing, not the
        heal (30 guilds: joins, op 9 re-joins, then 60 for a lost node is over 110).
        """
        now = asyncio.get_running_loop().time()
        recent = sorted(op.at for op in self.discord.voice_ops if op.at > now - 60)
        excess = len(recent) + 2 * len(self.fleet.plans) - 110
        if excess > 0:  # the bot is idle meanwhile: no new op 4 comes in
            await asyncio.sleep(recent[min(excess, len(recent)) - 1] + 60 - now)

    async def op9(self) -> tuple[float, dict[int, int]]:
        identified = self.discord.identify_count
        await self.discord.drop_gateway(resumable=False)
        stopped = self.fleet.positions()  # voice closed: every player froze there
        await self.discord.wait_for(
            lambda: self.discord.identify_count > identified and self.discord.connected,
            timeout=30,
        )
        return next(t for t, op in self.discord.connection_ops[-1] if op == 2), stopped

    async def op7(self) -> tuple[float, dict[int, int]]:
        resumed, before = self.discord.resume_count, self.fleet.positions()
        await self.discord.request_reconnect()
        await self.discord.wait_for(lambda: self.discord.resume_count > resumed, timeout=30)
        return asyncio.get_running_loop().time(), before

    async def cut(self) -> tuple[float, dict[int, int]]:
        resumed, before = self.discord.resume_count, self.fleet.positions()
        await self.discord.drop_gateway(resumable=True, abnormal=True)
        await self.discord.wait_for(lambda: self.discord.resume_count > resumed, timeout=30)
        return asyncio.get_running_loop().time(), before

    async def node_lost(self) -> tuple[float, dict[int, int]]:
        stopped = self.fleet.positions()
        await self.lavalink.kill()
        await self.discord.wait_for(
            lambda: all(self.discord.bot_voice_channel(p.id) is None for p in self.fleet.plans),
            timeout=60,
            what="the bot to leave voice",
        )
        await self.lavalink.start()
        return asyncio.get_running_loop().time(), stopped

    def _inject(
        self, damage: Callable[[int], object]
    ) -> Callable[[], Awaitable[tuple[float, dict[int, int]]]]:
        async def breaks() -> tuple[float, dict[int, int]]:
            stopped = self.fleet.positions()
            for plan in self.fleet.plans:
                damage(plan.id)
            return asyncio.get_running_loop().time(), stopped

        return breaks


async def run_fleet(count: int, workdir: Path) -> list[Row]:
    plans = plan_fleet(count)
    async with FakeDiscord(guilds=[p.guild for p in plans]) as discord:
        lavalink = FakeLavalink(catalogue=fleet_catalogue(plans), player_update_interval=5.0)
        lavalink.voice_check = discord_voice_check(discord)

        def voice_server_drops(guild_id: int, _channel_id: int) -> None:
            if lavalink.player(guild_id) is not None:
                lavalink.close_voice(guild_id, 4014, "Disconnected.")

        discord.voice_dropped_hooks.append(voice_server_drops)
        await lavalink.start()
        env = fleet_environment(discord, lavalink, workdir / "bot.db")
        bot = BotProcess(env, workdir, workdir / "bot.log")
        bench = Bench(Fleet(discord, lavalink, plans), bot)
        try:
            await bench.start()
            await bench.measure("gateway op 9 (invalidated)", bench.op9, running=False)
            await bench.measure("gateway op 7 (reconnect)", bench.op7, running=True)
            await bench.measure("gateway cut (1006)", bench.cut, running=True)
            await bench.measure("Lavalink lost, back", bench.node_lost, running=False)
            await bench.measure(
                "voice dropped (no event)",
                bench._inject(discord.drop_bot_voice),
                running=False,
            )
            await bench.measure(
                "player lost by the node", bench._inject(lavalink.drop_player), running=False
            )
            await bench.measure(
                "paused behind our back",
                bench._inject(lambda g: lavalink.set_paused(g, True)),
                running=False,
            )
            await bench.measure("position frozen", bench._inject(lavalink.stall), running=False)
            code = await bot.terminate(signal.SIGTERM, timeout=10)
            assert code == 0, f"exit status {code} after SIGTERM"
        finally:
            await bot.reap()
            await lavalink.stop()
        problems = log_problems(bot.log(), [discord.token, lavalink.password])
        if problems or discord.rate_limited or discord.gateway_errors:
            print(f"!! {count} guilds: {problems[:5]} {discord.gateway_errors[:3]}")
    return bench.rows


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, nargs="+", default=[3, 30])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"{'guilds':>6}  {'scenario':<30}{'heal s':>8}{'pos err ms':>12}")
    for count in args.guilds:
        with tempfile.TemporaryDirectory(prefix="bench-heal-") as tmp:
            for row in await run_fleet(count, Path(tmp)):
                print(
                    f"{row.guilds:>6}  {row.scenario:<30}{row.heal_s:>8.2f}{row.pos_err_ms:>12}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
