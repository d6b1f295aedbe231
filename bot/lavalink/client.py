"""The Lavalink client: the one object the rest of the bot talks to.

It keeps, per guild, one :class:`~.guild.GuildPlayer`; the work is done by the parts it
composes, one noun each: :class:`~.pool.NodePool` (nodes and placement),
:class:`~.voice.VoiceLink` (Discord's voice credentials, forwarded and repaired),
:class:`~.updates.PlayerUpdates` (every player request), :class:`~.failover.Failover`
(nodes that come, go or come back) and :class:`~.dispatch.Dispatcher` (events in order per
guild). It knows nothing about commands, queues or storage; the one thing it needs from
Discord is a way to send gateway op 4, given as a :class:`~.parts.VoiceGateway`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import msgspec

from .clearing import SessionCleared, clear_session
from .dispatch import BackgroundTasks, Dispatcher, EventListener
from .errors import NoNodeAvailableError
from .events import NodeConnected, PlayerStateUpdate
from .failover import Failover
from .filters import Filters
from .guild import GuildPlayers, PlayerSnapshot
from .models import (
    LoadResult,
    NodeInfo,
    Player,
    RoutePlannerStatus,
    Stats,
    Track,
    TrackUpdate,
    UpdatePlayer,
)
from .node import NodeConfig
from .pacing import Pacing
from .parts import Parts, VoiceGateway
from .pool import NodePool, NodeStatus
from .reports import NodeReports
from .updates import PlayerUpdates
from .voice import VoiceLink

__all__ = ["EventListener", "LavalinkClient", "NodeStatus", "VoiceGateway"]


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
        pacing: the back-offs between re-joins and between player update attempts
            (production values when omitted; tests pass shorter ones).
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
        pacing: Pacing | None = None,
    ) -> None:
        pacing = pacing or Pacing()
        self._pool = NodePool(nodes, reconnect_cap=reconnect_cap)
        self._client_name = client_name
        self._resume_timeout = resume_timeout
        parts = Parts(
            self._pool, GuildPlayers(), PlayerUpdates(self._pool, pacing), gateway, Dispatcher(),
            BackgroundTasks(),
        )  # fmt: skip
        self._players = parts.players
        self._dispatcher = parts.dispatcher
        self._tasks = parts.tasks
        self._updates = parts.updates
        self._voice = VoiceLink(
            parts, voice_timeout=voice_timeout, voice_recheck=voice_recheck, pacing=pacing
        )
        self._failover = Failover(
            parts,
            resume_timeout=resume_timeout,
            failover_delay=failover_delay,
            node_loss_grace=node_loss_grace,
        )
        self._reports = NodeReports(parts, self._voice, self._failover, stall_timeout=stall_timeout)
        self._http: aiohttp.ClientSession | None = None
        self.user_id: int | None = None

    # --- life -----------------------------------------------------------------------------

    def set_listener(self, listener: EventListener) -> None:
        self._dispatcher.set_listener(listener)

    def on_node_connected(self, callback: Callable[[NodeConnected], None]) -> None:
        """Call ``callback`` each time a node's WebSocket becomes ready (with what the node
        said it is). Called from the node's read loop: it must return at once."""
        self._reports.connection_callbacks.append(callback)

    def on_position(self, callback: Callable[[PlayerStateUpdate], None]) -> None:
        """Take position reports off the event stream: each ``playerUpdate`` goes to
        ``callback`` as it arrives instead of to the listener. Called from the node's read
        loop, so it must return at once; every player reports every few seconds, and at
        thousands of players an event task per report costs more than the report's use."""
        self._reports.position_callback = callback

    async def start(self, user_id: int, session_ids: Mapping[str, str] | None = None) -> None:
        """Start connecting to every node; returns at once (nodes connect in the background).

        ``session_ids`` maps node names to sessions stored by an earlier run, to resume them.
        """
        self.user_id = user_id
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit_per_host=32),
            headers={"User-Agent": self._client_name},
        )
        self._pool.start(
            self._http, self._reports, user_id=user_id, client_name=self._client_name,
            session_ids=session_ids or {},
        )  # fmt: skip

    async def close(self) -> None:
        """Close every node socket normally (sessions with resuming on stay resumable)."""
        self._failover.close()
        await self._pool.close()
        await self._tasks.cancel_all()
        self._dispatcher.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def stats(self) -> dict[str, Stats]:
        """The last stats each node pushed over its WebSocket, by node name."""
        return self._pool.stats

    @property
    def available(self) -> bool:
        """Whether a node is ready to take requests now."""
        return self._pool.available

    def session_id(self, node_name: str) -> str | None:
        node = self._pool.find(node_name)
        return node.session_id if node else None

    def node_info(self, node_name: str) -> NodeInfo | None:
        """The node's ``/v4/info`` as last fetched (before each connect), if it ever was."""
        node = self._pool.find(node_name)
        return node.info if node else None

    def node_statuses(self) -> tuple[NodeStatus, ...]:
        """Every configured node as it stands now (for metrics); no request is made."""
        return self._pool.statuses()

    @property
    def resume_timeout(self) -> int:
        """Seconds a node keeps this client's players alive after its socket drops."""
        return self._resume_timeout

    @property
    def node_names(self) -> tuple[str, ...]:
        return self._pool.names

    @property
    def tracked_guilds(self) -> int:
        """Guilds the client holds anything for (a player record or undelivered events)."""
        return len(self._players) + self._dispatcher.busy_guilds

    def node_of(self, guild_id: int, *, connected: bool = True) -> str | None:
        """The node holding the guild's player, if it is connected (or, with
        ``connected=False``, also one that dropped and may come back or fail over)."""
        player = self._players.get(guild_id)
        node = player.node if player else None
        if node is None or (connected and not node.available):
            return None
        return node.name

    # --- requests -------------------------------------------------------------------------

    async def load_tracks(self, identifier: str) -> LoadResult:
        return await self._pool.best().rest.load_tracks(identifier)

    async def connect(self, guild_id: int, channel_id: int) -> None:
        """Join ``channel_id`` and return once Lavalink has the voice credentials for it.

        Raises:
            NoNodeAvailableError: no node is connected.
            VoiceConnectError: Discord sent no credentials in time, or Lavalink refused them.
        """
        await self._voice.connect(guild_id, channel_id)

    async def disconnect(self, guild_id: int) -> None:
        """Destroy the guild's player and leave its voice channel."""
        await self._voice.disconnect(guild_id)

    async def forget(self, guild_id: int) -> None:
        """Destroy the guild's player and drop everything known of it, sending no op 4.

        For a guild the bot is no longer in: Discord has already ended its voice connection,
        and gateway commands for that guild would only spend the rate limit.
        """
        await self._voice.forget(guild_id)

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
        player = self._players.ensure(guild_id)
        async with player.lock:
            return await self._updates.send(player, update, no_replace=no_replace)

    async def get_player(self, guild_id: int) -> Player | None:
        """The guild's player as its node reports it now; ``None`` if no node holds one.

        Raises:
            NotFoundError: the node no longer knows the player (or the session).
        """
        player = self._players.get(guild_id)
        node = player.node if player is not None else None
        if node is None or not node.available:
            return None
        return await node.rest.get_player(node.require_session(), guild_id)

    async def get_players(self, node_name: str) -> tuple[Player, ...]:
        """Every player of this client's session on ``node_name``."""
        node = self._pool.named(node_name)
        return await node.rest.get_players(node.require_session())

    async def clear_session(
        self,
        node_name: str,
        session_id: str,
        *,
        user_id: int,
        drop: Callable[[int], bool],
        expires_in: float,
    ) -> SessionCleared:
        """Destroy the players of the guilds ``drop`` picks in a paused session this client
        does not hold (a stopped process's), keeping ``expires_in`` s of it for the others;
        before :meth:`start` too (see :mod:`.clearing`)."""
        config = next((c for c in self._pool.configs if c.name == node_name), None)
        if config is None:
            raise NoNodeAvailableError(f"no Lavalink node named {node_name!r}")
        http = self._http or aiohttp.ClientSession(headers={"User-Agent": self._client_name})
        try:
            return await clear_session(
                config, http, user_id=user_id, client_name=self._client_name,
                session_id=session_id, drop=drop, expires_in=expires_in,
            )  # fmt: skip
        finally:
            if http is not self._http:
                await http.close()

    async def decode_track(self, encoded: str, *, node_name: str | None = None) -> Track:
        """Decode ``encoded`` on a node (includes plugin info).

        For display, :func:`~.codec.decode_track` decodes locally without a round trip.
        """
        return await self._pool.for_rest(node_name).rest.decode_track(encoded)

    async def decode_tracks(
        self, encoded: Sequence[str], *, node_name: str | None = None
    ) -> tuple[Track, ...]:
        """Decode several tracks in one request, in order; one bad string fails them all."""
        if not encoded:
            return ()
        return await self._pool.for_rest(node_name).rest.decode_tracks(encoded)

    async def info(self, node_name: str | None = None) -> NodeInfo:
        """``/v4/info`` of ``node_name``, or of the best available node."""
        return await self._pool.for_rest(node_name).rest.info()

    async def version(self, node_name: str | None = None) -> str:
        """The server version string (``/version``) of ``node_name`` or the best node."""
        return await self._pool.for_rest(node_name).rest.version()

    async def fetch_stats(self, node_name: str | None = None) -> Stats:
        """Fresh ``/v4/stats``; :attr:`stats` holds the last ones the WebSocket pushed."""
        return await self._pool.for_rest(node_name).rest.stats()

    async def route_planner_status(self, node_name: str | None = None) -> RoutePlannerStatus | None:
        """The node's IP route planner, or ``None`` if it has none configured."""
        return await self._pool.for_rest(node_name).rest.route_planner_status()

    async def free_address(self, address: str, node_name: str | None = None) -> None:
        """Let the route planner use a failing ``address`` again."""
        await self._pool.for_rest(node_name).rest.free_address(address)

    async def free_all_addresses(self, node_name: str | None = None) -> None:
        """Let the route planner use every failing address again."""
        await self._pool.for_rest(node_name).rest.free_all_addresses()

    # --- live state (no request made) -----------------------------------------------------

    def snapshot(self, guild_id: int) -> PlayerSnapshot | None:
        """The guild's live player as this client knows it; ``None``: nothing held."""
        player = self._players.get(guild_id)
        return player.snapshot() if player is not None else None

    def events_pending(self, guild_id: int) -> bool:
        """Whether events of the guild were received but not yet handed to the listener: what
        the node reports (GET players) may then be ahead of what the listener knows."""
        return self._dispatcher.pending(guild_id)

    def voice_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel in ``guild_id`` as Discord last reported it (the
        :meth:`snapshot`'s ``voice_channel_id``, without building one)."""
        player = self._players.get(guild_id)
        return player.voice.channel_id if player else None

    def voice_heard_at(self, guild_id: int) -> float:
        """``time.monotonic()`` of Discord's last voice update for the guild (the
        :meth:`snapshot`'s ``voice_heard_at``, without building one; 0: none yet)."""
        player = self._players.get(guild_id)
        return player.heard_at if player else 0.0

    def track_of(self, guild_id: int) -> tuple[str, Mapping[str, Any]] | None:
        """The track the player plays and its ``userData``, as last sent or reported (the
        :meth:`snapshot`'s ``encoded`` and ``user_data``, without building one or copying)."""
        player = self._players.get(guild_id)
        playing = player.playback if player is not None else None
        return (playing.encoded, playing.user_data) if playing is not None else None

    def position(self, guild_id: int) -> int | None:
        """The player's position now (ms), extrapolated from its last ``playerUpdate`` (the
        :meth:`snapshot`'s ``position``, without building one).

        ``None`` before the first update, and while no track plays. The clock runs only
        while voice is connected and the player is not paused, as Lavalink's does, and at
        the timescale filter's ``speed * rate``.
        """
        player = self._players.get(guild_id)
        return player.position() if player is not None else None

    def voice_session_ended(self, guild_ids: Iterable[int]) -> None:
        """Discord ended the bot's voice connections in these guilds without telling us.

        A new gateway session (after Discord invalidated the old one) starts in no voice
        channel, and no voice state update says so: the held credentials are dead. Forgetting
        them makes the next :meth:`connect` send op 4 for a fresh set. The players stay: they
        keep their track, frozen where the voice socket closed, and play on once voice is back.
        """
        self._voice.session_ended(guild_ids)

    async def refresh_voice(self, guild_id: int) -> bool:
        """Send the held voice credentials to the guild's player again.

        Lavalink reconnects its voice socket on identical values only while that socket is
        closed, so this is harmless on a healthy player. Returns ``False`` when there is
        nothing complete to send (the bot is not in voice as far as Discord told us).

        Raises:
            LavalinkError: the node refused or did not answer.
        """
        return await self._voice.refresh(guild_id)

    # --- Discord voice events (fed by the hikari glue) ------------------------------------

    def handle_voice_state(self, guild_id: int, session_id: str, channel_id: int | None) -> None:
        """The bot's own VOICE_STATE_UPDATE."""
        self._voice.state_update(guild_id, session_id, channel_id)

    def handle_voice_server(self, guild_id: int, token: str, endpoint: str | None) -> None:
        """The bot's VOICE_SERVER_UPDATE; ``endpoint`` is hikari's ``raw_endpoint``."""
        self._voice.server_update(guild_id, token, endpoint)
