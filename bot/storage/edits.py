"""Queue edits in a fixed number of statements, whatever their size.

The transaction bodies behind :class:`~.repository.Repository`'s queue edits. Each touches only
the rows it changes. A list of ids, or of (id, sort key) pairs, travels as ONE JSON parameter
that the database unpacks itself (SQLite's ``json_each``, PostgreSQL's ``json_to_recordset``),
so rewriting 10,000 keys is one statement and one round trip, not 10,000. Other databases get
SQLAlchemy's portable forms (``IN``, executemany).

:func:`move_keys` says which sort keys a move needs: entries are ordered by integer keys with
gaps (:data:`SORT_STEP`), so a moved entry takes a key between its new neighbours; only when
they have no integer between them are a few following entries spaced out again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import cast

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import QueueEntryRow, QueueOrderRow

__all__ = [
    "MIN_GAP",
    "SORT_STEP",
    "add_keys",
    "delete_entries",
    "last_key",
    "move_keys",
    "set_keys",
]

SORT_STEP = 1024
"""Gap between appended entries, leaving room to insert between neighbours later."""
MIN_GAP = 64
"""Spacing a re-spaced window gets at least, so the next moves to that spot fit again."""

_SQLITE_SET_KEYS = sa.text(
    "UPDATE queue_order SET sort_key = pairs.k FROM ("
    # An object {"id": key}: json_each hands over both without a json_extract per pair
    # (10,000 pairs: ~12% less time than an array of pairs).
    " SELECT CAST(key AS INTEGER) AS i, value AS k FROM json_each(:pairs)) AS pairs"
    # The unary + keeps SQLite from driving the join by the guild index, a plan that reads
    # the JSON once per row (quadratic); this way each pair looks its row up by id.
    " WHERE queue_order.entry_id = pairs.i AND +queue_order.guild_id = :guild_id"
)
_POSTGRES_SET_KEYS = sa.text(
    "UPDATE queue_order AS q SET sort_key = pairs.k"
    " FROM json_to_recordset(CAST(:pairs AS json)) AS pairs(i bigint, k bigint)"
    " WHERE q.entry_id = pairs.i AND q.guild_id = :guild_id"
)
_ENCODER = msgspec.json.Encoder()


def _json(value: object) -> str:
    """A JSON parameter as text (bytes would reach SQLite as a BLOB, which it reads as JSONB);
    10,000 pairs in 0.7 ms, a quarter of ``json.dumps``'s time."""
    return _ENCODER.encode(value).decode()


_SQLITE_IDS = "SELECT value FROM json_each(:ids)"
_POSTGRES_IDS = "SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json))"


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def set_keys(session: AsyncSession, guild_id: int, keys: Sequence[tuple[int, int]]) -> None:
    """Give each entry of ``keys`` (entry id, sort key) its new key, in one statement."""
    if not keys:
        return
    dialect = _dialect(session)
    if dialect == "sqlite":
        # In id order, the rows are rewritten page after page rather than in a shuffle's
        # random order (10,000 realistic rows: ~14% less time).
        pairs = _json(dict(sorted(keys, key=itemgetter(0))))
        await session.execute(_SQLITE_SET_KEYS, {"pairs": pairs, "guild_id": guild_id})
    elif dialect == "postgresql":
        pairs = _json([{"i": i, "k": k} for i, k in keys])
        await session.execute(_POSTGRES_SET_KEYS, {"pairs": pairs, "guild_id": guild_id})
    else:
        table = cast(sa.Table, QueueOrderRow.__table__)  # Core: a plain executemany
        statement = (
            sa.update(table)
            .where(table.c.entry_id == sa.bindparam("b_entry_id"), table.c.guild_id == guild_id)
            .values(sort_key=sa.bindparam("key"))
        )
        await session.execute(statement, [{"b_entry_id": i, "key": k} for i, k in keys])


async def add_keys(session: AsyncSession, guild_id: int, keys: Sequence[tuple[int, int]]) -> None:
    """Give the new entries of ``keys`` (entry id, sort key) their order rows, in one statement."""
    if keys:
        values = [{"entry_id": i, "guild_id": guild_id, "sort_key": k} for i, k in keys]
        await session.execute(sa.insert(QueueOrderRow), values)


async def last_key(session: AsyncSession, guild_id: int) -> int:
    """The largest sort key of the guild's queue, 0 if it is empty."""
    last = await session.scalar(
        sa.select(sa.func.max(QueueOrderRow.sort_key)).where(QueueOrderRow.guild_id == guild_id)
    )
    return int(last or 0)


async def delete_entries(session: AsyncSession, guild_id: int, entry_ids: Sequence[int]) -> None:
    """Delete the guild's entries ``entry_ids``, in one statement (their order rows go along
    by the foreign key's cascade)."""
    if not entry_ids:
        return
    dialect = _dialect(session)
    where = QueueEntryRow.guild_id == guild_id
    if dialect in ("sqlite", "postgresql"):
        ids = sa.text(_SQLITE_IDS if dialect == "sqlite" else _POSTGRES_IDS).bindparams(
            ids=_json(list(entry_ids))
        )
        statement = sa.delete(QueueEntryRow).where(where, QueueEntryRow.id.in_(ids))
    else:
        statement = sa.delete(QueueEntryRow).where(where, QueueEntryRow.id.in_(entry_ids))
    await session.execute(statement)


def move_keys(before: int | None, after: Iterable[int]) -> list[int]:
    """Sort keys for an entry moved just after the key ``before`` (``None``: to the front)
    and ahead of the entries whose keys are ``after``, in order.

    Returns the moved entry's key, then new keys for the first few of ``after`` when the
    neighbours had no integer between them: as few as it takes to space them (with the moved
    one) at least :data:`MIN_GAP` apart. ``after`` is read only as far as needed.
    """
    following = iter(after)
    if before is None:
        first = next(following, None)
        return [SORT_STEP if first is None else first - SORT_STEP]
    taken = 0
    for bound in following:
        # ``taken + 1`` keys (the moved entry, then the ``taken`` re-spaced) between the two.
        gap = (bound - before) // (taken + 2)
        if gap >= (1 if taken == 0 else MIN_GAP):
            return [before + gap * (n + 1) for n in range(taken + 1)]
        taken += 1
    # The window ran to the end of the queue: there is room after the last key.
    return [before + SORT_STEP * (n + 1) for n in range(taken + 1)]
