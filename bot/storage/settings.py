"""Each server's ``/settings``: loaded once at start, one single-row upsert per change.

Kept out of :mod:`.repository` (at its size limit) but run through its transactions: the
:class:`~.repository.Repository` holds one :class:`SettingsStore` as ``repository.settings``
and hands it its own write and read plumbing (retries, logging, metrics). A guild without a
row has the defaults; the row is deleted with the guild (:meth:`Repository.delete_guild`).
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .records import GuildSettings
from .tables import GuildSettingsRow
from .transactions import Reader, Writer

__all__ = ["SettingsStore", "settings_from_row", "settings_row"]

T = TypeVar("T")

_FIELDS = tuple(field.name for field in dataclasses.fields(GuildSettings))


def settings_row(settings: GuildSettings) -> GuildSettingsRow:
    return GuildSettingsRow(**{name: getattr(settings, name) for name in _FIELDS})


def settings_from_row(row: GuildSettingsRow) -> GuildSettings:
    return GuildSettings(**{name: getattr(row, name) for name in _FIELDS})


class SettingsStore:
    """``guild_settings`` rows in and out, each method one short transaction."""

    def __init__(self, write: Writer, read: Reader) -> None:
        self._write = write
        self._read = read

    async def load(self) -> list[GuildSettings]:
        """Every stored guild's settings (used once, at start)."""
        rows = await self._read(sa.select(GuildSettingsRow), "load the server settings")
        return [settings_from_row(row) for (row,) in rows]

    async def save(self, settings: GuildSettings) -> None:
        """Insert or update the guild's one row."""

        async def work(session: AsyncSession) -> None:
            await session.merge(settings_row(settings))

        await self._write(f"store the settings of guild {settings.guild_id}", work)
