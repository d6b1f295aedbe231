"""A Lavalink v4 client for hikari bots, written for this project.

Public surface: :class:`LavalinkClient` (players, voice, events), :class:`NodeConfig`, the typed
models and events, and the errors. :mod:`.hikari_glue` wires a ``hikari.GatewayBot`` to it.
The package knows nothing about commands, queues or storage.
"""

from __future__ import annotations

from .client import EventListener, LavalinkClient, VoiceGateway
from .errors import (
    BadRequestError,
    ForbiddenError,
    LavalinkError,
    NoNodeAvailableError,
    NotFoundError,
    ProtocolError,
    RequestTimeoutError,
    RestError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
    VoiceConnectError,
)
from .events import (
    Event,
    NodeLost,
    PlayerStateUpdate,
    SessionReady,
    StatsUpdate,
    TrackEndEvent,
    TrackEndReason,
    TrackExceptionEvent,
    TrackStartEvent,
    TrackStuckEvent,
    VoiceDisconnected,
    WebSocketClosedEvent,
)
from .models import (
    EmptyResult,
    ErrorResult,
    LavalinkException,
    LoadResult,
    Player,
    PlayerState,
    Playlist,
    PlaylistResult,
    SearchResult,
    Track,
    TrackInfo,
    TrackResult,
    UpdatePlayer,
)
from .node import NodeConfig

__all__ = [
    "BadRequestError",
    "EmptyResult",
    "ErrorResult",
    "Event",
    "EventListener",
    "ForbiddenError",
    "LavalinkClient",
    "LavalinkError",
    "LavalinkException",
    "LoadResult",
    "NoNodeAvailableError",
    "NodeConfig",
    "NodeLost",
    "NotFoundError",
    "Player",
    "PlayerState",
    "PlayerStateUpdate",
    "Playlist",
    "PlaylistResult",
    "ProtocolError",
    "RequestTimeoutError",
    "RestError",
    "SearchResult",
    "ServerError",
    "SessionReady",
    "StatsUpdate",
    "Track",
    "TrackEndEvent",
    "TrackEndReason",
    "TrackExceptionEvent",
    "TrackInfo",
    "TrackResult",
    "TrackStartEvent",
    "TrackStuckEvent",
    "UnauthorizedError",
    "UnreachableError",
    "UpdatePlayer",
    "VoiceConnectError",
    "VoiceDisconnected",
    "VoiceGateway",
    "WebSocketClosedEvent",
]
