"""The one way into the database.

Every method is one short transaction that touches only the rows it changes: queueing a
playlist inserts its rows, advancing deletes one entry and updates one player row. Nothing
rewrites a whole queue. A transient failure (a locked SQLite file, a PostgreSQL connection
lost or a server restarting) reruns the whole transaction after a short back-off; what still
fails surfaces as :class:`StorageError`, logged once, so callers can tell the user that nothing
was saved rather than crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import alembic.util
import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .diagnose import database_problem, describe_database
from .migrate import upgrade
from .records import LoopMode, NewEntry, PlayerRecord, PlayerStatus, QueueEntry, StoredGuild
from .tables import GuildPlayerRow, LavalinkSessionRow, QueueEntryRow

__all__ = ["DatabaseOpenError", "Repository", "RetryPolicy", "StorageError"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

SORT_STEP = 1024
"""Gap between appended entries, leaving room to insert between neighbours later."""


class StorageError(Exception):
    """A database read or write failed; nothing of that operation was saved."""


class DatabaseOpenError(StorageError):
    """The database could not be opened, or its schema not brought up to date, at start.

    The message names the database (``where``: the SQLite file's absolute path, or the server
    and database name, never the password), what went wrong and, where it can tell, the likely
    cause and its fix.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"cannot open {where}: {problem}")
        self.where = where
        self.problem = problem


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a transient failure (a busy SQLite file, a dropped PostgreSQL connection, a server
    restarting) is retried: ``attempts`` tries in all, waiting ``first_delay`` seconds after the
    first failure and doubling up to ``max_delay`` (with jitter, so writers do not collide
    again in step). SQLite also waits up to ``sqlite_busy_timeout_ms`` inside each try."""

    attempts: int = 6  # sleeps add up to 1.5-3 s: a PostgreSQL restart fits
    first_delay: float = 0.1
    max_delay: float = 2.0
    sqlite_busy_timeout_ms: int = 2000

    def delay(self, failed_attempts: int) -> float:
        base = min(self.first_delay * 2.0 ** (failed_attempts - 1), self.max_delay)
        return base * random.uniform(0.5, 1.0)  # jitter only


class Repository:
    """Sessions, players and queues, over SQLAlchemy's async engine."""

    def __init__(self, engine: AsyncEngine, retry: RetryPolicy | None = None) -> None:
        self._engine = engine
        self._retry = retry or RetryPolicy()
        self._password = engine.url.password
        self.description = describe_database(engine.url)
        """What and where the database is (``SQLite database /abs/bot.db``); no password."""
        self._readers = async_sessionmaker(engine, expire_on_commit=False)
        # Writes ask SQLite for the write lock up front (BEGIN IMMEDIATE, see _sqlite_begin):
        # a transaction that read first and then wants to write can fail at once, with no
        # busy wait, if another connection wrote in between.
        self._writers = async_sessionmaker(
            engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )
        self.write_observer: Callable[[float, bool], None] | None = None
        """Told each write's seconds (retries included) and whether it committed (metrics)."""

    @classmethod
    async def open(cls, url: str, *, retry: RetryPolicy | None = None) -> Repository:
        """Connect to ``url`` and bring its schema up to date.

        A SQLite file's folder is created if missing; SQLite runs in WAL mode with a busy
        timeout so a reader never blocks the writer. PostgreSQL connections are checked before
        use, so a restarted server costs one reconnect rather than a failed write.
        """
        retry = retry or RetryPolicy()
        parsed = make_url(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        in_memory = sqlite and parsed.database in (None, "", ":memory:")
        if sqlite and not in_memory:
            try:
                Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _open_error(
                    parsed, exc, f"cannot create its folder: {exc.strerror or exc}"
                ) from exc
        repo = cls(_engine(parsed, retry, foreign_keys=True, pool=True), retry)
        # Migrations get their own connection: on SQLite they must run with foreign keys off,
        # or a migration that rebuilds guild_players (batch mode copies and drops the table)
        # would cascade-delete every queue entry; the PRAGMA is ignored inside a transaction.
        # (An in-memory database lives in its one connection, and holds nothing to lose.)
        migrator = (
            repo
            if in_memory
            else cls(_engine(parsed, retry, foreign_keys=False, pool=False), retry)
        )

        async def migrate(session: AsyncSession) -> None:
            try:
                await session.run_sync(lambda sync: upgrade(sync.connection()))
            except alembic.util.CommandError as exc:
                # Typically a schema from a newer version of the bot (a downgrade).
                raise StorageError(
                    f"cannot bring the database schema up to date: {exc}; "
                    "was it written by a newer version of the bot?"
                ) from None

        threads_before = set(threading.enumerate())
        try:
            # Not logged here: the caller says it once, as why the bot cannot start.
            await migrator._write("open the database", migrate, quiet=True)
        except StorageError as exc:
            await repo.close()
            if migrator is not repo:
                await migrator.close()
            await _sqlite_threads_ended(threads_before)
            raise _open_error(parsed, exc.__cause__ or exc, str(exc)) from exc
        finally:
            if migrator is not repo:
                await migrator.close()
        return repo

    async def close(self) -> None:
        await self._engine.dispose()

    # --- Lavalink sessions ----------------------------------------------------------------

    async def session_ids(self) -> dict[str, str]:
        rows = await self._read(
            sa.select(LavalinkSessionRow.node, LavalinkSessionRow.session_id),
            "read the Lavalink session ids",
        )
        return {str(node): str(session_id) for node, session_id in rows}

    async def save_session(self, node: str, session_id: str) -> None:
        async def work(session: AsyncSession) -> None:
            await session.merge(
                LavalinkSessionRow(node=node, session_id=session_id, updated_at_ms=now_ms())
            )

        await self._write(f"store the Lavalink session of {node}", work)

    # --- guilds ---------------------------------------------------------------------------

    async def load_guilds(self) -> list[StoredGuild]:
        """Every stored guild with its queue in order (used once, at start)."""
        players = await self._read(sa.select(GuildPlayerRow), "load the players")
        entries = await self._read(
            sa.select(QueueEntryRow).order_by(QueueEntryRow.guild_id, QueueEntryRow.sort_key),
            "load the queues",
        )
        by_guild: dict[int, list[QueueEntry]] = {}
        for (row,) in entries:
            by_guild.setdefault(row.guild_id, []).append(_entry(row))
        return [
            StoredGuild(_player(row), tuple(by_guild.get(row.guild_id, ()))) for (row,) in players
        ]

    async def save_player(self, player: PlayerRecord) -> None:
        """Insert or update one guild's player row."""

        async def work(session: AsyncSession) -> None:
            await session.merge(_player_row(player))

        await self._write(f"store the player of guild {player.guild_id}", work)

    async def enqueue(
        self, player: PlayerRecord, entries: Sequence[NewEntry], *, start: bool
    ) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
        """Append ``entries``; with ``start`` the player is marked playing and, if it has no
        current track, the first new entry becomes it.

        Returns the player as stored and the new entries with their ids, in order.
        """
        added_at = now_ms()

        # Retried whole on a transient failure, so it starts from the caller's ``player``
        # every time and hands its results back rather than assigning outer names.
        async def work(session: AsyncSession) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
            stored_player = player
            await session.merge(_player_row(stored_player))
            last = await session.scalar(
                sa.select(sa.func.max(QueueEntryRow.sort_key)).where(
                    QueueEntryRow.guild_id == player.guild_id
                )
            )
            keys = [(last or 0) + SORT_STEP * (i + 1) for i in range(len(entries))]
            values = [
                {
                    **_new_entry_fields(e),
                    "guild_id": player.guild_id,
                    "sort_key": key,
                    "added_at_ms": added_at,
                }
                for e, key in zip(entries, keys, strict=True)
            ]
            result = await session.execute(
                sa.insert(QueueEntryRow).returning(QueueEntryRow.id, sort_by_parameter_order=True),
                values,
            )
            stored = tuple(
                QueueEntry(**_new_entry_fields(e), id=row_id, sort_key=key, added_at_ms=added_at)
                for e, (row_id,), key in zip(entries, result, keys, strict=True)
            )
            if start and stored:
                if stored_player.current_entry_id is None:
                    stored_player = dataclasses.replace(
                        stored_player,
                        current_entry_id=stored[0].id,
                        position_ms=0,
                        position_at_ms=added_at,
                    )
                stored_player = dataclasses.replace(stored_player, status=PlayerStatus.PLAYING)
                await session.merge(_player_row(stored_player))
            return stored_player, stored

        what = f"queue {len(entries)} track(s) in guild {player.guild_id}"
        return await self._write(what, work)

    async def advance(self, player: PlayerRecord, *, remove_entry_id: int | None) -> None:
        """Store ``player`` (its new current entry) and delete the entry that just ended."""

        async def work(session: AsyncSession) -> None:
            if remove_entry_id is not None:
                await session.execute(
                    sa.delete(QueueEntryRow).where(
                        QueueEntryRow.id == remove_entry_id,
                        QueueEntryRow.guild_id == player.guild_id,
                    )
                )
            await session.merge(_player_row(player))

        await self._write(f"advance the queue of guild {player.guild_id}", work)

    async def requeue(self, player: PlayerRecord, entry_id: int) -> int:
        """Store ``player`` and move entry ``entry_id`` to the back of its guild's queue.

        One entry row gets a new sort key (the largest plus a step); nothing else moves.
        Returns the new sort key.
        """

        async def work(session: AsyncSession) -> int:
            last = await session.scalar(
                sa.select(sa.func.max(QueueEntryRow.sort_key)).where(
                    QueueEntryRow.guild_id == player.guild_id
                )
            )
            key = (last or 0) + SORT_STEP
            await session.execute(
                sa.update(QueueEntryRow)
                .where(QueueEntryRow.id == entry_id, QueueEntryRow.guild_id == player.guild_id)
                .values(sort_key=key)
            )
            await session.merge(_player_row(player))
            return int(key)

        return await self._write(f"move an entry to the back in guild {player.guild_id}", work)

    async def save_position(
        self, guild_id: int, position_ms: int, at_ms: int, *, entry_id: int | None = None
    ) -> None:
        """Store the position; with ``entry_id``, only if that entry is still the current one
        (a report that arrives after the track changed must not move the next one)."""
        where = [GuildPlayerRow.guild_id == guild_id]
        if entry_id is not None:
            where.append(GuildPlayerRow.current_entry_id == entry_id)

        async def work(session: AsyncSession) -> None:
            await session.execute(
                sa.update(GuildPlayerRow)
                .where(*where)
                .values(position_ms=position_ms, position_at_ms=at_ms)
            )

        await self._write(f"store the position in guild {guild_id}", work)

    async def delete_guild(self, guild_id: int) -> None:
        async def work(session: AsyncSession) -> None:
            await session.execute(
                sa.delete(QueueEntryRow).where(QueueEntryRow.guild_id == guild_id)
            )
            await session.execute(
                sa.delete(GuildPlayerRow).where(GuildPlayerRow.guild_id == guild_id)
            )

        await self._write(f"forget guild {guild_id}", work)

    async def check_writable(self) -> str | None:
        """``None`` if the database takes a write transaction now, else why not (for health).

        On SQLite the writer's ``BEGIN IMMEDIATE`` takes the write lock, so a read-only file or
        a lock held elsewhere shows; on a server database it proves a working connection.
        """

        async def work(session: AsyncSession) -> None:
            await session.execute(sa.text("SELECT 1"))

        try:
            await self._write("check that the database is writable", work, quiet=True)
        except StorageError as exc:
            return str(exc)
        return None

    # --- plumbing -------------------------------------------------------------------------

    async def _read(self, statement: Any, what: str = "read the database") -> list[Any]:
        async def work(session: AsyncSession) -> list[Any]:
            return list(await session.execute(statement))

        return await self._transaction(self._readers, what, work)

    async def _write(
        self, what: str, work: Callable[[AsyncSession], Awaitable[T]], *, quiet: bool = False
    ) -> T:
        """Run ``work`` in one transaction, committed at the end, retried whole on a transient
        failure. ``work`` may run more than once, so it must not change anything outside the
        session; what it returns is the last (committed) run's."""
        started = time.monotonic()
        try:
            result = await self._transaction(self._writers, what, work, quiet=quiet)
        except StorageError:
            if self.write_observer is not None:
                self.write_observer(time.monotonic() - started, False)
            raise
        if self.write_observer is not None:
            self.write_observer(time.monotonic() - started, True)
        return result

    async def _transaction(
        self,
        sessions: async_sessionmaker[AsyncSession],
        what: str,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        quiet: bool = False,
    ) -> T:
        attempt = 1
        while True:
            try:
                async with sessions.begin() as session:
                    return await work(session)
            except (SQLAlchemyError, OSError) as exc:
                # A PostgreSQL connection lost during COMMIT leaves the outcome unknown; the
                # retry then may repeat a write that did land. That window is a few
                # microseconds wide, while refusing every retry would drop real writes.
                cause = self._describe(exc)
                if attempt < self._retry.attempts and _transient(exc):
                    _log.debug("%s: attempt %d failed, retrying: %s", what, attempt, cause)
                    await asyncio.sleep(self._retry.delay(attempt))
                    attempt += 1
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                if not quiet:
                    _log.error(
                        "database: could not %s%s: %s%s",
                        what,
                        tries,
                        cause,
                        self._pool_note(cause),
                    )
                raise StorageError(f"could not {what}{tries}: {cause}") from exc

    def _pool_note(self, cause: str) -> str:
        """For a lock that outlived every retry, how many of our own connections were in use:
        none means the holder is another process or a connection the pool no longer knows."""
        if "locked" not in cause:
            return ""
        return f" (our connection pool: {self._engine.pool.status()})"

    def _describe(self, exc: BaseException) -> str:
        """The driver's own one-line message, without SQL or parameters, and never the
        database password (some drivers echo their connection arguments)."""
        inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        lines = str(inner).strip().splitlines()
        text = f"{type(inner).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if self._password:
            text = text.replace(self._password, "***")
        return text


_WRITE_OPTION = "musicbot_write"


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return found


def _open_error(url: sa.URL, exc: BaseException, happened: str) -> DatabaseOpenError:
    """What went wrong opening ``url``, with the likely cause and fix when one is known."""
    problem = database_problem(url, exc)
    if problem is None:
        return DatabaseOpenError(describe_database(url), happened)
    if url.get_backend_name() == "sqlite":
        # The diagnosis names the file or folder; SQLite's own words come last, as evidence.
        said = next((e for e in _causes(exc) if isinstance(e, sqlite3.Error)), None)
        evidence = f"SQLite: {str(said).splitlines()[0]}" if said else happened
        return DatabaseOpenError(describe_database(url), f"{problem} ({evidence})")
    return DatabaseOpenError(describe_database(url), f"{happened}; {problem}")


async def _sqlite_threads_ended(before: set[threading.Thread], timeout: float = 1.0) -> None:
    """Wait for the threads of connections that failed to open.

    aiosqlite stops such a thread after the error is raised, and the thread then calls back
    into the event loop; a bot that exits at once would close the loop first, and the thread
    would die printing a traceback under the one line that says why the bot cannot start.
    """
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, timeout)


def _engine(url: sa.URL, retry: RetryPolicy, *, foreign_keys: bool, pool: bool) -> AsyncEngine:
    options: dict[str, Any] = {"hide_parameters": True}  # no track data in error text
    if not pool:
        options["poolclass"] = sa.NullPool
    sqlite = url.get_backend_name() == "sqlite"
    if not sqlite:
        # A connection the server dropped (restart, failover, idle timeout) is noticed at
        # check-out and replaced, instead of failing the next write.
        options["pool_pre_ping"] = True
    if url.get_driver_name() == "asyncpg":
        # asyncpg waits a minute for an unreachable host by default; retries do better.
        options["connect_args"] = {"timeout": 10}
    if sqlite:
        options["connect_args"] = {"factory": _SqliteConnection}
    engine = create_async_engine(url, **options)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_connect(retry, foreign_keys))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


# PostgreSQL error classes worth another try: serialization failure, deadlock, connection
# exceptions (08...), the server shutting down or starting up, too many connections.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def _transient(exc: BaseException) -> bool:
    """Whether the same transaction may well succeed if tried again shortly."""
    if isinstance(exc, ConnectionError | TimeoutError | sqlalchemy.exc.TimeoutError):
        return True  # refused/reset connections, pool or connect timeouts
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True  # SQLAlchemy saw a disconnect; the pool has dropped that connection
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(code, str) and (code in _TRANSIENT_SQLSTATES or code.startswith("08")):
        return True
    if isinstance(exc.orig, ConnectionError | TimeoutError):
        return True
    message = str(exc.orig).lower()
    return isinstance(exc, sqlalchemy.exc.OperationalError) and (
        "database is locked" in message or "database table is locked" in message
    )


class _SqliteConnection(sqlite3.Connection):
    """A sqlite3 connection that gives up its locks when it is closed.

    SQLAlchemy closes a connection without a rollback when it throws it away (a task cancelled
    mid-transaction invalidates its connection). sqlite3's ``close()`` does not finalize a
    statement a live cursor still holds (a SELECT executed but not yet fetched), so SQLite
    keeps the connection as a "zombie" with its transaction, and BEGIN IMMEDIATE's write
    lock, until the garbage collector frees that cursor: seconds, under load, during which
    every other write fails with "database is locked". Rolling back first aborts such
    statements and releases the lock at once.
    """

    def close(self) -> None:
        try:
            if self.in_transaction:
                self.rollback()
        except sqlite3.Error as exc:  # closing anyway: no worse than without the rollback
            _log.warning("database: rollback before closing a connection failed: %s", exc)
        finally:
            super().close()


def _sqlite_connect(retry: RetryPolicy, foreign_keys: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (it would skip it before SELECTs and DDL);
        # _sqlite_begin issues it instead.
        dbapi_connection.isolation_level = None
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(retry.sqlite_busy_timeout_ms)}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.close()
        except Exception:
            # SQLAlchemy drops a connection whose set-up failed without closing it; left
            # open, aiosqlite's thread outlives the event loop and dies with a traceback.
            dbapi_connection.close()
            raise

    return on_connect


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _new_entry_fields(entry: NewEntry) -> dict[str, Any]:
    return {field.name: getattr(entry, field.name) for field in dataclasses.fields(NewEntry)}


def _entry(row: QueueEntryRow) -> QueueEntry:
    return QueueEntry(
        encoded=row.encoded,
        title=row.title,
        author=row.author,
        length_ms=row.length_ms,
        is_stream=row.is_stream,
        uri=row.uri,
        requester_id=row.requester_id,
        id=row.id,
        sort_key=row.sort_key,
        added_at_ms=row.added_at_ms,
    )


def _player(row: GuildPlayerRow) -> PlayerRecord:
    try:
        status = PlayerStatus(row.state)
    except ValueError:
        status = PlayerStatus.INTERRUPTED
    try:
        loop_mode = LoopMode(row.loop_mode)
    except ValueError:
        _log.warning(
            "guild %s: unknown stored loop mode %r; loop is off", row.guild_id, row.loop_mode
        )
        loop_mode = LoopMode.OFF
    return PlayerRecord(
        guild_id=row.guild_id,
        voice_channel_id=row.voice_channel_id,
        text_channel_id=row.text_channel_id,
        current_entry_id=row.current_entry_id,
        position_ms=row.position_ms,
        position_at_ms=row.position_at_ms,
        paused=row.paused,
        volume=row.volume,
        status=status,
        loop_mode=loop_mode,
        filters=row.filters,
    )


def _player_row(player: PlayerRecord) -> GuildPlayerRow:
    return GuildPlayerRow(
        guild_id=player.guild_id,
        voice_channel_id=player.voice_channel_id,
        text_channel_id=player.text_channel_id,
        current_entry_id=player.current_entry_id,
        position_ms=player.position_ms,
        position_at_ms=player.position_at_ms,
        paused=player.paused,
        volume=player.volume,
        state=player.status.value,
        loop_mode=player.loop_mode.value,
        filters=player.filters,
    )
