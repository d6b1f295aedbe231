"""Events the client dispatches to its listener.

Lavalink's five player events arrive as :class:`~.models.RawEvent` and are narrowed here to
one immutable type each. The client adds its own lifecycle events (a session becoming ready,
a node lost past its grace period, the bot leaving voice) so that a listener learns about
everything that can change playback from one place.
"""

from __future__ import annotations

import dataclasses
import enum

from .models import LavalinkException, NodeInfo, PlayerState, RawEvent, Stats, Track

__all__ = [
    "Event",
    "NodeConnected",
    "NodeLost",
    "PlayerMoved",
    "PlayerStateUpdate",
    "SessionReady",
    "StatsUpdate",
    "TrackEndEvent",
    "TrackEndReason",
    "TrackExceptionEvent",
    "TrackStartEvent",
    "TrackStuckEvent",
    "VoiceDisconnected",
    "VoiceFailed",
    "VoiceMoved",
    "WebSocketClosedEvent",
    "narrow_event",
]


class TrackEndReason(enum.StrEnum):
    FINISHED = "finished"
    LOAD_FAILED = "loadFailed"
    STOPPED = "stopped"
    REPLACED = "replaced"
    CLEANUP = "cleanup"

    @property
    def may_start_next(self) -> bool:
        """Only these two may advance a queue; the others come from our own actions."""
        return self in (TrackEndReason.FINISHED, TrackEndReason.LOAD_FAILED)


@dataclasses.dataclass(frozen=True, slots=True)
class TrackStartEvent:
    guild_id: int
    track: Track


@dataclasses.dataclass(frozen=True, slots=True)
class TrackEndEvent:
    guild_id: int
    track: Track
    reason: TrackEndReason


@dataclasses.dataclass(frozen=True, slots=True)
class TrackExceptionEvent:
    guild_id: int
    track: Track
    exception: LavalinkException


@dataclasses.dataclass(frozen=True, slots=True)
class TrackStuckEvent:
    guild_id: int
    track: Track
    threshold_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class WebSocketClosedEvent:
    """Lavalink's Discord *voice* socket closed (not the Lavalink socket)."""

    guild_id: int
    code: int
    reason: str
    by_remote: bool


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerStateUpdate:
    guild_id: int
    state: PlayerState


@dataclasses.dataclass(frozen=True, slots=True)
class StatsUpdate:
    node: str
    stats: Stats


@dataclasses.dataclass(frozen=True, slots=True)
class SessionReady:
    """A node's WebSocket is ready.

    ``resumed=False`` means every player this bot had on that node is gone server-side (or
    never existed there): whoever wants them back must rebuild them.
    """

    node: str
    session_id: str
    resumed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConnected:
    """A node's WebSocket is ready (after a first connect, a reconnect or a resume).

    Not an :data:`Event`: it goes to the callbacks given to
    ``LavalinkClient.on_node_connected``, for whoever wants to say what the node is.
    ``info`` is the node's ``/v4/info``, fetched just before this connect;
    ``failed_attempts`` counts the connection attempts that failed since the last success.
    """

    node: str
    url: str
    info: NodeInfo
    session_id: str
    resumed: bool
    failed_attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class NodeLost:
    """A node stayed unreachable past its grace period; the bot left these guilds' channels."""

    node: str
    guild_ids: frozenset[int]


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerMoved:
    """A guild's player moved to another node (failover), at the same track and position."""

    guild_id: int
    from_node: str
    to_node: str


@dataclasses.dataclass(frozen=True, slots=True)
class VoiceDisconnected:
    """The bot left voice without being asked to (kicked, or its channel deleted)."""

    guild_id: int
    channel_id: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class VoiceMoved:
    """The bot's voice channel changed (someone moved it, or a join to another channel).

    The player follows on its own; a listener that remembers the channel (to re-join it after a
    restart) should remember the new one.
    """

    guild_id: int
    from_channel_id: int
    channel_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class VoiceFailed:
    """Discord kept refusing the bot's voice connection, so the client stopped re-joining.

    The bot is still in ``channel_id`` as far as Discord knows, but nothing can be heard: the
    listener decides what to do (leave with ``LavalinkClient.disconnect``, tell people).
    Reported once per give-up; the next ``LavalinkClient.connect`` starts afresh.
    ``code`` and ``reason`` are those of the voice close that made the client give up.
    """

    guild_id: int
    channel_id: int
    code: int
    reason: str


Event = (
    TrackStartEvent
    | TrackEndEvent
    | TrackExceptionEvent
    | TrackStuckEvent
    | WebSocketClosedEvent
    | PlayerStateUpdate
    | StatsUpdate
    | SessionReady
    | NodeLost
    | PlayerMoved
    | VoiceDisconnected
    | VoiceMoved
    | VoiceFailed
)


def narrow_event(raw: RawEvent) -> Event | None:
    """Return the typed event for ``raw``, or ``None`` for an unknown or incomplete one."""
    track = raw.track
    match raw.type:
        case "TrackStartEvent" if track is not None:
            return TrackStartEvent(raw.guild_id, track)
        case "TrackEndEvent" if track is not None and raw.reason is not None:
            try:
                reason = TrackEndReason(raw.reason)
            except ValueError:
                return None
            return TrackEndEvent(raw.guild_id, track, reason)
        case "TrackExceptionEvent" if track is not None and raw.exception is not None:
            return TrackExceptionEvent(raw.guild_id, track, raw.exception)
        case "TrackStuckEvent" if track is not None:
            return TrackStuckEvent(raw.guild_id, track, raw.threshold_ms or 0)
        case "WebSocketClosedEvent" if raw.code is not None:
            return WebSocketClosedEvent(
                raw.guild_id, raw.code, raw.reason or "", bool(raw.by_remote)
            )
    return None
