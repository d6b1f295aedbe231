"""The queue service: the commands users give, and the one object the rest of the bot holds.

Each command checks what the user may do, takes the guild's lock (one per guild serialises
commands and Lavalink events for it), and is made of :mod:`.playback` steps. What a user is
told instead of a result is a :class:`~.errors.ServiceError`, raised for the caller to render;
no sentence is written here. Reactions to events live in :mod:`.reactions`, repairs in
:mod:`.healing`; the service wires them together and hands them its guilds.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random

import msgspec

from bot import lavalink
from bot.storage import LoopMode, PlayerRecord, PlayerStatus, Repository, StorageError

from .buttons import Buttons
from .controller import Controller
from .controls import Controls
from .editing import QueueEdits
from .errors import (
    Action,
    AlreadyPaused,
    GuildGone,
    LoadFailed,
    NothingFound,
    NothingPlaying,
    NotInBotChannel,
    NotPaused,
    NoVoiceChannel,
    PlayingElsewhere,
    QueueFull,
    SaveFailed,
    UnknownFilter,
    Unsaved,
    VolumeOutOfRange,
)
from .guild import (
    FILTER_PRESETS,
    GuildState,
    is_entry,
    new_entry,
    now_ms,
    position,
    preset_name,
)
from .healing import Healing
from .playback import Playback
from .ports import DiscordView, Lavalink
from .presence import Presence
from .query import QueryResolver
from .reactions import Reactions
from .reconciler import PASS_INTERVAL, Reconciler
from .suggest import fetch
from .views import PlayerSettings, PlayerState, PlayOutcome, QueueView, ServiceStats, SkipOutcome

__all__ = ["MAX_QUEUE_LENGTH", "MAX_VOLUME", "SHUTDOWN_GRACE", "QueueService"]

_log = logging.getLogger(__name__)

MAX_QUEUE_LENGTH = 10_000
SHUTDOWN_GRACE = 2.0
"""Seconds a shutdown waits for running restores before cancelling them."""
MAX_VOLUME = 200
"""Highest volume a user may set. Lavalink takes 0..1000, but above 200 % the sound only
clips and distorts, which nobody in the channel wants and can hurt with headphones on."""


class QueueService:
    """Commands, plus the event handler and guild events the app wires to its sources."""

    def __init__(
        self,
        repository: Repository,
        client: Lavalink,
        discord: DiscordView,
        *,
        queries: QueryResolver | None = None,
        reconcile_interval: float = PASS_INTERVAL,
        idle_timeout: float = 180.0,
        rng: random.Random | None = None,
    ) -> None:
        self._repo = repository
        self._lavalink = client
        self._discord = discord
        self._queries = queries or QueryResolver()
        self._guilds: dict[int, GuildState] = {}
        self._playback = Playback(repository, client, discord)
        healing = Healing(self._guilds, self._playback, client)
        self.reconciler = Reconciler(client, healing, is_entry, interval=reconcile_interval)
        self._reactions = Reactions(
            self._guilds, self._playback, client, discord, wake_reconciler=self.reconciler.wake
        )
        self.presence = Presence(
            self._guilds, self._playback, client, discord, idle_timeout=idle_timeout
        )
        self.controls = Controls(
            self._guilds,
            repository,
            self._playback,
            client,
            require_listener=self._require_listener,
        )
        """``/nowplaying``, ``/seek``, ``/stop`` and ``/leave`` (:mod:`.controls`)."""
        self.edits = QueueEdits(
            self._guilds, repository, self._playback, self._require_listener, rng=rng
        )
        """Skip ahead, remove, move, shuffle, clear (``rng`` shuffles)."""
        self.controller = Controller(self._guilds, repository, client, discord)
        """The now-playing message of each guild, told of every change (:mod:`.controller`)."""
        self._playback.watcher = self.controller.changed
        self.buttons = Buttons(self, self.controller)
        """The controller's buttons, as the commands they stand for (:mod:`.buttons`)."""

    # --- life --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load every stored guild into memory."""
        for stored in await self._repo.load_guilds():
            self._guilds[stored.player.guild_id] = GuildState.from_stored(stored)
        await self.controller.load()
        _log.info("loaded %d guild(s) from storage", len(self._guilds))

    def start_reconciling(self) -> None:
        """Start the periodic comparison of promises with the truth (once Lavalink starts),
        and the idle timers."""
        self.reconciler.start()
        self.presence.start()
        self.controller.refresh_all()

    def reconcile_now(self) -> None:
        """After a gateway or Lavalink reconnect: compare promises with the truth at once."""
        self.reconciler.wake()

    async def shutdown(self) -> None:
        """Persist every playing guild's position (the Lavalink session stays resumable)."""
        await self.reconciler.close()
        await self.presence.close()
        await self._reactions.drain(SHUTDOWN_GRACE)
        await self.controller.close()  # the messages stay: the music plays on meanwhile
        # A copy: commands still come in (a /play in a new server adds a guild) meanwhile.
        for guild in list(self._guilds.values()):
            if guild.current is not None and guild.player.status is PlayerStatus.PLAYING:
                await self._playback.save_position(guild, position(guild, self._lavalink))

    def guild_ids(self) -> frozenset[int]:
        """Every guild with a stored player."""
        return frozenset(self._guilds)

    # --- events (wired by the app) -----------------------------------------------------------

    async def handle_event(self, event: lavalink.Event) -> None:
        """React to a Lavalink event (see :mod:`.reactions`)."""
        await self._reactions.handle_event(event)

    async def voice_changed(self, guild_id: int) -> None:
        """A member joined, left or moved voice in ``guild_id`` (see :mod:`.presence`)."""
        await self.presence.voice_changed(guild_id)

    async def guild_removed(self, guild_id: int) -> None:
        """The bot was removed from the guild: its player and queue are deleted."""
        await self._reactions.guild_removed(guild_id)

    async def channel_deleted(self, guild_id: int, channel_id: int) -> None:
        """A channel was deleted: playback stops if it was ours; the queue is kept."""
        await self._reactions.channel_deleted(guild_id, channel_id)

    # --- commands ----------------------------------------------------------------------------

    async def play(
        self, guild_id: int, user_id: int, text_channel_id: int, query: str
    ) -> PlayOutcome:
        """Queue what ``query`` finds; start playing if the guild is idle.

        Order when the guild is idle: join voice, then store the new tracks, then play. A
        join that fails stores nothing and leaves the channel: the user is told nothing was
        added, so asking again never queues the same song twice, and the queue stays as it
        was (an interrupted track keeps its place and position). Once the tracks are stored
        they stay queued even if Lavalink then refuses to play.

        Raises:
            ServiceError: for anything the user should be told (no voice, nothing found, ...).
        """
        identifier = await self._queries.identifier(query)
        channel_id = self._discord.voice_channel_of(guild_id, user_id)
        if channel_id is None:
            raise NoVoiceChannel()
        guild = self._guild(guild_id)
        self._check_play(guild, channel_id, 0)
        tracks, playlist = await self._load(identifier)
        entries = [new_entry(track, user_id) for track in tracks]

        async with guild.lock:
            # Checked again: another /play may have started the music meanwhile.
            self._check_play(guild, channel_id, len(entries))
            start = not guild.is_playing
            # An interrupted guild (node lost, bot kicked) resumes its own track first.
            resume_at = (
                position(guild, self._lavalink) if start and guild.current is not None else 0
            )
            if start and (failure := await self._playback.connect(guild_id, channel_id)):
                raise failure
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
                    await self._playback.leave(guild_id)
                raise SaveFailed(Unsaved.ADD) from None
            guild.player = player
            started_new = guild.current is None
            place = 0 if started_new else len(guild.upcoming) + 1
            if started_new:
                guild.current = added[0]
                guild.push(added[1:])
            else:
                guild.push(added)
            if start and (problem := await self._playback.start_current(guild, resume_at)):
                raise problem
        return PlayOutcome(added, started_new, place, playlist)

    def _check_play(self, guild: GuildState, channel_id: int, adding: int) -> None:
        if guild.removed:
            raise GuildGone()
        bot_channel = self._bot_channel(guild.guild_id)
        if guild.is_playing and bot_channel is not None and bot_channel != channel_id:
            raise PlayingElsewhere(bot_channel)
        if len(guild.upcoming) + adding > MAX_QUEUE_LENGTH:
            raise QueueFull(MAX_QUEUE_LENGTH)

    async def _load(self, identifier: str) -> tuple[list[lavalink.Track], str | None]:
        match await fetch(self._lavalink, identifier):
            case lavalink.TrackResult(data=track):
                return [track], None
            case lavalink.PlaylistResult(data=playlist) if playlist.tracks:
                return list(playlist.tracks), playlist.info.name
            case lavalink.SearchResult(data=tracks) if tracks:
                return [tracks[0]], None
            case lavalink.ErrorResult(data=error):
                raise LoadFailed(error.message or None)
        raise NothingFound()

    async def skip(self, guild_id: int, user_id: int) -> SkipOutcome:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        self._require_listener(guild_id, user_id, Action.SKIP)
        async with guild.lock:
            skipped = guild.current
            if skipped is None:
                raise NothingPlaying()
            requeue = guild.player.loop_mode is LoopMode.QUEUE
            moved = await self._playback.advance(guild, stop_current=True, requeue=requeue)
            if not moved.stored:
                raise SaveFailed(Unsaved.SKIP)
            waiting = guild.player.status is PlayerStatus.INTERRUPTED and moved.problem is None
            return SkipOutcome(skipped, guild.current, waiting, moved.problem)

    async def pause(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self._set_paused(guild_id, user_id, paused=True)

    async def resume(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self._set_paused(guild_id, user_id, paused=False)

    async def _set_paused(self, guild_id: int, user_id: int, *, paused: bool) -> PlayerSettings:
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        self._require_listener(guild_id, user_id, Action.PAUSE if paused else Action.RESUME)
        async with guild.lock:
            if guild.current is None:
                raise NothingPlaying()
            if guild.player.paused is paused:
                raise AlreadyPaused() if paused else NotPaused()
            # The position is frozen while paused; store where it stands now.
            at = position(guild, self._lavalink)
            player = dataclasses.replace(
                guild.player, paused=paused, position_ms=at, position_at_ms=now_ms()
            )
            await self._store(guild, player)
            if guild.is_playing:
                await self._playback.apply(guild, lavalink.UpdatePlayer(paused=paused))
        return self._settings(guild)

    async def set_volume(self, guild_id: int, user_id: int, level: int) -> PlayerSettings:
        """Set the player volume in percent (100 = as recorded); kept for the next tracks."""
        if not 0 <= level <= MAX_VOLUME:
            raise VolumeOutOfRange(MAX_VOLUME)
        self._require_listener(guild_id, user_id, Action.VOLUME)
        guild = self._guild(guild_id)
        async with guild.lock:
            await self._store(guild, dataclasses.replace(guild.player, volume=level))
            if guild.is_playing:
                await self._playback.apply(guild, lavalink.UpdatePlayer(volume=level))
        return self._settings(guild)

    async def set_loop(self, guild_id: int, user_id: int, mode: LoopMode) -> PlayerSettings:
        self._require_listener(guild_id, user_id, Action.LOOP)
        guild = self._guild(guild_id)
        async with guild.lock:
            if guild.player.loop_mode is not mode:
                await self._store(guild, dataclasses.replace(guild.player, loop_mode=mode))
        return self._settings(guild)

    async def set_filter(self, guild_id: int, user_id: int, preset: str) -> PlayerSettings:
        """Apply one of :data:`~.guild.FILTER_PRESETS` (``off`` clears every filter)."""
        filters = FILTER_PRESETS.get(preset)
        if filters is None:
            raise UnknownFilter(preset, tuple(FILTER_PRESETS))
        self._require_listener(guild_id, user_id, Action.FILTER)
        guild = self._guild(guild_id)
        stored = None if filters == lavalink.Filters() else msgspec.json.encode(filters).decode()
        async with guild.lock:
            await self._store(guild, dataclasses.replace(guild.player, filters=stored))
            if guild.is_playing:
                await self._playback.apply(guild, lavalink.UpdatePlayer(filters=filters))
        return self._settings(guild)

    async def _store(self, guild: GuildState, player: PlayerRecord) -> None:
        """A command's write: on failure nothing changed, and the user is told."""
        if guild.removed:
            raise GuildGone()
        if not await self._playback.store(guild, player):
            raise SaveFailed(Unsaved.CHANGE)

    def _require_listener(self, guild_id: int, user_id: int, action: Action) -> None:
        """Only people listening with the bot may change what it plays."""
        bot_channel = self._bot_channel(guild_id)
        if bot_channel is None:
            return
        if self._discord.voice_channel_of(guild_id, user_id) != bot_channel:
            raise NotInBotChannel(bot_channel, action)

    def _bot_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel as Discord last reported it."""
        live = self._lavalink.snapshot(guild_id)
        return live.voice_channel_id if live is not None else None

    def _guild(self, guild_id: int) -> GuildState:
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = GuildState(PlayerRecord(guild_id=guild_id))
        return guild

    # --- reading -----------------------------------------------------------------------------

    def queue(self, guild_id: int, limit: int = 10) -> QueueView:
        guild = self._guilds.get(guild_id)
        if guild is None:
            return QueueView(None, 0, False, False, (), 0, 0)
        return QueueView(
            current=guild.current,
            position_ms=position(guild, self._lavalink) if guild.current else 0,
            paused=guild.player.paused,
            interrupted=guild.player.status is PlayerStatus.INTERRUPTED,
            upcoming=tuple(itertools.islice(guild.upcoming, limit)),
            total=len(guild.upcoming),
            total_ms=guild.upcoming_ms,
            volume=guild.player.volume,
            loop_mode=guild.player.loop_mode,
            filter_name=preset_name(guild.filters),
        )

    def _settings(self, guild: GuildState) -> PlayerSettings:
        return PlayerSettings(
            current=guild.current,
            paused=guild.player.paused,
            volume=guild.player.volume,
            loop_mode=guild.player.loop_mode,
            filter_name=preset_name(guild.filters),
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
            filter_name=preset_name(guild.filters),
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
            restores=dict(self._playback.restores),
            failovers=self._reactions.failovers,
            repairs={kind.name.lower(): count for kind, count in self.reconciler.repairs.items()},
        )
