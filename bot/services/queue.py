"""The queue service: every playback rule lives here.

Memory is the truth while the bot runs and the database is the truth after a restart; each
change is written to the database first and applied to memory only once the write committed,
so what a user was told is what a restart brings back. One lock per guild serialises
commands and Lavalink events for that guild.

Cost per command does not grow with the queue: the upcoming tracks are a deque with a running
total of their length, and storage writes touch only the rows that change.

Loop modes act only on a track that ends by itself: ``track`` plays the same entry again,
``queue`` moves the finished entry to the back (one row gets a new sort key). A skip always
moves on (with ``queue`` the skipped entry still goes to the back); a track that failed to load
or got stuck is dropped in every mode, so a broken track never loops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import msgspec

from bot import lavalink
from bot.storage import (
    LoopMode,
    NewEntry,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    Repository,
    StorageError,
    StoredGuild,
)

from .errors import UserError
from .query import QueryResolver
from .reconciler import PASS_INTERVAL, Divergence, Promise, Reconciler

__all__ = [
    "FILTER_PRESETS",
    "MAX_VOLUME",
    "DiscordView",
    "PlayOutcome",
    "PlayerSettings",
    "PlayerState",
    "QueueService",
    "QueueView",
    "ServiceStats",
    "SkipOutcome",
]

_log = logging.getLogger(__name__)

MAX_QUEUE_LENGTH = 10_000
SHUTDOWN_GRACE = 2.0
"""Seconds a shutdown waits for running restores before cancelling them."""
_NODE_DOWN = (
    lavalink.NoNodeAvailableError,
    lavalink.UnreachableError,
    lavalink.RequestTimeoutError,
)
"""Lavalink errors that mean no node answered, as opposed to a node that refused."""
ENTRY_KEY = "entry"
"""``userData`` key carrying the queue entry id, so a track's end is matched to its entry."""
MAX_VOLUME = 200
"""Highest volume a user may set. Lavalink takes 0..1000, but above 200 % the sound only
clips and distorts, which nobody in the channel wants and can hurt with headphones on."""

FILTER_PRESETS: Final[Mapping[str, lavalink.Filters]] = {
    "off": lavalink.Filters(),
    "bassboost": lavalink.Filters().with_equalizer({0: 0.2, 1: 0.15, 2: 0.1, 3: 0.05}),
    "nightcore": lavalink.Filters(timescale=lavalink.Timescale(speed=1.1, pitch=1.25)),
    "vaporwave": lavalink.Filters(timescale=lavalink.Timescale(speed=0.85, pitch=0.8)),
    "8d": lavalink.Filters(rotation=lavalink.Rotation(rotation_hz=0.2)),
}
"""The filter sets a user can pick by name; ``off`` clears every filter."""


class DiscordView(Protocol):
    """What the service needs to know of, and say to, Discord."""

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        """The voice channel ``user_id`` is in, from the gateway cache."""

    def listeners(self, guild_id: int, channel_id: int) -> int:
        """How many people (bots not counted) are in voice channel ``channel_id`` now."""

    async def announce(self, channel_id: int, text: str) -> None:
        """Post ``text`` in a text channel; failures are the implementation's to log."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayOutcome:
    added: tuple[QueueEntry, ...]
    started: bool
    """The first added track started playing now (the player was idle)."""
    position: int
    """1-based place of the first added track among the upcoming ones (0 when it started)."""
    playlist: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SkipOutcome:
    skipped: QueueEntry
    next: QueueEntry | None
    waiting: bool = False
    """Out of voice: ``next`` waits for a /play to bring the bot back."""
    problem: str | None = None
    """The skip was stored but Lavalink did not follow; says what happened instead."""


@dataclasses.dataclass(frozen=True, slots=True)
class QueueView:
    current: QueueEntry | None
    position_ms: int
    paused: bool
    interrupted: bool
    upcoming: tuple[QueueEntry, ...]
    """The first few upcoming entries, in order."""
    total: int
    """Number of upcoming entries."""
    total_ms: int
    """Length of all upcoming entries that are not streams."""
    volume: int = 100
    loop_mode: LoopMode = LoopMode.OFF
    filter_name: str = "off"
    """A :data:`FILTER_PRESETS` name, or ``custom``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceStats:
    """The service's state at one moment, for metrics."""

    guilds: int
    in_voice: int
    playing: int
    paused: int
    queued_tracks: int
    longest_queue: int
    restores: dict[str, int]
    """Guilds brought back after a restart or a lost node, by kind (``resumed``/``rebuilt``)."""
    failovers: int
    repairs: dict[str, int]
    """Divergences the reconciler set about repairing, by kind."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerSettings:
    """A guild's playback settings after a change."""

    current: QueueEntry | None
    paused: bool
    volume: int
    loop_mode: LoopMode
    filter_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerState:
    """A guild's player as the service holds it, read-only (for ``/doctor``)."""

    status: PlayerStatus
    current: QueueEntry | None
    queued: int
    """Upcoming entries, the current one not counted."""
    voice_channel_id: int | None
    """The voice channel the bot plays in; ``None`` while out of voice."""
    text_channel_id: int | None
    node: str | None
    """The Lavalink node holding the player (also one that dropped and may come back)."""
    paused: bool
    volume: int
    loop_mode: LoopMode
    filter_name: str


@dataclasses.dataclass(slots=True)
class _Guild:
    player: PlayerRecord
    current: QueueEntry | None = None
    upcoming: collections.deque[QueueEntry] = dataclasses.field(default_factory=collections.deque)
    upcoming_ms: int = 0
    filters: lavalink.Filters | None = None
    """``player.filters`` decoded; ``None`` for no filters."""
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    changed_at: float = 0.0
    """``time.monotonic()`` of the last change to playback; the reconciler leaves a guild
    alone for a moment after one, and skips a repair if another came meanwhile."""
    removed: bool = False
    """The bot left the guild and its rows are deleted: whoever still holds this object and
    waited for its lock must neither play nor write anything for it."""

    def push(self, entries: Sequence[QueueEntry]) -> None:
        self.upcoming.extend(entries)
        self.upcoming_ms += sum(e.length_ms for e in entries if not e.is_stream)

    def pop(self) -> QueueEntry | None:
        if not self.upcoming:
            return None
        entry = self.upcoming.popleft()
        if not entry.is_stream:
            self.upcoming_ms -= entry.length_ms
        return entry


class QueueService:
    def __init__(
        self,
        repository: Repository,
        client: lavalink.LavalinkClient,
        discord: DiscordView,
        *,
        queries: QueryResolver | None = None,
        reconcile_interval: float = PASS_INTERVAL,
    ) -> None:
        self._repo = repository
        self._lavalink = client
        self._discord = discord
        self._queries = queries or QueryResolver()
        self._guilds: dict[int, _Guild] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reconciler = Reconciler(client, self, _is_entry, interval=reconcile_interval)
        self._restores: collections.Counter[str] = collections.Counter()
        self._failovers = 0
        client.set_listener(self.handle_event)

    # --- life -----------------------------------------------------------------------------

    async def load(self) -> dict[str, str]:
        """Load every stored guild into memory; returns the stored Lavalink session ids."""
        for stored in await self._repo.load_guilds():
            self._guilds[stored.player.guild_id] = _from_stored(stored)
        _log.info("loaded %d guild(s) from storage", len(self._guilds))
        return await self._repo.session_ids()

    async def shutdown(self) -> None:
        """Persist every playing guild's position (the Lavalink session stays resumable).

        Restores still running get a moment to store what they did; the rest are cancelled
        (their transactions roll back whole, and the next start restores those guilds).
        """
        await self.reconciler.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A copy: commands still come in (a /play in a new server adds a guild) meanwhile.
        for guild in list(self._guilds.values()):
            if guild.current is not None and guild.player.status is PlayerStatus.PLAYING:
                await self._save_position(guild, self._position(guild))

    # --- commands -------------------------------------------------------------------------

    async def play(
        self, guild_id: int, user_id: int, text_channel_id: int, query: str
    ) -> PlayOutcome:
        """Queue what ``query`` finds; start playing if the guild is idle.

        Order when the guild is idle: join voice, then store the new tracks, then play. A
        join that fails stores nothing and leaves the channel (see :meth:`_connect`): the
        user is told nothing was added, so asking again never queues the same song twice,
        and the queue stays as it was (an interrupted track keeps its place and position).
        Once the tracks are stored they stay queued even if Lavalink then refuses to play.

        Raises:
            UserError: for anything the user should be told (no voice, nothing found, ...).
        """
        identifier = await self._queries.identifier(query)
        channel_id = self._discord.voice_channel_of(guild_id, user_id)
        if channel_id is None:
            raise UserError("Join a voice channel first, then ask me again.")
        guild = self._guild(guild_id)
        self._check_play(guild, channel_id, 0)
        tracks, playlist = await self._load(identifier)
        entries = [_new_entry(track, user_id) for track in tracks]

        async with guild.lock:
            # Checked again: another /play may have started the music meanwhile.
            self._check_play(guild, channel_id, len(entries))
            start = not self._is_playing(guild)
            # An interrupted guild (node lost, bot kicked) resumes its own track first.
            resume_at = self._position(guild) if start and guild.current is not None else 0
            if start:
                await self._connect(guild_id, channel_id)
            player = dataclasses.replace(
                guild.player,
                voice_channel_id=channel_id,
                text_channel_id=text_channel_id,
                # /play that starts the music means the user wants to hear it: unpause.
                paused=guild.player.paused and not start,
            )
            try:
                player, added = await self._repo.enqueue(player, entries, start=start)
            except StorageError:
                if start:
                    # Nothing will play: don't sit silent in the channel just joined.
                    with contextlib.suppress(lavalink.LavalinkError):
                        await self._lavalink.disconnect(guild_id)
                raise UserError(
                    "I couldn't save the queue just now, so nothing was added."
                ) from None
            guild.player = player
            started_new = guild.current is None
            if started_new:
                guild.current = added[0]
                guild.push(added[1:])
                position = 0
            else:
                position = len(guild.upcoming) + 1
                guild.push(added)
            if start:
                await self._start_current(guild, position=resume_at)
        return PlayOutcome(added, started_new, position, playlist)

    def _check_play(self, guild: _Guild, channel_id: int, adding: int) -> None:
        if guild.removed:
            raise UserError("I'm no longer in this server.")
        bot_channel = self._lavalink.voice_channel(guild.player.guild_id)
        if self._is_playing(guild) and bot_channel is not None and bot_channel != channel_id:
            raise UserError(f"I'm already playing in <#{bot_channel}>. Join me there.")
        if len(guild.upcoming) + adding > MAX_QUEUE_LENGTH:
            raise UserError(f"The queue is full ({MAX_QUEUE_LENGTH} tracks). Skip some first.")

    async def skip(self, guild_id: int, user_id: int) -> SkipOutcome:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise UserError("Nothing is playing right now.")
        self._require_listener(guild_id, user_id, "skip")
        async with guild.lock:
            skipped = guild.current
            if skipped is None:
                raise UserError("Nothing is playing right now.")
            requeue = guild.player.loop_mode is LoopMode.QUEUE
            try:
                problem = await self._advance(guild, stop_current=True, requeue=requeue)
            except StorageError:
                raise UserError(
                    "I couldn't save the queue just now, so nothing was skipped."
                ) from None
            waiting = guild.player.status is PlayerStatus.INTERRUPTED and problem is None
            return SkipOutcome(skipped, guild.current, waiting, problem)

    async def pause(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self._set_paused(guild_id, user_id, paused=True)

    async def resume(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self._set_paused(guild_id, user_id, paused=False)

    async def set_volume(self, guild_id: int, user_id: int, level: int) -> PlayerSettings:
        """Set the player volume in percent (100 = as recorded); kept for the next tracks."""
        if not 0 <= level <= MAX_VOLUME:
            raise UserError(
                f"Volume goes from 0 to {MAX_VOLUME} (100 is the song as recorded); "
                "louder than that only distorts."
            )
        self._require_listener(guild_id, user_id, "change the volume")
        guild = self._guild(guild_id)
        async with guild.lock:
            await self._store(dataclasses.replace(guild.player, volume=level), guild)
            if self._is_playing(guild):
                await self._apply(guild, lavalink.UpdatePlayer(volume=level))
        return self._settings(guild)

    async def set_loop(self, guild_id: int, user_id: int, mode: LoopMode) -> PlayerSettings:
        self._require_listener(guild_id, user_id, "change the loop mode")
        guild = self._guild(guild_id)
        async with guild.lock:
            if guild.player.loop_mode is not mode:
                await self._store(dataclasses.replace(guild.player, loop_mode=mode), guild)
        return self._settings(guild)

    async def set_filter(self, guild_id: int, user_id: int, preset: str) -> PlayerSettings:
        """Apply one of :data:`FILTER_PRESETS` (``off`` clears every filter)."""
        filters = FILTER_PRESETS.get(preset)
        if filters is None:
            names = ", ".join(FILTER_PRESETS)
            raise UserError(f"I don't know the filter {preset[:50]!r}. Pick one of: {names}.")
        self._require_listener(guild_id, user_id, "change the filters")
        guild = self._guild(guild_id)
        stored = None if filters == lavalink.Filters() else msgspec.json.encode(filters).decode()
        async with guild.lock:
            await self._store(dataclasses.replace(guild.player, filters=stored), guild)
            guild.filters = None if stored is None else filters
            if self._is_playing(guild):
                await self._apply(guild, lavalink.UpdatePlayer(filters=filters))
        return self._settings(guild)

    def queue(self, guild_id: int, limit: int = 10) -> QueueView:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return QueueView(None, 0, False, False, (), 0, 0)
        return QueueView(
            current=guild.current,
            position_ms=self._position(guild) if guild.current else 0,
            paused=guild.player.paused,
            interrupted=guild.player.status is PlayerStatus.INTERRUPTED,
            upcoming=tuple(itertools.islice(guild.upcoming, limit)),
            total=len(guild.upcoming),
            total_ms=guild.upcoming_ms,
            volume=guild.player.volume,
            loop_mode=guild.player.loop_mode,
            filter_name=_preset_name(guild.filters),
        )

    def player_state(self, guild_id: int) -> PlayerState | None:
        """The guild's player and queue as stored now; ``None`` for a guild never played in."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return None
        player = guild.player
        return PlayerState(
            status=player.status,
            current=guild.current,
            queued=len(guild.upcoming),
            voice_channel_id=player.voice_channel_id,
            text_channel_id=player.text_channel_id,
            node=self._lavalink.node_of(guild_id, connected=False),
            paused=player.paused,
            volume=player.volume,
            loop_mode=player.loop_mode,
            filter_name=_preset_name(guild.filters),
        )

    def stats(self) -> ServiceStats:
        """Counts over every guild; one pass, no I/O (read when metrics are scraped)."""
        in_voice = playing = paused = queued = longest = 0
        for guild in self._guilds.values():
            queued += len(guild.upcoming)
            longest = max(longest, len(guild.upcoming))
            if guild.player.voice_channel_id is None or guild.player.status is not (
                PlayerStatus.PLAYING
            ):
                continue
            in_voice += 1
            if guild.current is not None:
                if guild.player.paused:
                    paused += 1
                else:
                    playing += 1
        return ServiceStats(
            guilds=len(self._guilds),
            in_voice=in_voice,
            playing=playing,
            paused=paused,
            queued_tracks=queued,
            longest_queue=longest,
            restores=dict(self._restores),
            failovers=self._failovers,
            repairs={kind.name.lower(): count for kind, count in self.reconciler.repairs.items()},
        )

    # --- Lavalink events ------------------------------------------------------------------

    async def handle_event(self, event: lavalink.Event) -> None:
        match event:
            case lavalink.TrackEndEvent(guild_id=guild_id, track=track, reason=reason):
                if reason.may_start_next:
                    await self._on_track_end(guild_id, track, reason)
            case lavalink.PlayerStateUpdate(guild_id=guild_id, state=state):
                await self._on_position(guild_id, state.position)
            case lavalink.TrackExceptionEvent(guild_id=guild_id, track=track, exception=exc):
                _log.warning("guild %s: track failed: %s", guild_id, exc.message or exc.cause)
                await self._announce(
                    guild_id,
                    f"Couldn't play **{track.info.title}**: {exc.message or 'unknown error'}.",
                )
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
                self._failovers += 1
                _log.info("guild %s: player moved from node %s to %s", guild_id, old, new)
            case lavalink.WebSocketClosedEvent(guild_id=guild_id, code=code, by_remote=by_remote):
                _log.info(
                    "guild %s: voice socket closed (%s, by_remote=%s)", guild_id, code, by_remote
                )

    async def _on_track_end(
        self, guild_id: int, track: lavalink.Track, reason: lavalink.TrackEndReason
    ) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            # A late end of a track we already moved past (skip raced the end) is ignored.
            if guild.current is None or not _is_entry(track, guild.current):
                return
            finished = reason is lavalink.TrackEndReason.FINISHED
            loop = guild.player.loop_mode
            if finished and loop is LoopMode.TRACK:
                try:
                    await self._start_current(guild)
                except UserError as exc:
                    _log.warning("guild %s: could not loop the track: %s", guild_id, exc)
                return
            try:
                problem = await self._advance(
                    guild, stop_current=False, requeue=finished and loop is LoopMode.QUEUE
                )
            except StorageError:
                await self._announce(
                    guild_id,
                    f"I couldn't save the queue, so I stopped after **{guild.current.title}**. "
                    "Use /skip to go on.",
                )
                return
            if problem is not None:
                await self._announce(guild_id, problem)
            elif guild.current is not None and self._is_playing(guild):
                await self._announce(guild_id, f"Now playing **{guild.current.title}**.")
            elif guild.current is None:
                await self._announce(guild_id, "The queue is finished.")

    async def _on_position(self, guild_id: int, position: int) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            return
        # Not under the guild lock: a restore waiting behind a position write would lose its
        # place in the busiest-first re-join order. The write names its entry instead, so a
        # report that a skip or a track end overtook changes neither the database nor memory.
        if self._plays_current(guild):
            await self._save_position(guild, position, entry=guild.current)

    async def _on_stuck(self, guild_id: int, track: lavalink.Track) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            if guild.current is None or not _is_entry(track, guild.current):
                return
            text = await self._skip_stuck(guild)
        await self._announce(guild_id, text)

    async def _skip_stuck(self, guild: _Guild) -> str:
        """Skip a current track that got stuck; returns what to tell the channel."""
        assert guild.current is not None
        title = guild.current.title
        try:
            problem = await self._advance(guild, stop_current=True)
        except StorageError:
            return f"**{title}** got stuck, and I couldn't save the queue to skip it."
        return f"**{title}** got stuck, so I skipped it." + (f" {problem}" if problem else "")

    async def _on_session_ready(self, event: lavalink.SessionReady) -> None:
        try:
            await self._repo.save_session(event.node, event.session_id)
        except StorageError:
            _log.error("could not store the Lavalink session id")
        due: list[tuple[_Guild, bool]] = []
        for guild in self._guilds.values():
            if guild.current is None or guild.player.voice_channel_id is None:
                continue
            if guild.player.status is PlayerStatus.IDLE:
                continue
            # A player on a live node survived (resumed session): only its voice is renewed.
            # One on no node is rebuilt; one on another node is that node's business.
            holder = self._lavalink.node_of(guild.player.guild_id)
            if holder is None or holder == event.node:
                due.append((guild, holder is None))
        # Every re-join is a gateway command, and Discord allows 120 a minute: the guilds with
        # the most people waiting go first. Tasks reach the gateway in the order spawned.
        due.sort(key=lambda item: -self._listeners(item[0]))
        for guild, rebuild in due:
            self._spawn(self._restore(guild, rebuild=rebuild))
        # Whatever the restores do not cover (a player the node lost while resuming, ...).
        self.reconciler.wake()

    def _listeners(self, guild: _Guild) -> int:
        channel_id = guild.player.voice_channel_id
        if channel_id is None:
            return 0
        return self._discord.listeners(guild.player.guild_id, channel_id)

    async def _on_node_lost(self, guild_ids: frozenset[int]) -> None:
        for guild_id in guild_ids:
            guild = self._guilds.get(guild_id)
            if guild is None or guild.current is None:
                continue
            async with guild.lock:
                # The music stopped with the node: the client pinned each player's position at
                # the moment the socket dropped (not the last report, not the end of the grace).
                await self._set_status(guild, PlayerStatus.INTERRUPTED, self._position(guild))
            await self._announce(
                guild_id,
                "I lost the music server. The queue is kept; I'll be back when it returns.",
            )

    async def _on_voice_disconnected(self, guild_id: int) -> None:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            return
        if guild.player.voice_channel_id is None:
            return  # already stopped on purpose (its channel was deleted): told once
        async with guild.lock:
            guild.player = dataclasses.replace(guild.player, voice_channel_id=None)
            await self._set_status(guild, PlayerStatus.INTERRUPTED, self._position(guild))
        await self._announce(
            guild_id,
            "I was disconnected from voice. The queue is kept: use /play to bring me back.",
        )

    async def _on_voice_moved(self, guild_id: int, channel_id: int) -> None:
        """Someone moved the bot: a restart must bring it back to where it is now."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            if guild.removed or guild.player.voice_channel_id in (None, channel_id):
                return
            player = dataclasses.replace(guild.player, voice_channel_id=channel_id)
            try:
                await self._store(player, guild)
            except UserError:
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
            await self._leave(guild_id)
            return
        async with guild.lock:
            # Already stopped on purpose (kicked, channel deleted, failed before): told once.
            had_track = guild.current is not None and guild.player.voice_channel_id is not None
            status = PlayerStatus.INTERRUPTED if guild.current is not None else PlayerStatus.IDLE
            position = self._position(guild)
            guild.player = dataclasses.replace(guild.player, voice_channel_id=None)
            await self._set_status(guild, status, position)
            await self._leave(guild_id)
        if had_track:
            await self._announce(
                guild_id,
                f"I couldn't keep a voice connection in <#{channel_id}>. "
                "The queue is kept: use /play to try again.",
            )

    # --- reconciling ----------------------------------------------------------------------

    def start_reconciling(self) -> None:
        """Start the periodic comparison of promises with the truth (once Lavalink starts)."""
        self.reconciler.start()

    def reconcile_now(self) -> None:
        """After a gateway or Lavalink reconnect: compare promises with the truth at once."""
        self.reconciler.wake()

    def promises(self) -> list[Promise]:
        """Every guild that users were told is playing: an entry, in a channel, not cut off."""
        promised = []
        for guild in self._guilds.values():
            entry, channel_id = guild.current, guild.player.voice_channel_id
            if entry is None or channel_id is None or guild.removed:
                continue
            if guild.player.status is PlayerStatus.PLAYING:
                promised.append(
                    Promise(
                        guild.player.guild_id,
                        channel_id,
                        entry,
                        guild.player.paused,
                        guild.changed_at,
                    )
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
        """Make the truth match ``promise`` again, or leave and say so once.

        Each repair is the smallest that restores the promise: a re-join keeps a player that
        still holds the track (Lavalink kept its position when the voice socket closed), a
        replay starts where the music stopped. What cannot be repaired ends like a lost voice
        connection: the bot leaves, the queue stays, the channel is told.
        """
        guild = self._guilds.get(promise.guild_id)
        if guild is None:
            return
        async with guild.lock:
            if (
                guild.removed
                or guild.current is not promise.entry
                or guild.changed_at != promise.changed_at
                or not self._is_playing(guild)
                or guild.player.voice_channel_id != promise.channel_id
            ):
                return  # changed since the pass looked: what it judged is no longer promised
            guild.changed_at = time.monotonic()
            text = await self._repair(guild, divergence, player, repeat)
        if text is not None:
            await self._announce(promise.guild_id, text)

    async def _repair(
        self,
        guild: _Guild,
        divergence: Divergence,
        player: lavalink.Player | None,
        repeat: int,
    ) -> str | None:
        """One repair, under the guild lock; returns what to tell the channel, if anything."""
        guild_id = guild.player.guild_id
        holds_entry = (
            player is not None
            and player.track is not None
            and guild.current is not None
            and _is_entry(player.track, guild.current)
        )
        try:
            match divergence:
                case Divergence.VOICE_MOVED:
                    channel_id = self._lavalink.voice_channel(guild_id)
                    if channel_id is not None:
                        await self._store(
                            dataclasses.replace(guild.player, voice_channel_id=channel_id), guild
                        )
                case Divergence.PAUSE:
                    await self._lavalink.pause(guild_id, guild.player.paused)
                case Divergence.VOICE_DOWN:
                    # First the same credentials again; a second sighting gets a fresh set.
                    if repeat == 0 and await self._lavalink.refresh_voice(guild_id):
                        return None
                    return await self._rejoin(guild, keep_player=holds_entry)
                case Divergence.VOICE_GONE:
                    return await self._rejoin(guild, keep_player=holds_entry)
                case Divergence.PLAYER_GONE:
                    # The new player needs the voice credentials the lost one had.
                    await self._lavalink.refresh_voice(guild_id)
                    await self._start_current(guild, position=self._position(guild))
                case Divergence.WRONG_TRACK:
                    # Reports were about another track; the stored anchor is this entry's.
                    stopped = player is None or player.track is None
                    position = self._position(guild) if stopped else guild.player.position_ms
                    await self._start_current(guild, position=position)
                case Divergence.FROZEN if repeat == 0:
                    # A source that hung often plays again when loaded anew.
                    await self._start_current(guild, position=self._position(guild))
                case Divergence.FROZEN:
                    return await self._skip_stuck(guild)
        except UserError as exc:
            return exc.message
        except lavalink.LavalinkError as exc:
            # Left as it was; the next pass looks again.
            _log.warning("guild %s: repair failed: %s", guild_id, exc)
        return None

    async def _rejoin(self, guild: _Guild, *, keep_player: bool) -> str | None:
        """Join the promised channel again with fresh credentials; replay if the player lost
        the track. On failure: leave, keep the queue as interrupted, and say so."""
        guild_id, channel_id = guild.player.guild_id, guild.player.voice_channel_id
        assert channel_id is not None
        position = self._position(guild)
        # Whatever credentials are held are dead (or the voice server keeps refusing them).
        self._lavalink.voice_session_ended([guild_id])
        try:
            await self._lavalink.connect(guild_id, channel_id)
            if not keep_player:
                await self._start_current(guild, position=position)
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not get back into voice: %s", guild_id, exc)
            guild.player = dataclasses.replace(guild.player, voice_channel_id=None)
            await self._set_status(guild, PlayerStatus.INTERRUPTED, position)
            await self._leave(guild_id)
            return (
                f"I lost my voice connection in <#{channel_id}> and couldn't get back in. "
                "The queue is kept: use /play to carry on."
            )
        _log.info("guild %s: back in voice (player kept: %s)", guild_id, keep_player)
        return None

    # --- Discord guild events -------------------------------------------------------------

    def guild_ids(self) -> frozenset[int]:
        """Every guild with a stored player."""
        return frozenset(self._guilds)

    async def guild_removed(self, guild_id: int) -> None:
        """The bot was removed from the guild: its player and queue are deleted."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        async with guild.lock:
            try:
                await self._repo.delete_guild(guild_id)
            except StorageError:
                # Kept in memory too, so what runs matches what a restart would load.
                _log.error("guild %s: could not delete the removed guild's queue", guild_id)
                return
            self._guilds.pop(guild_id, None)
            guild.removed = True
            guild.current = None
            guild.upcoming.clear()
            guild.upcoming_ms = 0
            try:
                await self._lavalink.forget(guild_id)
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
                guild.player = dataclasses.replace(guild.player, text_channel_id=None)
                await self._set_status(guild, guild.player.status, self._position(guild))
        if guild.player.voice_channel_id != channel_id:
            return
        async with guild.lock:
            was_playing = self._is_playing(guild)
            position = self._position(guild)
            guild.player = dataclasses.replace(guild.player, voice_channel_id=None)
            status = PlayerStatus.INTERRUPTED if guild.current is not None else PlayerStatus.IDLE
            await self._set_status(guild, status, position)
            try:
                await self._lavalink.disconnect(guild_id)
            except lavalink.LavalinkError as exc:
                _log.warning("guild %s: could not stop the player: %s", guild_id, exc)
        if was_playing:
            await self._announce(
                guild_id,
                "My voice channel was deleted, so the music stopped. "
                "The queue is kept: use /play in another channel to carry on.",
            )

    # --- rules ----------------------------------------------------------------------------

    async def _restore(self, guild: _Guild, *, rebuild: bool) -> None:
        """Bring a guild back after a restart or a lost node.

        ``rebuild=False``: the player survived on Lavalink (session resumed), so only the voice
        connection is renewed. ``rebuild=True``: play the stored track at its stored position.
        """
        async with guild.lock:
            channel_id = guild.player.voice_channel_id
            if guild.current is None or channel_id is None:
                return
            guild.changed_at = time.monotonic()
            guild_id = guild.player.guild_id
            was_interrupted = guild.player.status is PlayerStatus.INTERRUPTED
            if rebuild and self._is_playing(guild) and self._lavalink.node_of(guild_id):
                return  # a /play got here first and started the player
            # Taken before joining: the new player reports position 0 once its voice connects.
            position = self._rebuild_position(guild) if rebuild else 0
            try:
                await self._lavalink.connect(guild_id, channel_id)
                if rebuild:
                    await self._start_current(guild, position=position)
                elif guild.player.status is not PlayerStatus.PLAYING:
                    await self._set_status(guild, PlayerStatus.PLAYING, guild.player.position_ms)
            except (lavalink.LavalinkError, UserError) as exc:
                _log.warning("guild %s: could not restore playback: %s", guild_id, exc)
                # Never sit silent in a channel: leave, keep the queue for /play.
                with contextlib.suppress(lavalink.LavalinkError):
                    await self._lavalink.disconnect(guild_id)
                return
            _log.info("guild %s: playback restored (rebuild=%s)", guild_id, rebuild)
            self._restores["rebuilt" if rebuild else "resumed"] += 1
            title = guild.current.title
        if was_interrupted:
            await self._announce(guild_id, f"I'm back. Playing **{title}** again.")

    async def _start_current(self, guild: _Guild, position: int = 0) -> None:
        entry = guild.current
        if entry is None:
            return
        guild_id = guild.player.guild_id
        guild.changed_at = time.monotonic()
        try:
            await self._lavalink.play(
                guild_id,
                entry.encoded,
                position=position,
                paused=guild.player.paused,
                volume=guild.player.volume,
                filters=guild.filters,
                user_data={ENTRY_KEY: entry.id},
            )
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not start %r: %s", guild_id, entry.title, exc)
            # A node that is connected but kept failing (tried three times) is no outage that
            # ends by itself: only an actual lost node earns "it plays when the server is back".
            if isinstance(exc, lavalink.NoNodeAvailableError) or (
                isinstance(exc, _NODE_DOWN) and not self._lavalink.available
            ):
                # The node comes back (or another takes over) and the restore plays it then.
                await self._set_status(guild, PlayerStatus.INTERRUPTED, position)
                raise UserError(
                    "The music server is unreachable right now. Your song is kept in the queue "
                    "and will play when the server is back."
                ) from exc
            # A node that is up refused: waiting would not help, and sitting silent in the
            # channel would be worse. Leave; the song stays first in the queue for /play.
            guild.player = dataclasses.replace(guild.player, voice_channel_id=None)
            await self._set_status(guild, PlayerStatus.INTERRUPTED, position)
            await self._leave(guild_id)
            raise UserError(
                f"The music server couldn't play **{entry.title}**. It stays in the queue: "
                "use /play to try again, or /skip it."
            ) from exc
        await self._set_status(guild, PlayerStatus.PLAYING, position)

    async def _advance(
        self, guild: _Guild, *, stop_current: bool, requeue: bool = False
    ) -> str | None:
        """Move past the current entry and play the next one (or stop when there is none).

        ``requeue`` (loop mode ``queue``) moves the current entry to the back instead of
        dropping it; a queue of one then plays the same entry again.

        Returns ``None`` when Lavalink followed, else the sentence saying what happened
        instead (the move itself is stored either way).

        Raises:
            StorageError: the move could not be stored; memory and playback are unchanged,
                so the queue a restart brings back is the one users see.
        """
        finished = guild.current
        requeue = requeue and finished is not None
        following = guild.upcoming[0] if guild.upcoming else finished if requeue else None
        # Out of voice (kicked, channel deleted, node lost) the next entry waits for /play to
        # join again; marked playing, /play would only queue into silence.
        live = self._is_playing(guild)
        player = dataclasses.replace(
            guild.player,
            current_entry_id=following.id if following else None,
            position_ms=0,
            position_at_ms=_now_ms(),
            status=PlayerStatus.IDLE
            if following is None
            else PlayerStatus.PLAYING
            if live
            else PlayerStatus.INTERRUPTED,
        )
        if requeue and finished is not None:
            try:
                key = await self._repo.requeue(player, finished.id)
            except StorageError:
                _log.error("guild %s: could not store the queue loop", player.guild_id)
                raise
            moved = dataclasses.replace(finished, sort_key=key)
            following = guild.pop() or moved
            if following is not moved:
                guild.push([moved])
        else:
            try:
                await self._repo.advance(player, remove_entry_id=finished.id if finished else None)
            except StorageError:
                _log.error("guild %s: could not store the queue advance", player.guild_id)
                raise
            guild.pop()
        guild.current = following
        guild.player = player
        guild.changed_at = time.monotonic()
        if following is not None and live:
            try:
                await self._start_current(guild)
            except UserError as exc:
                return exc.message
        elif stop_current and live:
            try:
                await self._lavalink.stop(guild.player.guild_id)
            except lavalink.LavalinkError as exc:
                # Still playing what was skipped: leaving is the one way to make it stop.
                _log.warning("guild %s: could not stop the track: %s", player.guild_id, exc)
                await self._leave(player.guild_id)
                return "The music server didn't stop the song, so I left the voice channel."
        return None

    async def _load(self, identifier: str) -> tuple[list[lavalink.Track], str | None]:
        try:
            result = await self._lavalink.load_tracks(identifier)
        except lavalink.NoNodeAvailableError:
            raise UserError(
                "The music server is unreachable right now. Try again in a moment."
            ) from None
        except lavalink.LavalinkError as exc:
            _log.warning("loading %r failed: %s", identifier, exc)
            raise UserError(
                "The music server had a problem finding that. Try again in a moment."
            ) from None
        match result:
            case lavalink.TrackResult(data=track):
                return [track], None
            case lavalink.PlaylistResult(data=playlist) if playlist.tracks:
                return list(playlist.tracks), playlist.info.name
            case lavalink.SearchResult(data=tracks) if tracks:
                return [tracks[0]], None
            case lavalink.ErrorResult(data=error):
                raise UserError(f"I couldn't load that: {error.message or 'unknown error'}.")
        raise UserError("I found nothing for that. Try other words or a link.")

    async def _connect(self, guild_id: int, channel_id: int) -> None:
        """Join ``channel_id`` with Lavalink holding the voice credentials, or leave.

        When the join fails half-way (Discord sent no credentials in time, or Lavalink refused
        them) Discord may already show the bot in the channel: it leaves, so it never sits
        there in silence. The caller has stored nothing yet (see :meth:`play`).

        Raises:
            UserError: saying why, and that nothing was added.
        """
        try:
            await self._lavalink.connect(guild_id, channel_id)
        except lavalink.NoNodeAvailableError:
            # No op 4 went out: the bot is where it was.
            raise UserError(
                "The music server is unreachable right now, so nothing was added. "
                "Try again in a moment."
            ) from None
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: joining voice failed: %s", guild_id, exc)
            await self._leave(guild_id)
            if isinstance(exc.__cause__, lavalink.LavalinkError):
                # Lavalink refused the voice credentials: not a permissions problem.
                raise UserError(
                    "The music server couldn't take my voice connection just now, so nothing "
                    "was added. Try again in a moment."
                ) from None
            raise UserError(
                "I couldn't join your voice channel, so nothing was added. "
                "Check that I may connect and speak there."
            ) from None

    async def _leave(self, guild_id: int) -> None:
        """Destroy the player and leave voice (op 4, no channel); a failure is only logged."""
        try:
            await self._lavalink.disconnect(guild_id)
        except lavalink.LavalinkError as exc:
            _log.warning("guild %s: could not leave voice: %s", guild_id, exc)

    async def _set_paused(self, guild_id: int, user_id: int, *, paused: bool) -> PlayerSettings:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise UserError("Nothing is playing right now.")
        self._require_listener(guild_id, user_id, "pause" if paused else "resume")
        async with guild.lock:
            if guild.current is None:
                raise UserError("Nothing is playing right now.")
            if guild.player.paused is paused:
                raise UserError("It's already paused." if paused else "It isn't paused.")
            # The position is frozen while paused; store where it stands now.
            player = dataclasses.replace(
                guild.player,
                paused=paused,
                position_ms=self._position(guild),
                position_at_ms=_now_ms(),
            )
            await self._store(player, guild)
            if self._is_playing(guild):
                await self._apply(guild, lavalink.UpdatePlayer(paused=paused))
        return self._settings(guild)

    async def _store(self, player: PlayerRecord, guild: _Guild) -> None:
        """Write ``player``, then take it into memory; a failure changes neither."""
        if guild.removed:
            raise UserError("I'm no longer in this server.")
        try:
            await self._repo.save_player(player)
        except StorageError:
            raise UserError("I couldn't save that just now, so nothing was changed.") from None
        guild.player = player
        guild.changed_at = time.monotonic()

    async def _apply(self, guild: _Guild, update: lavalink.UpdatePlayer) -> None:
        """Send a settings change to the live player.

        The change is stored already, so a player that misses it (node gone, request failed)
        gets it when it is rebuilt from the database; hence only a warning.
        """
        try:
            await self._lavalink.update_player(guild.player.guild_id, update)
        except lavalink.LavalinkError as exc:
            _log.warning(
                "guild %s: the player did not take the change now: %s", guild.player.guild_id, exc
            )

    def _settings(self, guild: _Guild) -> PlayerSettings:
        return PlayerSettings(
            current=guild.current,
            paused=guild.player.paused,
            volume=guild.player.volume,
            loop_mode=guild.player.loop_mode,
            filter_name=_preset_name(guild.filters),
        )

    def _require_listener(self, guild_id: int, user_id: int, action: str) -> None:
        """Only people listening with the bot may change what it plays."""
        bot_channel = self._lavalink.voice_channel(guild_id)
        if bot_channel is None:
            return
        if self._discord.voice_channel_of(guild_id, user_id) != bot_channel:
            raise UserError(f"Join my voice channel <#{bot_channel}> to {action}.")

    async def _set_status(self, guild: _Guild, status: PlayerStatus, position: int) -> None:
        if guild.removed:
            return  # its row is deleted; writing it would bring the guild back
        player = dataclasses.replace(
            guild.player, status=status, position_ms=position, position_at_ms=_now_ms()
        )
        try:
            await self._repo.save_player(player)
        except StorageError:
            _log.error("guild %s: could not store the player state", player.guild_id)
        guild.player = player
        guild.changed_at = time.monotonic()

    async def _save_position(
        self, guild: _Guild, position: int, *, entry: QueueEntry | None = None
    ) -> None:
        """Store ``position``; with ``entry``, only while that entry is still the current one."""
        at = _now_ms()
        try:
            await self._repo.save_position(
                guild.player.guild_id, position, at, entry_id=entry.id if entry else None
            )
        except StorageError:
            return
        if entry is not None and guild.current is not entry:
            return
        guild.player = dataclasses.replace(guild.player, position_ms=position, position_at_ms=at)

    def _position(self, guild: _Guild) -> int:
        """Best estimate of the current position, extrapolated from the last report."""
        entry = guild.current
        if entry is None:
            return 0
        reported = self._lavalink.position(guild.player.guild_id)
        if reported is not None and not self._plays_current(guild):
            reported = None  # the reports are about another track (a skip Lavalink missed)
        if reported is not None and guild.player.status is PlayerStatus.PLAYING:
            position = reported
        else:
            position = guild.player.position_ms
            if guild.player.status is PlayerStatus.PLAYING and not guild.player.paused:
                position += max(0, _now_ms() - guild.player.position_at_ms)
        if entry.is_stream:
            return max(0, position)
        return max(0, min(position, entry.length_ms))

    def _plays_current(self, guild: _Guild) -> bool:
        """Whether the player runs the current entry, as far as the client knows."""
        playing = self._lavalink.playing(guild.player.guild_id)
        entry = guild.current
        if playing is None or entry is None:
            return playing is None  # nothing known either way: trust the reports
        return _matches(*playing, entry)

    def _rebuild_position(self, guild: _Guild) -> int:
        """Where a rebuilt player starts: the extrapolated position, capped after a restart.

        With no report from Lavalink in this run (the bot restarted), the stored position is
        extrapolated over the downtime; but an unresumed session's players played on for at
        most the resume timeout after the bot went away, so the estimate stops there.
        """
        position = self._position(guild)
        if (
            self._lavalink.position(guild.player.guild_id) is None
            and guild.player.status is PlayerStatus.PLAYING
            and not guild.player.paused
        ):
            cap = guild.player.position_ms + self._lavalink.resume_timeout * 1000
            position = min(position, cap)
        return position

    def _is_playing(self, guild: _Guild) -> bool:
        return guild.current is not None and guild.player.status is PlayerStatus.PLAYING

    def _guild(self, guild_id: int) -> _Guild:
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = _Guild(PlayerRecord(guild_id=guild_id))
        return guild

    async def _announce(self, guild_id: int, text: str) -> None:
        guild = self._guilds.get(guild_id)
        if guild is not None and guild.player.text_channel_id is not None:
            await self._discord.announce(guild.player.text_channel_id, text)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _is_entry(track: lavalink.Track, entry: QueueEntry) -> bool:
    """Whether Lavalink's ``track`` is ``entry``.

    By the entry id sent as ``userData``, which Lavalink echoes on every event; servers that
    drop it (NodeLink) are matched by the track itself, its position aside. Without the id, a
    queue holding the same song twice in a row cannot tell the two apart.
    """
    return _matches(track.encoded, track.user_data, entry)


def _matches(encoded: str, user_data: Mapping[str, Any], entry: QueueEntry) -> bool:
    tagged = user_data.get(ENTRY_KEY)
    if tagged is not None:
        return bool(tagged == entry.id)
    return lavalink.same_track(encoded, entry.encoded)


def _from_stored(stored: StoredGuild) -> _Guild:
    guild = _Guild(stored.player)
    guild.filters = _decode_filters(stored.player)
    if guild.filters is None and stored.player.filters is not None:
        # Unreadable: play without filters; the next write clears the stored value.
        guild.player = dataclasses.replace(guild.player, filters=None)
    current_id = stored.player.current_entry_id
    upcoming = []
    for entry in stored.entries:
        if entry.id == current_id:
            guild.current = entry
        else:
            upcoming.append(entry)
    guild.push(upcoming)
    if guild.current is None and stored.player.status is not PlayerStatus.IDLE:
        guild.player = dataclasses.replace(guild.player, status=PlayerStatus.IDLE)
    return guild


def _decode_filters(player: PlayerRecord) -> lavalink.Filters | None:
    """The stored filter set, or ``None`` (no filters, or a value that is not valid)."""
    if player.filters is None:
        return None
    try:
        return msgspec.json.decode(player.filters, type=lavalink.Filters)
    except (msgspec.DecodeError, lavalink.FilterError) as exc:
        _log.warning("guild %s: ignoring unreadable stored filters: %s", player.guild_id, exc)
        return None


def _preset_name(filters: lavalink.Filters | None) -> str:
    if filters is None:
        return "off"
    return next((name for name, f in FILTER_PRESETS.items() if f == filters), "custom")


def _new_entry(track: lavalink.Track, requester_id: int) -> NewEntry:
    info = track.info
    return NewEntry(
        encoded=track.encoded,
        title=info.title or "Unknown title",
        author=info.author or "Unknown artist",
        length_ms=0 if info.is_stream else max(0, info.length),
        is_stream=info.is_stream,
        uri=info.uri,
        requester_id=requester_id,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)
