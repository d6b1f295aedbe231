"""Storage of the play history: written with the move past a track, pruned to the newest 25,
taken back by /previous in one transaction, gone with the guild; its migration both ways.

Every test taking ``db_url`` runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import HISTORY_LIMIT, PlayerRecord, PlayerStatus, Repository, StorageError
from tests.storage.schema import migrate, tables
from tests.storage.test_repository import _record, entry


async def _titles(repo: Repository, guild_id: int = 1) -> list[str]:
    return [t.title for t in await repo.history(guild_id)]


async def test_each_way_past_a_track_records_it_in_the_same_transaction(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(1, 6)], start=True
    )
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    nxt = dataclasses.replace(player, current_entry_id=added[1].id)
    await repo.advance(nxt, remove_entry_id=added[0].id, played=added[0])
    # The move and the record: BEGIN ... COMMIT once (SQLite's BEGIN IMMEDIATE is a statement).
    assert sum(s.upper().startswith("BEGIN") for s in statements) <= 1
    ahead = dataclasses.replace(nxt, current_entry_id=added[3].id)
    await repo.skip_to(ahead, [added[1].id, added[2].id], requeue=False, played=added[1])
    await repo.requeue(ahead, added[3].id, played=added[3])
    await repo.clear_queue(dataclasses.replace(ahead, current_entry_id=None), added[4])
    await repo.advance(ahead, remove_entry_id=None)  # nothing played: nothing recorded
    assert await _titles(repo) == ["Song 5", "Song 4", "Song 2", "Song 1"]
    (newest, *_) = await repo.history(1)
    assert (newest.encoded, newest.author, newest.length_ms, newest.uri, newest.requester_id) == (
        "enc5",
        "Artist",
        5000,
        "https://x/5",
        42,
    )
    assert newest.played_at_ms > 0
    await repo.close()


async def test_a_failed_move_records_nothing(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)

    def refuse(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM PLAY_HISTORY"):
            raise OSError("disk gone")

    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", refuse)
    idle = dataclasses.replace(player, current_entry_id=None, status=PlayerStatus.IDLE)
    try:
        await repo.advance(idle, remove_entry_id=added[0].id, played=added[0])
    except StorageError:
        pass
    else:
        raise AssertionError("the write should have failed")
    sa.event.remove(repo._engine.sync_engine, "before_cursor_execute", refuse)
    assert await _titles(repo) == []
    (stored,) = await repo.load_guilds()
    assert stored.player.current_entry_id == added[0].id  # the queue did not move either
    await repo.close()


async def test_only_the_newest_are_kept_and_the_prune_is_one_statement(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, _ = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    await repo.enqueue(PlayerRecord(guild_id=2), [entry(1)], start=True)
    await repo.clear_queue(PlayerRecord(guild_id=2), entry(900))
    for n in range(HISTORY_LIMIT + 5):
        await repo.advance(player, remove_entry_id=None, played=entry(n))
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    await repo.advance(player, remove_entry_id=None, played=entry(100))
    deletes = [s for s in statements if s.upper().startswith("DELETE FROM PLAY_HISTORY")]
    assert len(deletes) == 1
    titles = await _titles(repo)
    assert titles == ["Song 100", *[f"Song {n}" for n in range(HISTORY_LIMIT + 4, 5, -1)]]
    assert len(titles) == HISTORY_LIMIT
    assert await _titles(repo, 2) == ["Song 900"]  # another guild's history is its own
    await repo.close()


async def test_replay_takes_the_row_back_into_the_queue(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(1), entry(2), entry(3)], start=True
    )
    nxt = dataclasses.replace(player, current_entry_id=added[1].id)
    await repo.advance(nxt, remove_entry_id=added[0].id, played=added[0])
    (played,) = await repo.history(1)
    back = (added[1].id, added[2].sort_key - 10)
    replayed = await repo.replay(nxt, played, added[2].sort_key - 20, back)
    assert replayed is not None
    stored_player, new = replayed
    assert stored_player.current_entry_id == new.id
    assert new.title == "Song 1"
    assert await _titles(repo) == []
    (stored,) = await repo.load_guilds()
    assert stored.player.current_entry_id == new.id
    assert [e.title for e in stored.entries] == ["Song 1", "Song 2", "Song 3"]
    # The row is gone: a second replay of it changes nothing.
    assert await repo.replay(nxt, played, 0, None) is None
    (again,) = await repo.load_guilds()
    assert again.entries == stored.entries
    await repo.close()


async def test_history_goes_with_the_guild(db_url: str) -> None:
    repo = await Repository.open(db_url)
    for guild_id in (1, 2, 3):
        player, _ = await repo.enqueue(PlayerRecord(guild_id=guild_id), [entry(1)], start=True)
        await repo.advance(player, remove_entry_id=None, played=entry(7))
    await repo.delete_guild(1)
    assert await _titles(repo, 1) == []
    # The foreign key cascades too: a player row deleted by hand takes its history along.
    async with repo._engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM guild_players WHERE guild_id = 2"))
    assert await _titles(repo, 2) == []
    assert await _titles(repo, 3) == ["Song 7"]
    await repo.close()


async def test_migration_0005_up_and_down(db_url: str) -> None:
    database = sa.make_url(db_url).database
    if db_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "upgrade", "0004")
        assert "play_history" not in await connection.run_sync(tables)
        await connection.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, current_entry_id, position_ms, "
                "position_at_ms, paused, volume, state, loop_mode) VALUES "
                "(9, NULL, 0, 0, :paused, 100, 'idle', 'off')"
            ),
            {"paused": False},
        )
    repo = await Repository.open(db_url)  # migrates to the newest revision
    player = PlayerRecord(guild_id=9)
    await repo.advance(player, remove_entry_id=None, played=entry(3))
    assert await _titles(repo, 9) == ["Song 3"]
    await repo.close()
    async with engine.begin() as connection:
        assert await connection.run_sync(_history_indexes) == {"ix_play_history_guild_id"}
        await connection.run_sync(migrate, "downgrade", "0004")
        assert "play_history" not in await connection.run_sync(tables)
        assert await connection.scalar(sa.text("SELECT count(*) FROM guild_players")) == 1
        await connection.run_sync(migrate, "upgrade", "head")
        assert "play_history" in await connection.run_sync(tables)
    await engine.dispose()


def _history_indexes(connection: sa.Connection) -> set[str]:
    """The index names on play_history. SQLite's reflection skips an index that names the
    rowid column (``id``), so SQLite's own catalogue is asked there."""
    if connection.dialect.name == "sqlite":
        rows = connection.execute(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'play_history' AND sql LIKE '%guild_id%id%'"
            )
        )
        return {str(name) for (name,) in rows}
    indexes = sa.inspect(connection).get_indexes("play_history")
    return {str(i["name"]) for i in indexes if i["column_names"] == ["guild_id", "id"]}
