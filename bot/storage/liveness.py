"""When each bot process was last alive: one small row per process (``liveness``).

A process rewrites its row every second while it runs, in one statement (an UPDATE; the
INSERT only the first time). A restarted process reads it before it writes its own: that is
when the previous run stopped, give or take a second, even after ``kill -9``. Positions are
derived from that moment (:mod:`bot.services.positions`) instead of being stored per report.
Writes are quiet: a database that is away is said once by the caller, not every second.

The rows of processes that ran another shard layout stay until nothing can need them any more
(:mod:`bot.services.layouts` decides, and :meth:`Liveness.forget` deletes).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import LivenessRow
from .transactions import Reader, Writer

__all__ = ["Liveness"]


class Liveness:
    """The liveness rows (``repository.liveness``)."""

    def __init__(self, read: Reader, write: Writer) -> None:
        self._read = read
        self._write = write

    async def last_alive(self, process_key: str) -> int | None:
        """When the process ``process_key`` last said it was alive (Unix ms); ``None``:
        never (a new database, or one from before this table)."""
        rows = await self._read(
            sa.select(LivenessRow.alive_at_ms).where(LivenessRow.process_key == process_key),
            "read when the bot was last alive",
        )
        return int(rows[0][0]) if rows else None

    async def beat(self, process_key: str, at_ms: int) -> None:
        """Say that ``process_key`` is alive at ``at_ms``."""

        async def work(session: AsyncSession) -> None:
            result = await session.execute(
                sa.update(LivenessRow)
                .where(LivenessRow.process_key == process_key)
                .values(alive_at_ms=at_ms)
            )
            if cast("sa.CursorResult[Any]", result).rowcount == 0:
                session.add(LivenessRow(process_key=process_key, alive_at_ms=at_ms))

        await self._write("record that the bot is alive", work)

    async def all(self) -> dict[str, int]:
        """Every process's last sign of life (Unix ms), by its key."""
        rows = await self._read(
            sa.select(LivenessRow.process_key, LivenessRow.alive_at_ms),
            "read when each bot process was last alive",
        )
        return {str(key): int(alive_at) for key, alive_at in rows}

    async def forget(self, process_keys: Collection[str], before_ms: int) -> int:
        """Delete the rows of ``process_keys`` last alive before ``before_ms`` (a process
        that beat again since it was judged keeps its row); how many went."""
        if not process_keys:
            return 0

        async def work(session: AsyncSession) -> int:
            result = await session.execute(
                sa.delete(LivenessRow).where(
                    LivenessRow.process_key.in_(list(process_keys)),
                    LivenessRow.alive_at_ms < before_ms,
                )
            )
            return int(cast("sa.CursorResult[Any]", result).rowcount)

        forgotten: int = await self._write("forget processes of another shard layout", work)
        return forgotten
