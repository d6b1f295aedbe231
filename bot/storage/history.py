"""The tracks that played in each guild: for ``/history``, and for ``/previous`` to take back.

A track is recorded by :func:`record_played`, called inside the repository's transaction that
moves the queue past it (a track ending, a skip, a stop), so a restart never finds the queue
moved on without the track in the history, or the other way round. Each guild keeps its newest
:data:`HISTORY_LIMIT` rows; the insert deletes what falls off the end in one statement bounded
by the index on (guild_id, id), so the table never grows with the number of tracks played.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .edits import add_keys, set_keys
from .records import NewEntry, PlayedTrack, PlayerRecord, QueueEntry
from .rows import new_entry_fields, played_from_row, player_row
from .tables import PlayHistoryRow, QueueEntryRow
from .transactions import Transactions

__all__ = ["HISTORY_LIMIT", "HistoryStore", "record_played"]

HISTORY_LIMIT = 25
"""Played tracks kept per guild (what ``/history`` shows, and how far ``/previous`` reaches)."""


def record_played(
    connection: sa.Connection, guild_id: int, played: NewEntry | None, at_ms: int
) -> None:
    """Add ``played`` to the guild's history and drop the rows beyond the newest
    :data:`HISTORY_LIMIT` (nothing for ``None``); part of the caller's transaction, on its
    connection (statements built once: every track change runs them)."""
    if played is None:
        return
    row = new_entry_fields(played)
    row.update(guild_id=guild_id, played_at_ms=at_ms)
    connection.execute(_INSERT_PLAYED, row)
    connection.execute(_TRIM, {"guild_id": guild_id})


_INSERT_PLAYED: Final = sa.insert(PlayHistoryRow)
_OLDEST_KEPT = (  # NULL (nothing deleted) while a guild has fewer rows
    sa.select(PlayHistoryRow.id)
    .where(PlayHistoryRow.guild_id == sa.bindparam("guild_id"))
    .order_by(PlayHistoryRow.id.desc())
    .offset(HISTORY_LIMIT - 1)
    .limit(1)
    .scalar_subquery()
)
_TRIM: Final = sa.delete(PlayHistoryRow).where(
    PlayHistoryRow.guild_id == sa.bindparam("guild_id"), PlayHistoryRow.id < _OLDEST_KEPT
)


class HistoryStore(Transactions):
    """Reading the history, and taking its newest track back into the queue."""

    async def history(self, guild_id: int, limit: int = HISTORY_LIMIT) -> tuple[PlayedTrack, ...]:
        """The guild's last ``limit`` played tracks, newest first."""
        rows = await self._read(
            sa.select(PlayHistoryRow)
            .where(PlayHistoryRow.guild_id == guild_id)
            .order_by(PlayHistoryRow.id.desc())
            .limit(limit),
            f"read the history of guild {guild_id}",
        )
        return tuple(played_from_row(row) for (row,) in rows)

    async def replay(
        self,
        player: PlayerRecord,
        played: PlayedTrack,
        sort_key: int,
        back: tuple[int, int] | None,
    ) -> tuple[PlayerRecord, QueueEntry] | None:
        """Take ``played`` out of the history and make it the current entry (key ``sort_key``);
        ``back`` (entry id, sort key) puts the entry that was current at the front of the
        upcoming ones. One transaction; ``None`` (nothing changed) if the row is gone.

        Returns ``player`` as stored, pointing at the new entry, and that entry.
        """
        added_at = player.position_at_ms

        async def work(session: AsyncSession) -> tuple[PlayerRecord, QueueEntry] | None:
            taken = await session.execute(
                sa.delete(PlayHistoryRow).where(
                    PlayHistoryRow.id == played.id, PlayHistoryRow.guild_id == player.guild_id
                )
            )
            if cast("sa.CursorResult[Any]", taken).rowcount != 1:
                return None
            fields = new_entry_fields(played)
            entry_id = await session.scalar(
                sa.insert(QueueEntryRow)
                .values(**fields, guild_id=player.guild_id, added_at_ms=added_at)
                .returning(QueueEntryRow.id)
            )
            assert entry_id is not None
            await add_keys(session, player.guild_id, [(int(entry_id), sort_key)])
            if back is not None:
                await set_keys(session, player.guild_id, [back])
            stored = dataclasses.replace(player, current_entry_id=int(entry_id))
            await session.merge(player_row(stored))
            entry = QueueEntry(**fields, id=int(entry_id), sort_key=sort_key, added_at_ms=added_at)
            return stored, entry

        return await self._write(f"play a track again in guild {player.guild_id}", work)
