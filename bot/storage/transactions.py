"""The repository's plumbing: one transaction per call, retried whole on a passing failure.

Every storage class (:class:`~.repository.Repository`, :class:`~.history.HistoryStore`) is a
:class:`Transactions`: a transient failure (a locked SQLite file, a PostgreSQL connection lost
or a server restarting) reruns the whole transaction after a short back-off; what still fails
surfaces as :class:`StorageError`, logged once, so callers can tell the user that nothing was
saved rather than crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from .diagnose import describe_database
from .engine import WRITE_OPTION, RetryPolicy, transient
from .errors import StorageError
from .sqlite_driver import in_one_trip

__all__ = ["Reader", "Transactions", "Writer"]

_log = logging.getLogger("bot.storage.repository")
T = TypeVar("T")


class Writer(Protocol):
    """The repository's write, handed to the stores it composes (settings, inserts, the
    controller messages, liveness): one transaction, retried whole on a transient failure."""

    async def __call__(self, what: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T: ...


class Reader(Protocol):
    """The repository's read: the statement's rows."""

    async def __call__(self, statement: Any, what: str = ...) -> list[Any]: ...


class Transactions:
    """An engine, its readers and writers, and the retry rule every statement runs under."""

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
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._writers = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self.write_observer: Callable[[float, bool], None] | None = None
        """Told each write's seconds (retries included) and whether it committed (metrics)."""

    async def close(self) -> None:
        await self._engine.dispose()

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

        return await self._read_session(what, work)

    async def _read_session(self, what: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in a read transaction, retried whole on a transient failure."""
        return await self._transaction(what, lambda: _in_session(self._readers, work))

    async def _write(
        self, what: str, work: Callable[[AsyncSession], Awaitable[T]], *, quiet: bool = False
    ) -> T:
        """Run ``work`` in one transaction, committed at the end, retried whole on a transient
        failure. ``work`` may run more than once, so it must not change anything outside the
        session; what it returns is the last (committed) run's."""
        return await self._observed(what, lambda: _in_session(self._writers, work), quiet=quiet)

    async def _write_core(self, what: str, work: Callable[[sa.Connection], T]) -> T:
        """:meth:`_write` for a transaction of Core statements only (the busiest writes):
        ``work`` gets the plain connection and only executes statements. On SQLite the whole
        transaction is one trip to SQLite's thread (:func:`.sqlite_driver.in_one_trip`)."""

        async def once() -> T:
            async with self._write_engine.connect() as connection:
                return await in_one_trip(connection, work)

        return await self._observed(what, once)

    async def _observed(
        self, what: str, once: Callable[[], Awaitable[T]], *, quiet: bool = False
    ) -> T:
        """A write through :meth:`_transaction`, its time and outcome told to the metrics."""
        started = time.monotonic()
        try:
            result = await self._transaction(what, once, quiet=quiet)
        except StorageError:
            if self.write_observer is not None:
                self.write_observer(time.monotonic() - started, False)
            raise
        if self.write_observer is not None:
            self.write_observer(time.monotonic() - started, True)
        return result

    async def _transaction(
        self, what: str, once: Callable[[], Awaitable[T]], *, quiet: bool = False
    ) -> T:
        """``once`` (one whole transaction), run again after a transient failure."""
        attempt = 1
        while True:
            try:
                return await once()
            except (SQLAlchemyError, OSError) as exc:
                # A PostgreSQL connection lost during COMMIT leaves the outcome unknown; the
                # retry then may repeat a write that did land. That window is a few
                # microseconds wide, while refusing every retry would drop real writes.
                cause = self._describe(exc)
                if attempt < self._retry.attempts and transient(exc):
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


async def _in_session(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]
) -> T:
    async with sessions.begin() as session:
        return await work(session)
