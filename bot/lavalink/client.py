"""The Lavalink client: players, voice forwarding and event dispatch over a node.

The client owns three things per guild:

* the bot's Discord voice credentials, gathered from its own voice state and voice server
  updates in either order, forwarded to Lavalink once all four values are known and whenever
  they change (never with a null endpoint, never mixing a new token with an old endpoint);
* a lock, so that voice, play and destroy requests for one guild never race;
* a mailbox, so that a guild's events reach the listener in order without one slow guild
  holding up the others.

It knows nothing about commands, queues or storage. The one thing it needs from Discord is a
way to send gateway op 4, given as a :class:`VoiceGateway`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import msgspec

from . import errors
from .codec import decode_track
from .events import (
    Event,
    NodeConnected,
    NodeLost,
    PlayerMoved,
    PlayerStateUpdate,
    SessionReady,
    StatsUpdate,
    TrackEndEvent,
    TrackEndReason,
    TrackStartEvent,
    TrackStuckEvent,
    VoiceDisconnected,
    VoiceFailed,
    VoiceMoved,
    WebSocketClosedEvent,
    narrow_event,
)
from .filters import Filters
from .models import (
    UNSET,
    LoadResult,
    NodeInfo,
    Player,
    PlayerState,
    PlayerUpdate,
    RawEvent,
    Ready,
    RoutePlannerStatus,
    Stats,
    Track,
    TrackUpdate,
    UpdatePlayer,
    VoiceState,
    WireOp,
)
from .node import Backoff, Node, NodeConfig
from .penalty import penalty

__all__ = ["EventListener", "LavalinkClient", "NodeStatus", "VoiceGateway"]

_log = logging.getLogger(__name__)

_STALE_VOICE_CODES = frozenset({4006, 4009})
"""Discord voice close codes that mean the credentials are stale: only a re-join helps."""
_REJOIN_LIMIT = 3
_REJOIN_WINDOW = 60.0
_TRANSIENT_VOICE_CODES = frozenset({1006, 4015})
"""Voice close codes after which the same credentials may connect again (network, crash)."""
_RESEND_LIMIT = 3
_RETRY_DELAYS = (0.25, 1.0)
"""Pauses before the second and third attempt of a player update that failed in passing."""
_PASSING = (errors.ServerError, errors.RequestTimeoutError, errors.UnreachableError)
"""Failures of one request that say nothing about the next one."""

EventListener = Callable[[Event], Awaitable[None]]


class VoiceGateway(Protocol):
    """Sends Discord gateway op 4 (join, move, or leave with ``channel_id=None``)."""

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None: ...


@dataclasses.dataclass(slots=True)
class _GuildVoice:
    """What Discord last told us about the bot's voice connection in one guild."""

    session_id: str | None = None
    channel_id: int | None = None
    token: str | None = None
    endpoint: str | None = None
    # The values last accepted by Lavalink, and on which Lavalink session.
    forwarded: VoiceState | None = None
    forwarded_to: str | None = None
    # The node holding this guild's player, and what it plays (to move it on failover).
    node: Node | None = None
    playing: _Playback | None = None
    # Filters belong to the player, not the track: they outlive track changes.
    filters: Filters | None = None
    # When the voice connection was last renewed after a 4006, for back-off.
    rejoins: list[float] = dataclasses.field(default_factory=list)
    rejoin_pending: bool = False
    # Re-joining stopped and VoiceFailed went out; until the next connect() nothing more
    # is tried or reported for this guild.
    gave_up: bool = False
    # When the voice state was re-sent after a transient close, for back-off.
    resends: list[float] = dataclasses.field(default_factory=list)
    resend_pending: bool = False
    error: Exception | None = None
    leaving: bool = False
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # time.monotonic() of Discord's last word on this guild's voice (state or server update).
    heard_at: float = 0.0
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    def complete(self) -> VoiceState | None:
        if self.session_id and self.channel_id and self.token and self.endpoint:
            return VoiceState(self.token, self.endpoint, self.session_id, str(self.channel_id))
        return None

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def out_of_voice(self) -> None:
        """Discord has the bot in no channel here: every credential held is dead."""
        self.session_id = self.channel_id = self.token = self.endpoint = None
        self.forwarded = self.forwarded_to = None
        self.notify()


@dataclasses.dataclass(slots=True)
class _Playback:
    """What a guild's player plays, as last sent or reported; enough to rebuild it elsewhere."""

    encoded: str
    user_data: dict[str, Any]
    paused: bool = False
    volume: int = 100
    end_time: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node at one moment: up or not, how often it connected, its load as last reported."""

    name: str
    up: bool
    connects: int
    """Sessions opened (the first connect, every reconnect and resume)."""
    penalty: float | None
    """The placement penalty (lower gets new players); ``None`` while the node is down."""
    players: int | None
    playing_players: int | None
    frames_sent: int | None
    """Audio frames per minute, from the node's last stats (``None`` until it has a minute)."""
    frames_nulled: int | None
    frames_deficit: int | None


class _Mailbox:
    """Runs callbacks one after another; a task exists only while there is work."""

    __slots__ = ("_items", "_name", "_task")

    def __init__(self, name: str) -> None:
        self._name = name
        self._items: collections.deque[Callable[[], Awaitable[None]]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def post(self, work: Callable[[], Awaitable[None]]) -> None:
        self._items.append(work)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._name)

    async def _drain(self) -> None:
        try:
            while self._items:
                work = self._items.popleft()
                try:
                    await work()
                except Exception:
                    # A failing listener must not stop later events from being delivered.
                    _log.exception("Lavalink event listener failed")
        finally:
            self._task = None

    async def join(self) -> None:
        while self._task is not None:
            await asyncio.shield(self._task)

    def cancel(self) -> None:
        self._items.clear()
        if self._task is not None:
            self._task.cancel()


class LavalinkClient:
    """A Lavalink v4 client for one bot user, over one or more nodes.

    Each guild's player lives on one node, chosen when the player is first needed: the
    available node with the lowest :func:`~.penalty.penalty`. When that node drops and other
    nodes are up, its players move after ``failover_delay`` seconds, at their track and
    position; when no node is up for ``node_loss_grace`` seconds, the bot leaves voice in
    every guild the node served (Lavalink never leaves Discord channels on its own).

    Args:
        nodes: the nodes to use.
        gateway: sends op 4 to Discord.
        client_name: ``Client-Name`` header, ``name/version``.
        resume_timeout: seconds Lavalink keeps a session's players alive after the socket drops.
        node_loss_grace: seconds without any node before the bot leaves voice.
        failover_delay: seconds a node may be gone before its players move to another node;
            a short socket drop resumes in less than that and moves nothing.
        stall_timeout: seconds a connected, unpaused player may report the same position
            before the client reports it stuck (Lavalink's own ``TrackStuckEvent`` comes once,
            or never for a source that hangs quietly).
        voice_recheck: seconds after a transient Discord voice close (1006, 4015) before the
            client re-sends the voice state, if Lavalink's voice socket is still closed.
    """

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        gateway: VoiceGateway,
        *,
        client_name: str = "musicbot/0.1",
        resume_timeout: int = 60,
        node_loss_grace: float = 10.0,
        failover_delay: float = 2.0,
        voice_timeout: float = 10.0,
        reconnect_cap: float = 30.0,
        stall_timeout: float = 20.0,
        voice_recheck: float = 3.0,
    ) -> None:
        if not nodes:
            raise ValueError("at least one Lavalink node is required")
        names = [config.name for config in nodes]
        if len(set(names)) != len(names):
            raise ValueError("Lavalink node names must be unique")
        self._configs = tuple(nodes)
        self._gateway = gateway
        self._client_name = client_name
        self._resume_timeout = resume_timeout
        self._node_loss_grace = node_loss_grace
        self._failover_delay = failover_delay
        self._voice_timeout = voice_timeout
        self._reconnect_cap = reconnect_cap
        self._stall_timeout = stall_timeout
        self._voice_recheck = voice_recheck
        self._progress: dict[int, tuple[int, float, str]] = {}
        self._listener: EventListener | None = None
        self._connection_callbacks: list[Callable[[NodeConnected], None]] = []
        self._http: aiohttp.ClientSession | None = None
        self._nodes: list[Node] = []
        self._voice: dict[int, _GuildVoice] = {}
        self._states: dict[int, tuple[PlayerState, float]] = {}
        self._mailboxes: dict[int, _Mailbox] = {}
        self._global_mailbox = _Mailbox("lavalink-events")
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._placed: dict[str, int] = {}
        self._connects: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.user_id: int | None = None
        self.stats: dict[str, Stats] = {}

    # --- life -----------------------------------------------------------------------------

    def set_listener(self, listener: EventListener) -> None:
        self._listener = listener

    def on_node_connected(self, callback: Callable[[NodeConnected], None]) -> None:
        """Call ``callback`` each time a node's WebSocket becomes ready (with what the node
        said it is). Called from the node's read loop: it must return at once."""
        self._connection_callbacks.append(callback)

    async def start(self, user_id: int, session_ids: Mapping[str, str] | None = None) -> None:
        """Start connecting to every node; returns at once (nodes connect in the background).

        ``session_ids`` maps node names to sessions stored by an earlier run, to resume them.
        """
        self.user_id = user_id
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=32),
            headers={"User-Agent": self._client_name},
        )
        stored = session_ids or {}
        for config in self._configs:
            node = Node(
                config,
                self._http,
                self,
                user_id=user_id,
                client_name=self._client_name,
                session_id=stored.get(config.name),
                backoff=Backoff(cap=self._reconnect_cap),
            )
            self._nodes.append(node)
            node.start()

    async def close(self) -> None:
        """Close every node socket normally (sessions with resuming on stay resumable)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for node in self._nodes:
            await node.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for mailbox in (*self._mailboxes.values(), self._global_mailbox):
            mailbox.cancel()
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def available(self) -> bool:
        """Whether a node is ready to take requests now."""
        return any(node.available for node in self._nodes)

    def session_id(self, node_name: str) -> str | None:
        node = self._find_node(node_name)
        return node.session_id if node else None

    def node_info(self, node_name: str) -> NodeInfo | None:
        """The node's ``/v4/info`` as last fetched (before each connect), if it ever was."""
        node = self._find_node(node_name)
        return node.info if node else None

    def node_statuses(self) -> tuple[NodeStatus, ...]:
        """Every configured node as it stands now (for metrics); no request is made."""
        statuses = []
        for config in self._configs:
            node = self._find_node(config.name)
            stats = self.stats.get(config.name)
            frames = stats.frame_stats if stats is not None else None
            up = node is not None and node.available
            statuses.append(
                NodeStatus(
                    name=config.name,
                    up=up,
                    connects=self._connects.get(config.name, 0),
                    penalty=penalty(stats, self._placed.get(config.name, 0)) if up else None,
                    players=stats.players if stats is not None else None,
                    playing_players=stats.playing_players if stats is not None else None,
                    frames_sent=frames.sent if frames is not None else None,
                    frames_nulled=frames.nulled if frames is not None else None,
                    frames_deficit=frames.deficit if frames is not None else None,
                )
            )
        return tuple(statuses)

    @property
    def resume_timeout(self) -> int:
        """Seconds a node keeps this client's players alive after its socket drops."""
        return self._resume_timeout

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(config.name for config in self._configs)

    def node_of(self, guild_id: int, *, connected: bool = True) -> str | None:
        """The node holding the guild's player, if it is connected (or, with
        ``connected=False``, also one that dropped and may come back or fail over)."""
        voice = self._voice.get(guild_id)
        node = voice.node if voice else None
        if node is None or (connected and not node.available):
            return None
        return node.name

    # --- requests -------------------------------------------------------------------------

    async def load_tracks(self, identifier: str) -> LoadResult:
        node = self._best_node()
        return await node.rest.load_tracks(identifier)

    async def connect(self, guild_id: int, channel_id: int) -> None:
        """Join ``channel_id`` and return once Lavalink has the voice credentials for it.

        Raises:
            NoNodeAvailableError: no node is connected.
            VoiceConnectError: Discord sent no credentials in time, or Lavalink refused them.
        """
        voice = self._guild_voice(guild_id)
        node = self._node_for(voice)
        # After a give-up the held credentials are the ones Discord keeps refusing: join anew.
        if voice.channel_id == channel_id and voice.complete() is not None and not voice.gave_up:
            if voice.forwarded_to == node.session_id and voice.error is None:
                return
            await self._forward_voice(guild_id)
            if voice.error is not None:
                raise errors.VoiceConnectError(str(voice.error)) from voice.error
            return
        voice.error = None
        voice.leaving = False
        # Someone asked to play again: a fresh join earns a fresh set of re-joins.
        voice.rejoins.clear()
        voice.gave_up = False
        await self._gateway.update_voice_state(guild_id, channel_id)
        deadline = time.monotonic() + self._voice_timeout
        while True:
            forwarded = voice.forwarded
            if (
                forwarded is not None
                and forwarded.channel_id == str(channel_id)
                and voice.node is not None
                and voice.forwarded_to == voice.node.session_id
            ):
                return
            if voice.error is not None:
                raise errors.VoiceConnectError(str(voice.error)) from voice.error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.VoiceConnectError("Discord did not send voice credentials in time")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await voice.changed.wait()

    async def disconnect(self, guild_id: int) -> None:
        """Destroy the guild's player and leave its voice channel."""
        voice = self._guild_voice(guild_id)
        voice.leaving = True
        async with voice.lock:
            await self._destroy_player(voice, guild_id)
        self._states.pop(guild_id, None)
        await self._gateway.update_voice_state(guild_id, None)

    async def forget(self, guild_id: int) -> None:
        """Destroy the guild's player and drop everything known of it, sending no op 4.

        For a guild the bot is no longer in: Discord has already ended its voice connection,
        and gateway commands for that guild would only spend the rate limit.
        """
        voice = self._voice.get(guild_id)
        if voice is not None:
            voice.leaving = True
            async with voice.lock:
                await self._destroy_player(voice, guild_id)
            self._voice.pop(guild_id, None)
        self._states.pop(guild_id, None)
        self._progress.pop(guild_id, None)

    async def play(
        self,
        guild_id: int,
        encoded: str,
        *,
        position: int = 0,
        paused: bool = False,
        volume: int | None = None,
        filters: Filters | None = None,
        user_data: dict[str, Any] | None = None,
        end_time: int | None = None,
        no_replace: bool = False,
    ) -> Player:
        """Start ``encoded`` on the guild's player, replacing what plays now.

        ``paused`` is always sent: a new track otherwise unpauses the player. ``end_time``
        (ms, > 0) stops the track there with ``TrackEndEvent`` ``finished``. With
        ``no_replace=True`` a track already playing is kept, and Lavalink then ignores this
        call's position, pause, end time and user data as well; the returned player tells
        which track plays.
        """
        if end_time is not None and end_time <= 0:
            raise ValueError(f"end_time must be greater than 0, not {end_time}")
        update = UpdatePlayer(
            track=TrackUpdate(encoded=encoded, user_data=user_data or {}),
            position=max(0, position),
            end_time=end_time if end_time is not None else msgspec.UNSET,
            paused=paused,
            volume=volume if volume is not None else msgspec.UNSET,
            filters=filters if filters is not None else msgspec.UNSET,
        )
        return await self.update_player(guild_id, update, no_replace=no_replace)

    async def set_filters(self, guild_id: int, filters: Filters) -> Player:
        """Replace the guild's whole filter set (``Filters()`` clears every filter)."""
        return await self.update_player(guild_id, UpdatePlayer(filters=filters))

    async def pause(self, guild_id: int, paused: bool = True) -> Player:
        """Pause (or with ``paused=False`` resume) the guild's player; the track stays."""
        return await self.update_player(guild_id, UpdatePlayer(paused=paused))

    async def seek(self, guild_id: int, position: int) -> Player:
        """Move the current track to ``position`` ms (Lavalink ignores it for streams)."""
        return await self.update_player(guild_id, UpdatePlayer(position=max(0, position)))

    async def set_volume(self, guild_id: int, volume: int) -> Player:
        """Player volume in percent, 0..1000 (100 = unchanged; above 100 may clip)."""
        if not 0 <= volume <= 1000:
            raise ValueError(f"volume must be 0..1000, not {volume}")
        return await self.update_player(guild_id, UpdatePlayer(volume=volume))

    async def stop(self, guild_id: int) -> Player:
        """Stop the current track (Lavalink reports ``TrackEndEvent`` ``stopped``)."""
        return await self.update_player(guild_id, UpdatePlayer(track=TrackUpdate(encoded=None)))

    async def update_player(
        self, guild_id: int, update: UpdatePlayer, *, no_replace: bool = False
    ) -> Player:
        """Send ``update``; carries the cached voice credentials if this session lacks them.

        See :class:`~.models.UpdatePlayer` for what each field does and
        :meth:`~.rest.RestClient.update_player` for ``no_replace``.
        """
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            return await self._send_update(voice, guild_id, update, no_replace=no_replace)

    async def get_player(self, guild_id: int) -> Player | None:
        """The guild's player as its node reports it now; ``None`` if no node holds one.

        Raises:
            NotFoundError: the node no longer knows the player (or the session).
        """
        voice = self._voice.get(guild_id)
        node = voice.node if voice is not None else None
        if node is None or not node.available:
            return None
        return await node.rest.get_player(node.require_session(), guild_id)

    async def get_players(self, node_name: str) -> tuple[Player, ...]:
        """Every player of this client's session on ``node_name``."""
        node = self._named_node(node_name)
        return await node.rest.get_players(node.require_session())

    async def decode_track(self, encoded: str, *, node_name: str | None = None) -> Track:
        """Decode ``encoded`` on a node (includes plugin info).

        For display, :func:`~.codec.decode_track` decodes locally without a round trip.
        """
        return await self._rest_node(node_name).rest.decode_track(encoded)

    async def decode_tracks(
        self, encoded: Sequence[str], *, node_name: str | None = None
    ) -> tuple[Track, ...]:
        """Decode several tracks in one request, in order; one bad string fails them all."""
        if not encoded:
            return ()
        return await self._rest_node(node_name).rest.decode_tracks(encoded)

    async def info(self, node_name: str | None = None) -> NodeInfo:
        """``/v4/info`` of ``node_name``, or of the best available node."""
        return await self._rest_node(node_name).rest.info()

    async def version(self, node_name: str | None = None) -> str:
        """The server version string (``/version``) of ``node_name`` or the best node."""
        return await self._rest_node(node_name).rest.version()

    async def fetch_stats(self, node_name: str | None = None) -> Stats:
        """Fresh ``/v4/stats``; :attr:`stats` holds the last ones the WebSocket pushed."""
        return await self._rest_node(node_name).rest.stats()

    async def route_planner_status(self, node_name: str | None = None) -> RoutePlannerStatus | None:
        """The node's IP route planner, or ``None`` if it has none configured."""
        return await self._rest_node(node_name).rest.route_planner_status()

    async def free_address(self, address: str, node_name: str | None = None) -> None:
        """Let the route planner use a failing ``address`` again."""
        await self._rest_node(node_name).rest.free_address(address)

    async def free_all_addresses(self, node_name: str | None = None) -> None:
        """Let the route planner use every failing address again."""
        await self._rest_node(node_name).rest.free_all_addresses()

    def playing(self, guild_id: int) -> tuple[str, Mapping[str, Any]] | None:
        """The encoded track and ``userData`` the guild's player plays, as last sent or
        reported (``None``: nothing). A request that timed out leaves the previous track here:
        positions reported meanwhile belong to it."""
        voice = self._voice.get(guild_id)
        playing = voice.playing if voice is not None else None
        return None if playing is None else (playing.encoded, playing.user_data)

    def voice_heard_at(self, guild_id: int) -> float:
        """``time.monotonic()`` of Discord's last voice update for the guild (0: none yet).

        What follows such an update (a kick reported, fresh credentials forwarded) takes a
        moment; judging the guild's voice before then would argue with work in flight.
        """
        voice = self._voice.get(guild_id)
        return voice.heard_at if voice is not None else 0.0

    def voice_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel in ``guild_id`` as Discord last reported it."""
        voice = self._voice.get(guild_id)
        return voice.channel_id if voice else None

    def position(self, guild_id: int) -> int | None:
        """The player's position now (ms), extrapolated from its last ``playerUpdate``.

        ``None`` before the first update. The clock runs only while voice is connected and
        the player is not paused, as Lavalink's does, and at the timescale filter's
        ``speed * rate``.
        """
        sample = self._states.get(guild_id)
        if sample is None:
            return None
        state, received = sample
        voice = self._voice.get(guild_id)
        paused = voice is not None and voice.playing is not None and voice.playing.paused
        if not state.connected or paused:
            return state.position
        rate = 1.0
        timescale = voice.filters.timescale if voice is not None and voice.filters else None
        if timescale is not None:
            rate = timescale.speed * timescale.rate
        return state.position + int((time.time() - received) * 1000 * rate)

    def voice_session_ended(self, guild_ids: Iterable[int]) -> None:
        """Discord ended the bot's voice connections in these guilds without telling us.

        A new gateway session (after Discord invalidated the old one) starts in no voice
        channel, and no voice state update says so: the held credentials are dead. Forgetting
        them makes the next :meth:`connect` send op 4 for a fresh set. The players stay: they
        keep their track, frozen where the voice socket closed, and play on once voice is back.
        """
        for guild_id in guild_ids:
            voice = self._voice.get(guild_id)
            if voice is not None and voice.channel_id is not None:
                voice.out_of_voice()

    async def refresh_voice(self, guild_id: int) -> bool:
        """Send the held voice credentials to the guild's player again.

        Lavalink reconnects its voice socket on identical values only while that socket is
        closed, so this is harmless on a healthy player. Returns ``False`` when there is
        nothing complete to send (the bot is not in voice as far as Discord told us).

        Raises:
            LavalinkError: the node refused or did not answer.
        """
        voice = self._voice.get(guild_id)
        if voice is None or voice.complete() is None:
            return False
        async with voice.lock:
            if voice.complete() is None or voice.leaving:
                return False
            await self._send_voice_again(voice, guild_id)
        return True

    # --- Discord voice events (fed by the hikari glue) ------------------------------------

    def handle_voice_state(self, guild_id: int, session_id: str, channel_id: int | None) -> None:
        """The bot's own VOICE_STATE_UPDATE."""
        voice = self._guild_voice(guild_id)
        voice.heard_at = time.monotonic()
        if channel_id is None:
            was_in = voice.channel_id
            voice.out_of_voice()
            if voice.leaving:
                voice.leaving = False
            elif was_in is not None:
                self._spawn(self._on_kicked(guild_id, was_in))
            return
        moved_from = voice.channel_id
        voice.session_id, voice.channel_id = session_id, channel_id
        if moved_from is not None and moved_from != channel_id:
            self._post(guild_id, VoiceMoved(guild_id, moved_from, channel_id))
        self._spawn(self._forward_voice(guild_id))

    def handle_voice_server(self, guild_id: int, token: str, endpoint: str | None) -> None:
        """The bot's VOICE_SERVER_UPDATE; ``endpoint`` is hikari's ``raw_endpoint``."""
        voice = self._guild_voice(guild_id)
        voice.heard_at = time.monotonic()
        # A null endpoint means Discord is moving the voice server: drop both values so the
        # new token is never paired with the old endpoint, and wait for the next update.
        voice.token, voice.endpoint = (token, endpoint) if endpoint else (None, None)
        if not endpoint:
            # Lavalink's socket to the old server is gone: the next pair must be sent even if
            # Discord hands back the same values, or the player stays disconnected.
            voice.forwarded = voice.forwarded_to = None
        else:
            self._spawn(self._forward_voice(guild_id))

    # --- NodeListener ---------------------------------------------------------------------

    def node_ready(self, node: Node, ready: Ready) -> None:
        self._connects[node.name] = self._connects.get(node.name, 0) + 1
        self._cancel_timers(node.name)
        self._placed[node.name] = 0
        if node.info is not None:  # always: the node fetches it before it connects
            connected = NodeConnected(
                node.name,
                node.config.url,
                node.info,
                ready.session_id,
                ready.resumed,
                node.failed_attempts,
            )
            for callback in self._connection_callbacks:
                try:
                    callback(connected)
                except Exception:
                    _log.exception("Lavalink node-connected callback failed")
        # Also on a resume: the session keeps the timeout of the run that set it, and the
        # operator may have changed LAVALINK_RESUME_TIMEOUT since.
        self._spawn(self._enable_resuming(node, ready.session_id))
        if ready.resumed:
            self._spawn(self._adopt_players(node, ready))
            return
        # Every player this node had is gone: forget what we sent it.
        for voice in self._voice.values():
            if voice.node is node:
                voice.node = None
                voice.forwarded = voice.forwarded_to = None
                voice.filters = None
        self._post_global(SessionReady(node.name, ready.session_id, ready.resumed))

    def node_op(self, node: Node, op: WireOp) -> None:
        if isinstance(op, PlayerUpdate):
            if self._elsewhere(op.guild_id, node):
                return  # a stale twin's state (a resumed session) must not replace the live one
            self._states[op.guild_id] = (op.state, time.time())
            self._watch(op.guild_id, op.state)
            self._post(op.guild_id, PlayerStateUpdate(op.guild_id, op.state))
        elif isinstance(op, RawEvent):
            event = narrow_event(op)
            if event is None:
                _log.debug("ignoring unknown Lavalink event %s", op.type)
                return
            if self._elsewhere(op.guild_id, node):
                return  # a stale player on a node this guild has left
            self._remember(op.guild_id, event)
            if isinstance(event, WebSocketClosedEvent) and event.code in _STALE_VOICE_CODES:
                self._spawn(self._rejoin(event))
            elif isinstance(event, WebSocketClosedEvent) and event.code in _TRANSIENT_VOICE_CODES:
                self._spawn(self._resend_voice(op.guild_id, node))
            self._post(op.guild_id, event)
        elif isinstance(op, Stats):
            self.stats[node.name] = op
            self._placed[node.name] = 0
            self._post_global(StatsUpdate(node.name, op))

    def _elsewhere(self, guild_id: int, node: Node) -> bool:
        """Whether the guild's player lives on another node than ``node``."""
        voice = self._voice.get(guild_id)
        return voice is not None and voice.node is not None and voice.node is not node

    def node_disconnected(self, node: Node) -> None:
        self._freeze_positions(node)
        loop = asyncio.get_running_loop()
        self._timers[node.name, "failover"] = loop.call_later(
            self._failover_delay, lambda: self._spawn(self._failover(node))
        )
        self._timers[node.name, "lost"] = loop.call_later(
            self._node_loss_grace, lambda: self._spawn(self._node_lost(node))
        )

    def _freeze_positions(self, node: Node) -> None:
        """Pin each of the node's players at where it stood when the socket dropped.

        A node that crashed stopped the music then; its last ``playerUpdate`` may be up to one
        report interval older. Without a frozen sample the position would be that older report
        (losing music nobody heard end) or an extrapolation over the outage (skipping music
        nobody heard). A node that only lost its socket and resumes sends fresh reports at
        once, which replace these.
        """
        now = time.time()
        for guild_id, voice in self._voice.items():
            if voice.node is not node or guild_id not in self._states:
                continue
            position = self.position(guild_id)
            if position is None:
                continue
            state = PlayerState(time=int(now * 1000), position=position, connected=False)
            self._states[guild_id] = (state, now)

    # --- internals: nodes -----------------------------------------------------------------

    def _best_node(self) -> Node:
        """The available node with the lowest penalty."""
        candidates = [node for node in self._nodes if node.available]
        if not candidates:
            if not self._nodes:
                raise errors.NoNodeAvailableError("the Lavalink client has not been started")
            raise errors.NoNodeAvailableError("no Lavalink node is connected")
        return min(
            candidates,
            key=lambda n: penalty(self.stats.get(n.name), self._placed.get(n.name, 0)),
        )

    def _node_for(self, voice: _GuildVoice) -> Node:
        """The guild's node, placing the guild on the best node if it has none that is up."""
        node = voice.node
        if node is None or not node.available:
            node = self._best_node()
            voice.node = node
            voice.forwarded = voice.forwarded_to = None
            self._placed[node.name] = self._placed.get(node.name, 0) + 1
        return node

    def _find_node(self, name: str) -> Node | None:
        return next((node for node in self._nodes if node.name == name), None)

    def _named_node(self, name: str) -> Node:
        node = self._find_node(name)
        if node is None:
            raise errors.NoNodeAvailableError(f"no Lavalink node named {name!r}")
        return node

    def _rest_node(self, name: str | None) -> Node:
        """For session-less REST calls: the named node (connected or not), else the best one."""
        return self._named_node(name) if name is not None else self._best_node()

    def _cancel_timers(self, node_name: str) -> None:
        for kind in ("failover", "lost"):
            handle = self._timers.pop((node_name, kind), None)
            if handle is not None:
                handle.cancel()

    async def _adopt_players(self, node: Node, ready: Ready) -> None:
        """After a resume: the node's surviving players are this client's again.

        A guild that moved elsewhere meanwhile has a stale twin here, and one whose voice the
        bot left meanwhile has a leftover: destroy both, so no guild ever has two players and
        none plays outside voice. The ``SessionReady`` goes out only once ownership is settled.
        """
        try:
            players = await node.rest.get_players(ready.session_id)
        except errors.LavalinkError as exc:
            _log.warning("could not list players on node %s after resuming: %s", node.name, exc)
            players = ()
        for player in players:
            known = self._voice.get(player.guild_id)
            # The bot left this guild's voice while the node was away (the DELETE could not
            # reach the paused session): the player is a leftover, not one to take back. A
            # guild with no record at all (the bot restarted) is taken back.
            left = (
                known is not None
                and known.node is None
                and (known.leaving or known.channel_id is None)
            )
            voice = self._guild_voice(player.guild_id)
            if left or (voice.node is not None and voice.node is not node and voice.node.available):
                try:
                    await node.rest.destroy_player(ready.session_id, player.guild_id)
                except errors.LavalinkError as exc:
                    _log.warning("could not destroy a stale player: %s", exc)
                continue
            voice.node = node
            if player.track is not None and voice.playing is None:
                voice.playing = _Playback(
                    player.track.encoded, dict(player.track.user_data), player.paused,
                    player.volume,
                )  # fmt: skip
        self._post_global(SessionReady(node.name, ready.session_id, ready.resumed))

    async def _failover(self, node: Node) -> None:
        """Move the players of a node that stayed down to the other nodes."""
        self._timers.pop((node.name, "failover"), None)
        if node.available or not any(n.available for n in self._nodes):
            return
        moving = [gid for gid, voice in self._voice.items() if voice.node is node]
        # Side by side: each move waits on the new node's voice connect, and one after another
        # the last guild would stay silent for the sum of them. Each holds its own guild lock.
        results = await asyncio.gather(
            *(self._move(guild_id, node) for guild_id in moving), return_exceptions=True
        )
        for guild_id, result in zip(moving, results, strict=True):
            if isinstance(result, Exception):
                _log.error("guild %s: moving its player failed", guild_id, exc_info=result)

    async def _move(self, guild_id: int, lost: Node) -> None:
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            if voice.node is not lost:
                return
            voice.node = None
            try:
                target = self._node_for(voice)
                playing = voice.playing
                filters = voice.filters if voice.filters is not None else UNSET
                update = UpdatePlayer(filters=filters)
                if playing is not None:
                    position = self.position(guild_id) or 0
                    update = UpdatePlayer(
                        track=TrackUpdate(encoded=playing.encoded, user_data=playing.user_data),
                        position=position,
                        end_time=playing.end_time if playing.end_time is not None else UNSET,
                        paused=playing.paused,
                        volume=playing.volume,
                        filters=filters,
                    )
                await self._send_update(voice, guild_id, update)
            except errors.LavalinkError as exc:
                _log.warning("guild %s: moving its player off node %s failed: %s",
                             guild_id, lost.name, exc)  # fmt: skip
                voice.node = lost
                return
        _log.info("guild %s: player moved from node %s to %s", guild_id, lost.name, target.name)
        self._post(guild_id, PlayerMoved(guild_id, lost.name, target.name))

    async def _node_lost(self, node: Node) -> None:
        self._timers.pop((node.name, "lost"), None)
        if node.available:
            return
        if any(n.available for n in self._nodes):
            # Another node is up (the grace may end before the failover delay): move the
            # players now; only a guild that could not be moved leaves voice.
            failover = self._timers.pop((node.name, "failover"), None)
            if failover is not None:
                failover.cancel()
            await self._failover(node)
            guilds = frozenset(g for g, voice in self._voice.items() if voice.node is node)
            if not guilds:
                return
        else:
            guilds = frozenset(
                guild_id
                for guild_id, voice in self._voice.items()
                if voice.node is node
                or (voice.node is None and (voice.channel_id is not None or voice.forwarded))
            )
        _log.warning(
            "Lavalink node %s lost for %.0f s; leaving voice in %d guild(s)",
            node.name,
            self._node_loss_grace,
            len(guilds),
        )
        for guild_id in guilds:
            voice = self._guild_voice(guild_id)
            voice.leaving = True
            voice.node = None
            voice.forwarded = voice.forwarded_to = None
            voice.filters = None
            # The frozen sample stays: it is where the music stopped, for whoever resumes it.
            try:
                await self._gateway.update_voice_state(guild_id, None)
            except Exception:
                _log.exception("could not leave voice in guild %s", guild_id)
        self._post_global(NodeLost(node.name, guilds))

    async def _enable_resuming(self, node: Node, session_id: str) -> None:
        try:
            await node.rest.update_session(session_id, resuming=True, timeout=self._resume_timeout)
        except errors.LavalinkError as exc:
            _log.warning("could not enable resuming on node %s: %s", node.name, exc)

    # --- internals: players and voice -----------------------------------------------------

    def _guild_voice(self, guild_id: int) -> _GuildVoice:
        voice = self._voice.get(guild_id)
        if voice is None:
            voice = self._voice[guild_id] = _GuildVoice()
        return voice

    async def _send_update(
        self, voice: _GuildVoice, guild_id: int, update: UpdatePlayer, *, no_replace: bool = False
    ) -> Player:
        """PATCH the guild's player on its node; the caller holds ``voice.lock``."""
        node = self._node_for(voice)
        session = node.require_session()
        state = voice.complete()
        include_voice = state is not None and (
            voice.forwarded_to != session or voice.forwarded != state
        )
        if include_voice:
            update = msgspec.structs.replace(update, voice=state)
        # With noReplace and a track playing, Lavalink ignores the track part of the request.
        kept = no_replace and voice.playing is not None
        player = await self._patch(node, session, guild_id, update, no_replace=no_replace)
        if include_voice:
            voice.forwarded, voice.forwarded_to, voice.error = state, session, None
            voice.notify()
        self._remember_update(voice, update, player, kept=kept)
        return player

    async def _patch(
        self, node: Node, session: str, guild_id: int, update: UpdatePlayer, *, no_replace: bool
    ) -> Player:
        """One player update, tried again after a passing failure.

        A single 5xx or time-out is not a verdict on the node: giving up on it would leave the
        bot silent (or gone) for a hiccup. An update sets absolute values, so sending it twice
        is harmless, even when the first attempt was carried out late. Only while the node
        stays connected: a node that dropped is the failover's business.
        """
        for attempt, delay in enumerate((*_RETRY_DELAYS, None)):
            try:
                return await node.rest.update_player(
                    session, guild_id, update, no_replace=no_replace
                )
            except _PASSING as exc:
                if delay is None or not node.available or node.session_id != session:
                    raise
                _log.warning(
                    "guild %s: Lavalink update failed (%s); trying again (%d of %d)",
                    guild_id, exc, attempt + 1, len(_RETRY_DELAYS),
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _remember_update(
        voice: _GuildVoice, update: UpdatePlayer, player: Player, *, kept: bool = False
    ) -> None:
        """Keep the record a failover rebuilds the player from in step with the node."""
        if isinstance(update.filters, Filters):
            voice.filters = update.filters
        if player.track is None:
            voice.playing = None
            return
        playing = voice.playing
        track = update.track
        new_track = isinstance(track, TrackUpdate) and (
            track.encoded not in (UNSET, None) or track.identifier is not UNSET
        )
        if playing is None or (isinstance(track, TrackUpdate) and not kept):
            end_time = None if playing is None or new_track else playing.end_time
            playing = voice.playing = _Playback(player.track.encoded, dict(player.track.user_data))
            playing.end_time = end_time
        playing.paused, playing.volume = player.paused, player.volume
        # ``endTime: null`` does not clear a marker on the current track (server behaviour).
        if isinstance(update.end_time, int) and not kept:
            playing.end_time = update.end_time

    def _remember(self, guild_id: int, event: Event) -> None:
        """Keep the failover record in step with what the node reports."""
        voice = self._voice.get(guild_id)
        if voice is None:
            return
        if isinstance(event, TrackStartEvent):
            if voice.playing is None:
                voice.playing = _Playback(event.track.encoded, dict(event.track.user_data))
        elif isinstance(event, TrackEndEvent) and event.reason is not TrackEndReason.REPLACED:
            voice.playing = None

    def _watch(self, guild_id: int, state: PlayerState) -> None:
        """Report a player whose position stopped moving while it should be playing."""
        voice = self._voice.get(guild_id)
        playing = voice.playing if voice is not None else None
        if playing is None or playing.paused or not state.connected:
            self._progress.pop(guild_id, None)
            return
        now = time.monotonic()
        last = self._progress.get(guild_id)
        if last is None or last[0] != state.position or last[2] != playing.encoded:
            self._progress[guild_id] = (state.position, now, playing.encoded)
            return
        if now - last[1] < self._stall_timeout:
            return
        # Once per stall: the clock restarts, so a still-frozen player is reported again
        # only after another full timeout.
        self._progress[guild_id] = (state.position, now, playing.encoded)
        try:
            info = decode_track(playing.encoded)
        except errors.TrackDecodeError:
            return
        track = Track(encoded=playing.encoded, info=info, user_data=playing.user_data)
        threshold = int(self._stall_timeout * 1000)
        _log.warning("guild %s: position stuck at %d ms; reporting it", guild_id, state.position)
        self._post(guild_id, TrackStuckEvent(guild_id, track, threshold))

    async def _forward_voice(self, guild_id: int) -> None:
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            state = voice.complete()
            if voice.leaving:
                return  # queued behind a destroy: sending it would re-create the player
            if state is None or not self.available:
                return  # play() carries the cached values once a node is back.
            node = self._node_for(voice)
            if voice.forwarded == state and voice.forwarded_to == node.session_id:
                return
            try:
                await self._send_update(voice, guild_id, UpdatePlayer())
            except errors.LavalinkError as exc:
                _log.warning("forwarding voice for guild %s failed: %s", guild_id, exc)
                voice.error = exc
                voice.notify()

    async def _rejoin(self, closed: WebSocketClosedEvent) -> None:
        """Get fresh voice credentials by joining the same channel again, with back-off.

        Re-sending the old credentials would fail the same way (the 4006 loop); a new op 4
        makes Discord send a new voice session and token, which are forwarded as usual.
        4014 is deliberately not handled here: it also means "moved", and the voice state
        that follows tells a move (new channel) from a kick (no channel).

        After :data:`_REJOIN_LIMIT` re-joins within :data:`_REJOIN_WINDOW` seconds the client
        stops and posts :class:`~.events.VoiceFailed` once: the bot would otherwise sit in
        the channel in silence with nobody told.
        """
        guild_id = closed.guild_id
        voice = self._guild_voice(guild_id)
        if voice.rejoin_pending or voice.gave_up:
            return  # one re-join answers every close that arrived before it
        if voice.leaving or voice.channel_id is None:
            return  # leaving, or already out: nothing to renew
        now = time.monotonic()
        voice.rejoins = [t for t in voice.rejoins if now - t < _REJOIN_WINDOW]
        if len(voice.rejoins) >= _REJOIN_LIMIT:
            _log.warning(
                "guild %s: voice keeps failing (%s); giving up after %d re-joins",
                guild_id,
                closed.code,
                len(voice.rejoins),
            )
            voice.gave_up = True
            self._post(
                guild_id, VoiceFailed(guild_id, voice.channel_id, closed.code, closed.reason)
            )
            return
        voice.rejoin_pending = True
        try:
            await asyncio.sleep(2 ** len(voice.rejoins) - 1)  # 0 s, 1 s, 3 s
        finally:
            voice.rejoin_pending = False
        voice.rejoins.append(time.monotonic())
        channel_id = voice.channel_id
        if channel_id is None or voice.leaving:
            return
        _log.info("guild %s: voice credentials went stale; re-joining", guild_id)
        voice.forwarded = voice.forwarded_to = None
        # Discord answers with a new session id *and* a new token/endpoint, in two events and
        # either order: forget all three so the new session id is never sent with the old
        # token (a mixed set is refused with 4006 again and would feed the loop).
        voice.session_id = voice.token = voice.endpoint = None
        await self._gateway.update_voice_state(guild_id, channel_id)

    async def _resend_voice(self, guild_id: int, node: Node) -> None:
        """Re-send the voice state if Lavalink's voice socket stayed closed after a 1006/4015.

        Lavalink reconnects on identical values only while its voice socket is closed, so this
        is harmless if it already healed; if the credentials turn out stale, the 4006 that
        follows takes the re-join path.
        """
        voice = self._voice.get(guild_id)
        if voice is None or voice.resend_pending:
            return  # one re-send answers every close that arrived before it
        voice.resend_pending = True
        try:
            await asyncio.sleep(self._voice_recheck)
        finally:
            voice.resend_pending = False
        sample = self._states.get(guild_id)
        if sample is not None and sample[0].connected:
            return  # voice came back by itself (or through fresh credentials)
        now = time.monotonic()
        voice.resends = [t for t in voice.resends if now - t < _REJOIN_WINDOW]
        if len(voice.resends) >= _RESEND_LIMIT:
            _log.warning("guild %s: voice keeps dropping; not re-sending it again for now",
                         guild_id)  # fmt: skip
            return
        async with voice.lock:
            state = voice.complete()
            if state is None or voice.leaving or voice.node is not node or not node.available:
                return
            voice.resends.append(now)
            _log.info("guild %s: voice connection still down; re-sending the voice state",
                      guild_id)  # fmt: skip
            try:
                await self._send_voice_again(voice, guild_id)
            except errors.LavalinkError as exc:
                _log.warning("re-sending voice for guild %s failed: %s", guild_id, exc)

    async def _send_voice_again(self, voice: _GuildVoice, guild_id: int) -> None:
        """Forward the held credentials even though they were sent before (the caller holds
        ``voice.lock``): Lavalink reconnects a closed voice socket on identical values."""
        voice.forwarded = voice.forwarded_to = None
        await self._send_update(voice, guild_id, UpdatePlayer())

    async def _destroy_player(self, voice: _GuildVoice, guild_id: int) -> None:
        node, voice.node = voice.node, None
        voice.forwarded = voice.forwarded_to = None
        voice.playing = voice.filters = None
        if node is None or not node.available or node.session_id is None:
            return
        try:
            await node.rest.destroy_player(node.session_id, guild_id)
        except errors.LavalinkError as exc:
            _log.warning("destroying the player of guild %s failed: %s", guild_id, exc)

    async def _on_kicked(self, guild_id: int, channel_id: int) -> None:
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            await self._destroy_player(voice, guild_id)
        self._states.pop(guild_id, None)
        self._post(guild_id, VoiceDisconnected(guild_id, channel_id))

    # --- internals: dispatch --------------------------------------------------------------

    def _post(self, guild_id: int, event: Event) -> None:
        mailbox = self._mailboxes.get(guild_id)
        if mailbox is None:
            mailbox = self._mailboxes[guild_id] = _Mailbox(f"lavalink-guild-{guild_id}")
        mailbox.post(lambda: self._deliver(event))

    def _post_global(self, event: Event) -> None:
        self._global_mailbox.post(lambda: self._deliver(event))

    async def _deliver(self, event: Event) -> None:
        if self._listener is not None:
            await self._listener(event)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("Lavalink client task failed", exc_info=task.exception())
