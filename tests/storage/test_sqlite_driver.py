"""SQLite statements in one trip to aiosqlite's thread (``bot/storage/sqlite_driver.py``).

Trips are counted at aiosqlite's own queue (``Connection._execute``); what the database holds
afterwards is read back through a fresh repository, so a statement that took a shortcut and
lost a row, a count or a rollback shows.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa

from bot.storage import NewEntry, PlayerRecord, Repository, StorageError
from bot.storage.tables import QueueEntryRow


def entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


async def song_1_ends(repo: Repository, songs: int = 2) -> Callable[[], Coroutine[Any, Any, None]]:
    """Guild 1 plays Song 1 of ``songs``; the call returned stores what its end does: Song 2
    current, Song 1 out of the queue and into the history (``Repository.advance``)."""
    player, added = await repo.enqueue(
        PlayerRecord(1, voice_channel_id=5, text_channel_id=6),
        [entry(n) for n in range(1, songs + 1)],
        start=True,
    )
    moved = dataclasses.replace(player, current_entry_id=added[1].id)
    return lambda: repo.advance(moved, remove_entry_id=added[0].id, played=added[0])


async def titles(repo: Repository, guild_id: int) -> list[str]:
    """The guild's stored queue (current entry first), as a restart would load it."""
    stored = {g.player.guild_id: g for g in await repo.load_guilds()}
    return [e.title for e in stored[guild_id].entries] if guild_id in stored else []


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Each trip to aiosqlite's thread, by the name of what it ran there."""
    counted: collections.Counter[str] = collections.Counter()
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counted[getattr(fn, "__name__", repr(fn))] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counted


async def test_a_track_change_takes_one_trip_and_every_statement_is_seen(
    sqlite_path: Path, trips: collections.Counter[str]
) -> None:
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    try:
        advance = await song_1_ends(repo, songs=3)
        trips.clear()
        sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", record)
        await advance()
        # BEGIN IMMEDIATE to COMMIT as one function on SQLite's thread: the stock adapter took
        # 17 trips (a cursor opened and closed around each statement, and a rollback of the
        # committed connection on its way back to the pool), one trip per statement 6.
        assert sum(trips.values()) == 1, dict(trips)
        assert seen == [
            "BEGIN IMMEDIATE",
            "DELETE FROM QUEUE_ENTRIES",
            "UPDATE GUILD_PLAYERS SET",
            "INSERT INTO PLAY_HISTORY",
            "DELETE FROM PLAY_HISTORY",
        ]
    finally:
        await repo.close()
    reopened = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    try:
        assert await titles(reopened, 1) == ["Song 2", "Song 3"]
        assert [t.title for t in await reopened.history(1)] == ["Song 1"]
    finally:
        await reopened.close()


async def test_counts_rows_and_new_ids_come_back(sqlite_path: Path) -> None:
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    try:
        player, added = await repo.enqueue(
            PlayerRecord(1, voice_channel_id=5, text_channel_id=6),
            [entry(n) for n in range(1, 6)],
            start=True,
        )
        assert len({e.id for e in added}) == 5  # ids from the insert, each its own
        assert await repo.clear_queue(player) == 5  # the DELETE's rowcount
        assert await titles(repo, 1) == []
    finally:
        await repo.close()


async def test_a_failing_statement_rolls_its_transaction_back(sqlite_path: Path) -> None:
    """The pool's rollback is skipped only when no transaction is open: a write that fails
    half-way must still lose its first statement, and the connection must stay usable."""
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    try:
        await repo.enqueue(
            PlayerRecord(1, voice_channel_id=5, text_channel_id=6), [entry(1)], start=True
        )

        async def half(session: Any) -> None:
            await session.execute(sa.delete(QueueEntryRow).where(QueueEntryRow.guild_id == 1))
            await session.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))

        with pytest.raises(StorageError, match="no such table"):
            await repo._write("delete and fail", half)
        assert await titles(repo, 1) == ["Song 1"]
        await repo.enqueue(
            PlayerRecord(1, voice_channel_id=5, text_channel_id=6), [entry(2)], start=False
        )
        assert await titles(repo, 1) == ["Song 1", "Song 2"]
    finally:
        await repo.close()


async def test_a_one_trip_transaction_that_fails_half_way_loses_everything_it_did(
    sqlite_path: Path,
) -> None:
    """A statement failing on SQLite's thread (here: the history's trim, refused as a full
    disk would) rolls back the ones before it there; the connection then serves the next
    track change as usual."""
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    refused: list[str] = []

    def refuse(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM PLAY_HISTORY") and not refused:
            refused.append(statement)
            raise sqlite3.OperationalError("database or disk is full")

    try:
        advance = await song_1_ends(repo)
        sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", refuse)
        with pytest.raises(StorageError, match="disk is full"):
            await advance()
        assert refused
        assert await titles(repo, 1) == ["Song 1", "Song 2"]
        assert await repo.history(1) == ()
        await advance()
        assert await titles(repo, 1) == ["Song 2"]
        assert [t.title for t in await repo.history(1)] == ["Song 1"]
    finally:
        await repo.close()


async def test_a_track_change_cancelled_before_its_commit_leaves_nothing(
    sqlite_path: Path,
) -> None:
    """The caller gave up (shutdown cancels its task) while SQLite's thread was half-way:
    the transaction rolls back there, the connection goes back to the pool only once the
    thread is done with it, and the next write is not locked out."""
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    reached = threading.Event()

    def slow(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO PLAY_HISTORY"):
            reached.set()
            time.sleep(0.3)  # on SQLite's thread: the loop goes on and cancels meanwhile

    try:
        advance = await song_1_ends(repo)
        sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", slow)
        task = asyncio.create_task(advance())
        assert await asyncio.to_thread(reached.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sa.event.remove(repo._engine.sync_engine, "before_cursor_execute", slow)
        assert await titles(repo, 1) == ["Song 1", "Song 2"]
        assert await repo.history(1) == ()
        await asyncio.wait_for(advance(), timeout=5)
        assert await titles(repo, 1) == ["Song 2"]
    finally:
        await repo.close()
