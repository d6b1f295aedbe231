"""SQLite statements in one trip to aiosqlite's thread (``bot/storage/sqlite_driver.py``).

Trips are counted at aiosqlite's own queue (``Connection._execute``); what the database holds
afterwards is read back through a fresh repository, so a statement that took a shortcut and
lost a row, a count or a rollback shows.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa

from bot.storage import NewEntry, PlayerRecord, Repository, StorageError
from bot.storage.tables import QueueEntryRow


def entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


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


async def test_a_track_change_takes_one_trip_per_statement(
    sqlite_path: Path, trips: collections.Counter[str]
) -> None:
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}")
    try:
        player, added = await repo.enqueue(
            PlayerRecord(1, voice_channel_id=5, text_channel_id=6),
            [entry(1), entry(2), entry(3)],
            start=True,
        )
        trips.clear()
        moved = dataclasses.replace(player, current_entry_id=added[1].id)
        await repo.advance(moved, remove_entry_id=added[0].id, played=added[0])
        # BEGIN IMMEDIATE, delete the entry, store the player, record and trim the history,
        # COMMIT: the stock adapter took 17 trips (a cursor opened and closed around each
        # statement, and a rollback of the committed connection on its way back to the pool).
        assert sum(trips.values()) == 6, dict(trips)
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
