"""The one way into the database.

Every method is one short transaction that touches only the rows it changes: queueing a
playlist inserts its rows, advancing deletes one entry and updates one player row. Nothing
rewrites a whole queue. Failures surface as :class:`StorageError`, so callers can tell the user
that nothing was saved rather than crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .migrate import upgrade
from .records import LoopMode, NewEntry, PlayerRecord, PlayerStatus, QueueEntry, StoredGuild
from .tables import GuildPlayerRow, LavalinkSessionRow, QueueEntryRow

__all__ = ["Repository", "StorageError"]

_log = logging.getLogger(__name__)

SORT_STEP = 1024
"""Gap between appended entries, leaving room to insert between neighbours later."""


class StorageError(Exception):
    """A database read or write failed; nothing of that operation was saved."""


def now_ms() -> int:
    return int(time.time() * 1000)


class Repository:
    """Sessions, players and queues, over SQLAlchemy's async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str) -> Repository:
        """Connect to ``url`` and bring its schema up to date.

        A SQLite file's folder is created if missing; SQLite runs in WAL mode with a busy
        timeout so a reader never blocks the writer.
        """
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the database folder: {exc}") from exc
        engine = create_async_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(upgrade)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StorageError(f"cannot open the database: {exc}") from exc
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    # --- Lavalink sessions ----------------------------------------------------------------

    async def session_ids(self) -> dict[str, str]:
        rows = await self._read(sa.select(LavalinkSessionRow.node, LavalinkSessionRow.session_id))
        return {str(node): str(session_id) for node, session_id in rows}

    async def save_session(self, node: str, session_id: str) -> None:
        async with self._write() as session:
            await session.merge(
                LavalinkSessionRow(node=node, session_id=session_id, updated_at_ms=now_ms())
            )

    # --- guilds ---------------------------------------------------------------------------

    async def load_guilds(self) -> list[StoredGuild]:
        """Every stored guild with its queue in order (used once, at start)."""
        players = await self._read(sa.select(GuildPlayerRow))
        entries = await self._read(
            sa.select(QueueEntryRow).order_by(QueueEntryRow.guild_id, QueueEntryRow.sort_key)
        )
        by_guild: dict[int, list[QueueEntry]] = {}
        for (row,) in entries:
            by_guild.setdefault(row.guild_id, []).append(_entry(row))
        return [
            StoredGuild(_player(row), tuple(by_guild.get(row.guild_id, ()))) for (row,) in players
        ]

    async def save_player(self, player: PlayerRecord) -> None:
        """Insert or update one guild's player row."""
        async with self._write() as session:
            await session.merge(_player_row(player))

    async def enqueue(
        self, player: PlayerRecord, entries: Sequence[NewEntry], *, start: bool
    ) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
        """Append ``entries``; with ``start`` the player is marked playing and, if it has no
        current track, the first new entry becomes it.

        Returns the player as stored and the new entries with their ids, in order.
        """
        added_at = now_ms()
        async with self._write() as session:
            await session.merge(_player_row(player))
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
                if player.current_entry_id is None:
                    player = dataclasses.replace(
                        player,
                        current_entry_id=stored[0].id,
                        position_ms=0,
                        position_at_ms=added_at,
                    )
                player = dataclasses.replace(player, status=PlayerStatus.PLAYING)
                await session.merge(_player_row(player))
        return player, stored

    async def advance(self, player: PlayerRecord, *, remove_entry_id: int | None) -> None:
        """Store ``player`` (its new current entry) and delete the entry that just ended."""
        async with self._write() as session:
            if remove_entry_id is not None:
                await session.execute(
                    sa.delete(QueueEntryRow).where(
                        QueueEntryRow.id == remove_entry_id,
                        QueueEntryRow.guild_id == player.guild_id,
                    )
                )
            await session.merge(_player_row(player))

    async def requeue(self, player: PlayerRecord, entry_id: int) -> int:
        """Store ``player`` and move entry ``entry_id`` to the back of its guild's queue.

        One entry row gets a new sort key (the largest plus a step); nothing else moves.
        Returns the new sort key.
        """
        async with self._write() as session:
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
        return key

    async def save_position(self, guild_id: int, position_ms: int, at_ms: int) -> None:
        async with self._write() as session:
            await session.execute(
                sa.update(GuildPlayerRow)
                .where(GuildPlayerRow.guild_id == guild_id)
                .values(position_ms=position_ms, position_at_ms=at_ms)
            )

    async def delete_guild(self, guild_id: int) -> None:
        async with self._write() as session:
            await session.execute(
                sa.delete(QueueEntryRow).where(QueueEntryRow.guild_id == guild_id)
            )
            await session.execute(
                sa.delete(GuildPlayerRow).where(GuildPlayerRow.guild_id == guild_id)
            )

    # --- plumbing -------------------------------------------------------------------------

    async def _read(self, statement: Any) -> list[Any]:
        try:
            async with self._sessions() as session:
                return list(await session.execute(statement))
        except (SQLAlchemyError, OSError) as exc:
            _log.error("database read failed: %s", exc)
            raise StorageError(str(exc)) from exc

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction, committed on exit; failures become StorageError."""
        try:
            async with self._sessions.begin() as session:
                yield session
        except (SQLAlchemyError, OSError) as exc:
            _log.error("database write failed: %s", exc)
            raise StorageError(str(exc)) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
        node=row.node,
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
        node=player.node,
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
