"""Playback controls: ``/nowplaying``, ``/seek``, ``/stop`` and ``/leave``.

The same rules as every command of :class:`~.queue.QueueService` (which builds this object and
hands it its guilds): only people in the bot's voice channel may change what it plays; each
change takes the guild's lock and looks at the guild again once it holds it; the database is
written first, in one short transaction, and memory changes only once that committed, so a
failed write is :class:`~.errors.SaveFailed` and nothing changed. Every write goes through
:meth:`GuildState.touch <.guild.GuildState.touch>`, so the reconciler lets the guild settle
before it judges it and never argues with a stop or a seek.

Seeking stores the new position (a restart resumes there) and sends it to Lavalink; a paused
song stays paused. Going back past the start lands on the start (see
:meth:`.timecode.SeekTarget.resolve`); a position at or past the end is refused (``/skip`` is
how to get there). Stopping clears the whole queue and keeps the bot in its voice channel;
leaving clears it too and leaves the channel, even with no music server to tell.
"""

from __future__ import annotations

import dataclasses
import logging

from bot import lavalink
from bot.storage import PlayerRecord, PlayerStatus, QueueEntry, Repository, StorageError

from .errors import (
    Action,
    GuildGone,
    LiveStream,
    NothingPlaying,
    NotInVoice,
    NotSeekable,
    PastTheEnd,
    SaveFailed,
    SeekRefused,
    StopRefused,
    Unsaved,
)
from .guild import GuildState, has_played, preset_name, stamped, track_info
from .permissions import Require
from .playback import Playback
from .ports import Lavalink
from .positions import position, reanchored
from .timecode import parse
from .views import LeaveOutcome, NowPlayingView, SeekOutcome, StopOutcome

__all__ = ["Controls"]

_log = logging.getLogger(__name__)

"""The permission hook (:meth:`.permissions.Permissions.require`): raises
:class:`~.errors.NotInBotChannel` or :class:`~.errors.NotDJ` unless the user may do it."""


class Controls:
    """The four commands over the service's guilds (shared with it, and with its lock)."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        repository: Repository,
        playback: Playback,
        lava: Lavalink,
        *,
        require_listener: Require,
    ) -> None:
        self._guilds = guilds
        self._repo = repository
        self._playback = playback
        self._lava = lava
        self._require_listener = require_listener

    # --- reading -----------------------------------------------------------------------------

    def now_playing(self, guild_id: int) -> NowPlayingView:
        """The current track, where it stands, and what comes next.

        Raises:
            NothingPlaying: no current track.
        """
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        entry = guild.current
        info = track_info(entry)
        return NowPlayingView(
            current=entry,
            position_ms=position(guild, self._lava),
            paused=guild.player.paused,
            interrupted=guild.player.status is PlayerStatus.INTERRUPTED,
            next=guild.upcoming[0] if guild.upcoming else None,
            queued=len(guild.upcoming),
            artwork_url=info.artwork_url if info is not None else None,
            volume=guild.player.volume,
            loop_mode=guild.player.loop_mode,
            filter_name=preset_name(guild.filters),
        )

    # --- /seek -------------------------------------------------------------------------------

    async def seek(self, guild_id: int, user_id: int, text: str) -> SeekOutcome:
        """Move the current track to ``text`` (see :mod:`.timecode`).

        Raises:
            ServiceError: a malformed time, nothing playing, a caller outside the bot's
                channel, a live stream or unseekable track, a time past the end, a failed write.
        """
        target = parse(text)
        guild = self._with_current(guild_id)
        self._require_listener(guild_id, user_id, Action.SEEK)
        async with guild.lock:
            entry = self._current(guild)
            _check_seekable(entry)
            before = position(guild, self._lava)
            at = target.resolve(before)
            if at >= entry.length_ms:
                raise PastTheEnd(entry.length_ms)
            if not await self._playback.store(guild, reanchored(guild.player, at)):
                raise SaveFailed(Unsaved.SEEK)
            if not guild.is_playing:
                # Out of voice: the next /play (or a node coming back) starts it from here.
                return SeekOutcome(entry, at, guild.player.paused, waiting=True)
            try:
                await self._lava.seek(guild_id, at)
            except lavalink.LavalinkError as exc:
                _log.warning("guild %s: the player did not take the seek: %s", guild_id, exc)
                # Users are told it stayed where it was: store that, so a restart agrees.
                await self._playback.save_position(guild, before, entry=entry)
                return SeekOutcome(entry, before, guild.player.paused, problem=SeekRefused())
            return SeekOutcome(entry, at, guild.player.paused)

    # --- /stop and /leave --------------------------------------------------------------------

    async def stop(self, guild_id: int, user_id: int) -> StopOutcome:
        """Stop the current track and clear the whole queue; the bot stays in its channel.

        Staying is deliberate: someone who stops usually queues something else next. Leaving
        an idle channel after a while is the idle timer's job (:mod:`.presence`).
        If Lavalink does not stop the track, the bot leaves voice (the one way left to make it
        stop), as a skip does, and says so.
        """
        guild = self._guilds.get(guild_id)
        if guild is None or _empty(guild):
            raise NothingPlaying()
        self._require_listener(guild_id, user_id, Action.STOP)
        async with guild.lock:
            if guild.removed:
                raise GuildGone()
            if _empty(guild):
                raise NothingPlaying()
            live = guild.is_playing
            idle = dataclasses.replace(guild.player, current_entry_id=None, paused=False)
            cleared = await self._clear(guild, stamped(idle, PlayerStatus.IDLE, 0), Unsaved.STOP)
            if not live:
                return StopOutcome(cleared)
            try:
                await self._lava.stop(guild_id)
            except lavalink.LavalinkError as exc:
                _log.warning("guild %s: could not stop the track: %s", guild_id, exc)
                await self._playback.leave(guild_id)
                await self._playback.store_left(guild, PlayerStatus.IDLE, 0)
                return StopOutcome(cleared, StopRefused())
            return StopOutcome(cleared)

    async def leave(self, guild_id: int, user_id: int) -> LeaveOutcome:
        """Clear the queue and leave the voice channel.

        The leave itself cannot fail: the client destroys the player if a node answers (a
        failure is only logged) and sends Discord op 4 with no channel through the gateway.
        """
        channel_id = self._bot_channel(guild_id)
        guild = self._guilds.get(guild_id)
        if channel_id is None and (guild is None or _empty(guild)):
            raise NotInVoice()
        self._require_listener(guild_id, user_id, Action.LEAVE)
        guild = self._guilds.setdefault(guild_id, GuildState(PlayerRecord(guild_id=guild_id)))
        async with guild.lock:
            if guild.removed:
                raise GuildGone()
            channel_id = self._bot_channel(guild_id)
            if channel_id is None and _empty(guild):
                raise NotInVoice()
            gone = dataclasses.replace(
                guild.player, current_entry_id=None, voice_channel_id=None, paused=False
            )
            cleared = await self._clear(guild, stamped(gone, PlayerStatus.IDLE, 0), Unsaved.LEAVE)
            if channel_id is not None:
                await self._playback.leave(guild_id)
            return LeaveOutcome(channel_id, cleared)

    # --- helpers -----------------------------------------------------------------------------

    async def _clear(self, guild: GuildState, player: PlayerRecord, what: Unsaved) -> int:
        """Store ``player`` with no queue (one transaction, which records the current track
        in the history), then empty the queue in memory."""
        try:
            await self._repo.clear_queue(player, guild.current if has_played(guild) else None)
        except StorageError:
            raise SaveFailed(what) from None
        cleared = len(guild.upcoming) + (guild.current is not None)
        guild.current = None
        guild.upcoming.clear()
        guild.upcoming_ms = 0
        guild.player = player
        self._playback.touched(guild)
        return cleared

    def _with_current(self, guild_id: int) -> GuildState:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        return guild

    @staticmethod
    def _current(guild: GuildState) -> QueueEntry:
        """The current entry, checked again under the lock."""
        if guild.removed:
            raise GuildGone()
        if guild.current is None:
            raise NothingPlaying()
        return guild.current

    def _bot_channel(self, guild_id: int) -> int | None:
        live = self._lava.snapshot(guild_id)
        return live.voice_channel_id if live is not None else None


def _empty(guild: GuildState) -> bool:
    return guild.current is None and not guild.upcoming


def _check_seekable(entry: QueueEntry) -> None:
    if entry.is_stream:
        raise LiveStream()
    info = track_info(entry)
    # Undecodable: Lavalink decides; a track it cannot seek keeps playing where it is.
    if info is not None and not info.is_seekable:
        raise NotSeekable()
