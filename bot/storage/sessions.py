"""The stored Lavalink session ids (``lavalink_sessions``), read and forgotten whole.

:meth:`Repository.session_ids` and :meth:`Repository.save_session` serve the running process
(its own ids, to resume); this store serves :mod:`bot.services.layouts`, which looks at every
process's ids with their age, and forgets those of shard layouts that stopped long ago.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .records import StoredSession
from .tables import LavalinkSessionRow
from .transactions import Reader, Writer

__all__ = ["SessionRows"]


class SessionRows:
    """Every stored session id (``repository.sessions``)."""

    def __init__(self, read: Reader, write: Writer) -> None:
        self._read = read
        self._write = write

    async def all(self) -> list[StoredSession]:
        """Every stored session id, with when it was stored."""
        rows = await self._read(
            sa.select(
                LavalinkSessionRow.node,
                LavalinkSessionRow.session_id,
                LavalinkSessionRow.updated_at_ms,
            ),
            "read the Lavalink session ids",
        )
        return [StoredSession(str(key), str(sid), int(at)) for key, sid, at in rows]

    async def forget(self, keys: Collection[str], before_ms: int) -> int:
        """Delete the ids stored under ``keys`` before ``before_ms`` (one stored again since,
        by a process of that layout started meanwhile, stays); how many went."""
        if not keys:
            return 0

        async def work(session: AsyncSession) -> int:
            result = await session.execute(
                sa.delete(LavalinkSessionRow).where(
                    LavalinkSessionRow.node.in_(list(keys)),
                    LavalinkSessionRow.updated_at_ms < before_ms,
                )
            )
            return int(cast("sa.CursorResult[Any]", result).rowcount)

        forgotten: int = await self._write("forget Lavalink sessions of another layout", work)
        return forgotten
