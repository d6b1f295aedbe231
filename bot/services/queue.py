"""The queue service: the commands users give, and the one object the rest of the bot holds.

Each command checks what the user may do, takes the guild's lock (one per guild serialises
commands and Lavalink events for it), and is made of :mod:`.playback` steps. What a user is
told instead of a result is a :class:`~.errors.ServiceError`, raised for the caller to render
(no sentence is written here). Reactions to events live in :mod:`.reactions`, repairs in
:mod:`.healing`, wired together here.
"""

from __future__ import annotations

import dataclasses
import logging
import random

from bot import lavalink
from bot.shards import ShardSet
from bot.storage import LoopMode, PlayerRecord, PlayerStatus, Repository, StorageError

from .admission import MAX_QUEUE_LENGTH, MAX_VOLUME, admit, check_room, gaps, store_new
from .buttons import Buttons
from .controller import Controller
from .controls import Controls
from .editing import QueueEdits
from .errors import (
    Action,
    GuildGone,
    LoadFailed,
    NothingFound,
    NothingPlaying,
    NoVoiceChannel,
    PlayingElsewhere,
    SaveFailed,
    Unsaved,
)
from .guild import GuildState, is_entry, new_entry
from .healing import Healing
from .heartbeat import Heartbeat, process_key
from .history import History
from .layouts import Layouts
from .notices import VoteSkipped
from .permissions import Permissions
from .playback import Playback
from .ports import DiscordView, Lavalink
from .positions import position
from .presence import Presence
from .query import QueryResolver
from .reactions import Reactions
from .reading import player_state, queue_view, service_stats
from .reconciler import PASS_INTERVAL, Reconciler
from .settings import ServerSettings
from .suggest import fetch
from .tuning import Tuning
from .views import (
    PlayerSettings,
    PlayerState,
    PlayOutcome,
    PreviousOutcome,
    QueueView,
    ServiceStats,
    SkipOutcome,
)
from .views import VoteCounted as Vote

__all__ = ["MAX_QUEUE_LENGTH", "MAX_VOLUME", "SHUTDOWN_GRACE", "QueueService"]

_log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 2.0
"""Seconds a shutdown waits for running restores before cancelling them."""


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
        shards: ShardSet | None = None,
    ) -> None:
        """``shards``: this process's share of the bot when several processes run it (it
        loads, restores and keeps alive only those guilds); ``None``: every guild."""
        self._repo = repository
        self._shards = shards
        self._lavalink = client
        self._discord = discord
        self._queries = queries or QueryResolver()
        self._guilds: dict[int, GuildState] = {}
        self._playback = Playback(repository, client, discord)
        self.permissions = Permissions(self._guilds, client, discord)
        """Who may do what, and the vote skips (:mod:`.permissions`)."""
        healing = Healing(self._guilds, self._playback, client)
        self.reconciler = Reconciler(client, healing, is_entry, interval=reconcile_interval)
        self._reactions = Reactions(
            self._guilds, self._playback, client, discord, wake_reconciler=self.reconciler.wake
        )
        self.presence = Presence(
            self._guilds, self._playback, client, discord, idle_timeout=idle_timeout
        )
        self.controller = Controller(self._guilds, repository, client, discord)
        """The now-playing message of each guild, told of every change (:mod:`.controller`)."""
        self._playback.watcher = self.controller.changed
        self._commands(repository, client, discord, rng=rng, idle_timeout=idle_timeout)
        self.heartbeat = Heartbeat(repository, key=process_key(shards))
        """The liveness row: when this run was last alive (:mod:`.heartbeat`)."""
        self.layouts = Layouts(repository, client, shards)
        """Earlier shard layouts: their players, positions and rows (:mod:`.layouts`)."""
        self._playback.stopped_at = self.layouts.stopped_at

    def _commands(
        self,
        repository: Repository,
        client: Lavalink,
        discord: DiscordView,
        *,
        rng: random.Random | None,
        idle_timeout: float,
    ) -> None:
        """The command groups that live in modules of their own, over this service's guilds."""
        self.controls = Controls(
            self._guilds,
            repository,
            self._playback,
            client,
            require_listener=self.permissions.require,
        )
        """``/nowplaying``, ``/seek``, ``/stop`` and ``/leave`` (:mod:`.controls`)."""
        self.edits = QueueEdits(
            self._guilds, repository, self._playback, self.permissions.require, rng=rng
        )
        """Skip ahead, remove, move, shuffle, clear (``rng`` shuffles)."""
        self.buttons = Buttons(self, self.controller)
        """The controller's buttons, as the commands they stand for (:mod:`.buttons`)."""
        self.history = History(
            self._guild,
            repository,
            self._playback,
            discord,
            require=self.permissions.require,
            check_voice=self._check_voice,
        )
        """``/history`` and ``/previous`` (:mod:`.history`)."""
        self.settings = ServerSettings(repository, self._guild, idle_timeout=idle_timeout)
        """``/settings``: show and change the server's (:mod:`.settings`)."""
        self.settings.watcher = self.controller.changed
        self.tuning = Tuning(
            self._guilds,
            self._playback,
            client,
            self.permissions.require,
            guild=self._guild,
            store=self._store,
        )
        """Pause, volume, loop and filters (:mod:`.tuning`)."""

    # --- life --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load every stored guild into memory, and every server's settings (a server may
        have settings and no player yet)."""
        owned = None if self._shards is None else self._shards.owns
        for stored in await self._repo.load_guilds(owned):
            self._guilds[stored.player.guild_id] = GuildState.from_stored(stored)
        for settings in await self._repo.settings.load():
            if owned is None or owned(settings.guild_id):
                self._guild(settings.guild_id).settings = settings
        await self.controller.load(owned)
        await self.layouts.load()  # before this run's first beat
        _log.info("loaded %d guild(s) from storage", len(self._guilds))

    def start_reconciling(self) -> None:
        """Start the periodic comparison of promises with the truth (once Lavalink starts),
        and the idle timers; the heartbeat says from now on that this run is alive, and rows
        of earlier shard layouts are forgotten once they cannot matter (:mod:`.layouts`)."""
        self.heartbeat.start()
        self.layouts.start()
        self.reconciler.start()
        self.presence.start()
        self.controller.refresh_all()

    def reconcile_now(self) -> None:
        """After a gateway or Lavalink reconnect: compare promises with the truth at once,
        and who listens where on the next presence pass."""
        self.reconciler.wake()
        self.presence.wake()

    async def shutdown(self) -> None:
        """Stop the background work (the Lavalink session stays resumable; music plays on)."""
        await self.reconciler.close()
        await self.presence.close()
        await self._reactions.drain(SHUTDOWN_GRACE)
        await self.controller.close()  # the messages stay: the music plays on meanwhile
        # No position is written: each stored anchor is within DRIFT_MS of Lavalink's clock,
        # and the last beat says when this run stopped (see .positions).
        await self.heartbeat.close()
        await self.layouts.close()

    def guild_ids(self) -> frozenset[int]:
        """Every guild with a stored player or stored settings."""
        return frozenset(self._guilds)

    # --- events (wired by the app) -----------------------------------------------------------

    async def handle_event(self, event: lavalink.Event) -> None:
        """React to a Lavalink event (see :mod:`.reactions`)."""
        await self._reactions.handle_event(event)

    def position_reported(self, report: lavalink.PlayerStateUpdate) -> None:
        """A ``playerUpdate`` as it arrives (``LavalinkClient.on_position``; .positions)."""
        self._reactions.position_reported(report)

    async def voice_changed(self, guild_id: int) -> None:
        """A member joined, left or moved voice in ``guild_id`` (see :mod:`.presence`); an
        open vote skip is recounted, and skips if those still listening have voted enough."""
        await self.presence.voice_changed(guild_id)
        guild = self._guilds.get(guild_id)
        if guild is None or not self.permissions.voting(guild_id):
            return
        async with guild.lock:
            tally = self.permissions.recount(guild)
            if tally is None or not tally.passed or guild.removed:
                return
            try:
                done = await self._skip(guild, tally)
            except SaveFailed:
                _log.warning("guild %s: a vote skip passed but could not be stored", guild_id)
                return
            now = done.next.title if done.next is not None and not done.waiting else None
            await self._playback.announce(guild, VoteSkipped(done.skipped.title, now, done.problem))

    async def guild_removed(self, guild_id: int) -> None:
        """The bot was removed from the guild: its player and queue are deleted."""
        await self._reactions.guild_removed(guild_id)

    async def channel_deleted(self, guild_id: int, channel_id: int) -> None:
        """A channel was deleted: playback stops if it was ours; the queue is kept."""
        await self._reactions.channel_deleted(guild_id, channel_id)

    # --- commands ----------------------------------------------------------------------------

    async def play(
        self,
        guild_id: int,
        user_id: int,
        text_channel_id: int,
        query: str,
        *,
        play_next: bool = False,
    ) -> PlayOutcome:
        """Queue what ``query`` finds (``play_next``: first in line); start playing if idle.

        What may be queued, and where, is :mod:`.admission`'s (the server's limits and fair
        queue). Order when the guild is idle: join voice, then store the new tracks, then play.
        A join that fails stores nothing and leaves the channel: the user is told nothing was
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
        if play_next:  # jumping the queue is a DJ's call (see .permissions)
            self.permissions.require(guild_id, user_id, Action.PLAY_NEXT)
        guild = self._guild(guild_id)
        self._check_play(guild, channel_id, user_id)
        tracks, playlist = await self._load(identifier)
        found = [new_entry(track, user_id) for track in tracks]

        async with guild.lock:
            # Checked again: another /play may have started the music meanwhile.
            self._check_play(guild, channel_id, user_id)
            admitted = admit(guild, found, user_id, playlist=playlist is not None)
            start = not guild.is_playing
            # An interrupted guild (node lost, bot kicked) resumes its own track first.
            resume_at = (
                position(guild, self._lavalink) if start and guild.current is not None else 0
            )
            if start and (failure := await self._playback.connect(guild_id, channel_id)):
                raise failure
            player = _playing_from(guild, channel_id, text_channel_id, start=start)
            entries = admitted.entries
            places = gaps(guild, len(entries), user_id, first=play_next)
            try:
                added, started_new, place = await store_new(
                    self._repo, guild, player, entries, places, start=start
                )
            except StorageError:
                if start:
                    # Nothing will play: don't sit silent in the channel just joined.
                    await self._playback.leave(guild_id)
                raise SaveFailed(Unsaved.ADD) from None
            if start and (problem := await self._playback.start_current(guild, resume_at)):
                raise problem
        return PlayOutcome(added, started_new, place, playlist, admitted.left_out)

    def _check_play(self, guild: GuildState, channel_id: int, user_id: int) -> None:
        self._check_voice(guild, channel_id)
        check_room(guild, user_id)

    def _check_voice(self, guild: GuildState, channel_id: int) -> None:
        """May music start or go on from ``channel_id``? (``/play`` and ``/previous``)"""
        if guild.removed:
            raise GuildGone()
        bot_channel = self.permissions.bot_channel(guild.guild_id)
        if guild.is_playing and bot_channel is not None and bot_channel != channel_id:
            raise PlayingElsewhere(bot_channel)

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

    async def skip(self, guild_id: int, user_id: int) -> SkipOutcome | Vote:
        """Skip the current track; with a DJ role set, a non-DJ's skip of someone else's
        track is a vote instead, and skips once it passes (see :mod:`.permissions`)."""
        guild = self._guilds.get(guild_id)
        if guild is None or guild.current is None:
            raise NothingPlaying()
        standing = self.permissions.require(guild_id, user_id, Action.SKIP)
        async with guild.lock:
            skipped = guild.current
            if skipped is None:
                raise NothingPlaying()
            tally = None
            if not standing.dj and not standing.owns([skipped]):
                tally = self.permissions.vote(guild, standing)
                if not tally.passed:
                    return tally
            return await self._skip(guild, tally)

    async def _skip(self, guild: GuildState, tally: Vote | None) -> SkipOutcome:
        skipped = guild.current
        assert skipped is not None
        requeue = guild.player.loop_mode is LoopMode.QUEUE
        moved = await self._playback.advance(guild, stop_current=True, requeue=requeue)
        if not moved.stored:
            raise SaveFailed(Unsaved.SKIP)
        self.permissions.close_vote(guild.guild_id)
        waiting = guild.player.status is PlayerStatus.INTERRUPTED and moved.problem is None
        return SkipOutcome(skipped, guild.current, waiting, moved.problem, vote=tally)

    async def previous(
        self, guild_id: int, user_id: int, text_channel_id: int | None = None
    ) -> PreviousOutcome:
        """Play the last played track again; the current one plays next (:mod:`.history`)."""
        return await self.history.previous(guild_id, user_id, text_channel_id)

    # Player settings (:mod:`.tuning`), here too: the service is what the rest of the bot holds.

    async def pause(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self.tuning.set_paused(guild_id, user_id, paused=True)

    async def resume(self, guild_id: int, user_id: int) -> PlayerSettings:
        return await self.tuning.set_paused(guild_id, user_id, paused=False)

    async def set_volume(self, guild_id: int, user_id: int, level: int) -> PlayerSettings:
        return await self.tuning.set_volume(guild_id, user_id, level)

    async def set_loop(self, guild_id: int, user_id: int, mode: LoopMode) -> PlayerSettings:
        return await self.tuning.set_loop(guild_id, user_id, mode)

    async def set_filter(self, guild_id: int, user_id: int, preset: str) -> PlayerSettings:
        return await self.tuning.set_filter(guild_id, user_id, preset)

    async def _store(self, guild: GuildState, player: PlayerRecord) -> None:
        """A command's write: on failure nothing changed, and the user is told."""
        if guild.removed:
            raise GuildGone()
        if not await self._playback.store(guild, player):
            raise SaveFailed(Unsaved.CHANGE)

    def _guild(self, guild_id: int) -> GuildState:
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = GuildState(PlayerRecord(guild_id=guild_id))
        return guild

    # --- reading (built by :mod:`.reading`) ---------------------------------------------------

    def queue(self, guild_id: int, limit: int = 10, offset: int = 0) -> QueueView:
        """The current track, ``limit`` upcoming entries from place ``offset + 1``, totals."""
        return queue_view(self._guilds.get(guild_id), self._lavalink, limit, offset)

    def player_state(self, guild_id: int) -> PlayerState | None:
        """The guild's player and queue as stored now; ``None`` for a guild never played in."""
        guild = self._guilds.get(guild_id)
        return player_state(guild, self._lavalink) if guild is not None else None

    def stats(self) -> ServiceStats:
        """Counts over every guild; one pass, no I/O (read when metrics are scraped)."""
        return service_stats(
            self._guilds.values(),
            restores=dict(self._playback.restores),
            failovers=self._reactions.failovers,
            repairs={kind.name.lower(): count for kind, count in self.reconciler.repairs.items()},
        )


def _playing_from(
    guild: GuildState, channel_id: int, text_channel_id: int, *, start: bool
) -> PlayerRecord:
    """The player a /play stores: in the caller's channels; one that starts the music is
    unpaused (the user wants to hear it), and a queue started from nothing starts at the
    server's default volume."""
    player = dataclasses.replace(
        guild.player,
        voice_channel_id=channel_id,
        text_channel_id=text_channel_id,
        paused=guild.player.paused and not start,
    )
    if start and guild.current is None:
        player = dataclasses.replace(player, volume=guild.settings.default_volume)
    return player
