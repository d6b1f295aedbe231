"""``/settings``: what a server's managers choose, checked, stored, and read by every rule.

Only members with Manage Server (Administrator implies it) may see or change them: the caller
says whether the member has it (``may_manage``, from the interaction's member permissions),
and anyone else is refused with :class:`~.errors.NotManager`. Each change is one single-row
upsert (:class:`bot.storage.settings.SettingsStore`) under the guild's lock; memory takes it
only once the write committed, a failed write is :class:`~.errors.SaveFailed`.

The values take effect where they are read: the default volume when the bot joins voice with
nothing to resume (:meth:`QueueService.play`), the announce channel in
:attr:`GuildState.announce_channel_id`, 24/7 and the idle timeout in :mod:`.presence`, the
queue limits and the fair queue in :mod:`.admission`. An idle timeout of 0 means the bot
leaves as soon as it finds itself alone or the queue ended; "never" is 24/7 (``always_on``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bot.storage import GuildSettings, Repository, StorageError

from . import timecode
from .admission import MAX_QUEUE_LENGTH, MAX_VOLUME, MIN_TRACK_LIMIT_MS
from .errors import (
    BadLength,
    BadTimecode,
    GuildGone,
    NotManager,
    SaveFailed,
    Setting,
    SettingOutOfRange,
    Unsaved,
)
from .guild import GuildState
from .views import SettingsView

__all__ = ["MAX_IDLE_TIMEOUT_S", "ServerSettings"]

MAX_IDLE_TIMEOUT_S = 24 * 3600


class ServerSettings:
    """The ``/settings`` commands; the service holds one (``QueueService.settings``)."""

    def __init__(
        self,
        repository: Repository,
        guild: Callable[[int], GuildState],
        *,
        idle_timeout: float,
    ) -> None:
        self._repo = repository
        self._guild = guild
        self._idle_timeout = idle_timeout
        self.watcher: Callable[[int], None] | None = None
        """Told the guild id of every change (the controller: its channel may have moved)."""

    def show(self, guild_id: int, may_manage: bool) -> SettingsView:
        _require(may_manage)
        return self._view(self._guild(guild_id))

    async def set_dj_role(
        self, guild_id: int, may_manage: bool, role_id: int | None
    ) -> SettingsView:
        return await self._change(guild_id, may_manage, dj_role_id=role_id)

    async def set_default_volume(self, guild_id: int, may_manage: bool, level: int) -> SettingsView:
        _within(Setting.VOLUME, level, 0, MAX_VOLUME)
        return await self._change(guild_id, may_manage, default_volume=level)

    async def set_announce(
        self, guild_id: int, may_manage: bool, *, enabled: bool, channel_id: int | None = None
    ) -> SettingsView:
        """``enabled=False``: post nothing; else in ``channel_id``, or (``None``) where the
        music was asked for."""
        channel = channel_id if enabled else None
        return await self._change(
            guild_id, may_manage, announce=enabled, announce_channel_id=channel
        )

    async def set_always_on(self, guild_id: int, may_manage: bool, on: bool) -> SettingsView:
        return await self._change(guild_id, may_manage, always_on=on)

    async def set_idle_timeout(
        self, guild_id: int, may_manage: bool, text: str | None
    ) -> SettingsView:
        """``text`` as ``/seek`` reads a time (``90``, ``1:30``, ``1:00:00``); ``None``: back
        to the bot's ``IDLE_TIMEOUT``."""
        seconds = None if text is None else _duration_ms(text) // 1000
        if seconds is not None:
            _within(Setting.IDLE_TIMEOUT, seconds, 0, MAX_IDLE_TIMEOUT_S)
        return await self._change(guild_id, may_manage, idle_timeout_s=seconds)

    async def set_queue_limit(self, guild_id: int, may_manage: bool, length: int) -> SettingsView:
        _within(Setting.QUEUE_LENGTH, length, 1, MAX_QUEUE_LENGTH)
        return await self._change(guild_id, may_manage, max_queue_length=length)

    async def set_track_limit(
        self, guild_id: int, may_manage: bool, text: str | None
    ) -> SettingsView:
        """``text`` as ``/seek`` reads a time; ``None``: any length."""
        limit = None if text is None else _duration_ms(text)
        if limit is not None:
            _within(Setting.TRACK_LENGTH, limit, MIN_TRACK_LIMIT_MS, None)
        return await self._change(guild_id, may_manage, max_track_ms=limit)

    async def set_user_share(
        self, guild_id: int, may_manage: bool, percent: int | None
    ) -> SettingsView:
        if percent is not None:
            _within(Setting.USER_SHARE, percent, 1, 100)
        return await self._change(guild_id, may_manage, user_share_percent=percent)

    async def set_vote_skip(self, guild_id: int, may_manage: bool, percent: int) -> SettingsView:
        _within(Setting.VOTE_SKIP, percent, 0, 100)
        return await self._change(guild_id, may_manage, vote_skip_percent=percent)

    async def set_fair_queue(self, guild_id: int, may_manage: bool, on: bool) -> SettingsView:
        return await self._change(guild_id, may_manage, fair_queue=on)

    async def _change(self, guild_id: int, may_manage: bool, **changes: Any) -> SettingsView:
        _require(may_manage)
        guild = self._guild(guild_id)
        async with guild.lock:
            if guild.removed:
                raise GuildGone()
            changed: GuildSettings = dataclasses.replace(guild.settings, **changes)
            if changed != guild.settings:
                try:
                    await self._repo.settings.save(changed)
                except StorageError:
                    raise SaveFailed(Unsaved.CHANGE) from None
                guild.settings = changed
                if self.watcher is not None:
                    self.watcher(guild_id)
        return self._view(guild)

    def _view(self, guild: GuildState) -> SettingsView:
        return SettingsView(guild.settings, self._idle_timeout)


def _require(may_manage: bool) -> None:
    if not may_manage:
        raise NotManager()


def _within(setting: Setting, value: int, minimum: int, maximum: int | None) -> None:
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingOutOfRange(setting, minimum, maximum)


def _duration_ms(text: str) -> int:
    """A length as ``/seek`` writes a time; a ``+`` or ``-`` in front makes no sense here."""
    try:
        target = timecode.parse(text)
    except BadTimecode:
        raise BadLength(text) from None
    if target.direction != 0:
        raise BadLength(text)
    return target.ms
