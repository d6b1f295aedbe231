"""Entries queued at a place of their own instead of at the back (``/play next``, fair queue).

:func:`insert_keys` says which sort keys the new entries take: each goes into a gap between two
upcoming entries, so it takes a key between their keys; only when a gap has no room are a few
of the following entries spaced out again (at least :data:`~.edits.MIN_GAP` apart), as
:func:`~.edits.move_keys` does for a move. In front of the queue there is always room (keys
may go below zero: the current entry is known by its id, not by its key). :class:`Inserts`
writes them: one transaction of inserts, plus the few re-keyed rows, whatever the queue's size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .edits import MIN_GAP, SORT_STEP, add_keys, set_keys
from .records import NewEntry, PlayerRecord, PlayerStatus, QueueEntry
from .rows import new_entry_fields, player_row
from .tables import QueueEntryRow
from .transactions import Writer

__all__ = ["Inserts", "insert_keys"]


def insert_keys(
    existing: Sequence[int], before: Sequence[int]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Sort keys for new entries placed among entries whose keys are ``existing`` (ascending).

    ``before[j]`` is the index in ``existing`` that new entry ``j`` goes in front of
    (``len(existing)``: at the back); it never decreases with ``j``, and new entries that share
    a gap keep their order. Returns the new entries' keys, and ``(index, key)`` for each
    existing entry that had to be re-keyed to make room (few, and only after a full gap).
    """
    moved: dict[int, int] = {}

    def key(index: int) -> int:
        return moved.get(index, existing[index])

    size, placed = len(existing), []
    j = 0
    while j < len(before):
        gap = before[j]
        count = 1
        while j + count < len(before) and before[j + count] == gap:
            count += 1
        j += count
        if gap == 0:
            top = key(0) if size else SORT_STEP * (count + 1)
            placed += [top - SORT_STEP * (count - n) for n in range(count)]
            continue
        lower, taken = key(gap - 1), 0
        while True:
            if gap + taken >= size:  # the window reached the back: room without limit
                step = SORT_STEP
                break
            # ``count + taken`` keys between the two bounds: the new ones, then the re-keyed.
            step = (key(gap + taken) - lower) // (count + taken + 1)
            if step >= (1 if taken == 0 else MIN_GAP):
                break
            taken += 1
        keys = [lower + step * (n + 1) for n in range(count + taken)]
        placed += keys[:count]
        for n in range(taken):
            moved[gap + n] = keys[count + n]
    return placed, sorted(moved.items())


async def insert_entries(
    session: AsyncSession,
    player: PlayerRecord,
    entries: Sequence[NewEntry],
    keys: Sequence[int],
    added_at: int,
    *,
    start: bool,
) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
    """Insert ``entries`` with ``keys`` (two statements: the rows, then their order rows); with
    ``start`` the player is marked playing and, if it has no current track, the first new entry
    becomes it. Returns that
    player (not written here) and the new entries with their ids, in the order given."""
    ids = await _new_ids(session, len(entries))
    values = [
        {**new_entry_fields(e), "id": i, "guild_id": player.guild_id, "added_at_ms": added_at}
        for e, i in zip(entries, ids, strict=True)
    ]
    if values:  # one prepared INSERT run for every row, not a statement per row
        await session.execute(sa.insert(QueueEntryRow), values)
    stored = tuple(
        QueueEntry(**new_entry_fields(e), id=i, sort_key=k, added_at_ms=added_at)
        for e, i, k in zip(entries, ids, keys, strict=True)
    )
    await add_keys(session, player.guild_id, [(e.id, e.sort_key) for e in stored])
    if start and stored:
        if player.current_entry_id is None:
            player = dataclasses.replace(
                player, current_entry_id=stored[0].id, position_ms=0, position_at_ms=added_at
            )
        player = dataclasses.replace(player, status=PlayerStatus.PLAYING)
    return player, stored


async def _new_ids(session: AsyncSession, count: int) -> list[int]:
    """Ids for ``count`` new entry rows, ascending, taken before the insert.

    With ids asked back from the insert, SQLAlchemy must send one INSERT per row to know which
    id went to which row (1,000 tracks: ~1,000 statements). Taken first, the rows go in one
    batch. SQLite: the writer holds the write lock (BEGIN IMMEDIATE), so the largest id stays
    the largest until the commit. PostgreSQL: the column's own sequence hands them out.
    """
    if count == 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        rows = await session.execute(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence('queue_entries', 'id'))"
                " FROM generate_series(1, :count)"
            ),
            {"count": count},
        )
        return sorted(int(i) for (i,) in rows)
    last = await session.scalar(sa.select(sa.func.coalesce(sa.func.max(QueueEntryRow.id), 0)))
    return list(range(int(last or 0) + 1, int(last or 0) + 1 + count))


class Inserts:
    """Writes new entries with the keys :func:`insert_keys` chose (``repository.inserts``)."""

    def __init__(self, write: Writer) -> None:
        self._write = write

    async def insert(
        self,
        player: PlayerRecord,
        entries: Sequence[NewEntry],
        keys: Sequence[int],
        rekeys: Sequence[tuple[int, int]],
        *,
        start: bool,
    ) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
        """Insert ``entries`` with ``keys`` and give each (entry id, key) of ``rekeys`` its key,
        in one transaction; ``start`` as :meth:`Repository.enqueue`. Returns the player as
        stored and the new entries with their ids, in the order given."""
        added_at = int(time.time() * 1000)

        async def work(session: AsyncSession) -> tuple[PlayerRecord, tuple[QueueEntry, ...]]:
            await set_keys(session, player.guild_id, rekeys)
            stored_player, stored = await insert_entries(
                session, player, entries, keys, added_at, start=start
            )
            await session.merge(player_row(stored_player))
            return stored_player, stored

        what = f"insert {len(entries)} track(s) in guild {player.guild_id}"
        return await self._write(what, work)
