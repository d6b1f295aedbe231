"""Where each guild's now-playing controller message is, so a restart finds it again.

One row per guild (``controller_messages``), written when the controller is posted and deleted
when it is removed; the row goes with the guild's player row (foreign key, ``ON DELETE
CASCADE``). Each method is one short transaction through the repository's own plumbing (its
retries, its error logging), which hands this object its read and write functions.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .records import ControllerMessage
from .tables import ControllerRow, GuildPlayerRow
from .transactions import Reader, Writer

__all__ = ["ControllerMessages"]


class ControllerMessages:
    """The controller message of every guild that has one."""

    def __init__(self, read: Reader, write: Writer) -> None:
        self._read = read
        self._write = write

    async def load(self) -> list[ControllerMessage]:
        """Every stored controller (used once, at start)."""
        rows = await self._read(sa.select(ControllerRow), "load the controller messages")
        return [ControllerMessage(r.guild_id, r.channel_id, r.message_id) for (r,) in rows]

    async def save(self, message: ControllerMessage) -> bool:
        """Insert or replace the guild's controller message; ``False`` (nothing stored) when
        the guild's player is gone meanwhile (removed from the server while the message was
        being posted): there is no music left to control, and the row would dangle."""

        async def work(session: AsyncSession) -> bool:
            player = await session.get(GuildPlayerRow, message.guild_id)
            if player is None:
                return False
            await session.merge(
                ControllerRow(
                    guild_id=message.guild_id,
                    channel_id=message.channel_id,
                    message_id=message.message_id,
                )
            )
            return True

        stored: bool = await self._write(
            f"store the controller message of guild {message.guild_id}", work
        )
        return stored

    async def forget(self, guild_id: int, message_id: int) -> None:
        """Delete the guild's row if it still names ``message_id`` (a newer one stays)."""

        async def work(session: AsyncSession) -> None:
            await session.execute(
                sa.delete(ControllerRow).where(
                    ControllerRow.guild_id == guild_id, ControllerRow.message_id == message_id
                )
            )

        await self._write(f"forget the controller message of guild {guild_id}", work)
