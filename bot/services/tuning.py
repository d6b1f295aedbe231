"""Player settings a user changes: pause and resume, volume, loop and filters.

Each is one command of :class:`~.queue.QueueService` (which builds this object and hands it its
guilds and its one write rule): the user's permission first, then the guild's lock, one write
and, if the music plays, the same change sent to Lavalink. A pause or a speed change re-anchors
the position where it stands (see :mod:`.positions`); the reply is the settings as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from bot import lavalink
from bot.storage import LoopMode, PlayerRecord

from .admission import MAX_VOLUME
from .errors import (
    Action,
    AlreadyPaused,
    NothingPlaying,
    NotPaused,
    UnknownFilter,
    VolumeOutOfRange,
)
from .guild import FILTER_PRESETS, GuildState
from .permissions import Require
from .playback import Playback
from .ports import Lavalink
from .positions import position, reanchored
from .reading import player_settings
from .views import PlayerSettings

__all__ = ["Tuning"]


class Tuning:
    """The settings commands over the service's guilds (shared with it, with its lock)."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        playback: Playback,
        lava: Lavalink,
        require: Require,
        *,
        guild: Callable[[int], GuildState],
        store: Callable[[GuildState, PlayerRecord], Awaitable[None]],
    ) -> None:
        """``guild`` gives a guild's state, a new one if it has none; ``store`` is the
        service's command write (raises :class:`~.errors.SaveFailed` if it failed)."""
        self._guilds = guilds
        self._playback = playback
        self._lava = lava
        self._require = require
        self._guild = guild
        self._store = store

    async def set_paused(self, guild_id: int, user_id: int, *, paused: bool) -> PlayerSettings:
        """Pause or resume the current track (a pause stays over track changes)."""
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        self._require(guild_id, user_id, Action.PAUSE if paused else Action.RESUME)
        async with guild.lock:
            if guild.current is None:
                raise NothingPlaying()
            if guild.player.paused is paused:
                raise AlreadyPaused() if paused else NotPaused()
            # The clock stops or starts.
            await self._reanchored(guild, lavalink.UpdatePlayer(paused=paused), paused=paused)
        return player_settings(guild)

    async def set_volume(self, guild_id: int, user_id: int, level: int) -> PlayerSettings:
        """Set the player volume in percent (100 = as recorded); kept for the next tracks."""
        if not 0 <= level <= MAX_VOLUME:
            raise VolumeOutOfRange(MAX_VOLUME)
        self._require(guild_id, user_id, Action.VOLUME)
        guild = self._guild(guild_id)
        async with guild.lock:
            await self._store(guild, dataclasses.replace(guild.player, volume=level))
            if guild.is_playing:
                await self._playback.apply(guild, lavalink.UpdatePlayer(volume=level))
        return player_settings(guild)

    async def set_loop(self, guild_id: int, user_id: int, mode: LoopMode) -> PlayerSettings:
        self._require(guild_id, user_id, Action.LOOP)
        guild = self._guild(guild_id)
        async with guild.lock:
            if guild.player.loop_mode is not mode:
                await self._store(guild, dataclasses.replace(guild.player, loop_mode=mode))
        return player_settings(guild)

    async def set_filter(self, guild_id: int, user_id: int, preset: str) -> PlayerSettings:
        """Apply one of :data:`~.guild.FILTER_PRESETS` (``off`` clears every filter)."""
        filters = FILTER_PRESETS.get(preset)
        if filters is None:
            raise UnknownFilter(preset, tuple(FILTER_PRESETS))
        self._require(guild_id, user_id, Action.FILTER)
        guild = self._guild(guild_id)
        stored = None if filters == lavalink.Filters() else msgspec.json.encode(filters).decode()
        async with guild.lock:
            # A new speed: from where the old speed got it, the new one.
            await self._reanchored(guild, lavalink.UpdatePlayer(filters=filters), filters=stored)
        return player_settings(guild)

    async def _reanchored(
        self, guild: GuildState, update: lavalink.UpdatePlayer, **changes: Any
    ) -> None:
        """Store ``changes`` with the position anchored where the track stands now (the
        clock stops, starts or changes pace from here), then send ``update`` if it plays."""
        at = position(guild, self._lava)
        await self._store(guild, reanchored(dataclasses.replace(guild.player, **changes), at))
        if guild.is_playing:
            await self._playback.apply(guild, update)
