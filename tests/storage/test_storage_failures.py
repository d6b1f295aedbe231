"""Storage under trouble: locked SQLite files, a restarted or unreachable PostgreSQL server, a
connection cut in the middle of a transaction. Every failure here is real (a second SQLite
connection holding the write lock, the test PostgreSQL server stopped or restarted); a write
either lands whole after a retry or fails as one :class:`StorageError`, logged once, with
nothing half-written and no password in sight.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from bot.storage import NewEntry, PlayerRecord, PlayerStatus, Repository, StorageError, repository
from bot.storage.repository import RetryPolicy
from tests.pg_server import PostgresServer

LOGGER = "bot.storage.repository"


def entry(n: int) -> NewEntry:
    return NewEntry(f"enc{n}", f"Song {n}", "Artist", 1000 * n, False, f"https://x/{n}", 42)


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding SQLite's write lock."""
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield blocker
    finally:
        if blocker.in_transaction:
            blocker.rollback()
        blocker.close()


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- SQLite ---------------------------------------------------------------------------------


async def test_sqlite_runs_in_wal_with_a_busy_timeout(sqlite_path: Path) -> None:
    repo = await Repository.open(
        f"sqlite+aiosqlite:///{sqlite_path}", retry=RetryPolicy(sqlite_busy_timeout_ms=1234)
    )
    await repo.save_player(PlayerRecord(guild_id=1))
    async with repo._engine.connect() as connection:
        timeout = await connection.scalar(sa.text("PRAGMA busy_timeout"))
        foreign_keys = await connection.scalar(sa.text("PRAGMA foreign_keys"))
    await repo.close()
    assert (timeout, foreign_keys) == (1234, 1)
    # WAL is a property of the file: any other connection sees it too.
    with contextlib.closing(sqlite3.connect(sqlite_path)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_write_waits_out_a_brief_lock(
    sqlite_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    # A busy timeout far shorter than the lock, so only the retries can bridge it.
    policy = RetryPolicy(attempts=30, first_delay=0.05, max_delay=0.1, sqlite_busy_timeout_ms=50)
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}", retry=policy)
    with write_lock(sqlite_path) as blocker:
        asyncio.get_running_loop().call_later(0.4, blocker.rollback)
        player, added = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    assert retries(caplog), "the lock was held, so the first attempt must have failed"
    assert not errors(caplog)
    (stored,) = await repo.load_guilds()
    assert stored.entries == added
    assert stored.player.current_entry_id == added[0].id == player.current_entry_id
    await repo.close()


async def test_lock_longer_than_the_retry_budget_fails_cleanly(
    sqlite_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = RetryPolicy(attempts=3, first_delay=0.01, sqlite_busy_timeout_ms=50)
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}", retry=policy)
    player, _ = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=False)
    with write_lock(sqlite_path), pytest.raises(StorageError) as raised:
        await repo.enqueue(player, [entry(2), entry(3)], start=True)
    assert "after 3 attempts" in str(raised.value)
    assert "database is locked" in str(raised.value)
    assert len(errors(caplog)) == 1, errors(caplog)
    assert "queue 2 track(s) in guild 1" in errors(caplog)[0]
    # The lock is another connection's: none of this repository's is in use.
    assert "Current Checked out connections: 0" in errors(caplog)[0]
    # Nothing of the failed write landed: no entry, and the player is neither started nor
    # pointing at an entry.
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1"]
    assert (stored.player.status, stored.player.current_entry_id) == (PlayerStatus.IDLE, None)
    # Once the lock is gone the same repository writes again.
    await repo.enqueue(player, [entry(4)], start=False)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1", "Song 4"]
    await repo.close()


async def test_a_write_cancelled_mid_read_leaves_no_lock_behind(
    sqlite_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task cancelled while its write transaction has read a row but not yet fetched it
    (``merge`` reads the row first) must not keep SQLite's write lock: SQLAlchemy throws that
    connection away without a rollback, and sqlite3 alone would leave it open, locked, for as
    long as the unfetched cursor lives (until a garbage collection, seconds under load)."""
    policy = RetryPolicy(attempts=2, first_delay=0.01, sqlite_busy_timeout_ms=100)
    repo = await Repository.open(f"sqlite+aiosqlite:///{sqlite_path}", retry=policy)
    await repo.save_player(PlayerRecord(guild_id=1))  # the pool now holds one connection
    loop = asyncio.get_running_loop()
    victim: asyncio.Task[None] | None = None

    def on_statement(sql: str) -> None:
        # Runs in aiosqlite's thread as the SELECT starts. The cancel is queued on the loop
        # before the SELECT's result, so it lands while the row is read but not fetched.
        if victim is not None and sql.startswith("SELECT guild_players."):
            loop.call_soon_threadsafe(victim.cancel)

    async with repo._engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.set_trace_callback(on_statement)
    gc.disable()  # the cancelled cursor lives on in a reference cycle, as it may in the bot
    try:
        victim = asyncio.create_task(repo.save_player(PlayerRecord(guild_id=1, volume=50)))
        with pytest.raises(asyncio.CancelledError):
            await victim
        victim = None
        # Without the fix: "could not store the position ... database is locked".
        await repo.save_position(1, 1234, 5678)
    finally:
        gc.enable()
    assert not errors(caplog)
    (stored,) = await repo.load_guilds()
    assert (stored.player.position_ms, stored.player.volume) == (1234, 100)
    await repo.close()


async def test_two_writers_on_one_database_lose_nothing(db_url: str) -> None:
    """Two connections pools (as two bot processes would have) writing at once."""
    first, second = await Repository.open(db_url), await Repository.open(db_url)

    async def fill(repo: Repository, guild_id: int) -> None:
        player = PlayerRecord(guild_id=guild_id)
        for n in range(25):
            player, _ = await repo.enqueue(player, [entry(n)], start=True)
            await repo.save_position(guild_id, n, n)

    await asyncio.gather(fill(first, 1), fill(second, 2))
    stored = {g.player.guild_id: g for g in await first.load_guilds()}
    for guild_id in (1, 2):
        assert [e.title for e in stored[guild_id].entries] == [f"Song {n}" for n in range(25)]
        assert stored[guild_id].player.position_ms == 24
    await first.close()
    await second.close()


# --- PostgreSQL -----------------------------------------------------------------------------


async def test_restarted_server_costs_no_write(
    postgres_server: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    # No retries at all: the pooled connection that the restart killed must be noticed at
    # check-out (pre-ping) and replaced.
    repo = await Repository.open(pg_url, retry=RetryPolicy(attempts=1))
    player, _ = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
    await asyncio.to_thread(postgres_server.restart)
    await repo.enqueue(player, [entry(2)], start=False)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1", "Song 2"]
    assert not errors(caplog)
    await repo.close()


async def test_write_waits_for_a_server_coming_back(
    postgres_server: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    policy = RetryPolicy(attempts=60, first_delay=0.1, max_delay=0.3)  # 8 s or more
    repo = await Repository.open(pg_url, retry=policy)
    await repo.save_player(PlayerRecord(guild_id=1))
    await asyncio.to_thread(postgres_server.stop)
    try:

        async def come_back() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(postgres_server.start)

        back = asyncio.create_task(come_back())
        await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=True)
        await back
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(postgres_server.start)  # for the tests after this one
    assert retries(caplog), "the server was down, so the first attempt must have failed"
    assert not errors(caplog)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1"]
    await repo.close()


async def test_connection_cut_mid_transaction_is_retried_whole(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    repo = await Repository.open(pg_url, retry=RetryPolicy(first_delay=0.01))
    player, first = await repo.enqueue(PlayerRecord(guild_id=1), [entry(1)], start=False)
    cut: list[str] = []

    def cut_before_insert(connection: sa.Connection, *args: Any) -> None:
        statement = str(args[1])
        if statement.startswith("INSERT INTO queue_entries") and not cut:
            # The player row is already merged in this transaction; the server now drops
            # the connection, as a crash or a failover would.
            cut.append(statement)
            connection.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    sa.event.listen(repo._engine.sync_engine, "before_cursor_execute", cut_before_insert)
    player, added = await repo.enqueue(player, [entry(2), entry(3)], start=True)
    assert cut, "the connection was never cut"
    assert retries(caplog)
    # Retried whole: each entry once, and what enqueue returned is what was committed.
    (stored,) = await repo.load_guilds()
    assert stored.entries == first + added
    assert stored.player.current_entry_id == added[0].id == player.current_entry_id
    assert stored.player.status is PlayerStatus.PLAYING
    await repo.close()


async def test_unreachable_server_fails_without_leaking_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("asyncpg")
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "hunter2-s3cret"
    url = f"postgresql+asyncpg://bot:{password}@127.0.0.1:{port}/music"
    with pytest.raises(StorageError) as raised:
        await Repository.open(url, retry=RetryPolicy(attempts=2, first_delay=0.01))
    assert "could not open the database after 2 attempts" in str(raised.value)
    assert "refused" in str(raised.value).lower()
    # Not logged: `python -m bot` prints the error as its one line on why it cannot start.
    assert errors(caplog) == []
    assert password not in str(raised.value)
    assert password not in caplog.text


async def test_a_migration_rebuilding_the_player_table_keeps_every_queue(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite alters a table by copying and dropping it (Alembic batch mode). With foreign
    keys on, dropping guild_players would cascade-delete every queue entry; migrations must
    therefore run with them off."""
    url = f"sqlite+aiosqlite:///{sqlite_path}"
    repo = await Repository.open(url)
    await repo.enqueue(PlayerRecord(guild_id=1, volume=55), [entry(1), entry(2)], start=True)
    await repo.close()

    real_upgrade = repository.upgrade

    def upgrade_with_rebuild(connection: sa.Connection) -> None:
        real_upgrade(connection)
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("guild_players", recreate="always"):
            pass  # what a column change on SQLite amounts to

    monkeypatch.setattr(repository, "upgrade", upgrade_with_rebuild)
    repo = await Repository.open(url)
    (stored,) = await repo.load_guilds()
    assert [e.title for e in stored.entries] == ["Song 1", "Song 2"]
    assert stored.player.volume == 55
    await repo.close()
