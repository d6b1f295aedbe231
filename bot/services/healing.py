"""The repairs the reconciler asks for: the service's side of its :class:`Healer` protocol.

The reconciler (:mod:`.reconciler`) finds where what users were promised and what plays
differ; this module owns the promises and makes the smallest repair that keeps one: a re-join
keeps a player that still holds the track (Lavalink kept its position when the voice socket
closed), a replay starts where the music stopped. What cannot be repaired ends like a lost
voice connection: the bot leaves, the queue stays, the channel is told.
"""

from __future__ import annotations

import dataclasses
import logging

from bot import lavalink
from bot.storage import PlayerStatus

from .errors import PlaybackProblem
from .guild import GuildState, is_entry
from .notices import Announcement, PlaybackTrouble
from .playback import Playback
from .ports import Lavalink
from .positions import position
from .reconciler import Divergence, Promise

__all__ = ["Healing"]

_log = logging.getLogger(__name__)


class Healing:
    """Implements :class:`~.reconciler.Healer` over the guilds in ``guilds``."""

    def __init__(self, guilds: dict[int, GuildState], playback: Playback, lava: Lavalink) -> None:
        self._guilds = guilds
        self._playback = playback
        self._lava = lava

    def promises(self) -> list[Promise]:
        """Every guild that users were told is playing: an entry, in a channel, not cut off."""
        promised = []
        for guild in self._guilds.values():
            entry, channel_id = guild.current, guild.player.voice_channel_id
            if entry is None or channel_id is None or guild.removed:
                continue
            if guild.player.status is not PlayerStatus.PLAYING:
                continue
            paused, heard = guild.player.paused, guild.heard
            # A report counts only for the promise it agreed with: this entry, this pause.
            heard_at = (
                heard.at if heard and (heard.entry_id, heard.paused) == (entry.id, paused) else 0.0
            )
            promised.append(
                Promise(guild.guild_id, channel_id, entry, paused, guild.changed_at, heard_at)
            )
        return promised

    def is_busy(self, guild_id: int) -> bool:
        guild = self._guilds.get(guild_id)
        return guild is not None and guild.lock.locked()

    async def heal(
        self,
        promise: Promise,
        divergence: Divergence,
        player: lavalink.Player | None,
        repeat: int,
    ) -> None:
        """Make the truth match ``promise`` again, or leave and say so once."""
        guild = self._guilds.get(promise.guild_id)
        if guild is None:
            return
        async with guild.lock:
            if (
                guild.removed
                or guild.current is not promise.entry
                or guild.changed_at != promise.changed_at
                or not guild.is_playing
                or guild.player.voice_channel_id != promise.channel_id
            ):
                return  # changed since the pass looked: what it judged is no longer promised
            guild.touch()
            try:
                notice = await self._repair(guild, divergence, player, repeat)
            except lavalink.LavalinkError as exc:
                # Left as it was; the next pass looks again.
                _log.warning("guild %s: repair failed: %s", guild.guild_id, exc)
                notice = None
        if notice is not None:
            await self._playback.announce(guild, notice)

    async def _repair(
        self,
        guild: GuildState,
        divergence: Divergence,
        player: lavalink.Player | None,
        repeat: int,
    ) -> Announcement | None:
        """One repair, under the guild lock; returns what to tell the channel, if anything."""
        holds_entry = (
            player is not None
            and player.track is not None
            and guild.current is not None
            and is_entry(player.track, guild.current)
        )
        playback, lava = self._playback, self._lava
        match divergence:
            case Divergence.VOICE_MOVED:
                await self._follow_move(guild)
            case Divergence.PAUSE:
                await lava.pause(guild.guild_id, guild.player.paused)
            case Divergence.VOICE_DOWN:
                # First the same credentials again; a second sighting gets a fresh set.
                if repeat == 0 and await lava.refresh_voice(guild.guild_id):
                    return None
                return await playback.rejoin(guild, keep_player=holds_entry)
            case Divergence.VOICE_GONE:
                return await playback.rejoin(guild, keep_player=holds_entry)
            case Divergence.PLAYER_GONE:
                # The new player needs the voice credentials the lost one had.
                await lava.refresh_voice(guild.guild_id)
                return _trouble(await playback.start_current(guild, position(guild, lava)))
            case Divergence.WRONG_TRACK:
                # Reports were about another track; the stored anchor is this entry's.
                stopped = player is None or player.track is None
                at = position(guild, lava) if stopped else guild.player.position_ms
                return _trouble(await playback.start_current(guild, at))
            case Divergence.FROZEN if repeat == 0:
                # A source that hung often plays again when loaded anew.
                return _trouble(await playback.start_current(guild, position(guild, lava)))
            case Divergence.FROZEN:
                return await playback.skip_stuck(guild)
        return None

    async def _follow_move(self, guild: GuildState) -> None:
        """Someone moved the bot while the event was missed: store where it is now."""
        live = self._lava.snapshot(guild.guild_id)
        channel_id = live.voice_channel_id if live is not None else None
        if channel_id is None:
            return
        moved = dataclasses.replace(guild.player, voice_channel_id=channel_id)
        if not await self._playback.store(guild, moved):
            # The next pass sees the same divergence and stores it again.
            _log.error("guild %s: could not store the bot's new voice channel", guild.guild_id)


def _trouble(problem: PlaybackProblem | None) -> PlaybackTrouble | None:
    return None if problem is None else PlaybackTrouble(problem)
