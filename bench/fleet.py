"""Many guilds playing at once: the real ``python -m bot`` against the fake Discord and Lavalink.

Issue 14, "2,500 playing servers on a tenth of a core". ``--guilds`` guilds (1,000 by default)
hold a queue of 3-minute tracks, seeded through the bot's :class:`Repository` into SQLite on
disk before the bot starts, stored as playing in their voice channel at staggered positions.
The bot re-joins and plays every one of them at start, as after any restart; the fake Lavalink
sends each playing player a ``playerUpdate`` every 5 s, as a real node does, and ends tracks
when they run out, so tracks change all the time, spread out. Once every guild plays (and a
short settle), a steady window of ``--seconds`` measures, from outside the bot only:

* CPU of the bot process (``/proc/<pid>/stat`` utime + stime; one core = 100 %) and its RSS;
* database commits per second: the bot's own write counter, read from its Prometheus endpoint
  (``musicbot_db_write_seconds_count`` minus failures, each a committed transaction), against
  track changes per second (the fake's ``TrackStartEvent`` s) and position reports per second;
* the event backlog: for each track that ended by itself in the window, the delay from the
  node's ``TrackEndEvent`` to the ``TrackStartEvent`` of the next track, i.e. until the bot's
  request to play it arrived (median and max).

With ``--commands`` (on by default at 1,000 guilds), ``/skip``, ``/play <link>`` and ``/queue``
then run one at a time, each in a guild of its own, while the fleet plays; each figure is the
fake's loop time from the INTERACTION_CREATE written to the bot's socket to its callback.

Joining takes time: the bot sends at most 110 voice joins (op 4) per sliding minute and shard,
within Discord's 120 gateway commands a minute per connection. The fake Discord recommends a
shard per 1,000 guilds, as Discord does, and the bot runs what is recommended, so N guilds on
S shards need about (N / S - 110) / 110 minutes before the window opens (2,500 on 3: ~7 min).
A bot that cannot keep up never gets every guild playing: once the joins should be over and
the count made no new high for 4 minutes, the window opens anyway and the report says how many
played. Run: ``PYTHONPATH=. .venv/bin/python -m bench.fleet [--guilds 2500] [--seconds 60]
[--no-commands]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.outside import (
    Traffic,
    answer,
    commits,
    cpu_seconds,
    free_port,
    gateway_note,
    rss_kb,
    scrape,
)
from bot.lavalink.hikari_glue import VOICE_UPDATES_PER_MINUTE
from bot.services.heartbeat import PROCESS_KEY
from bot.storage import NewEntry, PlayerRecord, Repository
from peers.catalogue import youtube_track
from peers.fake_discord import FakeDiscord, Interaction
from peers.fake_lavalink import Catalogue, FakeLavalink
from peers.fleet import (
    RESUME_TIMEOUT_S,
    GuildPlan,
    fleet_environment,
    plan_fleet,
    plays_in_channel,
)
from peers.gateway_shards import recommended_shards
from peers.process import BotProcess, log_problems
from peers.tracks import TrackInfo, encode_track

TRACK_MS = 180_000
UPDATE_INTERVAL = 5.0
STALLED_S = 240.0
SETTLE_S = 10.0
"""After the last guild plays: its join's follow-ups (controller post, first reports) pass."""


PLAYED_LINKS = 90_000
"""``/play`` queues tracks of made-up guild numbers from here on, apart from the seeded ones."""


def _track(guild: int, number: int) -> TrackInfo:
    return dataclasses.replace(youtube_track(guild, number), length=TRACK_MS)


def expected_join_s(guilds: int, shards: int | None = None, max_concurrency: int = 1) -> float:
    """Seconds the bot's op 4 pacing needs to join ``guilds`` voice channels: each shard
    (``shards``, or as many as Discord recommends, which the bot runs) has its own budget,
    and hikari starts ``max_concurrency`` shards at once, 5 s after the previous ones."""
    shards = shards or recommended_shards(guilds)
    per_shard = math.ceil(guilds / shards)
    joins = max(0, per_shard - VOICE_UPDATES_PER_MINUTE) / VOICE_UPDATES_PER_MINUTE * 60
    return (math.ceil(shards / max_concurrency) - 1) * 5 + joins


async def seed(url: str, plans: list[GuildPlan], entries: int) -> None:
    """Every guild's queue of ``entries`` tracks, playing in its voice channel; positions
    staggered over a whole track so that track ends spread evenly over time.

    The bot rebuilds each player where its music stopped: its anchor followed up to the last
    sign of life of the process that played it, plus the node's resume timeout. Without a
    liveness row that is the anchor's own moment plus the timeout, so every rebuilt guild
    would start 60 s further in, and the third past the end would all start a new track as
    they join: 110 at once per shard and minute, ending together 3 minutes later. A liveness
    row one timeout before the anchors makes each guild start exactly at its staggered place.
    """
    repo = await Repository.open(url)
    seeded_at = int(time.time() * 1000)
    try:
        for n, plan in enumerate(plans):
            player = PlayerRecord(
                plan.id, voice_channel_id=plan.voice_channel, text_channel_id=plan.text_channel
            )
            tracks = [_track(n, k) for k in range(entries)]
            new = [
                NewEntry(encode_track(t), t.title, t.author, t.length, False, t.uri, plan.user)
                for t in tracks
            ]
            stored, _ = await repo.enqueue(player, new, start=True)
            offset = (n * 7919) % len(plans) * TRACK_MS // len(plans)
            await repo.save_player(
                dataclasses.replace(stored, position_ms=offset, position_at_ms=seeded_at)
            )
        await repo.liveness.beat(PROCESS_KEY, seeded_at - RESUME_TIMEOUT_S * 1000)
    finally:
        await repo.close()


@dataclasses.dataclass
class Window:
    seconds: float
    cpu_pct: float
    rss_kb: int
    rss_max_kb: int
    commits: float
    changes: int
    updates: int
    lags: list[float]
    missing: int
    bench_cpu_pct: float
    bot_playing: float
    ready_rss_kb: int
    scrape_s: float
    """The slower of the two answers of the bot's metrics endpoint."""
    playing: int
    """The fewer of the guilds seen playing at the window's start and at its end."""
    lag_probes: int
    """The bot's loop-lag probes in the window (one due every 0.25 s)."""
    lag_late: dict[float, int]
    """Probes that ran later than each bucket bound (s): a pass kept the loop that long."""
    edits: int
    """Message edits the fake Discord took (the controllers: about one per track change)."""
    cpu_each_s: list[float]
    """The bot's CPU in each whole second of the window (% of a core): bursts show here."""
    full_collections: int
    """Full garbage collections in the window (each stops the loop for tens of ms)."""


@dataclasses.dataclass
class Bench:
    discord: FakeDiscord
    lavalink: FakeLavalink
    plans: list[GuildPlan]
    bot: BotProcess
    traffic: Traffic
    metrics_port: int
    ready_rss_kb: int = 0
    """The bot's RSS once ready: every guild loaded from the database, none joined yet."""
    profile: Path | None = None
    """Record the bot with py-spy during the window (raw, for flame graphs) into this file."""
    shards: int | None = None
    """The bot's ``SHARD_COUNT`` (None: as Discord recommends), for the expected join time."""

    @property
    def pid(self) -> int:
        assert self.bot.process is not None
        return self.bot.process.pid

    def playing(self) -> int:
        """Guilds where the bot is in the channel and the node plays a track now."""
        return sum(plays_in_channel(self.discord, self.lavalink, p) for p in self.plans)

    def _check_alive(self) -> None:
        if not self.bot.running:
            raise RuntimeError(f"the bot exited: {self.bot.log()[-2000:]}")

    async def start(self) -> float:
        """Start the bot; until every guild plays. Returns the seconds that took."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self.bot.start()
        await self.discord.wait_until_ready(timeout=300)
        self.ready_rss_kb = rss_kb(self.pid)
        print(
            f"bot ready after {loop.time() - began:.1f} s, RSS {self.ready_rss_kb / 1024:.0f} MB;"
            " joining...",
            flush=True,
        )
        # A bot that cannot keep up never gets there: once the joins should be over, a count
        # that made no new high for STALLED_S seconds is as far as it gets.
        joined_by = began + expected_join_s(len(self.plans), self.shards) + 60
        shown = best_at = began
        best = 0
        while True:
            self._check_alive()
            playing = self.playing()
            now = loop.time()
            if playing == len(self.plans):
                return now - began
            if playing > best:
                best, best_at = playing, now
            if now > joined_by and now - best_at > STALLED_S:
                print(
                    f"!! {playing:,} of {len(self.plans):,} guilds play, at most {best:,} in "
                    f"the last {STALLED_S:.0f} s: the bot does not keep up; measuring anyway"
                )
                return now - began
            if now - shown >= 60:
                rss = rss_kb(self.pid) / 1024
                print(f"  {now - began:6.0f} s: {playing:,} playing, RSS {rss:.0f} MB", flush=True)
                shown = now
            await asyncio.sleep(1.0)

    async def window(self, seconds: float) -> Window:
        # The window runs from one answer of the metrics endpoint to the next: a busy bot
        # answers late, and its counters are as of the answer.
        loop = asyncio.get_running_loop()
        asked = loop.time()
        before = await scrape(self.metrics_port)
        t0, cpu0, mine0 = loop.time(), cpu_seconds(self.pid), time.process_time()
        slowest, rss_max, playing = t0 - asked, 0, self.playing()
        edits0 = len(self.discord.message_edits)
        spy = await self._spy(seconds)
        cpu_each_s: list[float] = []
        tick, cpu_tick = t0, cpu0
        while loop.time() - t0 < seconds:
            self._check_alive()
            rss_max = max(rss_max, rss_kb(self.pid))
            await asyncio.sleep(min(1.0, max(0.0, t0 + seconds - loop.time())))
            now, cpu_now = loop.time(), cpu_seconds(self.pid)
            if now - tick >= 0.5:
                cpu_each_s.append((cpu_now - cpu_tick) / (now - tick) * 100)
                tick, cpu_tick = now, cpu_now
        asked = loop.time()
        after = await scrape(self.metrics_port)
        t1, cpu1, mine1 = loop.time(), cpu_seconds(self.pid), time.process_time()
        edits = len(self.discord.message_edits) - edits0
        rss, slowest = rss_kb(self.pid), max(slowest, t1 - asked)
        playing = min(playing, self.playing())
        if spy is not None:
            await spy.wait()
        # Tracks that ended near the end get their successor a little later.
        lags, missing = self.traffic.lags(t0, t1)
        while missing and loop.time() - t1 < 30:
            await asyncio.sleep(0.5)
            lags, missing = self.traffic.lags(t0, t1)
        span = t1 - t0
        return Window(
            seconds=span,
            cpu_pct=(cpu1 - cpu0) / span * 100,
            rss_kb=rss,
            rss_max_kb=max(rss_max, rss),
            commits=commits(after) - commits(before),
            changes=self.traffic.starts(t0, t1),
            updates=sum(t0 <= t < t1 for t in self.traffic.updates),
            lags=lags,
            missing=missing,
            bench_cpu_pct=(mine1 - mine0) / span * 100,
            bot_playing=after.get('musicbot_players{state="playing"}', -1),
            ready_rss_kb=self.ready_rss_kb,
            scrape_s=slowest,
            playing=playing,
            lag_probes=int(_delta(before, after, f"{LAG}_count")),
            lag_late={
                bound: int(
                    _delta(before, after, f"{LAG}_count")
                    - _delta(before, after, f'{LAG}_bucket{{le="{bound}"}}')
                )
                for bound in LAG_BOUNDS
            },
            edits=edits,
            cpu_each_s=cpu_each_s,
            full_collections=int(_delta(before, after, FULL_COLLECTIONS)),
        )

    async def _spy(self, seconds: float) -> asyncio.subprocess.Process | None:
        if self.profile is None:
            return None
        # py-spy samples from outside (ptrace), so the bot runs as it would unobserved,
        # but for the pauses of each sample.
        return await asyncio.create_subprocess_exec(
            *(sys.executable.rpartition("/")[0] + "/py-spy", "record", "--format", "raw"),
            *("--pid", str(self.pid), "--duration", str(int(seconds)), "--rate", "200"),
            *("--output", str(self.profile), "--nonblocking"),
            stdout=asyncio.subprocess.DEVNULL,
        )

    async def answered(self, interaction: Interaction, what: str) -> float:
        got = await answer(self.discord, interaction)
        if got.deferred:
            print(f"!! {what} was deferred: its figure is the defer", flush=True)
        if got.private is not None:
            raise RuntimeError(f"{what} was refused: {got.private!r}")
        return got.seconds

    async def commands(self, runs: int) -> dict[str, list[float]]:
        """``/skip``, ``/play <link>`` and ``/queue`` in turn, each run in a guild of its own."""
        times: dict[str, list[float]] = {"/skip": [], "/play": [], "/queue": []}
        guilds = iter(self.plans[:: max(1, len(self.plans) // (3 * runs))])
        for n in range(runs):
            for name, answers in times.items():
                plan = next(guilds, None)
                if plan is None:
                    return times
                link = _track(PLAYED_LINKS + n, 1).uri
                options: dict[str, object] | None = {"query": link} if name == "/play" else None
                interaction = await self.discord.invoke(
                    name[1:],
                    options,
                    guild_id=plan.id,
                    user_id=plan.user,
                    channel_id=plan.text_channel,
                )
                answers.append(await self.answered(interaction, f"{name} in {plan.id}"))
                await asyncio.sleep(0.2)  # the follow-ups (controller, notices) land here
        return times


LAG = "musicbot_event_loop_lag_seconds"
FULL_COLLECTIONS = 'python_gc_collections_total{generation="2"}'
LAG_BOUNDS = (0.025, 0.05, 0.1, 0.25)


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def _q(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _verdict(ok: bool, applies: bool) -> str:
    if not applies:
        return "(goal at another size)"
    return "ok" if ok else "MISSED"


def print_report(guilds: int, w: Window, times: dict[str, list[float]] | None) -> None:
    commits_s, changes_s = w.commits / w.seconds, w.changes / w.seconds
    med = statistics.median(w.lags) * 1000 if w.lags else math.nan
    worst = max(w.lags) * 1000 if w.lags else math.nan
    grown = (w.rss_kb - w.ready_rss_kb) / guilds
    print(
        f"\nwindow {w.seconds:.0f} s, {w.playing:,} of {guilds:,} guilds playing (the bot's "
        f"gauge: {w.bot_playing:.0f}); position reports {w.updates / w.seconds:.1f}/s; "
        f"track changes {changes_s:.2f}/s; commits {commits_s:.1f}/s; next track after an "
        f"end: median {med:.0f} ms, max {worst:.0f} ms over {len(w.lags)} ends"
        + (f", {w.missing} never started" if w.missing else "")
        + f"; RSS peak {w.rss_max_kb / 1024:.0f} MB, {w.ready_rss_kb / 1024:.0f} MB when ready "
        f"(queues loaded, nothing joined: {grown:.1f} KB more per playing guild since); the "
        f"bench process (both fakes) used {w.bench_cpu_pct:.1f} % of a core; /metrics "
        f"answered within {w.scrape_s * 1000:.0f} ms"
    )
    late = ", ".join(f"{n} later than {b * 1000:.0f} ms" for b, n in w.lag_late.items())
    print(
        f"event loop: of {w.lag_probes} lag probes (one due every 0.25 s), {late}; "
        f"full garbage collections: {w.full_collections}"
    )
    if w.cpu_each_s:
        each = sorted(w.cpu_each_s)
        print(
            f"bot CPU per second: median {statistics.median(each):.1f} %, 90th percentile "
            f"{each[int(len(each) * 0.9)]:.1f} %, max {each[-1]:.1f} % (bursts of work show "
            f"here); controller edits {w.edits / w.seconds:.2f}/s"
        )
    rows = [
        ("bot CPU", f"{w.cpu_pct:.1f} %", "< 10 % at 2,500", w.cpu_pct < 10, guilds == 2500),
        (
            "bot RSS",
            f"{w.rss_kb / 1024:.0f} MB ({w.rss_kb / guilds:.1f} KB/guild)",
            "< 150 MB at 2,500",
            w.rss_kb / 1024 < 150,
            guilds == 2500,
        ),
        (
            "loop-lag probes later than 50 ms",
            f"{w.lag_late.get(0.05, 0)} of {w.lag_probes}",
            "0 at 2,500",
            w.lag_late.get(0.05, 0) == 0,
            guilds == 2500,
        ),
        (
            "commits/s vs track changes/s + 1",
            f"{commits_s:.1f} vs {changes_s + 1:.1f}",
            "<=",
            commits_s <= changes_s + 1,
            True,
        ),
    ]
    for name, values in (times or {}).items():
        if values:
            m, p = statistics.median(values) * 1000, _q(values, 95) * 1000
            rows.append(
                (
                    f"{name} median / p95 (n={len(values)})",
                    f"{m:.1f} / {p:.1f} ms",
                    "< 20 / < 50 ms at 1,000",
                    m < 20 and p < 50,
                    guilds == 1000,
                )
            )
    print(f"\n{'figure':<36}{'measured':>26}  {'goal':<24}verdict")
    for name, value, goal, ok, applies in rows:
        print(f"{name:<36}{value:>26}  {goal:<24}{_verdict(ok, applies)}")


def log_excerpt(log: str, problems: list[str]) -> str:
    """The lines around the first problem of the bot's log."""
    lines = log.splitlines()
    first = next((i for i, line in enumerate(lines) if line in problems), 0)
    return "\n".join(lines[max(0, first - 3) : first + 30])


def _catalogue(runs: int) -> Catalogue:
    cat = Catalogue()
    for n in range(runs):
        cat.add_track(_track(PLAYED_LINKS + n, 1))
    return cat


async def run(args: argparse.Namespace, workdir: Path) -> None:
    plans = plan_fleet(args.guilds)
    join_s = expected_join_s(args.guilds)
    lasting = join_s * 1.5 + 180 + SETTLE_S + args.seconds + 120
    entries = math.ceil(lasting * 1000 / TRACK_MS) + 2
    db = workdir / "bot.db"
    print(
        f"{args.guilds:,} guilds, {entries} tracks of 3 min each, on "
        f"{recommended_shards(args.guilds)} shard(s) as Discord recommends; joining them all "
        f"takes the bot ~{join_s / 60:.1f} min ({VOICE_UPDATES_PER_MINUTE} voice joins a "
        "minute per shard)",
        flush=True,
    )
    started = time.perf_counter()
    await seed(f"sqlite+aiosqlite:///{db}", plans, entries)
    seeded = time.perf_counter() - started
    print(f"seeded in {seeded:.1f} s through the Repository", flush=True)
    loop = asyncio.get_running_loop()
    async with FakeDiscord(guilds=[p.guild for p in plans]) as discord:
        lavalink = FakeLavalink(
            catalogue=_catalogue(args.runs), player_update_interval=UPDATE_INTERVAL
        )
        lavalink.keep_sent = False
        traffic = Traffic(loop)
        lavalink.sent_hooks.append(traffic.hear)
        await lavalink.start()
        port = free_port()
        env = {**fleet_environment(discord, lavalink, db), "HEALTH_PORT": str(port)}
        bot = BotProcess(env, workdir, workdir / "bot.log")
        bench = Bench(discord, lavalink, plans, bot, traffic, port, profile=args.profile)
        began = loop.time()
        try:
            took = await bench.start()
            print(
                f"setup: seed {seeded:.1f} s + bot start to every guild playing {took:.1f} s "
                f"= {seeded + took:.1f} s",
                flush=True,
            )
            await asyncio.sleep(SETTLE_S)
            window = await bench.window(args.seconds)
            times = await bench.commands(args.runs) if args.commands else None
            print_report(args.guilds, window, times)
            with contextlib.suppress(TimeoutError):
                await bot.terminate(signal.SIGTERM, timeout=20)
        finally:
            await bot.reap()
            await lavalink.stop()
        log = bot.log()
        if args.log is not None:
            args.log.write_text(log)
            ops = {"began": began, "connections": discord.connection_ops}
            args.log.with_suffix(".gateway.json").write_text(json.dumps(ops))
        problems = log_problems(log, [discord.token, lavalink.password])
        print(f"gateway: {gateway_note(discord, began)}")
        if discord.rate_limited:
            print(f"!! the fake Discord closed the gateway {discord.rate_limited}x with 4008")
        if problems or discord.unhandled:
            print(f"!! unhandled REST: {discord.unhandled[:3]}; bot log:")
            print(log_excerpt(log, problems))


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="the steady window")
    parser.add_argument(
        "--commands",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time /skip, /play and /queue (default: at 1,000 guilds)",
    )
    parser.add_argument("--runs", type=int, default=40, help="of each command")
    parser.add_argument("--log", type=Path, help="keep the bot's log in this file")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the bot during the window (raw stacks) into this file"
    )
    args = parser.parse_args(argv)
    if not 0 < args.guilds < PLAYED_LINKS:
        parser.error(f"--guilds must be between 1 and {PLAYED_LINKS - 1}")
    if args.commands is None:
        args.commands = args.guilds == 1_000
    logging.basicConfig(level=logging.WARNING)
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {load}")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        try:
            await run(args, Path(tmp))
        except asyncio.CancelledError:  # SIGTERM: run's cleanup has stopped the bot
            print("!! stopped by SIGTERM before the end", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
