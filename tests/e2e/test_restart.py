"""Restarts and crashes never lose the music: the real bot process, several guilds at once.

Each test plays in several guilds (each its own track, one more queued), breaks something,
and asserts through the peers alone that every guild is back in the same voice channel with
fresh voice credentials, playing the same track within 2 s of where the music stopped, with
the same queue; that the re-joins went out busiest guild first and never past Discord's 120
gateway commands in any 60 s; and that no duplicate player or stale session is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import PlayerStatus, Repository
from peers.fake_discord import FakeDiscord
from peers.fake_lavalink import FakeLavalink
from peers.fleet import Fleet, GuildPlan, fleet_catalogue, plan_fleet
from peers.process import BotProcess
from tests.e2e.conftest import ErrorLog, wait_for_lavalink_session
from tests.e2e.test_process import bot_process

pytestmark = pytest.mark.timeout(90)

TOLERANCE_MS = 2000
GATEWAY_LIMIT = 120
# Listeners per guild: the busiest guild is in the middle, so DB order is not the answer.
LISTENERS = [1, 3, 2]


@contextlib.asynccontextmanager
async def fleet_peers(plans: list[GuildPlan]) -> AsyncIterator[Fleet]:
    async with FakeDiscord(guilds=[plan.guild for plan in plans]) as discord:
        lavalink = FakeLavalink(catalogue=fleet_catalogue(plans), player_update_interval=0.2)
        await lavalink.start()
        try:
            yield Fleet(discord, lavalink, plans)
        finally:
            await lavalink.stop()
        assert not discord.unhandled, discord.unhandled


@pytest.fixture
async def fleet(errors: ErrorLog) -> AsyncIterator[Fleet]:
    async with fleet_peers(plan_fleet(len(LISTENERS), LISTENERS)) as peers:
        yield peers


def assert_near(actual: dict[int, int], expected: dict[int, int], what: str) -> None:
    off = {gid: actual[gid] - expected[gid] for gid in expected}
    print(f"{what}: position off by {sorted(off.values())} ms")
    assert all(abs(d) <= TOLERANCE_MS for d in off.values()), f"{what}: off by {off} ms"


def rejoin_order(fleet: Fleet, after: int) -> list[int]:
    """Guilds in the order of their first op 4 join in ``voice_ops[after:]``."""
    order: list[int] = []
    for op in fleet.discord.voice_ops[after:]:
        if op.channel_id is not None and op.guild_id not in order:
            order.append(op.guild_id)
    return order


def busiest_first(fleet: Fleet) -> list[int]:
    return [p.id for p in sorted(fleet.plans, key=lambda p: -len(p.guild.user_voice))]


async def assert_same_queues(fleet: Fleet) -> None:
    for plan in fleet.plans:
        text = (await fleet.queue_texts())[plan.id]
        assert plan.current.title in text
        assert plan.queued.title in text
        assert "1 track in queue" in text


def assert_clean_lavalink(fleet: Fleet, session: str | None = None) -> None:
    """One live session (``session`` if given) holding exactly one player per guild."""
    live = [s for s in fleet.lavalink.sessions.values() if not s.paused]
    assert len(fleet.lavalink.sessions) == 1, f"stale sessions: {list(fleet.lavalink.sessions)}"
    assert len(live) == 1
    if session is not None:
        assert live[0].id == session
    assert sorted(live[0].players) == sorted(p.id for p in fleet.plans)


async def start_and_play_everywhere(fleet: Fleet, bot: BotProcess) -> str:
    """Start the bot process, wait until it is ready on Discord and holds a Lavalink session,
    then play in every guild of the fleet until each is 2.5 s in. Returns the session id."""
    await bot.start()
    await fleet.discord.wait_until_ready(timeout=30)
    session = await wait_for_lavalink_session(fleet.lavalink, timeout=20)
    await fleet.play_everywhere()
    await fleet.wait_positions_above(2500)
    return session


async def restart_and_wait(
    fleet: Fleet, bot: BotProcess
) -> tuple[int, int, dict[int, tuple[float, int]]]:
    """Start the bot process again and wait until every guild plays on a new voice session.

    Returns the ``voice_ops`` and ``connection_ops`` indices before the start, and the time
    and position at which each guild was back.
    """
    ops, conn = len(fleet.discord.voice_ops), len(fleet.discord.connection_ops)
    sessions = fleet.voice_sessions()
    await bot.start()
    await fleet.discord.wait_until_ready(timeout=30)
    back = await fleet.wait_all_back(timeout=20, not_before=sessions)
    return ops, conn, back


def assert_gateway_budget(fleet: Fleet, first_connection: int) -> None:
    for index in range(first_connection, len(fleet.discord.connection_ops)):
        assert fleet.discord.busiest_window(connection=index) <= GATEWAY_LIMIT
    assert fleet.discord.rate_limited == 0


async def test_kill_9_then_sigterm_every_guild_carries_on(fleet: Fleet, tmp_path: Path) -> None:
    discord, lavalink = fleet.discord, fleet.lavalink
    async with bot_process(discord, lavalink, tmp_path, GUILD_IDS="") as bot:
        session = await start_and_play_everywhere(fleet, bot)

        # kill -9: Lavalink keeps playing on the paused session.
        await bot.kill9()
        killed_at, at_kill = time.monotonic(), fleet.positions()
        await lavalink.wait_for(lambda: lavalink.sessions[session].paused, what="paused")
        ops, conn, back = await restart_and_wait(fleet, bot)
        # Resumed: the same players went on; no track restarted or jumped.
        assert_near(
            {gid: pos for gid, (_, pos) in back.items()},
            {gid: at_kill[gid] + int((back[gid][0] - killed_at) * 1000) for gid in at_kill},
            "after kill -9",
        )
        assert rejoin_order(fleet, ops) == busiest_first(fleet)
        assert_gateway_budget(fleet, conn)
        assert_clean_lavalink(fleet, session)
        await assert_same_queues(fleet)

        # SIGTERM: positions stored, session left resumable, exit 0 within 10 s.
        started = time.monotonic()
        assert await bot.terminate(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - started < 10
        stopped_at, at_stop = time.monotonic(), fleet.positions()
        assert lavalink.sessions[session].paused, "the session must stay resumable"
        repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'bot.db'}")
        try:
            stored = {g.player.guild_id: g.player for g in await repo.load_guilds()}
        finally:
            await repo.close()
        now_ms = int(time.time() * 1000)
        for plan in fleet.plans:
            player = stored[plan.id]
            assert player.status is PlayerStatus.PLAYING
            assert player.voice_channel_id == plan.voice_channel
            # The stored (position, when) pair names where the music is now, within 0.5 s.
            estimate = player.position_ms + (now_ms - player.position_at_ms)
            assert abs(estimate - at_stop[plan.id]) <= 500, (estimate, at_stop[plan.id])

        # The operator changed the resume timeout meanwhile: the resumed session takes it.
        bot.env["LAVALINK_RESUME_TIMEOUT"] = "45"
        ops, conn, back = await restart_and_wait(fleet, bot)
        assert_near(
            {gid: pos for gid, (_, pos) in back.items()},
            {gid: at_stop[gid] + int((back[gid][0] - stopped_at) * 1000) for gid in at_stop},
            "after SIGTERM",
        )
        await lavalink.wait_for(lambda: lavalink.sessions[session].timeout == 45, what="45 s")
        assert rejoin_order(fleet, ops) == busiest_first(fleet)
        assert_gateway_budget(fleet, conn)
        assert_clean_lavalink(fleet, session)
        await assert_same_queues(fleet)
        assert await bot.terminate(signal.SIGINT, timeout=10) == 0


async def test_kill_9_past_the_resume_timeout_rebuilds_every_guild(
    fleet: Fleet, tmp_path: Path
) -> None:
    discord, lavalink = fleet.discord, fleet.lavalink
    async with bot_process(
        discord, lavalink, tmp_path, GUILD_IDS="", LAVALINK_RESUME_TIMEOUT="1"
    ) as bot:
        session = await start_and_play_everywhere(fleet, bot)

        await bot.kill9()
        # Lavalink plays on until the session expires; that is where the music stopped.
        last_heard = fleet.positions()
        while session in lavalink.sessions:
            last_heard = fleet.positions()
            await asyncio.sleep(0.01)
        # Down a while longer: the rebuild must not count time nobody heard anything.
        await asyncio.sleep(1.5)
        ops, conn, back = await restart_and_wait(fleet, bot)
        assert_near({gid: pos for gid, (_, pos) in back.items()}, last_heard, "rebuilt")
        assert session not in lavalink.sessions
        assert_clean_lavalink(fleet)
        assert rejoin_order(fleet, ops) == busiest_first(fleet)
        assert_gateway_budget(fleet, conn)
        await assert_same_queues(fleet)
        assert await bot.terminate() == 0


async def test_lavalink_restart_rebuilds_every_guild_where_it_stopped(
    fleet: Fleet, tmp_path: Path
) -> None:
    discord, lavalink = fleet.discord, fleet.lavalink
    # A grace longer than the tolerance: the silence while waiting must not count as played.
    async with bot_process(
        discord, lavalink, tmp_path, GUILD_IDS="", LAVALINK_NODE_LOSS_GRACE="3"
    ) as bot:
        await start_and_play_everywhere(fleet, bot)

        at_kill = fleet.positions()
        ops = len(discord.voice_ops)
        await lavalink.kill()
        for plan in fleet.plans:  # after the grace the bot leaves voice
            await discord.wait_for_voice_op(plan.id, None, after=ops, timeout=15)
        ops = len(discord.voice_ops)
        await lavalink.start()
        back = await fleet.wait_all_back(timeout=20)
        assert_near({gid: pos for gid, (_, pos) in back.items()}, at_kill, "rebuilt")
        assert_clean_lavalink(fleet)
        assert rejoin_order(fleet, ops) == busiest_first(fleet)
        assert_gateway_budget(fleet, 0)
        await assert_same_queues(fleet)
        assert await bot.terminate() == 0
