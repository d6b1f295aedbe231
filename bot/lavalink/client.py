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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import msgspec

from . import errors
from .events import (
    Event,
    NodeLost,
    PlayerStateUpdate,
    SessionReady,
    StatsUpdate,
    VoiceDisconnected,
    narrow_event,
)
from .filters import Filters
from .models import (
    LoadResult,
    Player,
    PlayerState,
    PlayerUpdate,
    RawEvent,
    Ready,
    Stats,
    TrackUpdate,
    UpdatePlayer,
    VoiceState,
    WireOp,
)
from .node import Backoff, Node, NodeConfig

__all__ = ["EventListener", "LavalinkClient", "VoiceGateway"]

_log = logging.getLogger(__name__)

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
    error: Exception | None = None
    leaving: bool = False
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    def complete(self) -> VoiceState | None:
        if self.session_id and self.channel_id and self.token and self.endpoint:
            return VoiceState(self.token, self.endpoint, self.session_id, str(self.channel_id))
        return None

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


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
    """A Lavalink v4 client for one bot user.

    Args:
        nodes: the node(s) to use. Players live on the first node.
        gateway: sends op 4 to Discord.
        client_name: ``Client-Name`` header, ``name/version``.
        resume_timeout: seconds Lavalink keeps a session's players alive after the socket drops.
        node_loss_grace: seconds a node may stay unreachable before the bot leaves voice in
            every guild it served (Lavalink never leaves Discord channels on its own).
    """

    def __init__(
        self,
        nodes: Sequence[NodeConfig],
        gateway: VoiceGateway,
        *,
        client_name: str = "musicbot/0.1",
        resume_timeout: int = 60,
        node_loss_grace: float = 10.0,
        voice_timeout: float = 10.0,
        reconnect_cap: float = 30.0,
    ) -> None:
        if not nodes:
            raise ValueError("at least one Lavalink node is required")
        self._configs = tuple(nodes)
        self._gateway = gateway
        self._client_name = client_name
        self._resume_timeout = resume_timeout
        self._node_loss_grace = node_loss_grace
        self._voice_timeout = voice_timeout
        self._reconnect_cap = reconnect_cap
        self._listener: EventListener | None = None
        self._http: aiohttp.ClientSession | None = None
        self._nodes: list[Node] = []
        self._voice: dict[int, _GuildVoice] = {}
        self._states: dict[int, tuple[PlayerState, float]] = {}
        self._mailboxes: dict[int, _Mailbox] = {}
        self._global_mailbox = _Mailbox("lavalink-events")
        self._grace_timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.user_id: int | None = None
        self.stats: dict[str, Stats] = {}

    # --- life -----------------------------------------------------------------------------

    def set_listener(self, listener: EventListener) -> None:
        self._listener = listener

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
        for handle in self._grace_timers.values():
            handle.cancel()
        self._grace_timers.clear()
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

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(config.name for config in self._configs)

    # --- requests -------------------------------------------------------------------------

    async def load_tracks(self, identifier: str) -> LoadResult:
        node = self._node()
        node.require_session()
        return await node.rest.load_tracks(identifier)

    async def connect(self, guild_id: int, channel_id: int) -> None:
        """Join ``channel_id`` and return once Lavalink has the voice credentials for it.

        Raises:
            NoNodeAvailableError: no node is connected.
            VoiceConnectError: Discord sent no credentials in time, or Lavalink refused them.
        """
        node = self._node()
        session = node.require_session()
        voice = self._guild_voice(guild_id)
        if voice.channel_id == channel_id and voice.complete() is not None:
            if voice.forwarded_to == session and voice.error is None:
                return
            await self._forward_voice(guild_id)
            if voice.error is not None:
                raise errors.VoiceConnectError(str(voice.error))
            return
        voice.error = None
        voice.leaving = False
        await self._gateway.update_voice_state(guild_id, channel_id)
        deadline = time.monotonic() + self._voice_timeout
        while True:
            forwarded = voice.forwarded
            if (
                forwarded is not None
                and forwarded.channel_id == str(channel_id)
                and voice.forwarded_to == node.session_id
            ):
                return
            if voice.error is not None:
                raise errors.VoiceConnectError(str(voice.error))
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
            await self._destroy_player(guild_id)
            voice.forwarded = voice.forwarded_to = None
        self._states.pop(guild_id, None)
        await self._gateway.update_voice_state(guild_id, None)

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
    ) -> Player:
        """Start ``encoded`` on the guild's player, replacing what plays now.

        ``paused`` is always sent: a new track otherwise unpauses the player.
        """
        update = UpdatePlayer(
            track=TrackUpdate(encoded=encoded, user_data=user_data or {}),
            position=max(0, position),
            paused=paused,
            volume=volume if volume is not None else msgspec.UNSET,
            filters=filters if filters is not None else msgspec.UNSET,
        )
        return await self.update_player(guild_id, update)

    async def set_filters(self, guild_id: int, filters: Filters) -> Player:
        """Replace the guild's whole filter set (``Filters()`` clears every filter)."""
        return await self.update_player(guild_id, UpdatePlayer(filters=filters))

    async def stop(self, guild_id: int) -> Player:
        """Stop the current track (Lavalink reports ``TrackEndEvent`` ``stopped``)."""
        return await self.update_player(guild_id, UpdatePlayer(track=TrackUpdate(encoded=None)))

    async def update_player(self, guild_id: int, update: UpdatePlayer) -> Player:
        """Send ``update``; carries the cached voice credentials if this session lacks them."""
        node = self._node()
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            session = node.require_session()
            state = voice.complete()
            include_voice = state is not None and (
                voice.forwarded_to != session or voice.forwarded != state
            )
            if include_voice:
                update = msgspec.structs.replace(update, voice=state)
            player = await node.rest.update_player(session, guild_id, update)
            if include_voice:
                voice.forwarded, voice.forwarded_to, voice.error = state, session, None
                voice.notify()
            return player

    async def get_players(self) -> tuple[Player, ...]:
        node = self._node()
        return await node.rest.get_players(node.require_session())

    def voice_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel in ``guild_id`` as Discord last reported it."""
        voice = self._voice.get(guild_id)
        return voice.channel_id if voice else None

    def player_state(self, guild_id: int) -> tuple[PlayerState, float] | None:
        """Last ``playerUpdate`` state and the wall-clock time (s) it was received."""
        return self._states.get(guild_id)

    # --- Discord voice events (fed by the hikari glue) ------------------------------------

    def handle_voice_state(self, guild_id: int, session_id: str, channel_id: int | None) -> None:
        """The bot's own VOICE_STATE_UPDATE."""
        voice = self._guild_voice(guild_id)
        if channel_id is None:
            was_in = voice.channel_id
            voice.session_id = voice.channel_id = voice.token = voice.endpoint = None
            voice.forwarded = voice.forwarded_to = None
            voice.notify()
            if voice.leaving:
                voice.leaving = False
            elif was_in is not None:
                self._spawn(self._on_kicked(guild_id, was_in))
            return
        voice.session_id, voice.channel_id = session_id, channel_id
        self._spawn(self._forward_voice(guild_id))

    def handle_voice_server(self, guild_id: int, token: str, endpoint: str | None) -> None:
        """The bot's VOICE_SERVER_UPDATE; ``endpoint`` is hikari's ``raw_endpoint``."""
        voice = self._guild_voice(guild_id)
        # A null endpoint means Discord is moving the voice server: drop both values so the
        # new token is never paired with the old endpoint, and wait for the next update.
        voice.token, voice.endpoint = (token, endpoint) if endpoint else (None, None)
        if endpoint:
            self._spawn(self._forward_voice(guild_id))

    # --- NodeListener ---------------------------------------------------------------------

    def node_ready(self, node: Node, ready: Ready) -> None:
        timer = self._grace_timers.pop(node.name, None)
        if timer is not None:
            timer.cancel()
        if not ready.resumed:
            # Every player this node had is gone: forget what we forwarded to it.
            for voice in self._voice.values():
                if voice.forwarded_to is not None and voice.forwarded_to != ready.session_id:
                    voice.forwarded = voice.forwarded_to = None
            self._spawn(self._enable_resuming(node, ready.session_id))
        self._post_global(SessionReady(node.name, ready.session_id, ready.resumed))

    def node_op(self, node: Node, op: WireOp) -> None:
        if isinstance(op, PlayerUpdate):
            self._states[op.guild_id] = (op.state, time.time())
            self._post(op.guild_id, PlayerStateUpdate(op.guild_id, op.state))
        elif isinstance(op, RawEvent):
            event = narrow_event(op)
            if event is None:
                _log.debug("ignoring unknown Lavalink event %s", op.type)
            else:
                self._post(op.guild_id, event)
        elif isinstance(op, Stats):
            self.stats[node.name] = op
            self._post_global(StatsUpdate(node.name, op))

    def node_disconnected(self, node: Node) -> None:
        loop = asyncio.get_running_loop()
        self._grace_timers[node.name] = loop.call_later(
            self._node_loss_grace, lambda: self._spawn(self._node_lost(node))
        )

    # --- internals ------------------------------------------------------------------------

    def _node(self) -> Node:
        for node in self._nodes:
            if node.available:
                return node
        if not self._nodes:
            raise errors.NoNodeAvailableError("the Lavalink client has not been started")
        raise errors.NoNodeAvailableError("no Lavalink node is connected")

    def _find_node(self, name: str) -> Node | None:
        return next((node for node in self._nodes if node.name == name), None)

    def _guild_voice(self, guild_id: int) -> _GuildVoice:
        voice = self._voice.get(guild_id)
        if voice is None:
            voice = self._voice[guild_id] = _GuildVoice()
        return voice

    async def _forward_voice(self, guild_id: int) -> None:
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            state = voice.complete()
            node = next((n for n in self._nodes if n.available), None)
            if state is None or node is None or node.session_id is None:
                return  # play() carries the cached values once a node is back.
            if voice.forwarded == state and voice.forwarded_to == node.session_id:
                return
            try:
                await node.rest.update_player(node.session_id, guild_id, UpdatePlayer(voice=state))
            except errors.LavalinkError as exc:
                _log.warning("forwarding voice for guild %s failed: %s", guild_id, exc)
                voice.error = exc
            else:
                voice.forwarded, voice.forwarded_to, voice.error = state, node.session_id, None
            voice.notify()

    async def _destroy_player(self, guild_id: int) -> None:
        node = next((n for n in self._nodes if n.available), None)
        if node is None or node.session_id is None:
            return
        try:
            await node.rest.destroy_player(node.session_id, guild_id)
        except errors.LavalinkError as exc:
            _log.warning("destroying the player of guild %s failed: %s", guild_id, exc)

    async def _on_kicked(self, guild_id: int, channel_id: int) -> None:
        voice = self._guild_voice(guild_id)
        async with voice.lock:
            await self._destroy_player(guild_id)
        self._states.pop(guild_id, None)
        self._post(guild_id, VoiceDisconnected(guild_id, channel_id))

    async def _enable_resuming(self, node: Node, session_id: str) -> None:
        try:
            await node.rest.update_session(session_id, resuming=True, timeout=self._resume_timeout)
        except errors.LavalinkError as exc:
            _log.warning("could not enable resuming on node %s: %s", node.name, exc)

    async def _node_lost(self, node: Node) -> None:
        self._grace_timers.pop(node.name, None)
        if node.available:
            return
        guilds = frozenset(
            guild_id
            for guild_id, voice in self._voice.items()
            if voice.channel_id is not None or voice.forwarded is not None
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
            voice.forwarded = voice.forwarded_to = None
            self._states.pop(guild_id, None)
            try:
                await self._gateway.update_voice_state(guild_id, None)
            except Exception:
                _log.exception("could not leave voice in guild %s", guild_id)
        self._post_global(NodeLost(node.name, guilds))

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
