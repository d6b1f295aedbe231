"""Storage: what is written comes back after reopening, and small changes stay small.

Every test taking ``db_url`` runs on SQLite and on PostgreSQL (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage import NewEntry, PlayerRecord, PlayerStatus, Repository, StorageError
from bot.storage.migrate import SCHEMA_HEAD, alembic_config
from tests.storage.schema import migrate

ROOT = Path(__file__).resolve().parents[2]


def entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


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


async def test_clear_queue_deletes_the_guilds_entries_in_one_statement(db_url: str) -> None:
    repo = await Repository.open(db_url)
    player, _ = await repo.enqueue(
        PlayerRecord(guild_id=1, voice_channel_id=2), [entry(n) for n in range(1, 301)], start=True
    )
    await repo.enqueue(PlayerRecord(guild_id=9), [entry(1), entry(2)], start=True)
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    idle = dataclasses.replace(player, current_entry_id=None, status=PlayerStatus.IDLE)
    assert await repo.clear_queue(idle) == 300
    writes = [s for s in statements if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert [w.split()[0] for w in writes].count("DELETE") == 1, writes
    assert len(writes) <= 2, writes
    await repo.close()

    repo = await Repository.open(db_url)
    stored = {g.player.guild_id: g for g in await repo.load_guilds()}
    assert stored[1].entries == ()
    assert stored[1].player == idle
    assert len(stored[9].entries) == 2  # another guild's queue is untouched
    assert await repo.clear_queue(idle) == 0
    await repo.close()


async def test_unreadable_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bot.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StorageError):
        await Repository.open(f"sqlite+aiosqlite:///{bad}")


async def test_discord_sized_ids_and_flags_round_trip(db_url: str) -> None:
    # Snowflakes need 64 bits, and PostgreSQL checks column types strictly.
    guild, channel, user = 1_234_567_890_123_456_789, 987_654_321_098_765_432, 2**62 + 1
    repo = await Repository.open(db_url)
    player = PlayerRecord(guild_id=guild, voice_channel_id=channel, paused=True)
    stream = NewEntry("enc", "Radio", "Station", 0, True, None, user)
    _, (added,) = await repo.enqueue(player, [stream], start=True)
    await repo.close()

    repo = await Repository.open(db_url)
    (stored,) = await repo.load_guilds()
    assert stored.player.guild_id == guild
    assert stored.player.voice_channel_id == channel
    assert stored.player.paused is True
    assert stored.entries == (added,)
    assert stored.entries[0].requester_id == user
    assert stored.entries[0].is_stream is True
    await repo.close()


async def test_deleting_a_player_row_cascades_to_its_queue(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.enqueue(PlayerRecord(guild_id=7), [entry(1), entry(2)], start=True)
    await repo.enqueue(PlayerRecord(guild_id=8), [entry(3)], start=True)
    async with repo._engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM guild_players WHERE guild_id = 7"))
        left = await connection.scalar(sa.text("SELECT count(*) FROM queue_entries"))
    assert left == 1
    await repo.close()


async def test_reopening_an_up_to_date_database_changes_nothing(db_url: str) -> None:
    repo = await Repository.open(db_url)
    await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    await repo.close()
    for _ in range(2):
        repo = await Repository.open(db_url)
        (stored,) = await repo.load_guilds()
        assert [e.title for e in stored.entries] == ["Song 1"]
        await repo.close()


async def test_alembic_command_line_upgrades_and_downgrades(db_url: str) -> None:
    """``alembic upgrade head`` / ``downgrade base`` from a checkout, as an operator would,
    with the URL written the way hosting panels hand it out (``postgresql://``, no driver)."""
    url = db_url.replace("postgresql+asyncpg://", "postgresql://")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    for args, tables in ((["upgrade", "head"], True), (["downgrade", "base"], False)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, output.decode()
        assert ("guild_players" in await _tables(db_url)) is tables


async def test_dropping_the_unused_node_column_keeps_every_player_and_queue(
    db_url: str,
) -> None:
    """Revision 0003 drops ``guild_players.node`` (written, never read); what was stored before
    loads whole, and a downgrade brings the column back, empty."""
    database = sa.make_url(db_url).database
    if db_url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(db_url)
    async with engine.begin() as connection:
        await connection.run_sync(migrate, "upgrade", "0002")
        await connection.execute(
            sa.text(
                "INSERT INTO guild_players (guild_id, node, voice_channel_id, current_entry_id, "
                "position_ms, position_at_ms, paused, volume, state, loop_mode) VALUES "
                "(9, 'main', 77, 1, 5000, 0, :paused, 60, 'playing', 'queue')"
            ),
            {"paused": False},
        )
        for n in (1, 2):
            await connection.execute(
                sa.text(
                    "INSERT INTO queue_entries (id, guild_id, sort_key, encoded, title, author, "
                    "length_ms, is_stream, uri, requester_id, added_at_ms) VALUES "
                    "(:n, 9, :key, 'enc', :title, 'Artist', 1000, :stream, NULL, 42, 0)"
                ),
                {"n": n, "key": n, "title": f"Song {n}", "stream": False},
            )
    repo = await Repository.open(db_url)  # migrates to the newest revision
    (stored,) = await repo.load_guilds()
    await repo.close()
    assert [e.title for e in stored.entries] == ["Song 1", "Song 2"]
    player = stored.player
    assert (player.voice_channel_id, player.current_entry_id, player.volume) == (77, 1, 60)
    assert player.status is PlayerStatus.PLAYING
    # Revision 0004: a player stored before it loads with nobody gone from its channel.
    assert (player.alone_since_ms, player.alone_paused) == (None, False)
    async with engine.begin() as connection:
        assert "node" not in await connection.run_sync(_columns)
        await connection.run_sync(migrate, "downgrade", "0002")
        assert "node" in await connection.run_sync(_columns)
        rows = (await connection.execute(sa.text("SELECT node FROM guild_players"))).all()
        assert rows == [(None,)]
        assert await connection.scalar(sa.text("SELECT count(*) FROM queue_entries")) == 2
    await engine.dispose()


def _columns(connection: sa.Connection) -> set[str]:
    return {column["name"] for column in sa.inspect(connection).get_columns("guild_players")}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def _record(statements: list[str]) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        # before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
        statements.append(str(args[2]).strip())

    return listener


# --- queue edits --------------------------------------------------------------------------------


async def _queue_of(repo: Repository) -> tuple[int | None, list[str]]:
    stored = {g.player.guild_id: g for g in await repo.load_guilds()}[1]
    return stored.player.current_entry_id, [e.title for e in stored.entries]


async def test_queue_edits_touch_only_their_rows_in_one_statement(db_url: str) -> None:
    repo = await Repository.open(db_url)
    _, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(1, 9)], start=True
    )
    _, other = await repo.enqueue(PlayerRecord(guild_id=2), [entry(99)], start=True)
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))

    await repo.remove_entries(1, [added[2].id, added[3].id, other[0].id])  # not guild 2's
    assert await _queue_of(repo) == (added[0].id, [f"Song {n}" for n in (1, 2, 5, 6, 7, 8)])
    # Song 8 between Song 1 and Song 2; Song 2 to the back.
    await repo.reorder(1, [(added[7].id, added[0].sort_key + 1), (added[1].id, 10**6)])
    assert (await _queue_of(repo))[1] == [f"Song {n}" for n in (1, 8, 5, 6, 7, 2)]
    writes = [s for s in statements if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert len(writes) == 2, writes

    await repo.clear_upcoming(1, keep_entry_id=added[0].id)
    assert await _queue_of(repo) == (added[0].id, ["Song 1"])
    stored = {g.player.guild_id: g for g in await repo.load_guilds()}
    assert [e.title for e in stored[2].entries] == ["Song 99"]
    await repo.clear_upcoming(2, keep_entry_id=None)
    stored = {g.player.guild_id: g for g in await repo.load_guilds()}
    assert stored[2].entries == ()
    await repo.close()


@pytest.mark.parametrize("requeue", [False, True])
async def test_skip_to_passes_entries_in_one_transaction(db_url: str, requeue: bool) -> None:
    repo = await Repository.open(db_url)
    player, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(1, 6)], start=True
    )
    ahead = dataclasses.replace(player, current_entry_id=added[3].id)
    passed = [added[0].id, added[1].id, added[2].id]
    keys = await repo.skip_to(ahead, passed, requeue=requeue)
    current, titles = await _queue_of(repo)
    assert current == added[3].id
    if requeue:
        assert titles == [f"Song {n}" for n in (4, 5, 1, 2, 3)]
        assert list(keys) == sorted(keys)
        assert keys[0] > added[4].sort_key
    else:
        assert (titles, keys) == (["Song 4", "Song 5"], ())
    await repo.close()


async def test_thousands_of_new_keys_are_one_statement(db_url: str) -> None:
    repo = await Repository.open(db_url)
    _, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(2_000)], start=False
    )
    statements: list[str] = []
    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", _record(statements))
    reversed_keys = [(e.id, -e.sort_key) for e in added]
    await repo.reorder(1, reversed_keys)
    assert len(statements) <= 3, statements  # BEGIN, the UPDATE, maybe a COMMIT
    (stored,) = await repo.load_guilds()
    assert [e.id for e in stored.entries] == [e.id for e in reversed(added)]
    await repo.remove_entries(1, [e.id for e in added[:1_900]])
    (stored,) = await repo.load_guilds()
    assert len(stored.entries) == 2_000 - 1_900
    await repo.close()


async def test_other_databases_get_the_portable_statements(tmp_path: Path) -> None:
    from bot.storage import edits  # noqa: PLC0415

    repo = await Repository.open(f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    _, added = await repo.enqueue(
        PlayerRecord(guild_id=1), [entry(n) for n in range(1, 4)], start=False
    )
    original = edits._dialect
    edits._dialect = lambda session: "other"  # type: ignore[assignment]
    try:
        await repo.reorder(1, [(added[0].id, 10**6)])
        await repo.remove_entries(1, [added[1].id])
    finally:
        edits._dialect = original
    assert (await _queue_of(repo))[1] == ["Song 3", "Song 1"]
    await repo.close()


def test_move_keys_fit_between_neighbours_and_respace_only_when_needed() -> None:
    from bot.storage.edits import MIN_GAP, SORT_STEP, move_keys  # noqa: PLC0415

    assert move_keys(None, [2048, 3072]) == [2048 - SORT_STEP]
    assert move_keys(1024, [2048]) == [1536]
    assert move_keys(1024, []) == [1024 + SORT_STEP]
    # No integer between 10 and 11: the moved one and 11 are spaced out before 2048.
    keys = move_keys(10, [11, 2048, 3072])
    assert len(keys) == 2
    assert 10 < keys[0] < keys[1] < 2048
    assert keys[1] - keys[0] >= MIN_GAP
    # Crammed all the way to the end: spaced out after the last.
    assert move_keys(10, [11, 12]) == [10 + SORT_STEP, 10 + 2 * SORT_STEP, 10 + 3 * SORT_STEP]


def test_the_schema_head_named_in_code_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


async def test_a_database_already_up_to_date_opens_without_alembic(tmp_path: Path) -> None:
    # Alembic stays in memory for the process's life once imported (~10 MB): a start that
    # has nothing to migrate does not import it.
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    script = (
        "import asyncio, sys\n"
        "from bot.storage import Repository\n"
        "async def main():\n"
        "    repo = await Repository.open(sys.argv[1])\n"
        "    await repo.close()\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic')[:3])\n"
        "asyncio.run(main())\n"
    )
    imported = []
    for _ in range(2):  # created (and migrated) first, then opened as it is
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, url, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        imported.append(output.decode().strip())
    assert imported[0] != "[]"
    assert imported[1] == "[]"
    repo = await Repository.open(url)
    assert await repo.load_guilds() == []
    await repo.close()


async def test_processes_that_open_a_new_database_together_take_turns_migrating(
    pg_url: str,
) -> None:
    # SHARD_IDS: several processes start at once on one empty PostgreSQL database. Without
    # the migration lock they create the same tables at the same time (one fails with a
    # duplicate key, or, in one process, they wait on each other for good).
    repos = await asyncio.wait_for(
        asyncio.gather(*(Repository.open(pg_url) for _ in range(3))), timeout=30
    )
    for repo in repos:
        await repo.save_session("lava:2333", "s")  # every one of them works
        await repo.close()
