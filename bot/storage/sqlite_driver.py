"""SQLAlchemy's aiosqlite driver, sending each statement to SQLite's thread in one trip.

aiosqlite runs every sqlite3 call on a thread of its own; each call is a trip there and back
(a queue put, the thread waking, a callback into the event loop). SQLAlchemy's adapter makes
three or four trips per statement (open a cursor, execute, fetch, close it) and one more to
roll back a connection that has already committed when it returns to the pool. A track change
(four statements in one transaction) took 17 trips; here it takes 6, and its CPU falls from
~2.1 to ~1.4 ms (``bench/README.md``, "Many guilds playing", stop 21).

Only the trips change: SQLAlchemy still compiles, executes and reports every statement through
its cursor and its events, so ``before_cursor_execute`` sees what it saw before and sqlite3
errors reach SQLAlchemy as they did. The classes lean on SQLAlchemy's adapter
(``AsyncAdapt_dbapi_cursor``) and on aiosqlite's own queue (``Connection._execute``, which
SQLAlchemy's adapter uses too); ``pyproject.toml`` bounds both versions, and
``tests/storage/test_sqlite_driver.py`` fails if an upgrade changes either.

A transaction of Core statements can go further: :func:`in_one_trip` runs all of it, from
``BEGIN IMMEDIATE`` to ``COMMIT``, as one function on SQLite's thread. There the cursor and the
connection call sqlite3 directly (the thread is SQLite's own, and the event loop waits for the
one result), so a track change takes one trip instead of five.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiosqlite
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["in_one_trip", "one_trip_dbapi"]

T = TypeVar("T")

_Outcome = tuple[Any, int, int | None, list[Any] | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On aiosqlite's thread: the statement, its rows and its counts, the cursor closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _Finished:
    """Stands where SQLAlchemy's adapter keeps aiosqlite's cursor: what the last statement
    left behind. Its sqlite3 cursor was closed on the thread, so closing this is free."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self) -> None:
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def close(self) -> None:
        pass


class _OneTripCursor(sa_aiosqlite.AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False  # nothing is left open on the thread

    def _make_new_cursor(self, connection: Any) -> Any:
        return _Finished()

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    def execute(self, operation: Any, parameters: Any = None) -> None:
        driver = cast("aiosqlite.Connection", self._connection)
        if _on_thread(driver):  # inside in_one_trip: sqlite3 is right here
            self._keep(_run(driver._conn, operation, parameters, False))
        else:
            super().execute(operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        driver = cast("aiosqlite.Connection", self._connection)
        if _on_thread(driver):
            self._keep(_run(driver._conn, operation, seq_of_parameters, True))
        else:
            super().executemany(operation, seq_of_parameters)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            driver = cast("aiosqlite.Connection", self._connection)
            on_thread: Callable[..., Awaitable[_Outcome]] = driver._execute  # untyped there
            self._keep(await on_thread(_run, driver._conn, operation, parameters, many))

    def _keep(self, outcome: _Outcome) -> None:
        description, rowcount, lastrowid, rows = outcome
        finished = cast("_Finished", self._cursor)
        finished.description = description
        finished.rowcount = rowcount
        finished.lastrowid = lastrowid
        if rows is not None:
            self._rows = collections.deque(rows)


class _OneTripConnection(sa_aiosqlite.AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _OneTripCursor

    def rollback(self) -> None:
        # The pool rolls back every connection it takes back, most of them just committed:
        # with no transaction open, sqlite3's rollback does nothing, so the trip is skipped.
        driver = cast("aiosqlite.Connection", self._connection)
        if driver._connection is not None and not driver._conn.in_transaction:
            return
        if _on_thread(driver):
            driver._conn.rollback()
        else:
            super().rollback()

    def commit(self) -> None:
        driver = cast("aiosqlite.Connection", self._connection)
        if _on_thread(driver):
            driver._conn.commit()
        else:
            super().commit()


class _OneTripDBAPI(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneTripConnection:
        stock = super().connect(*arg, **kw)
        return _OneTripConnection(self, stock._connection)


def one_trip_dbapi() -> Any:
    """The DBAPI to hand ``create_async_engine(module=...)`` for ``sqlite+aiosqlite`` URLs."""
    return _OneTripDBAPI(aiosqlite, sqlite3)


def _on_thread(driver: aiosqlite.Connection) -> bool:
    """Whether this runs on ``driver``'s own thread (inside :func:`in_one_trip`)."""
    return threading.current_thread() is driver._thread


async def in_one_trip(connection: AsyncConnection, work: Callable[[sa.Connection], T]) -> T:
    """Run ``work`` in a transaction of its own on ``connection`` (begun and committed here,
    rolled back if it raises) and return what it returns.

    On this driver the whole transaction is one trip to SQLite's thread: ``work`` runs there,
    so it must only execute statements (no awaiting, nothing of the event loop's). On any
    other database (PostgreSQL) it runs as SQLAlchemy runs sync code on an async connection.
    SQLAlchemy's events fire as for any statement; on this driver they fire on SQLite's thread.
    """
    raw = await connection.get_raw_connection()
    if not isinstance(raw.dbapi_connection, _OneTripConnection):
        return await connection.run_sync(_whole, work, None)
    driver = cast("aiosqlite.Connection", raw.driver_connection)
    on_thread: Callable[..., Awaitable[T]] = driver._execute  # untyped there
    abandoned = threading.Event()
    trip = asyncio.ensure_future(on_thread(_whole, connection.sync_connection, work, abandoned))
    try:
        return await asyncio.shield(trip)
    except asyncio.CancelledError:
        # The thread goes on with this connection: the transaction rolls back unless it is
        # already committing, and only then may the pool take the connection back.
        abandoned.set()
        await asyncio.wait([trip])
        if not trip.cancelled():
            trip.exception()  # retrieved: the caller is gone, and says so by its cancellation
        raise


def _whole(
    sync: sa.Connection, work: Callable[[sa.Connection], T], abandoned: threading.Event | None
) -> T:
    with sync.begin() as transaction:
        result = work(sync)
        if abandoned is not None and abandoned.is_set():
            transaction.rollback()  # whoever waited for it was cancelled: as if never begun
        return result
