"""The steps every path of the service is made of: store, start, move on, join, leave, restore.

Memory is the truth while the bot runs and the database is the truth after a restart, so one
rule holds for every write (:meth:`Playback.store`): the database first, memory only once the
write committed; a failed write changes neither and is logged. A command turns that failure
into :class:`~.errors.SaveFailed` for its user. A reaction to an event keeps memory as it was,
with one exception, :meth:`Playback.store_left`: when the bot has *left* voice (kicked, the
channel deleted, a re-join or a track refused), memory follows the world even if the write failed,
because a memory still saying "playing in that channel" would have the reconciler join it again.

Loop modes act only on a track that ends by itself: ``track`` plays the same entry again,
``queue`` moves the finished entry to the back (one row gets a new sort key). A skip always
moves on (with ``queue`` the skipped entry still goes to the back); a track that failed to load
or got stuck is dropped in every mode, so a broken track never loops.

Every step but :meth:`Playback.restore` (a background task that takes it) runs under the
guild's lock, taken by its caller.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence

import msgspec

from bot import lavalink
from bot.storage import (
    GuildSettings,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    Repository,
    StorageError,
)

from .errors import (
    PlaybackProblem,
    PlaybackRefused,
    ServerUnreachable,
    StopRefused,
    VoiceJoinFailed,
    WaitingForServer,
)
from .guild import ENTRY_KEY, GuildState, has_played, now_ms, stamped
from .notices import (
    Announcement,
    BackPlaying,
    PlaybackTrouble,
    RejoinFailed,
    StuckSkipped,
    StuckUnsaved,
)
from .ports import DiscordView, Lavalink
from .positions import just_anchored, position, rebuild_position

__all__ = ["Advance", "Playback"]

_log = logging.getLogger(__name__)

_NODE_DOWN = (
    lavalink.NoNodeAvailableError,
    lavalink.UnreachableError,
    lavalink.RequestTimeoutError,
)
"""Lavalink errors that mean no node answered, as opposed to a node that refused."""


@dataclasses.dataclass(frozen=True, slots=True)
class Advance:
    """What :meth:`Playback.advance` did."""

    stored: bool
    """``False``: the move could not be stored; memory and playback are unchanged."""
    problem: PlaybackProblem | None = None
    """Stored, but Lavalink did not follow."""


class Playback:
    def __init__(self, repository: Repository, lava: Lavalink, discord: DiscordView) -> None:
        self._repo = repository
        self._lava = lava
        self._discord = discord
        self.restores: collections.Counter[str] = collections.Counter()
        self.watcher: Callable[[int], None] | None = None
        """Told the guild id of every change to a guild's playback (the controller)."""
        self.stopped_at: Callable[[int], int | None] = lambda _: None
        """When a guild's player of the previous run stopped (:class:`.layouts.Layouts`):
        where a rebuild places its track (:func:`.positions.rebuild_position`)."""

    def touched(self, guild: GuildState) -> None:
        """The guild's player or current track changed (memory already holds the change):
        note the moment for the reconciler and tell the watcher. Every such change comes
        through here; edits of the upcoming entries alone (remove, move, shuffle, clear)
        touch the guild themselves, as nothing the controller shows depends on them."""
        guild.touch()
        if self.watcher is not None:
            self.watcher(guild.guild_id)

    # --- writes ------------------------------------------------------------------------------

    async def store(self, guild: GuildState, player: PlayerRecord) -> bool:
        """Write ``player``, then take it into memory; ``False``: neither changed.

        A removed guild is never written: its row is deleted, and writing would bring it back.
        """
        if guild.removed:
            return False
        try:
            await self._repo.save_player(player)
        except StorageError:
            # The repository logged the failure; this says what it means for playback.
            _log.warning("guild %s: the change was not stored, so it is not made", guild.guild_id)
            return False
        guild.player = player
        self.touched(guild)
        return True

    async def store_many(self, changes: Sequence[tuple[GuildState, PlayerRecord]]) -> bool:
        """:meth:`store` for many guilds in one transaction (a node lost with all of them);
        ``False``: none changed. Removed guilds are left out."""
        changes = [(guild, player) for guild, player in changes if not guild.removed]
        try:
            await self._repo.save_players([player for _, player in changes])
        except StorageError:
            _log.warning("%d guilds: the change was not stored, so it is not made", len(changes))
            return False
        for guild, player in changes:
            guild.player = player
            self.touched(guild)
        return True

    async def store_left(self, guild: GuildState, status: PlayerStatus, at: int) -> None:
        """The bot is out of voice: store that, and believe it even if the write failed.

        Memory that still said "playing in channel C" would make the reconciler re-join C (a
        channel the bot was kicked from, or that is gone) over and over. The next write that
        succeeds stores this player row whole; a restart before that tries C once.
        """
        player = guild.player
        left = stamped(
            dataclasses.replace(
                player,
                voice_channel_id=None,
                # Out of voice nobody is "gone from the channel": the bot's own pause is undone
                # (a /play that starts the music again unpauses anyway).
                alone_since_ms=None,
                alone_paused=False,
                paused=player.paused and not player.alone_paused,
            ),
            status,
            at,
        )
        if not await self.store(guild, left) and not guild.removed:
            _log.warning("guild %s: out of voice all the same (not stored)", guild.guild_id)
            guild.player = left
            self.touched(guild)

    async def store_settings(self, guild: GuildState, settings: GuildSettings) -> bool:
        """Write the server's settings, then take them into memory; ``False``: neither
        changed (a reaction's write: logged by the repository, nobody to tell)."""
        if guild.removed:
            return False
        try:
            await self._repo.settings.save(settings)
        except StorageError:
            return False
        guild.settings = settings
        return True

    async def delete(self, guild: GuildState) -> bool:
        """Delete the guild's player and queue; ``False``: the database refused."""
        try:
            await self._repo.delete_guild(guild.guild_id)
        except StorageError:
            return False
        return True

    async def save_position(self, guild: GuildState, at: int, *, entry: QueueEntry) -> bool:
        """Anchor the track at ``at`` now, only while ``entry`` is still the current one; a
        failure is logged by the repository and changes nothing here."""
        when = now_ms()
        try:
            await self._repo.save_position(guild.guild_id, at, when, entry_id=entry.id)
        except StorageError:
            return False
        if guild.current is entry:
            guild.player = dataclasses.replace(guild.player, position_ms=at, position_at_ms=when)
        return True

    # --- steps -------------------------------------------------------------------------------

    async def start_current(self, guild: GuildState, at: int = 0) -> PlaybackProblem | None:
        """Play the current entry from ``at``; ``None`` when Lavalink took it."""
        entry = guild.current
        if entry is None:
            return None
        guild.touch()
        try:
            await self._lava.play(
                guild.guild_id,
                entry.encoded,
                position=at,
                paused=guild.player.paused,
                volume=guild.player.volume,
                filters=guild.filters,
                user_data=lavalink.tagged(ENTRY_KEY, entry.id),
            )
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not start %r: %s", guild.guild_id, entry.title, exc)
            return await self._not_started(guild, entry, at, exc)
        if just_anchored(guild.player, at):
            self.touched(guild)  # the write that made it current stored this anchor
        else:
            await self.store(guild, stamped(guild.player, PlayerStatus.PLAYING, at))
        return None

    async def _not_started(
        self, guild: GuildState, entry: QueueEntry, at: int, exc: lavalink.LavalinkError
    ) -> PlaybackProblem:
        # A node that is connected but kept failing (tried three times) is no outage that
        # ends by itself: only an actual lost node earns "it plays when the server is back".
        if isinstance(exc, lavalink.NoNodeAvailableError) or (
            isinstance(exc, _NODE_DOWN) and not self._lava.available
        ):
            # The node comes back (or another takes over) and the restore plays it then. If
            # this write fails, memory still says playing: safe, as the reconciler leaves
            # guilds alone while no node is up and the restore plays the entry either way.
            await self.store(guild, stamped(guild.player, PlayerStatus.INTERRUPTED, at))
            return WaitingForServer()
        # A node that is up refused: waiting would not help, and sitting silent in the
        # channel would be worse. Leave; the song stays first in the queue for /play.
        await self.store_left(guild, PlayerStatus.INTERRUPTED, at)
        await self.leave(guild.guild_id)
        return PlaybackRefused(entry.title)

    async def advance(
        self,
        guild: GuildState,
        *,
        stop_current: bool,
        requeue: bool = False,
        played: bool = True,
    ) -> Advance:
        """Move past the current entry and play the next one (or stop when there is none).

        ``requeue`` (loop mode ``queue``) moves the current entry to the back instead of
        dropping it; a queue of one then plays the same entry again. The move is stored first:
        if that fails, memory and playback stay as they were, so the queue a restart brings
        back is the one users see. The entry moved past is recorded in the history in the same
        transaction if it was heard (:func:`~.guild.has_played`) and ``played`` (``False``:
        it failed to load).
        """
        finished = guild.current
        played = played and has_played(guild)
        requeue = requeue and finished is not None
        following = guild.upcoming[0] if guild.upcoming else finished if requeue else None
        # Out of voice (kicked, channel deleted, node lost) the next entry waits for /play to
        # join again; marked playing, /play would only queue into silence.
        live = guild.is_playing
        status = (
            PlayerStatus.IDLE
            if following is None
            else PlayerStatus.PLAYING
            if live
            else PlayerStatus.INTERRUPTED
        )
        player = stamped(guild.player, status, 0)
        player = dataclasses.replace(player, current_entry_id=following.id if following else None)
        if not await self._move_on(guild, player, finished, requeue=requeue, played=played):
            return Advance(stored=False)
        if guild.current is not None and live:
            return Advance(stored=True, problem=await self.start_current(guild))
        if stop_current and live:
            try:
                await self._lava.stop(guild.guild_id)
            except lavalink.LavalinkError as exc:
                # Still playing what was skipped: leaving is the one way to make it stop.
                _log.warning("guild %s: could not stop the track: %s", guild.guild_id, exc)
                await self.leave(guild.guild_id)
                return Advance(stored=True, problem=StopRefused())
        return Advance(stored=True)

    async def _move_on(
        self,
        guild: GuildState,
        player: PlayerRecord,
        finished: QueueEntry | None,
        *,
        requeue: bool,
        played: bool,
    ) -> bool:
        """Store the move past ``finished`` (and its place in the history), then make it in
        memory."""
        record = finished if played else None
        try:
            if requeue and finished is not None:
                key = await self._repo.requeue(player, finished.id, played=record)
            else:
                gone = finished.id if finished else None
                await self._repo.advance(player, remove_entry_id=gone, played=record)
        except StorageError:
            _log.error("guild %s: could not store the move to the next track", guild.guild_id)
            return False
        following: QueueEntry | None
        if requeue and finished is not None:
            moved = msgspec.structs.replace(finished, sort_key=key)
            following = guild.pop() or moved
            if following is not moved:
                guild.push([moved])
        else:
            following = guild.pop()
        guild.current = following
        guild.player = player
        self.touched(guild)
        return True

    async def connect(
        self, guild_id: int, channel_id: int
    ) -> ServerUnreachable | VoiceJoinFailed | None:
        """Join ``channel_id`` with Lavalink holding the voice credentials, or leave.

        When the join fails half-way (Discord sent no credentials in time, or Lavalink refused
        them) Discord may already show the bot in the channel: it leaves, so it never sits
        there in silence. The caller has stored nothing yet.
        """
        try:
            await self._lava.connect(guild_id, channel_id)
        except lavalink.NoNodeAvailableError:
            return ServerUnreachable(nothing_added=True)  # no op 4 went out
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: joining voice failed: %s", guild_id, exc)
            await self.leave(guild_id)
            return VoiceJoinFailed(
                lavalink_refused=isinstance(exc.__cause__, lavalink.LavalinkError)
            )
        return None

    async def leave(self, guild_id: int) -> None:
        """Destroy the player and leave voice (op 4, no channel); a failure is only logged."""
        try:
            await self._lava.disconnect(guild_id)
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not leave voice: %s", guild_id, exc)

    async def apply(self, guild: GuildState, update: lavalink.UpdatePlayer) -> None:
        """Send a settings change to the live player.

        The change is stored already, so a player that misses it (node gone, request failed)
        gets it when it is rebuilt from the database; hence only a warning.
        """
        try:
            await self._lava.update_player(guild.guild_id, update)
        except lavalink.LavalinkError as exc:
            _log.warning(
                "guild %s: the player did not take the change now: %s", guild.guild_id, exc
            )

    async def announce(self, guild: GuildState, announcement: Announcement) -> None:
        channel_id = guild.announce_channel_id
        if not guild.removed and channel_id is not None:
            await self._discord.announce(channel_id, announcement)

    async def skip_stuck(self, guild: GuildState) -> StuckSkipped | StuckUnsaved:
        """Skip a current track that got stuck; says what to tell the channel."""
        assert guild.current is not None
        title = guild.current.title
        moved = await self.advance(guild, stop_current=True)
        if not moved.stored:
            return StuckUnsaved(title)
        return StuckSkipped(title, moved.problem)

    # --- coming back -------------------------------------------------------------------------

    async def restore(self, guild: GuildState, *, rebuild: bool) -> None:
        """Bring a guild back after a restart or a lost node.

        ``rebuild=False``: the player survived on Lavalink (session resumed), so only the voice
        connection is renewed. ``rebuild=True``: play the stored track at its stored position.
        """
        async with guild.lock:
            back = await self.restore_held(guild, rebuild=rebuild)
        if back is not None:
            await self.announce(guild, back)

    async def restore_held(self, guild: GuildState, *, rebuild: bool) -> BackPlaying | None:
        """:meth:`restore`, for a caller that holds the guild's lock; returns what to
        announce (music back after an interruption) once the lock is released."""
        channel_id = guild.player.voice_channel_id
        if guild.current is None or channel_id is None:
            return None
        guild.touch()
        guild_id = guild.guild_id
        was_interrupted = guild.player.status is PlayerStatus.INTERRUPTED
        if rebuild and guild.is_playing and self._lava.node_of(guild_id):
            return None  # a /play got here first and started the player
        # Taken before joining: the new player reports position 0 once its voice connects.
        at = rebuild_position(guild, self._lava, self.stopped_at(guild_id)) if rebuild else 0
        failure = await self._renew(guild, channel_id, rebuild=rebuild, at=at)
        if failure is not None:
            _log.warning("guild %s: could not restore playback: %s", guild_id, failure)
            # Never sit silent in a channel: leave, keep the queue for /play.
            with contextlib.suppress(lavalink.LavalinkError):
                await self._lava.disconnect(guild_id)
            return None
        _log.info("guild %s: playback restored (rebuild=%s)", guild_id, rebuild)
        self.restores["rebuilt" if rebuild else "resumed"] += 1
        return BackPlaying(guild.current.title) if was_interrupted else None

    async def _renew(
        self, guild: GuildState, channel_id: int, *, rebuild: bool, at: int
    ) -> lavalink.LavalinkError | PlaybackProblem | None:
        try:
            await self._lava.connect(guild.guild_id, channel_id)
        except lavalink.LavalinkError as exc:
            return exc
        if rebuild:
            return await self.start_current(guild, at)
        if guild.player.status is not PlayerStatus.PLAYING:
            await self.store(
                guild, stamped(guild.player, PlayerStatus.PLAYING, guild.player.position_ms)
            )
        return None

    async def rejoin(self, guild: GuildState, *, keep_player: bool) -> Announcement | None:
        """Join the promised channel again with fresh credentials; replay if the player lost
        the track. On failure: leave, keep the queue as interrupted, and say so."""
        guild_id, channel_id = guild.guild_id, guild.player.voice_channel_id
        assert channel_id is not None
        at = position(guild, self._lava)
        # Whatever credentials are held are dead (or the voice server keeps refusing them).
        self._lava.voice_session_ended([guild_id])
        try:
            await self._lava.connect(guild_id, channel_id)
            problem = None if keep_player else await self.start_current(guild, at)
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not get back into voice: %s", guild_id, exc)
            await self.store_left(guild, PlayerStatus.INTERRUPTED, at)
            await self.leave(guild_id)
            return RejoinFailed(channel_id)
        if problem is not None:
            return PlaybackTrouble(problem)
        _log.info("guild %s: back in voice (player kept: %s)", guild_id, keep_player)
        return None
