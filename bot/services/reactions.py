"""What the service does when something happens to it rather than on a command.

Lavalink events (a track ended, got stuck or failed, a node was lost or came back, the voice
connection dropped, moved or kept failing) and Discord guild events (the bot removed from a
server, a channel deleted). Each takes the guild's lock, so it never interleaves with a command
for the same guild, and is made of :class:`~.playback.Playback` steps. None of them has a user
to answer: a write that fails is logged and memory stays as it was, except where the bot left
voice (see :meth:`~.playback.Playback.store_left`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bot import lavalink
from bot.storage import LoopMode, PlayerRecord, PlayerStatus, QueueEntry

from .guild import GuildState, Heard, is_entry, now_ms, stamped
from .notices import (
    Announcement,
    ChannelGone,
    NodeLostNotice,
    PlaybackTrouble,
    QueueFinished,
    StoppedUnsaved,
    TrackFailed,
    VoiceLost,
    VoiceUnstable,
)
from .playback import Advance, Playback
from .ports import DiscordView, Lavalink
from .positions import drifted, names_current, position

__all__ = ["Reactions"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

RESTORES_AT_ONCE = 16
"""Restores under way at once per shard after a session is ready: enough to send a shard's
burst of joins within a second or two (each takes tens to hundreds of ms), few enough that
the guilds waiting for the shard's next minute wait as a list, not as tasks each holding a
restore's state until its turn (memory the process keeps once it has grown)."""


class Reactions:
    """Reacts to events for the guilds in ``guilds`` (shared with the service)."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        playback: Playback,
        lava: Lavalink,
        discord: DiscordView,
        *,
        wake_reconciler: Callable[[], None],
    ) -> None:
        self._guilds = guilds
        self._playback = playback
        self._lava = lava
        self._discord = discord
        self._wake_reconciler = wake_reconciler
        self.tasks: set[asyncio.Task[Any]] = set()
        """Restores running in the background (a shutdown waits for them a moment)."""
        self.failovers = 0
        self._correcting: set[int] = set()
        """Guilds whose anchor is being corrected: later reports wait for that write."""

    async def handle_event(self, event: lavalink.Event) -> None:
        match event:
            case lavalink.TrackEndEvent(guild_id=guild_id, track=track, reason=reason):
                if reason.may_start_next:
                    await self._on_track_end(guild_id, track, reason)
            case lavalink.PlayerStateUpdate():
                if (correcting := self.position_reported(event)) is not None:
                    await correcting
            case lavalink.TrackExceptionEvent(guild_id=guild_id, track=track, exception=exc):
                _log.warning("guild %s: track failed: %s", guild_id, exc.message or exc.cause)
                if (guild := self._guilds.get(guild_id)) is not None:
                    notice = TrackFailed(track.info.title, exc.message or None)
                    await self._playback.announce(guild, notice)
            case lavalink.TrackStuckEvent(guild_id=guild_id, track=track):
                await self._on_stuck(guild_id, track)
            case lavalink.SessionReady():
                await self._on_session_ready(event)
            case lavalink.NodeLost(guild_ids=guild_ids):
                await self._on_node_lost(guild_ids)
            case lavalink.VoiceDisconnected(guild_id=guild_id):
                await self._on_voice_disconnected(guild_id)
            case lavalink.VoiceMoved(guild_id=guild_id, channel_id=channel_id):
                await self._on_voice_moved(guild_id, channel_id)
            case lavalink.VoiceFailed(guild_id=guild_id, channel_id=channel_id, code=code):
                await self._on_voice_failed(guild_id, channel_id, code)
            case lavalink.PlayerMoved(guild_id=guild_id, from_node=old, to_node=new):
                self.failovers += 1
                _log.info("guild %s: player moved from node %s to %s", guild_id, old, new)
            case lavalink.WebSocketClosedEvent(guild_id=guild_id, code=code, by_remote=by_remote):
                _log.info(
                    "guild %s: voice socket closed (%s, by_remote=%s)", guild_id, code, by_remote
                )

    # --- tracks ------------------------------------------------------------------------------

    async def _on_track_end(
        self, guild_id: int, track: lavalink.Track, reason: lavalink.TrackEndReason
    ) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            current = _current_for(guild, track)
            if current is None:
                return
            finished = reason is lavalink.TrackEndReason.FINISHED
            loop = guild.player.loop_mode
            if finished and loop is LoopMode.TRACK:
                if (problem := await self._playback.start_current(guild)) is not None:
                    _log.warning("guild %s: could not loop the track: %s", guild_id, problem)
                return
            requeue = finished and loop is LoopMode.QUEUE
            # A track that failed to load never played: it stays out of the history.
            played = reason is not lavalink.TrackEndReason.LOAD_FAILED
            moved = await self._playback.advance(
                guild, stop_current=False, requeue=requeue, played=played
            )
            if (notice := _after_end(guild, moved, current.title)) is not None:
                await self._playback.announce(guild, notice)

    def position_reported(self, report: lavalink.PlayerStateUpdate) -> asyncio.Task[bool] | None:
        """Judge a ``playerUpdate`` as it arrives; returns the write, if it needs one.

        Stored only when the report strays from the anchor (see .positions): a report that
        agrees writes nothing and starts nothing, which is nearly every report. Not under the
        guild lock: a restore waiting behind a position write would lose its place in the
        busiest-first re-join order. The write names its entry instead, so a report that a
        skip or a track end overtook changes nothing. A report that agrees, voice connected,
        is kept as :attr:`GuildState.heard`: the reconciler trusts the guild while it is fresh.
        """
        guild = self._guilds.get(report.guild_id)
        if guild is None or report.guild_id in self._correcting:
            return None
        if (entry := guild.current) is None:
            return None
        named = names_current(guild, self._lava)
        if named is False:
            return None  # about another track (a skip or an end overtook it)
        at = report.state.position
        if not drifted(guild, at, now_ms(), report.state.time):
            # Agreeing with an anchor these reports just corrected proves nothing: a stalled
            # player (or one paused behind the bot's back) stands right there for a second.
            if named and report.state.connected and guild.corrected != (entry.id, at):
                guild.heard = Heard(entry.id, guild.player.paused, time.monotonic())
            return None
        guild.heard, guild.corrected = None, (entry.id, at)
        self._correcting.add(report.guild_id)
        task = self._spawn(self._playback.save_position(guild, at, entry=entry))
        task.add_done_callback(lambda _: self._correcting.discard(report.guild_id))
        return task

    async def _on_stuck(self, guild_id: int, track: lavalink.Track) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            if _current_for(guild, track) is None:
                return
            notice = await self._playback.skip_stuck(guild)
        await self._playback.announce(guild, notice)

    # --- nodes -------------------------------------------------------------------------------

    async def _on_session_ready(self, event: lavalink.SessionReady) -> None:
        due: list[tuple[GuildState, bool]] = []
        for guild in self._guilds.values():
            if guild.current is None or guild.player.voice_channel_id is None:
                continue
            if guild.player.status is PlayerStatus.IDLE:
                continue
            # A player on a live node survived (resumed session): only its voice is renewed.
            # One on no node is rebuilt; one on another node is that node's business.
            holder = self._lava.node_of(guild.guild_id)
            if holder is None or holder == event.node:
                due.append((guild, holder is None))
        # Every re-join is a gateway command, and Discord allows 120 a minute: the guilds with
        # the most people waiting go first.
        due.sort(key=lambda item: -self._listeners(item[0]))
        lanes: dict[int, collections.deque[tuple[GuildState, bool]]] = {}
        for guild, rebuild in due:
            if guild.lock.locked():  # a command is at work there: it restores after that
                self._spawn(self._playback.restore(guild, rebuild=rebuild))
            else:
                # Free, so taken at once: the guild waits its turn as it would behind a
                # restore of its own, and nothing else repairs it meanwhile.
                await guild.lock.acquire()
                lane = lanes.setdefault(self._discord.shard_of(guild.guild_id), collections.deque())
                lane.append((guild, rebuild))
        for lane in lanes.values():
            self._spawn(self._restore_in_turn(lane))
        # Whatever the restores do not cover (a player the node lost while resuming, ...).
        self._wake_reconciler()

    async def _restore_in_turn(self, waiting: collections.deque[tuple[GuildState, bool]]) -> None:
        """Restore the ``waiting`` guilds of one shard (their locks taken) in order,
        :data:`RESTORES_AT_ONCE` at a time. Per shard, as each has its own budget of voice
        joins: one shared pool would sit waiting on a spent shard while the others idle. Not
        a task per guild: each would wait for its gateway turn in memory (5 KB each, so
        12 MB at 2,500 guilds, which the process keeps)."""

        async def restore_next() -> None:
            while waiting:
                guild, rebuild = waiting.popleft()
                try:
                    back = await self._playback.restore_held(guild, rebuild=rebuild)
                except Exception:
                    _log.exception("guild %s: restoring playback failed", guild.guild_id)
                    continue
                finally:
                    guild.lock.release()
                if back is not None:
                    await self._playback.announce(guild, back)

        try:
            workers = min(RESTORES_AT_ONCE, len(waiting))
            await asyncio.gather(*(restore_next() for _ in range(workers)))
        finally:
            for guild, _ in waiting:  # cancelled (shutdown): never restored, nor locked
                guild.lock.release()
            waiting.clear()

    def _listeners(self, guild: GuildState) -> int:
        channel_id = guild.player.voice_channel_id
        if channel_id is None:
            return 0
        return self._discord.listeners(guild.guild_id, channel_id)

    async def _on_node_lost(self, guild_ids: frozenset[int]) -> None:
        guilds = [
            guild
            for guild_id in guild_ids
            if (guild := self._guilds.get(guild_id)) is not None and guild.current is not None
        ]
        # The music stopped with the node: the client pinned each player's position at the
        # moment the socket dropped (not the last report, not the end of the grace). Unstored,
        # memory still says playing; safe: the reconciler leaves a guild whose node dropped
        # alone, and the restore when a node is back covers both states. A node may carry
        # thousands of guilds: the free ones are stored in one transaction under their locks
        # (taken without waiting), the few a command holds right now one by one after it.
        free = [guild for guild in guilds if not guild.lock.locked()]
        busy = [guild for guild in guilds if guild.lock.locked()]
        async with contextlib.AsyncExitStack() as held:
            for guild in free:
                await held.enter_async_context(guild.lock)
            await self._playback.store_many(
                [(g, self._interrupted(g)) for g in free if g.current is not None]
            )
        for guild in busy:
            async with guild.lock:
                if guild.current is not None:
                    await self._playback.store(guild, self._interrupted(guild))
        for guild in guilds:
            await self._playback.announce(guild, NodeLostNotice())

    def _interrupted(self, guild: GuildState) -> PlayerRecord:
        return stamped(guild.player, PlayerStatus.INTERRUPTED, position(guild, self._lava))

    # --- voice -------------------------------------------------------------------------------

    async def _on_voice_disconnected(self, guild_id: int) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            return
        if guild.player.voice_channel_id is None:
            return  # already stopped on purpose (its channel was deleted): told once
        async with guild.lock:
            if guild.current is None or guild.player.voice_channel_id is None:
                return  # stopped while this waited (the channel deleted, the guild removed)
            at = position(guild, self._lava)
            await self._playback.store_left(guild, PlayerStatus.INTERRUPTED, at)
        await self._playback.announce(guild, VoiceLost())

    async def _on_voice_moved(self, guild_id: int, channel_id: int) -> None:
        """Someone moved the bot: a restart must bring it back to where it is now."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            if guild.removed or guild.player.voice_channel_id in (None, channel_id):
                return
            # Unstored, the reconciler sees the bot in another channel and stores it again.
            player = dataclasses.replace(guild.player, voice_channel_id=channel_id)
            if not await self._playback.store(guild, player):
                _log.error("guild %s: could not store the bot's new voice channel", guild_id)

    async def _on_voice_failed(self, guild_id: int, channel_id: int, code: int) -> None:
        """Discord kept refusing the voice connection and the client stopped re-joining.

        The bot leaves rather than sit silent in the channel. The current track is kept as
        interrupted at the position where the sound stopped (Lavalink's clock stops with the
        voice socket), so ``/play`` carries on from there; the voice channel is forgotten so
        that a restart does not try the same channel again by itself.
        """
        _log.warning(
            "guild %s: voice keeps failing (%s); leaving <#%s>", guild_id, code, channel_id
        )
        guild = self._guilds.get(guild_id)
        if guild is None:
            await self._playback.leave(guild_id)
            return
        async with guild.lock:
            # Already stopped on purpose (kicked, channel deleted, failed before): told once.
            had_track = guild.current is not None and guild.player.voice_channel_id is not None
            status = PlayerStatus.INTERRUPTED if guild.current is not None else PlayerStatus.IDLE
            await self._playback.store_left(guild, status, position(guild, self._lava))
            await self._playback.leave(guild_id)
        if had_track:
            await self._playback.announce(guild, VoiceUnstable(channel_id))

    # --- Discord guild events ----------------------------------------------------------------

    async def guild_removed(self, guild_id: int) -> None:
        """The bot was removed from the guild: its player and queue are deleted."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            if not await self._playback.delete(guild):
                # Kept in memory too, so what runs matches what a restart would load.
                _log.error("guild %s: could not delete the removed guild's queue", guild_id)
                return
            self._guilds.pop(guild_id, None)
            guild.clear()
            self._playback.touched(guild)  # its controller goes too
            try:
                await self._lava.forget(guild_id)
            except lavalink.LavalinkError as exc:
                _log.warning("guild %s: could not destroy the player: %s", guild_id, exc)
        _log.info("guild %s: removed from the guild; its queue is deleted", guild_id)

    async def channel_deleted(self, guild_id: int, channel_id: int) -> None:
        """A channel was deleted: playback stops if it was ours; the queue is kept."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        if guild.player.text_channel_id == channel_id:
            async with guild.lock:  # nowhere to announce any more
                # Unstored, announcements still go there: Discord refuses, the view logs it.
                player = dataclasses.replace(guild.player, text_channel_id=None)
                at = position(guild, self._lava)
                await self._playback.store(guild, stamped(player, player.status, at))
        if guild.settings.announce_channel_id == channel_id:
            async with guild.lock:  # the server's announce channel: back to "here"
                await self._playback.store_settings(
                    guild, dataclasses.replace(guild.settings, announce_channel_id=None)
                )
        if guild.player.voice_channel_id != channel_id:
            return
        async with guild.lock:
            if guild.player.voice_channel_id != channel_id:
                return  # left meanwhile (kicked, voice failed): that path told the channel
            was_playing = guild.is_playing
            status = PlayerStatus.INTERRUPTED if guild.current is not None else PlayerStatus.IDLE
            await self._playback.store_left(guild, status, position(guild, self._lava))
            try:
                await self._lava.disconnect(guild_id)
            except lavalink.LavalinkError as exc:
                _log.warning("guild %s: could not stop the player: %s", guild_id, exc)
        if was_playing:
            await self._playback.announce(guild, ChannelGone())

    # --- background work ---------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self, grace: float) -> None:
        """Give running restores ``grace`` seconds to store what they did; cancel the rest
        (their transactions roll back whole, and the next start restores those guilds)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _after_end(guild: GuildState, moved: Advance, title: str) -> Announcement | None:
    """What the channel hears after a track ended by itself (a next track that started is
    shown by the controller, not announced)."""
    if not moved.stored:
        return StoppedUnsaved(title)
    if moved.problem is not None:
        return PlaybackTrouble(moved.problem)
    if guild.current is None:
        return QueueFinished()
    return None


def _current_for(guild: GuildState, track: lavalink.Track) -> QueueEntry | None:
    """The guild's current entry if an event about ``track`` concerns it; a late event about
    an entry already moved past (a skip raced the end) concerns nothing any more."""
    current = guild.current
    return current if current is not None and is_entry(track, current) else None
