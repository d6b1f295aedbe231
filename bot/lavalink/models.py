"""Typed, immutable models of the Lavalink v4 protocol.

Everything that crosses the wire is a frozen :class:`msgspec.Struct` decoded straight from
bytes: no intermediate ``dict``, unknown keys ignored (the server may add fields), and
snowflakes (JSON strings) arrive as ``int`` because decoding runs with ``strict=False``.

Where the official docs and the server disagree, the server wins: ``empty`` load results
carry ``data: null``, ``frameStats`` may be ``null`` or absent, ``version.build`` is absent.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .filters import Filters

__all__ = [
    "UNSET",
    "BalancingIpRoutePlanner",
    "CpuStats",
    "EmptyResult",
    "ErrorResult",
    "ExceptionSeverity",
    "FailingAddress",
    "FrameStats",
    "GenericRoutePlanner",
    "GitInfo",
    "IpBlock",
    "KnownRoutePlanner",
    "LavalinkException",
    "LoadResult",
    "MemoryStats",
    "NanoIpDetails",
    "NanoIpRoutePlanner",
    "NodeInfo",
    "Player",
    "PlayerState",
    "PlayerUpdate",
    "Playlist",
    "PlaylistInfo",
    "PlaylistResult",
    "PluginMeta",
    "Ready",
    "RotatingIpDetails",
    "RotatingIpRoutePlanner",
    "RotatingNanoIpDetails",
    "RotatingNanoIpRoutePlanner",
    "RoutePlannerDetails",
    "RoutePlannerStatus",
    "SearchResult",
    "SessionInfo",
    "Stats",
    "Track",
    "TrackInfo",
    "TrackResult",
    "TrackUpdate",
    "UnsetType",
    "UpdatePlayer",
    "VersionInfo",
    "VoiceState",
]

STREAM_LENGTH = 2**63 - 1
"""``length`` Lavalink reports for a stream (Java ``Long.MAX_VALUE``)."""


class _Model(msgspec.Struct, frozen=True, rename="camel"):
    """Base of every wire model: immutable, camelCase on the wire."""


class TrackInfo(_Model, frozen=True):
    identifier: str
    is_seekable: bool
    author: str
    length: int
    is_stream: bool
    position: int
    title: str
    uri: str | None = None
    artwork_url: str | None = None
    isrc: str | None = None
    source_name: str = "unknown"


class Track(_Model, frozen=True):
    encoded: str
    info: TrackInfo
    plugin_info: dict[str, Any] = msgspec.field(default_factory=dict)
    user_data: dict[str, Any] = msgspec.field(default_factory=dict)


class ExceptionSeverity(enum.StrEnum):
    COMMON = "common"
    SUSPICIOUS = "suspicious"
    FAULT = "fault"


class LavalinkException(_Model, frozen=True):
    """Lavalink's exception object (load errors, ``TrackExceptionEvent``)."""

    severity: str = ExceptionSeverity.FAULT
    message: str | None = None
    cause: str = ""
    cause_stack_trace: str = ""


class PlaylistInfo(_Model, frozen=True):
    name: str
    selected_track: int = -1


class Playlist(_Model, frozen=True):
    info: PlaylistInfo
    tracks: tuple[Track, ...] = ()
    plugin_info: dict[str, Any] = msgspec.field(default_factory=dict)


# --- loadtracks: one tagged struct per loadType ----------------------------------------------


class _LoadResult(_Model, tag_field="loadType", frozen=True):
    pass


class TrackResult(_LoadResult, tag="track", frozen=True):
    data: Track


class PlaylistResult(_LoadResult, tag="playlist", frozen=True):
    data: Playlist


class SearchResult(_LoadResult, tag="search", frozen=True):
    data: tuple[Track, ...] = ()


class EmptyResult(_LoadResult, tag="empty", frozen=True):
    # The server sends null; the docs once said {}. Accept both, keep neither.
    data: dict[str, Any] | None = None


class ErrorResult(_LoadResult, tag="error", frozen=True):
    data: LavalinkException


LoadResult = TrackResult | PlaylistResult | SearchResult | EmptyResult | ErrorResult


# --- players and sessions --------------------------------------------------------------------


class PlayerState(_Model, frozen=True):
    time: int
    position: int
    connected: bool
    ping: int = -1


class VoiceState(_Model, frozen=True):
    """The four voice values Lavalink needs; all are mandatory when sending (Lavalink >= 4.2)."""

    token: str
    endpoint: str
    session_id: str
    channel_id: str | None = None


class Player(_Model, frozen=True):
    guild_id: int
    track: Track | None
    volume: int
    paused: bool
    state: PlayerState
    voice: VoiceState
    filters: dict[str, Any] = msgspec.field(default_factory=dict)


class SessionInfo(_Model, frozen=True):
    resuming: bool
    timeout: int


class VersionInfo(_Model, frozen=True):
    semver: str
    major: int
    minor: int
    patch: int
    pre_release: str | None = None
    build: str | None = None


class GitInfo(_Model, frozen=True):
    branch: str = ""
    commit: str = ""
    commit_time: int = 0


class PluginMeta(_Model, frozen=True):
    """A plugin loaded by the node (``plugins`` of ``/v4/info``)."""

    name: str
    version: str = ""


class NodeInfo(_Model, frozen=True):
    """``GET /v4/info``; everything but ``version`` is optional, so a sparse node still parses."""

    version: VersionInfo
    build_time: int = 0
    git: GitInfo | None = None
    jvm: str = ""
    lavaplayer: str = ""
    source_managers: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    plugins: tuple[PluginMeta, ...] = ()


# --- route planner ---------------------------------------------------------------------------


class IpBlock(_Model, frozen=True):
    """The planner's IP block. ``size`` is a decimal string: an IPv6 block exceeds 64 bits."""

    type: str
    size: str


class FailingAddress(_Model, frozen=True):
    """An address the planner stopped using (e.g. after a 429), and since when (Unix ms)."""

    failing_address: str
    failing_timestamp: int
    failing_time: str = ""


class RoutePlannerDetails(_Model, frozen=True):
    """The ``details`` every planner reports; the classes below add their own counters."""

    ip_block: IpBlock
    failing_addresses: tuple[FailingAddress, ...] = ()


class RotatingIpDetails(RoutePlannerDetails, frozen=True, kw_only=True):
    rotate_index: str
    ip_index: str
    current_address: str


class NanoIpDetails(RoutePlannerDetails, frozen=True, kw_only=True):
    current_address_index: str


class RotatingNanoIpDetails(RoutePlannerDetails, frozen=True, kw_only=True):
    block_index: str
    current_address_index: str


class _RoutePlanner(_Model, tag_field="class", frozen=True):
    @property
    def class_name(self) -> str:
        """The planner's Java class name, as Lavalink reports it."""
        return str(self.__struct_config__.tag)


class RotatingIpRoutePlanner(_RoutePlanner, tag="RotatingIpRoutePlanner", frozen=True):
    """Strategy ``RotateOnBan``: switch to the next address when one gets banned."""

    details: RotatingIpDetails


class NanoIpRoutePlanner(_RoutePlanner, tag="NanoIpRoutePlanner", frozen=True):
    """Strategy ``NanoSwitch``: a new address per request, from the current nanosecond."""

    details: NanoIpDetails


class RotatingNanoIpRoutePlanner(_RoutePlanner, tag="RotatingNanoIpRoutePlanner", frozen=True):
    """Strategy ``RotatingNanoSwitch``: NanoSwitch within a /64 block, rotating blocks on ban."""

    details: RotatingNanoIpDetails


class BalancingIpRoutePlanner(_RoutePlanner, tag="BalancingIpRoutePlanner", frozen=True):
    """Strategy ``LoadBalance``: a random address per request."""

    details: RoutePlannerDetails


class GenericRoutePlanner(_Model, frozen=True):
    """A planner class this client does not know (a newer server): only the common details."""

    class_name: str = msgspec.field(name="class")
    details: RoutePlannerDetails | None = None


RoutePlannerStatus = (
    RotatingIpRoutePlanner
    | NanoIpRoutePlanner
    | RotatingNanoIpRoutePlanner
    | BalancingIpRoutePlanner
    | GenericRoutePlanner
)
"""``GET /v4/routeplanner/status`` when a planner is configured (otherwise ``None``)."""

KnownRoutePlanner = (
    RotatingIpRoutePlanner
    | NanoIpRoutePlanner
    | RotatingNanoIpRoutePlanner
    | BalancingIpRoutePlanner
)


# --- requests --------------------------------------------------------------------------------


class TrackUpdate(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """``track`` of an update-player request.

    ``encoded=None`` stops the current track; ``encoded`` and ``identifier`` are exclusive (an
    ``identifier`` must resolve to a single track). ``user_data`` alone replaces the current
    track's user data.
    """

    encoded: str | UnsetType | None = UNSET
    identifier: str | UnsetType = UNSET
    user_data: dict[str, Any] | UnsetType = UNSET


class UpdatePlayer(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Body of ``PATCH /v4/sessions/{sid}/players/{gid}``; unset fields are left unchanged.

    Semantics are the server's (4.2.2), not always the docs':

    * ``position``: with a new track, where it starts; without one, a seek (ignored when idle
      or on a stream).
    * ``end_time``: must be > 0; when reached the track ends ``finished``. ``None`` does *not*
      clear a marker already set on the current track; it only means "none" for a new track.
    * ``paused``: a new track without it starts unpaused.
    * ``volume``: 0..1000 percent (clamped by the server).
    * ``filters``: replaces the whole filter set.
    * ``voice``: all four values; the request then blocks until Lavalink's voice connection
      attempt finishes, so the REST client gives it a longer time-out.

    ``noReplace`` is a query parameter, not part of the body: see
    :meth:`~.rest.RestClient.update_player`.
    """

    track: TrackUpdate | UnsetType = UNSET
    position: int | UnsetType = UNSET
    end_time: int | UnsetType | None = UNSET
    volume: int | UnsetType = UNSET
    paused: bool | UnsetType = UNSET
    filters: Filters | UnsetType = UNSET
    voice: VoiceState | UnsetType = UNSET


# --- WebSocket ops ---------------------------------------------------------------------------


class _Op(_Model, tag_field="op", frozen=True):
    pass


class Ready(_Op, tag="ready", frozen=True):
    resumed: bool
    session_id: str


class PlayerUpdate(_Op, tag="playerUpdate", frozen=True):
    guild_id: int
    state: PlayerState


class MemoryStats(_Model, frozen=True):
    free: int = 0
    used: int = 0
    allocated: int = 0
    reservable: int = 0


class CpuStats(_Model, frozen=True):
    cores: int = 1
    system_load: float = 0.0
    lavalink_load: float = 0.0


class FrameStats(_Model, frozen=True):
    sent: int = 0
    nulled: int = 0
    deficit: int = 0


class Stats(_Op, tag="stats", frozen=True):
    players: int = 0
    playing_players: int = 0
    uptime: int = 0
    memory: MemoryStats = MemoryStats()
    cpu: CpuStats = CpuStats()
    frame_stats: FrameStats | None = None


class RawEvent(_Op, tag="event", frozen=True):
    """The ``event`` op before it is narrowed to one of the typed events in :mod:`.events`.

    One flat struct for all five event types keeps decoding a single pass.
    """

    type: str
    guild_id: int
    track: Track | None = None
    reason: str | None = None
    exception: LavalinkException | None = None
    threshold_ms: int | None = None
    code: int | None = None
    by_remote: bool | None = None


WireOp = Ready | PlayerUpdate | Stats | RawEvent
