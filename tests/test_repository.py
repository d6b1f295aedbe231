"""Storage: what is written comes back after reopening, and small changes stay small."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.storage import NewEntry, PlayerRecord, PlayerStatus, Repository, StorageError


def entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/nested/bot.db"


async def test_queue_survives_reopen_in_order(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player = PlayerRecord(guild_id=1, voice_channel_id=2, text_channel_id=3, volume=80)
    player, added = await repo.enqueue(player, [entry(1), entry(2)], start=True)
    assert player.current_entry_id == added[0].id
    assert player.status is PlayerStatus.PLAYING
    _, more = await repo.enqueue(player, [entry(3)], start=False)
    await repo.save_position(1, 1234, 99)
    await repo.save_session("main", "abcdefghijklmnop")
    await repo.close()

    repo = await Repository.open(db_url)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1", "Song 2", "Song 3"]
    assert stored.entries[2].id == more[0].id
    assert stored.player.current_entry_id == added[0].id
    assert (stored.player.position_ms, stored.player.position_at_ms) == (1234, 99)
    assert stored.player.volume == 80
    assert await repo.session_ids() == {"main": "abcdefghijklmnop"}
    await repo.close()


async def test_start_keeps_an_existing_current_entry(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    interrupted = dataclasses.replace(player, status=PlayerStatus.INTERRUPTED)
    again, _ = await repo.enqueue(interrupted, [entry(2)], start=True)
    assert again.current_entry_id == added[0].id
    assert again.status is PlayerStatus.PLAYING
    await repo.close()


async def test_advance_deletes_one_entry_and_touches_no_other_rows(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(1, 501)], start=True
    )
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    nxt = dataclasses.replace(player, current_entry_id=added[1].id)
    await repo.advance(nxt, remove_entry_id=added[0].id)
    writes = [s for s in statements if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert len(writes) <= 2, writes
    (stored,) = await repo.load_guilds()
    assert len(stored.entries) == 499
    assert stored.player.current_entry_id == added[1].id
    await repo.close()


async def test_delete_guild_removes_player_and_queue(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    await repo.enqueue(PlayerRecord(guild_id=2), [entry(2)], start=True)
    await repo.delete_guild(1)
    assert [g.player.guild_id for g in await repo.load_guilds()] == [2]
    await repo.close()


async def test_unreadable_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bot.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StorageError):
        await Repository.open(f"sqlite+aiosqlite:///{bad}")


async def test_failed_write_is_a_storage_error_and_loses_nothing(
    db_url: str, tmp_path: Path
) -> None:
    repo = await Repository.open(db_url)
    player, _ = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    # Another process holds the write lock: the write must fail cleanly once busy_timeout ends.
    blocker = sqlite3.connect(tmp_path / "nested" / "bot.db", timeout=0)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError):
            await _enqueue_with_short_timeout(repo, player)
    finally:
        blocker.rollback()
        blocker.close()
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1"]
    await repo.close()


async def _enqueue_with_short_timeout(repo: Repository, player: PlayerRecord) -> None:
    @sa.event.listens_for(repo._engine.sync_engine, "connect")
    def short_busy(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")  # type: ignore[attr-defined]

    await repo._engine.dispose()
    await repo.enqueue(player, [entry(2)], start=False)


def _record(statements: list[str]) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        # before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
        statements.append(str(args[2]).strip())

    return listener
