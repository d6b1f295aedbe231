"""What nodes report, turned into events: positions, track events, voice closes, stats.

Implements the node's :class:`~.node.NodeListener`. Called from each node's read loop, so
nothing here waits: work that takes time is spawned, events go to the dispatcher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import errors
from .codec import decode_track
from .events import (
    NodeConnected,
    PlayerStateUpdate,
    StatsUpdate,
    TrackStuckEvent,
    WebSocketClosedEvent,
    narrow_event,
)
from .failover import Failover
from .guild import GuildPlayer
from .models import PlayerUpdate, RawEvent, Ready, Stats, Track, WireOp
from .node import Node
from .parts import Part, Parts
from .updates import remember_event
from .voice import VoiceLink

__all__ = ["NodeReports"]

_log = logging.getLogger(__name__)


class NodeReports(Part):
    """Routes each node's frames to the part that owns what they say."""

    def __init__(
        self, parts: Parts, voice: VoiceLink, failover: Failover, *, stall_timeout: float
    ) -> None:
        super().__init__(parts)
        self._voice = voice
        self._failover = failover
        self._stall_timeout = stall_timeout
        self.connection_callbacks: list[Callable[[NodeConnected], None]] = []
        self.position_callback: Callable[[PlayerStateUpdate], None] | None = None

    def node_ready(self, node: Node, ready: Ready) -> None:
        self._pool.connected(node)
        if node.info is not None:  # always: the node fetches it before it connects
            connected = NodeConnected(
                node.name,
                node.config.url,
                node.info,
                ready.session_id,
                ready.resumed,
                node.failed_attempts,
            )
            for callback in self.connection_callbacks:
                try:
                    callback(connected)
                except Exception:
                    _log.exception("Lavalink node-connected callback failed")
        self._failover.node_ready(node, ready)

    def node_op(self, node: Node, op: WireOp) -> None:
        if isinstance(op, PlayerUpdate):
            if self._elsewhere(op.guild_id, node):
                return  # a stale twin's state (a resumed session) must not replace the live one
            # A guild the client holds nothing for (forgotten, or not yet adopted after a
            # restart: adoption takes the position from the node) gets no record from this.
            player = self._players.get(op.guild_id)
            if player is not None:
                player.sample = (op.state, time.time())
                if player.stalled(op.state, self._stall_timeout):
                    self._report_stuck(player, op.state.position)
            self._report_position(PlayerStateUpdate(op.guild_id, op.state))
        elif isinstance(op, RawEvent):
            event = narrow_event(op)
            if event is None:
                _log.debug("ignoring unknown Lavalink event %s", op.type)
                return
            if self._elsewhere(op.guild_id, node):
                return  # a stale player on a node this guild has left
            known = self._players.get(op.guild_id)
            if known is not None:
                remember_event(known, event)
            if isinstance(event, WebSocketClosedEvent):
                self._voice.socket_closed(event, node)
            self._dispatcher.post(op.guild_id, event)
        elif isinstance(op, Stats):
            self._pool.reported(node, op)
            self._dispatcher.post_global(StatsUpdate(node.name, op))

    def _report_position(self, report: PlayerStateUpdate) -> None:
        if self.position_callback is None:
            self._dispatcher.post(report.guild_id, report)
            return
        try:
            self.position_callback(report)
        except Exception:
            _log.exception("Lavalink position callback failed")

    def node_disconnected(self, node: Node) -> None:
        self._failover.node_disconnected(node)

    def _elsewhere(self, guild_id: int, node: Node) -> bool:
        """Whether the guild's player lives on another node than ``node``."""
        player = self._players.get(guild_id)
        return player is not None and player.node is not None and player.node is not node

    def _report_stuck(self, player: GuildPlayer, position: int) -> None:
        """Lavalink's own ``TrackStuckEvent`` comes once, or never for a source that hangs
        quietly: report a player whose position stopped moving as stuck."""
        playing = player.playback
        if playing is None:
            return
        try:
            info = decode_track(playing.encoded)
        except errors.TrackDecodeError:
            return
        track = Track(encoded=playing.encoded, info=info, user_data=playing.user_data)
        threshold = int(self._stall_timeout * 1000)
        _log.warning("guild %s: position stuck at %d ms; reporting it", player.guild_id, position)
        self._dispatcher.post(player.guild_id, TrackStuckEvent(player.guild_id, track, threshold))
