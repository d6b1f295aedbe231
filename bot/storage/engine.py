"""The database engine: SQLite and PostgreSQL set up the way the repository relies on.

SQLite gets WAL, a busy timeout, foreign keys and BEGIN IMMEDIATE for writes (a writer asks
for the lock up front instead of failing half-way); PostgreSQL gets pre-ping and a connect
timeout. Also which failures are worth another try, and what a failed open means.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .diagnose import database_problem, describe_database
from .errors import DatabaseOpenError
from .sqlite_driver import one_trip_dbapi

__all__ = [
    "WRITE_OPTION",
    "RetryPolicy",
    "create_engine",
    "open_error",
    "sqlite_threads_ended",
    "transient",
]

_log = logging.getLogger(__name__)


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


WRITE_OPTION = "musicbot_write"


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return found


def open_error(url: sa.URL, exc: BaseException, happened: str) -> DatabaseOpenError:
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


async def sqlite_threads_ended(before: set[threading.Thread], timeout: float = 1.0) -> None:
    """Wait for the threads of connections that failed to open.

    aiosqlite stops such a thread after the error is raised, and the thread then calls back
    into the event loop; a bot that exits at once would close the loop first, and the thread
    would die printing a traceback under the one line that says why the bot cannot start.
    """
    for thread in set(threading.enumerate()) - before:
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, timeout)


def create_engine(
    url: sa.URL, retry: RetryPolicy, *, foreign_keys: bool, pool: bool
) -> AsyncEngine:
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
        if url.get_driver_name() == "aiosqlite":
            options["module"] = one_trip_dbapi()
    engine = create_async_engine(url, **options)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_connect(retry, foreign_keys))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


# PostgreSQL error classes worth another try: serialization failure, deadlock, connection
# exceptions (08...), the server shutting down or starting up, too many connections.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def transient(exc: BaseException) -> bool:
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
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
