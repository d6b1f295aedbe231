"""The one way into the database.

Every method is one short transaction that touches only the rows it changes: queueing a
playlist inserts its rows, advancing deletes one entry and updates one player row. Nothing
rewrites a whole queue. The transactions and their retries are :mod:`.transactions`'; the
played tracks (``/history``, ``/previous``) are :mod:`.history`'s, recorded here in the same
transaction that moves the queue past them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .controllers import ControllerMessages
from .edits import SORT_STEP, delete_entries, last_key, set_keys
from .engine import RetryPolicy, create_engine, open_error, sqlite_threads_ended
from .errors import DatabaseOpenError, StorageError
from .history import HistoryStore, record_played
from .inserts import Inserts, insert_entries
from .liveness import Liveness
from .migrate import MigrationError, upgrade
from .records import NewEntry, PlayerRecord, QueueEntry, StoredGuild
from .rows import (
    ENTRY_COLUMNS,
    UPDATE_PLAYER,
    entry_from_columns,
    player_from_row,
    player_row,
    player_update,
)
from .sessions import SessionRows
from .settings import SettingsStore
from .tables import (
    ControllerRow,
    GuildPlayerRow,
    GuildSettingsRow,
    LavalinkSessionRow,
    PlayHistoryRow,
    QueueEntryRow,
    QueueOrderRow,
)

__all__ = ["DatabaseOpenError", "Repository", "RetryPolicy", "StorageError"]

_log = logging.getLogger(__name__)

_ENTRY_COLUMNS: Final = (
    sa.select(*ENTRY_COLUMNS)
    .join(QueueOrderRow, QueueOrderRow.entry_id == QueueEntryRow.id)
    .order_by(QueueOrderRow.guild_id, QueueOrderRow.sort_key)
)
_LOAD_CHUNK: Final = 2_000
_DELETE_ENTRY: Final = sa.delete(QueueEntryRow).where(
    QueueEntryRow.id == sa.bindparam("entry_id"),
    QueueEntryRow.guild_id == sa.bindparam("guild_id"),
)


def now_ms() -> int:
    return int(time.time() * 1000)


class Repository(HistoryStore):
    """Sessions, players, queues, what played and the servers' settings, over SQLAlchemy's
    async engine."""

    def __init__(self, engine: AsyncEngine, retry: RetryPolicy | None = None) -> None:
        super().__init__(engine, retry)
        self.settings = SettingsStore(self._write, self._read)
        """``/settings`` rows (:mod:`.settings`)."""
        self.inserts = Inserts(self._write)
        """New entries placed between others: fair queue, ``/play next`` (:mod:`.inserts`)."""
        self.controllers = ControllerMessages(self._read, self._write)
        """Where each guild's now-playing controller is posted (:mod:`.controllers`)."""
        self.liveness = Liveness(self._read, lambda what, work: self._write(what, work, quiet=True))
        """When each bot process was last alive (:mod:`.liveness`)."""
        self.sessions = SessionRows(self._read, self._write)
        """Every process's Lavalink session ids, with their age (:mod:`.sessions`)."""

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
                raise open_error(
                    parsed, exc, f"cannot create its folder: {exc.strerror or exc}"
                ) from exc
        repo = cls(create_engine(parsed, retry, foreign_keys=True, pool=True), retry)
        # Migrations get their own connection: on SQLite they must run with foreign keys off,
        # or a migration that rebuilds guild_players (batch mode copies and drops the table)
        # would cascade-delete every queue entry; the PRAGMA is ignored inside a transaction.
        # (An in-memory database lives in its one connection, and holds nothing to lose.)
        migrator = (
            repo
            if in_memory
            else cls(create_engine(parsed, retry, foreign_keys=False, pool=False), retry)
        )

        async def migrate(session: AsyncSession) -> None:
            try:
                await session.run_sync(lambda sync: upgrade(sync.connection()))
            except MigrationError as exc:
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
            await sqlite_threads_ended(threads_before)
            raise open_error(parsed, exc.__cause__ or exc, str(exc)) from exc
        finally:
            if migrator is not repo:
                await migrator.close()
        return repo

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

    async def load_guilds(self, owned: Callable[[int], bool] | None = None) -> list[StoredGuild]:
        """Every stored guild (``owned``: those it accepts by id) with its queue in order
        (used once, at start).

        The entries come as plain columns, a chunk at a time: ORM objects for every stored
        entry at once (tens of thousands) would leave the process tens of MB bigger for good,
        as freed memory mostly stays with the process."""
        players = [
            row
            for (row,) in await self._read(sa.select(GuildPlayerRow), "load the players")
            if owned is None or owned(row.guild_id)
        ]
        by_guild: dict[int, list[QueueEntry]] = {row.guild_id: [] for row in players}

        async def work(session: AsyncSession) -> None:
            for loaded in by_guild.values():
                loaded.clear()  # a retried run starts over
            result = await session.stream(_ENTRY_COLUMNS)
            async for chunk in result.partitions(_LOAD_CHUNK):
                for row in chunk:
                    if (entries := by_guild.get(row.guild_id)) is not None:
                        entries.append(entry_from_columns(row))

        await self._read_session("load the queues", work)
        return [StoredGuild(player_from_row(row), tuple(by_guild[row.guild_id])) for row in players]

    async def save_player(self, player: PlayerRecord) -> None:
        """Insert or update one guild's player row."""

        async def work(session: AsyncSession) -> None:
            await session.merge(player_row(player))

        await self._write(f"store the player of guild {player.guild_id}", work)

    async def save_players(self, players: Sequence[PlayerRecord]) -> None:
        """Update many guilds' player rows in one transaction and one batched statement (a
        node lost with all its guilds); rows that do not exist are left alone."""
        if not players:
            return
        rows = [player_update(player) for player in players]

        async def work(session: AsyncSession) -> None:
            await (await session.connection()).execute(UPDATE_PLAYER, rows)

        await self._write(f"store the players of {len(players)} guilds", work)

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
            await session.merge(player_row(player))  # the queue's rows need the player's
            last = await last_key(session, player.guild_id)
            keys = [last + SORT_STEP * (i + 1) for i in range(len(entries))]
            stored_player, stored = await insert_entries(
                session, player, entries, keys, added_at, start=start
            )
            if start and stored:
                await session.merge(player_row(stored_player))
            return stored_player, stored

        what = f"queue {len(entries)} track(s) in guild {player.guild_id}"
        return await self._write(what, work)

    async def advance(
        self,
        player: PlayerRecord,
        *,
        remove_entry_id: int | None,
        played: NewEntry | None = None,
    ) -> None:
        """Store ``player`` (its new current entry), delete the entry that just ended and
        record ``played`` in the history (see :func:`.history.record_played`)."""

        def work(connection: sa.Connection) -> None:
            # Core statements built once, in one trip: a track change is the busiest write.
            if remove_entry_id is not None:
                connection.execute(
                    _DELETE_ENTRY, {"entry_id": remove_entry_id, "guild_id": player.guild_id}
                )
            _store_moved_on(connection, player, played)

        await self._write_core(f"advance the queue of guild {player.guild_id}", work)

    async def requeue(
        self, player: PlayerRecord, entry_id: int, *, played: NewEntry | None = None
    ) -> int:
        """Store ``player``, move entry ``entry_id`` to the back of its guild's queue and
        record ``played`` in the history.

        One entry row gets a new sort key (the largest plus a step); nothing else moves.
        Returns the new sort key.
        """

        async def work(session: AsyncSession) -> int:
            key = await last_key(session, player.guild_id) + SORT_STEP
            await session.execute(
                sa.update(QueueOrderRow)
                .where(
                    QueueOrderRow.entry_id == entry_id, QueueOrderRow.guild_id == player.guild_id
                )
                .values(sort_key=key)
            )
            await _moved_on_in_session(session, player, played)
            return key

        return await self._write(f"move an entry to the back in guild {player.guild_id}", work)

    async def clear_queue(self, player: PlayerRecord, played: NewEntry | None = None) -> int:
        """Store ``player``, delete every entry of its guild, the current one included, in
        one statement (``/stop``, ``/leave``) and record ``played`` in the history. Returns
        how many entries were deleted."""

        async def work(session: AsyncSession) -> int:
            result = await session.execute(
                sa.delete(QueueEntryRow).where(QueueEntryRow.guild_id == player.guild_id)
            )
            await _moved_on_in_session(session, player, played)
            return int(cast("sa.CursorResult[Any]", result).rowcount)

        return await self._write(f"clear the queue of guild {player.guild_id}", work)

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
        async def work(session: AsyncSession) -> None:  # everything kept of the guild
            tables = (
                QueueOrderRow,  # the cascade would too, but not with foreign keys off
                QueueEntryRow,
                PlayHistoryRow,
                ControllerRow,
                GuildPlayerRow,
                GuildSettingsRow,
            )
            for table in tables:
                await session.execute(sa.delete(table).where(table.guild_id == guild_id))

        await self._write(f"forget guild {guild_id}", work)

    # --- queue edits (statements in .edits) -------------------------------------------------

    async def remove_entries(self, guild_id: int, entry_ids: Sequence[int]) -> None:
        """Delete the upcoming entries ``entry_ids``; no other row changes."""
        what = f"remove {len(entry_ids)} entries in guild {guild_id}"
        await self._write(what, lambda session: delete_entries(session, guild_id, entry_ids))

    async def clear_upcoming(self, guild_id: int, keep_entry_id: int | None) -> None:
        """Delete every entry of the guild but ``keep_entry_id`` (the current one)."""
        where = [QueueEntryRow.guild_id == guild_id]
        if keep_entry_id is not None:
            where.append(QueueEntryRow.id != keep_entry_id)

        async def work(session: AsyncSession) -> None:
            await session.execute(sa.delete(QueueEntryRow).where(*where))

        await self._write(f"clear the queue of guild {guild_id}", work)

    async def reorder(self, guild_id: int, keys: Sequence[tuple[int, int]]) -> None:
        """Give each (entry id, sort key) of ``keys`` its key: a move, or a shuffle."""
        what = f"reorder {len(keys)} entries in guild {guild_id}"
        await self._write(what, lambda session: set_keys(session, guild_id, keys))

    async def skip_to(
        self,
        player: PlayerRecord,
        passed: Sequence[int],
        *,
        requeue: bool,
        played: NewEntry | None = None,
    ) -> tuple[int, ...]:
        """Store ``player`` (its new current entry) and move past the entries ``passed`` (the
        one that played, then those skipped, in order): deleted, or with ``requeue`` moved to
        the back in that order; ``played`` goes to the history. Returns their new sort keys
        (none without ``requeue``)."""

        async def work(session: AsyncSession) -> tuple[int, ...]:
            keys: tuple[int, ...] = ()
            if requeue:
                last = await last_key(session, player.guild_id)
                keys = tuple(last + SORT_STEP * (n + 1) for n in range(len(passed)))
                await set_keys(session, player.guild_id, list(zip(passed, keys, strict=True)))
            else:
                await delete_entries(session, player.guild_id, passed)
            await _moved_on_in_session(session, player, played)
            return keys

        return await self._write(f"skip ahead in guild {player.guild_id}", work)


def _store_moved_on(
    connection: sa.Connection, player: PlayerRecord, played: NewEntry | None
) -> None:
    """The end of every move past a track: the player row (it exists: the queue's rows point
    at it) and the history, as Core statements on the transaction's connection."""
    connection.execute(UPDATE_PLAYER, player_update(player))
    record_played(connection, player.guild_id, played, now_ms())


async def _moved_on_in_session(
    session: AsyncSession, player: PlayerRecord, played: NewEntry | None
) -> None:
    """:func:`_store_moved_on` within a session's transaction."""
    await (await session.connection()).run_sync(_store_moved_on, player, played)
