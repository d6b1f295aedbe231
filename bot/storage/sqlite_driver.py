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
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite

__all__ = ["one_trip_dbapi"]

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

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            driver = cast("aiosqlite.Connection", self._connection)
            on_thread: Callable[..., Awaitable[_Outcome]] = driver._execute  # untyped there
            description, rowcount, lastrowid, rows = await on_thread(
                _run, driver._conn, operation, parameters, many
            )
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
        super().rollback()


class _OneTripDBAPI(sa_aiosqlite.AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _OneTripConnection:
        stock = super().connect(*arg, **kw)
        return _OneTripConnection(self, stock._connection)


def one_trip_dbapi() -> Any:
    """The DBAPI to hand ``create_async_engine(module=...)`` for ``sqlite+aiosqlite`` URLs."""
    return _OneTripDBAPI(aiosqlite, sqlite3)
