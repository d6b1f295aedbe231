"""What played: ``/history`` reads it, ``/previous`` plays its newest track again.

The history is storage's (:mod:`bot.storage.history`): each track is recorded in the same
transaction that moves the queue past it, so nothing of it is held in memory here, and a
restart shows the same list. ``/previous`` takes the newest row back: in one transaction the
row is deleted, the track becomes the current entry again (from 0:00) and the track it
interrupts goes back to the front of the upcoming ones, so a second ``/previous`` reaches one
further back and a ``/skip`` returns to where the user was. Like ``/play`` it works from
idle or out of voice: the bot joins the caller's channel by the same rules, and a join that
fails changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import msgspec

from bot.storage import (
    SORT_STEP,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    Repository,
    StorageError,
)

from .errors import Action, GuildGone, NoHistory, NoVoiceChannel, QueueFull, SaveFailed, Unsaved
from .guild import GuildState, stamped
from .permissions import Require
from .playback import Playback
from .ports import DiscordView
from .views import HistoryView, PreviousOutcome

__all__ = ["History"]

VoiceCheck = Callable[[GuildState, int], None]
"""``/play``'s rules for joining: (guild, the caller's channel, entries added) -> raises."""


class History:
    """``/history`` and ``/previous`` over the service's guilds (``QueueService.history``)."""

    def __init__(
        self,
        guilds: Callable[[int], GuildState],
        repository: Repository,
        playback: Playback,
        discord: DiscordView,
        *,
        require: Require,
        check_voice: VoiceCheck,
    ) -> None:
        self._guild = guilds
        self._repo = repository
        self._playback = playback
        self._discord = discord
        self._require = require
        self._check_voice = check_voice

    async def recent(self, guild_id: int) -> HistoryView:
        """The tracks that played last, newest first (reading changes nothing).

        Raises:
            NoHistory: nothing has played yet.
            SaveFailed: the database could not be read.
        """
        try:
            tracks = await self._repo.history(guild_id)
        except StorageError:
            raise SaveFailed(Unsaved.PREVIOUS) from None
        if not tracks:
            raise NoHistory()
        return HistoryView(tracks)

    async def previous(
        self, guild_id: int, user_id: int, text_channel_id: int | None = None
    ) -> PreviousOutcome:
        """Play the newest played track again from its start; the current one plays next.

        Out of voice or idle, the bot joins the caller's channel first (``/play``'s rules);
        ``text_channel_id`` is where it then announces, if given.

        Raises:
            ServiceError: not a listener, no history, no voice channel, a refused join, a
                full queue, a failed read or write (nothing changed).
        """
        self._require(guild_id, user_id, Action.PREVIOUS)
        guild = self._guild(guild_id)
        async with guild.lock:
            if guild.removed:
                raise GuildGone()
            try:
                newest = await self._repo.history(guild_id, 1)
            except StorageError:
                raise SaveFailed(Unsaved.PREVIOUS) from None
            if not newest:
                raise NoHistory(going_back=True)
            most = guild.settings.max_queue_length
            if len(guild.upcoming) + (guild.current is not None) > most:
                raise QueueFull(most)
            joining = not guild.is_playing
            channel_id = guild.player.voice_channel_id
            if joining:
                channel_id = self._discord.voice_channel_of(guild_id, user_id)
                if channel_id is None:
                    raise NoVoiceChannel()
                self._check_voice(guild, channel_id)
                if failure := await self._playback.connect(guild_id, channel_id):
                    raise failure
            player = dataclasses.replace(
                guild.player,
                voice_channel_id=channel_id,
                text_channel_id=text_channel_id or guild.player.text_channel_id,
                # Like /play: starting the music again means the user wants to hear it.
                paused=guild.player.paused and not joining,
            )
            player = stamped(player, PlayerStatus.PLAYING, 0)
            front, back = _keys(guild)
            try:
                taken = await self._repo.replay(player, newest[0], front, back)
            except StorageError:
                taken = None
            if taken is None:
                if joining:
                    await self._playback.leave(guild_id)  # nothing will play: don't sit there
                raise SaveFailed(Unsaved.PREVIOUS)
            return await self._take(guild, *taken, back=back, joined=joining)

    async def _take(
        self,
        guild: GuildState,
        player: PlayerRecord,
        entry: QueueEntry,
        *,
        back: tuple[int, int] | None,
        joined: bool,
    ) -> PreviousOutcome:
        """The replay is stored: make it in memory, then start the track."""
        interrupted = guild.current
        if interrupted is not None and back is not None:
            interrupted = msgspec.structs.replace(interrupted, sort_key=back[1])
            guild.push_front(interrupted)
        guild.current, guild.player = entry, player
        self._playback.touched(guild)
        problem = await self._playback.start_current(guild)
        return PreviousOutcome(entry, interrupted, joined, problem)


def _keys(guild: GuildState) -> tuple[int, tuple[int, int] | None]:
    """Sort keys: the replayed entry's, and (entry id, key) for the interrupted current one,
    each ahead of every upcoming entry (only the interrupted one may need a new key)."""
    first = guild.upcoming[0].sort_key if guild.upcoming else None
    current = guild.current
    back: tuple[int, int] | None = None
    if current is not None:
        key = current.sort_key
        if first is not None and key >= first:
            key = first - SORT_STEP
        back = (current.id, key)
        first = key
    return (SORT_STEP if first is None else first - SORT_STEP), back
