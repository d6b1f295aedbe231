"""The bot restarted with another shard layout (issue 15, resharding): a process of the new
layout removes its guilds' players from the stopped layout's Lavalink sessions before it
starts them (never from a layout that is alive, nor from one that shares none of its guilds),
places each rebuilt track by the guild's previous owner, and forgets the old layout's rows
once nothing can need them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from bot import lavalink
from bot.services import QueueService
from bot.services import layouts as layouts_module
from bot.services.guild import now_ms
from bot.services.heartbeat import Heartbeat, process_key
from bot.services.layouts import FORGET_MARGIN_MS, Layouts
from bot.services.sessions import session_key
from bot.shards import ShardSet
from bot.storage import Repository
from bot.storage.tables import LavalinkSessionRow
from tests.services.fakes import LISTENER, TEXT, FakeDiscordView, RecordingLavalink

ON_0 = 2 << 22  # shard 0 of 2
ON_1 = 3 << 22  # shard 1 of 2
FIRST, SECOND = ShardSet(frozenset({0}), 2), ShardSet(frozenset({1}), 2)
OLD = "old-session"
USER = 42
TIMEOUT_MS = RecordingLavalink().resume_timeout * 1000


@contextlib.asynccontextmanager
async def _process(
    url: str, shards: ShardSet | None, lava: RecordingLavalink | None = None
) -> AsyncIterator[tuple[Repository, RecordingLavalink, QueueService]]:
    """A process of the layout ``shards`` on the database at ``url``, loaded."""
    repo = await Repository.open(url)
    lava = lava or RecordingLavalink()
    service = QueueService(repo, lava, FakeDiscordView(), shards=shards)
    try:
        await service.load()
        yield repo, lava, service
    finally:
        await service.controller.close()
        await service.layouts.close()
        await service.heartbeat.close(last_beat=False)
        await repo.close()


async def _single_process_played(url: str, *, beat_ago_ms: int, started_ago_ms: int) -> None:
    """The bot ran as one process, played ON_0 and ON_1 from ``started_ago_ms`` ago, stored
    its Lavalink session, beat last ``beat_ago_ms`` ago and died."""
    async with _process(url, None) as (repo, _, service):
        for guild in (ON_0, ON_1):
            await service.play(guild, LISTENER, TEXT, "a song")
            await repo.save_position(guild, 0, now_ms() - started_ago_ms)
        await repo.save_session(session_key("main", None), OLD)
        await repo.liveness.beat(process_key(None), now_ms() - beat_ago_ms)


async def _store_session(repo: Repository, key: str, session_id: str, at_ms: int) -> None:
    """A session id stored at ``at_ms`` (the repository stamps it with now)."""
    await repo.save_session(key, session_id)
    async with repo._engine.begin() as connection:
        await connection.execute(
            sa.update(LavalinkSessionRow)
            .where(LavalinkSessionRow.node == key)
            .values(updated_at_ms=at_ms)
        )


@pytest.fixture
def quick_staleness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows go stale after 300 ms instead of 5 s (the rule is the same)."""
    monkeypatch.setattr(layouts_module, "STALE_AFTER_MS", 300)


async def test_each_new_process_removes_its_own_guilds_from_the_old_session_first(
    url: str,
) -> None:
    await _single_process_played(url, beat_ago_ms=10_000, started_ago_ms=30_000)
    old_session = {ON_0, ON_1}  # on the node, paused, both still playing

    async with _process(url, FIRST) as (_, lava, first):
        lava.paused_sessions[OLD] = old_session
        last_beat_stop = first.layouts.stopped_at(ON_0)
        assert last_beat_stop is not None
        assert abs(last_beat_stop - (now_ms() - 10_000 + TIMEOUT_MS)) < 1_000
        await first.layouts.clear_old_sessions(USER)
        assert old_session == {ON_1}  # its own guild's player went, not the other's
        ((cleared, expires_in),) = lava.clears
        assert cleared == OLD
        assert abs(expires_in - (TIMEOUT_MS - 10_000) / 1000) < 1  # what the session had left
        stopped = first.layouts.stopped_at(ON_0)
        assert stopped is not None
        assert abs(stopped - now_ms()) < 1_000  # the music stopped when it was removed
        assert first.layouts.stopped_at(ON_1) == last_beat_stop
        await first.handle_event(lavalink.SessionReady(lava.node, "fresh", False))
        await first._reactions.drain(5)
        assert set(lava.players) == {ON_0}
        assert abs(lava.players[ON_0].position - 30_000) <= 1_000  # where it stopped

    async with _process(url, SECOND) as (_, lava, second):
        lava.paused_sessions[OLD] = old_session
        await second.layouts.clear_old_sessions(USER)
        assert OLD not in lava.paused_sessions  # nothing left in it
        await second.handle_event(lavalink.SessionReady(lava.node, "fresh", False))
        await second._reactions.drain(5)
        assert set(lava.players) == {ON_1}


@pytest.mark.usefixtures("quick_staleness")
async def test_a_layout_that_is_alive_is_left_alone(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _single_process_played(url, beat_ago_ms=0, started_ago_ms=1_000)
    async with _process(url, FIRST) as (repo, lava, first):
        lava.paused_sessions[OLD] = {ON_0, ON_1}
        still_running = Heartbeat(repo, key=process_key(None), interval=0.05)
        still_running.start()
        try:
            await first.layouts.clear_old_sessions(USER)
        finally:
            await still_running.close(last_beat=False)
        assert lava.clears == []  # it beat while it was watched: alive
        assert lava.paused_sessions[OLD] == {ON_0, ON_1}
        assert "'bot' is alive and runs some of this process's servers" in caplog.text

        # It dies right after a last beat: young at first, it is watched until it would be
        # stale (judged at once, it would pass for alive), then cleared.
        await repo.liveness.beat(process_key(None), now_ms())
        await first.layouts.clear_old_sessions(USER)
        assert lava.paused_sessions[OLD] == {ON_1}


async def test_layouts_sharing_no_guild_and_expired_sessions_are_not_asked_for(
    url: str,
) -> None:
    async with _process(url, SECOND) as (repo, _, _):
        await repo.save_session(session_key("main", SECOND), "their-session")
        await repo.liveness.beat(process_key(SECOND), now_ms() - 10_000)
        await repo.save_session(session_key("main", None), "expired-session")
        await repo.liveness.beat(process_key(None), now_ms() - TIMEOUT_MS - 1_000)
        quarter = ShardSet(frozenset({0, 1}), 4)  # shard 0 of 4 is half of shard 0 of 2
        await repo.save_session(session_key("main", quarter), "quarter-session")
        await repo.liveness.beat(process_key(quarter), now_ms() - 10_000)
    async with _process(url, FIRST) as (_, lava, first):
        lava.paused_sessions.update(
            {"their-session": {ON_1}, "expired-session": {ON_0}, "quarter-session": {ON_0}}
        )
        await first.layouts.clear_old_sessions(USER)
        # The other half's session keeps its events for its own process's restart; the
        # expired one can hold no player any more; the quarters' shares a shard with this.
        assert [sid for sid, _ in lava.clears] == ["quarter-session"]


async def test_a_busy_session_is_asked_again_and_a_gone_one_is_quiet(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _single_process_played(url, beat_ago_ms=10_000, started_ago_ms=30_000)
    async with _process(url, FIRST) as (_, lava, first):
        lava.paused_sessions[OLD] = {ON_0}
        lava.busy[OLD] = 2  # the other new process holds it twice in a row
        await first.layouts.clear_old_sessions(USER)
        assert [sid for sid, _ in lava.clears] == [OLD] * 3
        assert OLD not in lava.paused_sessions
        caplog.clear()
        await first.layouts.clear_old_sessions(USER)  # gone now
        assert len(lava.clears) == 4
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert first.layouts.stopped_at(ON_0) is not None


async def test_an_unreachable_node_is_said_and_the_start_goes_on(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _single_process_played(url, beat_ago_ms=10_000, started_ago_ms=30_000)
    async with _process(url, FIRST) as (_, lava, first):
        lava.fail = True
        await first.layouts.clear_old_sessions(USER)
        assert "could not remove this process's servers from the session of 'bot'" in caplog.text
        assert "may play twice until it expires" in caplog.text


async def test_the_previous_owner_is_the_latest_process_whose_share_held_the_guild(
    url: str,
) -> None:
    now = now_ms()
    repo = await Repository.open(url)
    await repo.liveness.beat(process_key(None), now - 300_000)
    await repo.liveness.beat(process_key(FIRST), now - 200_000)
    await repo.liveness.beat(process_key(SECOND), now - 100_000)
    layouts = Layouts(repo, RecordingLavalink(), ShardSet(frozenset({0, 1, 2, 3}), 4))
    await layouts.load()
    assert layouts.stopped_at(ON_0) == now - 200_000 + TIMEOUT_MS
    assert layouts.stopped_at(ON_1) == now - 100_000 + TIMEOUT_MS
    # A digest cannot be read back: that process may have held any guild; the latest counts.
    digest = process_key(ShardSet(frozenset(range(0, 60, 2)), 60))
    await repo.liveness.beat(digest, now - 50_000)
    await layouts.load()
    assert layouts.stopped_at(ON_0) == layouts.stopped_at(ON_1) == now - 50_000 + TIMEOUT_MS
    await repo.close()
    empty = await Repository.open(url.replace("bot.db", "empty.db"))
    layouts = Layouts(empty, RecordingLavalink(), None)
    await layouts.load()
    assert layouts.stopped_at(ON_0) is None  # nobody ever beat: the anchor's moment stands in
    await empty.close()


async def test_a_rebuild_on_a_new_layout_follows_the_anchor_to_the_old_owners_stop(
    url: str,
) -> None:
    # The single process was last alive 100 s ago (its players played on for the 60 s
    # resume timeout); the track started 120 s ago at 0:10. Nothing was left to clear.
    await _single_process_played(url, beat_ago_ms=100_000, started_ago_ms=120_000)
    async with _process(url, FIRST) as (repo, lava, first):
        await repo.save_position(ON_0, 10_000, now_ms() - 120_000)
        await first.load()
        await first.layouts.clear_old_sessions(USER)
        assert lava.clears == []  # its session has expired
        await first.handle_event(lavalink.SessionReady(lava.node, "fresh", False))
        await first._reactions.drain(5)
        expected = 10_000 + 20_000 + TIMEOUT_MS  # not 10 s + 120 s
        assert abs(lava.players[ON_0].position - expected) <= 500


async def test_rows_of_stopped_layouts_are_forgotten_once_nothing_can_need_them(
    url: str,
) -> None:
    long_ago = now_ms() - TIMEOUT_MS - FORGET_MARGIN_MS - 1_000
    async with _process(url, None) as (repo, _, _):
        await _store_session(repo, session_key("main", None), OLD, long_ago - 1_000)
        await repo.save_session(session_key("main", FIRST), "mine")
        await repo.liveness.beat(process_key(None), long_ago)
    async with _process(url, FIRST) as (repo, _, first):
        await repo.liveness.beat(process_key(FIRST), now_ms())
        # Its session can hold nothing; its row is still the previous owner of shard 1.
        assert await first.layouts.sweep()  # something is left for later
        assert await repo.session_ids() == {session_key("main", FIRST): "mine"}
        assert set(await repo.liveness.all()) == {process_key(None), process_key(FIRST)}

        await repo.liveness.beat(process_key(SECOND), now_ms())  # the other half is running
        assert not await first.layouts.sweep()  # nothing is left to forget later
        assert set(await repo.liveness.all()) == {process_key(FIRST), process_key(SECOND)}

        # A layout that stopped lately keeps its rows, and the sweeps go on until they went.
        await _store_session(repo, session_key("main", None), "recent", now_ms() - TIMEOUT_MS)
        await repo.liveness.beat(process_key(None), now_ms() - TIMEOUT_MS)
        assert await first.layouts.sweep()
        assert await repo.session_ids() == {
            session_key("main", FIRST): "mine",
            session_key("main", None): "recent",
        }
        await repo.liveness.beat(process_key(None), long_ago)
        await _store_session(repo, session_key("main", None), "recent", long_ago)
        first.layouts.start()
        for _ in range(200):
            if process_key(None) not in await repo.liveness.all():
                break
            await asyncio.sleep(0.01)
        assert set(await repo.liveness.all()) == {process_key(FIRST), process_key(SECOND)}
        assert await repo.session_ids() == {session_key("main", FIRST): "mine"}
