"""The queue's order in its own narrow table (revisions 0008 and 0009), on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import NewEntry, PlayerRecord, Repository
from tests.storage.schema import migrate, tables


def _entry(title: str) -> NewEntry:
    return NewEntry(
        encoded="enc", title=title, author="A", length_ms=1000, is_stream=False, uri=None,
        requester_id=1,
    )  # fmt: skip


async def test_revision_0008_moves_the_keys_out_and_its_downgrade_puts_them_back(
    db_url: str,
) -> None:
    database = sa.make_url(db_url).database
    if db_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "upgrade", "0007")
        await connection.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, voice_channel_id, position_ms, "
                "position_at_ms, paused, volume, state, loop_mode) VALUES "
                "(9, 77, 0, 0, :paused, 60, 'idle', 'off')"
            ),
            {"paused": False},
        )
        for n, key in ((1, 3000), (2, 1000), (3, 2000)):
            await connection.execute(
                sa.text(
                    "INSERT INTO queue_entries (guild_id, sort_key, encoded, title, author, "
                    "length_ms, is_stream, uri, requester_id, added_at_ms) VALUES "
                    "(9, :key, 'enc', :title, 'A', 1000, :stream, NULL, 1, 0)"
                ),
                {"n": n, "key": key, "title": f"Song {n}", "stream": False},
            )
    repo = await Repository.open(db_url)  # migrates to the newest revision
    (stored,) = await repo.load_guilds()
    assert [(e.title, e.sort_key) for e in stored.entries] == [
        ("Song 2", 1000),
        ("Song 3", 2000),
        ("Song 1", 3000),
    ]
    await repo.reorder(9, [(stored.entries[0].id, 5000)])
    _, (added,) = await repo.enqueue(stored.player, [_entry("Song 4")], start=False)
    assert added.sort_key == 5000 + 1024
    await repo.close()
    async with engine.begin() as connection:
        assert "sort_key" not in await connection.run_sync(_columns, "queue_entries")
        await connection.run_sync(migrate, "downgrade", "0007")
        assert "queue_order" not in await connection.run_sync(tables)
        rows = await connection.execute(
            sa.text("SELECT title, sort_key FROM queue_entries ORDER BY guild_id, sort_key")
        )
        assert rows.all() == [
            ("Song 3", 2000),
            ("Song 1", 3000),
            ("Song 2", 5000),
            ("Song 4", 6024),
        ]
        await connection.run_sync(migrate, "upgrade", "head")
    repo = await Repository.open(db_url)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 3", "Song 1", "Song 2", "Song 4"]
    await repo.close()
    await engine.dispose()


async def test_removed_entries_take_their_order_rows_along(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player = PlayerRecord(guild_id=5)
    player, entries = await repo.enqueue(player, [_entry(f"S{n}") for n in range(4)], start=True)
    await repo.remove_entries(5, [entries[1].id])
    await repo.clear_upcoming(5, keep_entry_id=entries[0].id)
    player, (again,) = await repo.enqueue(player, [_entry("again")], start=False)
    kept = await _order_rows(db_url)
    await repo.delete_guild(5)
    await repo.close()
    assert kept == [(entries[0].id, entries[0].sort_key), (again.id, again.sort_key)]
    assert await _order_rows(db_url) == []


async def _order_rows(db_url: str) -> list[tuple[int, int]]:
    engine = create_async_engine(db_url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT entry_id, sort_key FROM queue_order ORDER BY sort_key")
        )
        found = [(int(i), int(k)) for i, k in rows]
    await engine.dispose()
    return found


def _columns(connection: sa.Connection, table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(connection).get_columns(table)}


async def test_revision_0009_indexes_the_order_by_guild_and_its_downgrade_by_guild_and_key(
    db_url: str,
) -> None:
    # A key change (a shuffle) then rewrites rows and no index; the order still reads right.
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(
        PlayerRecord(guild_id=9), [_entry(f"Song {n}") for n in range(4)], start=False
    )
    await repo.reorder(9, [(added[0].id, 9000), (added[3].id, 500)])
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 3", "Song 1", "Song 2", "Song 0"]
    _, (last,) = await repo.enqueue(player, [_entry("Song 4")], start=False)
    assert last.sort_key == 9000 + 1024  # the largest key is still found
    await repo.close()
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        assert await connection.run_sync(_order_indexes) == {
            "ix_queue_order_guild_id": ["guild_id"]
        }
        await connection.run_sync(migrate, "downgrade", "0008")
        assert await connection.run_sync(_order_indexes) == {
            "ix_queue_order_guild_sort": ["guild_id", "sort_key"]
        }
        await connection.run_sync(migrate, "upgrade", "head")
    await engine.dispose()


def _order_indexes(connection: sa.Connection) -> dict[str, list[str]]:
    indexes = sa.inspect(connection).get_indexes("queue_order")
    return {str(i["name"]): [str(c) for c in i["column_names"]] for i in indexes}
