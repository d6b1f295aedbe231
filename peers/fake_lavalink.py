"""A faithful local Lavalink v4 (release 4.2.2) node for tests, served by aiohttp on 127.0.0.1.

Why a fake and not the real jar: the bot's Lavalink client has to survive what a real node does
-- resumes, crashes, replayed backlogs, odd end reasons, REST errors -- and tests must be able to
provoke each of those on demand and quickly. The behaviour below follows the Lavalink server
*code* (4.2.2) where it differs from the official docs; every such place is called out.

Protocol facts modelled (carried here so nothing reads reference files at run time):

WebSocket ``/v4/websocket`` (server -> client only; client frames are ignored)
    * ``Authorization`` must equal the password exactly, else the upgrade gets **401** (empty
      body). ``User-Id`` missing, empty, non-numeric or ``0`` -> **400**. ``Client-Name`` is
      optional (the real node only logs a warning). ``Session-Id`` names a session to resume.
    * The 101 carries ``Session-Resumed: true|false``; *every* HTTP response carries
      ``Lavalink-Api-Version: 4``.
    * First frame ``{"op":"ready","resumed":bool,"sessionId":<16 chars [a-z0-9]>}``; a new
      session then gets ``stats`` at once and every ``stats_interval`` seconds.
    * ``playerUpdate`` ``{guildId, state:{time, position, connected, ping}}``: immediately when a
      track starts and then every ``player_update_interval`` s until it ends, on the player's
      own fixed-rate timer, each its own message (idle players get none); also after a seek,
      after a ``filters`` PATCH, when voice connects, right after a ``WebSocketClosedEvent``,
      after a ``TrackStuckEvent``, and for every player after resume.
    * Five event types: TrackStartEvent, TrackEndEvent (finished/loadFailed/stopped/replaced/
      cleanup), TrackExceptionEvent, TrackStuckEvent, WebSocketClosedEvent. ``guildId`` is a
      string; Track objects echo ``userData`` (not with :attr:`~FakeLavalink.echo_user_data`
      off, see below); their ``encoded`` and ``info.position`` carry the track's *current*
      position (lavaplayer re-encodes the live track).
    * Graceful shutdown closes every socket with **1001** (Going Away); sessions are in memory
      only, so nothing survives a restart.

Resuming (SocketServer/SocketContext)
    * ``PATCH /v4/sessions/{id}`` ``{resuming, timeout}`` (seconds, default off/60).
    * Socket closes with resuming off -> the session and its players are destroyed at once.
      With resuming on -> *paused*: players keep playing, a ``timeout`` s timer runs (<= 0 ->
      destroyed at once), ``event`` and ``stats`` messages are queued in order, ``playerUpdate``
      is dropped, and REST for that session answers **404 "Session not found"**.
    * Reconnect with ``Session-Id`` of a paused session -> ``ready`` resumed=true with the same
      id, the backlog replayed in order, then one ``playerUpdate`` per player. Anything else
      (unknown, expired, still connected elsewhere) -> a brand-new session.

REST (all routes, ``/version`` included, need ``Authorization``: missing -> 401, wrong -> 403,
both with an empty body). Other errors use Spring's body
``{timestamp, status, error, message, path}`` plus ``trace`` only with ``?trace=true``.

Update player (``PATCH /v4/sessions/{sid}/players/{gid}?noReplace=``) applies, in order:
validation (400s change nothing) -> create player -> voice -> paused (no new track) -> userData
(no new track) -> volume (clamped 0..1000) -> seek (no new track; negative -> 0; streams
ignore it) -> endTime (no new track; ``null`` does NOT clear the marker) -> filters (replace
all) -> new track (``noReplace`` with a track playing returns early; otherwise paused=body or
false, decode/resolve, old track ends ``replaced`` before the new ``TrackStartEvent``).
``track.encoded: null`` stops (``stopped``). Not atomic: a 500 for an undecodable track comes
after voice/volume/filters were applied. Voice needs non-blank token, endpoint, sessionId
*and* channelId (mandatory since 4.2.0) else 400; a non-numeric channelId is a 500.

A PATCH whose voice values cause a (re)connect answers only after
:attr:`~FakeLavalink.voice_connect_delay` seconds: the real node blocks the request until its
voice connect attempt finishes.

Route planner (``/v4/routeplanner/*``): with :attr:`~FakeLavalink.route_planner` ``None`` (no
``ratelimit.ipBlocks`` configured) status is **204** and both ``free`` routes are **500** "Can't
access disabled route planner". With a :class:`RoutePlanner` status is 200
``{"class", "details": {ipBlock{type, size}, failingAddresses[{failingAddress,
failingTimestamp, failingTime}], + per class: RotatingIpRoutePlanner rotateIndex/ipIndex/
currentAddress, NanoIpRoutePlanner currentAddressIndex, RotatingNanoIpRoutePlanner
blockIndex/currentAddressIndex, BalancingIpRoutePlanner nothing more}}`` (counters are
strings); ``free/address`` ``{"address"}`` -> 204 (also for an address not failing), 400
"Invalid address: ..." for a non-IP; ``free/all`` -> 204.

Test-control API (all on :class:`FakeLavalink`): :attr:`~FakeLavalink.requests` (every HTTP
request, websocket upgrades included), :attr:`~FakeLavalink.sent` (every websocket message,
with its session id; off with :attr:`~FakeLavalink.keep_sent` for long load runs),
:attr:`~FakeLavalink.sent_hooks` (told each message as it goes out),
:meth:`~FakeLavalink.wait_for`, :meth:`~FakeLavalink.wait_for_event`,
:meth:`~FakeLavalink.end_track`, :meth:`~FakeLavalink.send_event`,
:meth:`~FakeLavalink.events`, :meth:`~FakeLavalink.send_stats`,
:meth:`~FakeLavalink.drop_connections`, :meth:`~FakeLavalink.refuse_websocket`,
:meth:`~FakeLavalink.stagger_player_updates`,
:meth:`~FakeLavalink.fail_next`, :meth:`~FakeLavalink.delay_next`,
:meth:`~FakeLavalink.answer_next`, :meth:`~FakeLavalink.send_raw`, :meth:`~FakeLavalink.kill`,
:attr:`~FakeLavalink.voice_check`, :attr:`~FakeLavalink.voice_connect_delay`,
:attr:`~FakeLavalink.route_planner`, :attr:`~FakeLavalink.echo_user_data`,
:meth:`~FakeLavalink.player`.

Divergence injections (player state the client did not ask for, so tests can check that the
bot notices and repairs it): :meth:`~FakeLavalink.drop_player`,
:meth:`~FakeLavalink.swap_track` and :meth:`~FakeLavalink.set_paused` are *silent* (no event,
no recorded request; only the periodic ``playerUpdate`` and REST reads show the new state);
:meth:`~FakeLavalink.stall` freezes the position silently (cleared by a PATCH that loads a
track, not by a seek); :meth:`~FakeLavalink.close_voice` is the loud one, a
``WebSocketClosedEvent`` like :meth:`~FakeLavalink.send_event` sends.

NodeLink-like mode: ``FakeLavalink(echo_user_data=False)`` models Lavalink-compatible servers
(NodeLink) that drop ``userData``: Track objects in events and in the player JSON (GET
player(s), the PATCH answer) have no ``userData`` key at all, though the player still stores
what the client sent. Load and decode results are unchanged.

Choices where the protocol leaves room:
    * "Voice connected" = a complete voice state was PATCHed and :attr:`FakeLavalink.voice_check`
      (if set) accepted it. The position only advances while a track is loaded, the player is
      not paused, and voice is connected, scaled by ``time_scale`` and the timescale filter's
      ``speed * rate``. Tracks start (TrackStartEvent) without voice, like the real node; if no
      voice connects within ``cleanup_after`` real seconds (lavaplayer: 60) the track ends with
      ``cleanup``.
    * Replacing voice info on a connected player, or destroying a connected player, emits
      ``WebSocketClosedEvent`` code 1000, ``byRemote: false`` for the old voice socket.
    * ``stop()`` closes with 1001 and an empty reason (Lavalink's ShutdownHandler sends
      ``CloseStatus.GOING_AWAY``, which has none).

Not modelled: audio, Discord voice/UDP/DAVE, real load latency, the 60 s CPU sampling, plugins
and their filters, route-planner rotation (addresses fail only via ``RoutePlanner.fail``),
rate limits, TrackStuck/TrackException arising by themselves (inject them with
``send_event``), HTTP/2.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import ipaddress
import json
import logging
import math
import random
import string
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Self

from aiohttp import web

from .tracks import (
    TrackDecodeError,
    TrackInfo,
    at_position,
    decode_track,
    encode_track,
    track_json,
    with_position,
)

__all__ = [
    "FILTER_NAMES",
    "ROUTE_PLANNER_CLASSES",
    "SOURCE_MANAGERS",
    "Catalogue",
    "FakeLavalink",
    "Player",
    "RecordedRequest",
    "RoutePlanner",
    "Session",
    "VoiceCheck",
    "websocket_frames",
]

log = logging.getLogger(__name__)

_compact_dumps = functools.partial(json.dumps, separators=(",", ":"))
_json_response = functools.partial(web.json_response, dumps=_compact_dumps)
"""Compact JSON, as a node's Jackson writes it."""


def _compact(payload: Any) -> bytes:
    return _compact_dumps(payload).encode()


API_VERSION: Final = "4"
SOURCE_MANAGERS: Final = ("youtube", "soundcloud", "bandcamp", "twitch", "vimeo", "http")
"""What ``/v4/info`` advertises; decoding a track of any other source is a 500, as on a node."""
FILTER_NAMES: Final = (
    "volume",
    "equalizer",
    "karaoke",
    "timescale",
    "tremolo",
    "vibrato",
    "distortion",
    "rotation",
    "channelMix",
    "lowPass",
)
_OBJECT_FILTER_DEFAULTS: Final[dict[str, dict[str, float]]] = {
    "karaoke": {"level": 1.0, "monoLevel": 1.0, "filterBand": 220.0, "filterWidth": 100.0},
    "timescale": {"speed": 1.0, "pitch": 1.0, "rate": 1.0},
    "tremolo": {"frequency": 2.0, "depth": 0.5},
    "vibrato": {"frequency": 2.0, "depth": 0.5},
    "rotation": {"rotationHz": 0.0},
    "distortion": {
        "sinOffset": 0.0,
        "sinScale": 1.0,
        "cosOffset": 0.0,
        "cosScale": 1.0,
        "tanOffset": 0.0,
        "tanScale": 1.0,
        "offset": 0.0,
        "scale": 1.0,
    },
    "channelMix": {"leftToLeft": 1.0, "leftToRight": 0.0, "rightToLeft": 0.0, "rightToRight": 1.0},
    "lowPass": {"smoothing": 20.0},
}
_VOICE_KEYS: Final = ("token", "endpoint", "sessionId", "channelId")
_VOICE_MESSAGE: Final = "token, endpoint, sessionId and channelId must be provided in voice state"
_DECODE_FAILED: Final = (
    "Failed to decode track due to a mismatching version or missing source manager"
)
_BAD_BODY: Final = "Failed to read request"
_STUCK_THRESHOLD_MS: Final = 10_000
_PLANNER_DISABLED: Final = "Can't access disabled route planner"
ROUTE_PLANNER_CLASSES: Final = (
    "RotatingIpRoutePlanner",
    "NanoIpRoutePlanner",
    "RotatingNanoIpRoutePlanner",
    "BalancingIpRoutePlanner",
)
_PING_MS: Final = 12
_OMIT: Final[Any] = object()

VoiceCheck = Callable[[int, dict[str, str]], int | None]
"""Hook deciding a voice connection: ``None`` = connected, an int = the Discord voice close code
(e.g. 4006) the voice websocket is closed with (``WebSocketClosedEvent`` ``byRemote: true``)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _query_bool(request: web.Request, name: str) -> bool:
    """Spring's String -> Boolean conversion (true/on/yes/1, false/off/no/0), else 400."""
    raw = request.query.get(name, "false").strip().lower()
    if raw in ("true", "on", "yes", "1"):
        return True
    if raw in ("false", "off", "no", "0", ""):
        return False
    raise _ApiError(
        400,
        f"Failed to convert value of type 'java.lang.String' to required type 'boolean'; "
        f"Invalid boolean value [{raw}]",
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- recorded traffic -----------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request the fake received (REST and websocket upgrades alike).

    ``status`` is filled in once the response is decided (101 for an accepted upgrade);
    ``at`` is when the request arrived (``time.monotonic()``, the players' clock).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: object | None
    status: int = 0
    at: float = field(default_factory=time.monotonic)


_RECORD: Final = web.RequestKey("record", RecordedRequest)


class _ApiError(Exception):
    """Raised by handlers; the middleware turns it into Spring's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- catalogue ------------------------------------------------------------------------------


_SEARCH_PREFIXES: Final = ("ytsearch:", "ytmsearch:", "scsearch:", "bcsearch:")


def _exception_json(message: str | None, severity: str, cause: str | None = None) -> dict[str, Any]:
    """Lavalink's Exception object; ``cause`` is the root cause's ``toString()``."""
    root = cause or f"com.sedmelluq.discord.lavaplayer.tools.FriendlyException: {message}"
    return {
        "message": message,
        "severity": severity,
        "cause": root,
        "causeStackTrace": f"{root}\n\tat com.sedmelluq.discord.lavaplayer.Fake(Fake.java:1)\n",
    }


class Catalogue:
    """What the fake node can load: tracks by URI (or bare id), playlists, searches, errors.

    Lookups: an exact error identifier first, then a track's ``uri`` or ``identifier``, then a
    playlist URL, then ``ytsearch:``/``ytmsearch:``/``scsearch:``/``bcsearch:`` queries (one
    shared table, case-insensitive, surrounding whitespace ignored). Anything else is
    ``empty`` -- including an unregistered search, which is what the YouTube source answers
    for zero results.
    """

    def __init__(self) -> None:
        self.tracks: dict[str, TrackInfo] = {}
        self.playlists: dict[str, tuple[str, list[TrackInfo], int]] = {}
        self.searches: dict[str, list[TrackInfo]] = {}
        self.errors: dict[str, tuple[str, str]] = {}
        self._bodies: dict[str, bytes] = {}

    def body(self, identifier: str) -> bytes:
        """:meth:`load` as the JSON a node sends; kept until the catalogue changes, so a big
        playlist is not encoded again for every request."""
        found = self._bodies.get(identifier)
        if found is None:
            found = self._bodies[identifier] = _compact(self.load(identifier))
        return found

    def add_track(self, info: TrackInfo) -> None:
        """Loadable by its ``uri`` (and, like the YouTube source, by its bare ``identifier``)."""
        self._bodies.clear()
        if info.uri:
            self.tracks[info.uri] = info
        self.tracks.setdefault(info.identifier, info)

    def add_playlist(
        self, url: str, name: str, tracks: list[TrackInfo], selected_track: int = -1
    ) -> None:
        self._bodies.clear()
        self.playlists[url] = (name, list(tracks), selected_track)

    def add_search(self, query: str, tracks: list[TrackInfo]) -> None:
        self._bodies.clear()
        self.searches[query.strip().lower()] = list(tracks)

    def add_error(self, identifier: str, message: str, severity: str = "common") -> None:
        self._bodies.clear()
        self.errors[identifier] = (message, severity)

    def load(self, identifier: str) -> dict[str, Any]:
        """The LoadResult for ``identifier`` (always a 200 body, even for ``error``)."""
        if identifier in self.errors:
            message, severity = self.errors[identifier]
            return {"loadType": "error", "data": _exception_json(message, severity)}
        if identifier in self.tracks:
            return {"loadType": "track", "data": track_json(self.tracks[identifier])}
        if identifier in self.playlists:
            name, tracks, selected = self.playlists[identifier]
            return {
                "loadType": "playlist",
                "data": {
                    "info": {"name": name, "selectedTrack": selected},
                    "pluginInfo": {},
                    "tracks": [track_json(t) for t in tracks],
                },
            }
        lowered = identifier.lower()
        for prefix in _SEARCH_PREFIXES:
            if lowered.startswith(prefix):
                found = self.searches.get(identifier[len(prefix) :].strip().lower())
                if found is not None:
                    return {"loadType": "search", "data": [track_json(t) for t in found]}
                break
        # Code: ``data`` is null (the 4.2.2 docs say ``{}``; a later docs PR corrected it).
        return {"loadType": "empty", "data": None}


# --- route planner --------------------------------------------------------------------------


def _java_date(ms: int) -> str:
    """``java.util.Date.toString()`` in UTC, e.g. ``Mon Nov 11 20:05:07 UTC 2019``."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(ms / 1000))


@dataclass
class RoutePlanner:
    """An IP route planner, as configured by ``lavalink.server.ratelimit`` (``strategy``).

    ``kind`` is the Java class name Lavalink reports; ``ip_block`` the configured block.
    Addresses are marked failing by :meth:`fail` (the real planner does it on a 429).
    """

    kind: str = "RotatingIpRoutePlanner"
    ip_block: str = "10.0.0.0/24"
    failing: dict[str, int] = field(default_factory=dict)
    """Failing address (as Java prints it, ``/1.2.3.4``) -> since when (Unix ms)."""
    rotate_index: int = 0
    address_index: int = 0
    block_index: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ROUTE_PLANNER_CLASSES:
            raise ValueError(f"unknown route planner class {self.kind!r}")
        ipaddress.ip_network(self.ip_block)

    def fail(self, address: str, when_ms: int | None = None) -> None:
        """Mark ``address`` failing, as after a ban."""
        self.failing["/" + str(ipaddress.ip_address(address))] = (
            when_ms if when_ms is not None else _now_ms()
        )

    def free(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self.failing.pop("/" + str(address), None)

    def status(self) -> dict[str, Any]:
        network = ipaddress.ip_network(self.ip_block)
        details: dict[str, Any] = {
            "ipBlock": {
                "type": "Inet4Address" if network.version == 4 else "Inet6Address",
                "size": str(network.num_addresses),
            },
            "failingAddresses": [
                {"failingAddress": a, "failingTimestamp": t, "failingTime": _java_date(t)}
                for a, t in self.failing.items()
            ],
        }
        if self.kind == "RotatingIpRoutePlanner":
            current = network[self.address_index % network.num_addresses]
            details["rotateIndex"] = str(self.rotate_index)
            details["ipIndex"] = str(self.address_index)
            details["currentAddress"] = f"/{current}"
        elif self.kind == "NanoIpRoutePlanner":
            details["currentAddressIndex"] = str(self.address_index)
        elif self.kind == "RotatingNanoIpRoutePlanner":
            details["blockIndex"] = str(self.block_index)
            details["currentAddressIndex"] = str(self.address_index)
        return {"class": self.kind, "details": details}


@dataclass
class _Injection:
    """A test-requested deviation for the next ``count`` matching REST requests."""

    fragment: str
    method: str | None
    count: int
    delay: float = 0.0
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"

    def matches(self, request: web.Request) -> bool:
        return (
            self.count > 0
            and self.fragment in request.path
            and (self.method is None or self.method == request.method)
        )


# --- sessions and players -------------------------------------------------------------------


@dataclass(eq=False)
class Player:
    """One guild's player. ``position`` is computed from a clock, not stored."""

    guild_id: int
    session: Session = field(repr=False)
    track: TrackInfo | None = None
    encoded: str | None = None
    paused: bool = False
    volume: int = 100
    filters: dict[str, Any] = field(default_factory=dict)
    voice: dict[str, str] | None = None
    connected: bool = False
    user_data: dict[str, Any] = field(default_factory=dict)
    end_time: int | None = None
    stalled: bool = False
    """Connected and "playing", but no audio comes from the source (see ``stall``)."""
    _fake: FakeLavalink | None = field(default=None, repr=False)
    _anchor_pos: float = field(default=0.0, repr=False)
    _anchor_t: float = field(default=0.0, repr=False)
    _end_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _cleanup_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _updates: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        """Frames are flowing: a track, not paused, and a voice connection pulling audio."""
        return self.track is not None and not self.paused and self.connected and not self.stalled

    @property
    def rate(self) -> float:
        """Track milliseconds per real millisecond."""
        scale = self._fake.time_scale if self._fake is not None else 1.0
        timescale = self.filters.get("timescale") or {}
        return scale * float(timescale.get("speed", 1.0)) * float(timescale.get("rate", 1.0))

    @property
    def stop_at(self) -> int | None:
        """Where the track stops by itself: its end or the ``endTime`` marker (streams: marker)."""
        if self.track is None:
            return None
        limit = None if self.track.is_stream else self.track.length
        if self.end_time is not None:
            limit = self.end_time if limit is None else min(limit, self.end_time)
        return limit

    @property
    def position(self) -> int:
        """Track position in ms: 0 when idle, never past the track's end or ``endTime``."""
        return int(self._exact_position())

    def _exact_position(self) -> float:
        if self.track is None:
            return 0.0
        pos = self._anchor_pos
        if self.running:
            pos += (time.monotonic() - self._anchor_t) * 1000.0 * self.rate
        limit = self.stop_at
        if limit is not None:
            pos = min(pos, float(limit))
        return max(0.0, pos)

    def _rebase(self) -> None:
        """Freeze the clock reading before anything that changes ``running`` or ``rate``."""
        self._anchor_pos = self._exact_position()
        self._anchor_t = time.monotonic()

    def state(self) -> dict[str, Any]:
        """The Player State object of ``playerUpdate`` and the Player JSON."""
        return {
            "time": _now_ms(),
            "position": self.position,
            "connected": self.connected,
            "ping": _PING_MS if self.connected else -1,
        }

    def track_object(self) -> dict[str, Any] | None:
        """The live Track object: ``encoded`` and ``info.position`` hold the current position."""
        if self.track is None or self.encoded is None:
            return None
        pos = self.position
        obj = track_json(
            at_position(self.track, pos), self.user_data, encoded=with_position(self.encoded, pos)
        )
        if self._fake is not None and not self._fake.echo_user_data:
            del obj["userData"]  # NodeLink-like servers send no such field at all
        return obj

    def to_json(self) -> dict[str, Any]:
        """The Player object of the REST API."""
        voice: dict[str, Any] = (
            dict(self.voice)
            if self.voice is not None
            else {"token": "", "endpoint": "", "sessionId": "", "channelId": None}
        )
        return {
            "guildId": str(self.guild_id),
            "track": self.track_object(),
            "volume": self.volume,
            "paused": self.paused,
            "state": self.state(),
            "voice": voice,
            "filters": json.loads(json.dumps(self.filters)),
        }


@dataclass(eq=False)
class Session:
    """A Lavalink session (one per websocket). ``paused`` = disconnected, waiting for resume."""

    id: str
    user_id: int
    client_name: str | None = None
    resuming: bool = False
    timeout: int = 60
    paused: bool = False
    queued: list[dict[str, Any]] = field(default_factory=list)
    players: dict[int, Player] = field(default_factory=dict)
    created: int = 0
    _ws: web.WebSocketResponse | None = field(default=None, repr=False)
    _transport: asyncio.Transport | None = field(default=None, repr=False)
    _outbox: asyncio.Queue[str | None] | None = field(default=None, repr=False)
    _writer: asyncio.Task[None] | None = field(default=None, repr=False)
    _expiry: asyncio.TimerHandle | None = field(default=None, repr=False)
    _stats: asyncio.Task[None] | None = field(default=None, repr=False)
    _claimed: bool = field(default=False, repr=False)
    _protocol: Any = field(default=None, repr=False)

    @property
    def attached(self) -> bool:
        return self._ws is not None


# --- ready-made websocket frames (load generation) ------------------------------------------

_HIGH_WATER: Final = 1 << 20
_CHUNK: Final = 1 << 16


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def websocket_frames(messages: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """``messages`` as the bytes a server writes for them, in chunks of about 64 KiB.

    Exactly what ``send_str`` would write message by message (unmasked, uncompressed text
    frames); only the number of ``write`` calls differs, which keeps the sender far faster
    than any client. For :meth:`FakeLavalink.write_frames`.
    """
    chunks: list[bytes] = []
    pending: list[bytes] = []
    size = 0
    for message in messages:
        wire = _text_frame(message)
        pending.append(wire)
        size += len(wire)
        if size >= _CHUNK:
            chunks.append(b"".join(pending))
            pending, size = [], 0
    if pending:
        chunks.append(b"".join(pending))
    return tuple(chunks)


# --- the node -------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeLavalink:
    """A Lavalink 4.2.2 node on ``127.0.0.1`` with a test-control API.

    ``start()`` binds a free port the first time and the *same* port on every restart, so a
    client configured with :attr:`url` reconnects after :meth:`kill`/:meth:`stop` + ``start``.
    """

    def __init__(
        self,
        password: str = "youshallnotpass",
        version: str = "4.2.2",
        catalogue: Catalogue | None = None,
        *,
        player_update_interval: float = 5.0,
        stats_interval: float = 60.0,
        time_scale: float = 1.0,
        port: int = 0,
        cleanup_after: float = 60.0,
        echo_user_data: bool = True,
    ) -> None:
        self.password = password
        self.version = version
        self.source_managers: list[str] = list(SOURCE_MANAGERS)
        """What ``/v4/info`` lists; a test removes ``youtube`` to be a node without the plugin."""
        self.plugins: list[dict[str, str]] = [{"name": "youtube-plugin", "version": "1.18.2"}]
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.player_update_interval = player_update_interval
        self.stats_interval = stats_interval
        self.time_scale = time_scale
        self.cleanup_after = cleanup_after
        self.port = port
        self.sessions: dict[str, Session] = {}
        self.requests: list[RecordedRequest] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.keep_sent = True
        """``False``: :attr:`sent` stays empty (a long load run would hold every
        ``playerUpdate`` in memory); :attr:`sent_hooks` still see every message."""
        self.sent_hooks: list[Callable[[str, dict[str, Any]], None]] = []
        """Called with ``(session id, message)`` as each message is handed to its socket, in
        the order :attr:`sent` records them: a bench stamps its own clock on each."""
        self.voice_check: VoiceCheck | None = None
        self.echo_user_data = echo_user_data
        """``False``: Track objects in events and player JSON carry no ``userData`` (NodeLink)."""
        self.system_load = 0.05
        """CPU load reported in ``stats`` (0..1); raise it to make this node look busy."""
        self._runner: web.AppRunner | None = None
        self._started_at = time.monotonic()
        self._created = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refuse = 0
        self._refuse_status = 503
        self._failures: list[list[Any]] = []
        self._delays: list[_Injection] = []
        self._answers: list[_Injection] = []
        self.voice_connect_delay = 0.0
        """Seconds a PATCH that (re)connects voice blocks before answering, like a real node."""
        self.route_planner: RoutePlanner | None = None
        """``None``: no route planner configured (status 204, free routes 500)."""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start serving; a restarted node has no sessions, like a fresh JVM."""
        if self._runner is not None:
            raise RuntimeError("FakeLavalink is already running")
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/v4/websocket", self._websocket)
        app.router.add_get("/version", self._version)
        app.router.add_get("/v4/info", self._info)
        app.router.add_get("/v4/stats", self._rest_stats)
        app.router.add_get("/v4/loadtracks", self._loadtracks)
        app.router.add_get("/v4/decodetrack", self._decodetrack)
        app.router.add_post("/v4/decodetracks", self._decodetracks)
        app.router.add_get("/v4/sessions/{sid}/players", self._get_players)
        app.router.add_get("/v4/sessions/{sid}/players/{gid}", self._get_player)
        app.router.add_patch("/v4/sessions/{sid}/players/{gid}", self._patch_player)
        app.router.add_delete("/v4/sessions/{sid}/players/{gid}", self._delete_player)
        app.router.add_patch("/v4/sessions/{sid}", self._patch_session)
        app.router.add_get("/v4/routeplanner/status", self._routeplanner_status)
        app.router.add_post("/v4/routeplanner/free/address", self._routeplanner_free_address)
        app.router.add_post("/v4/routeplanner/free/all", self._routeplanner_free_all)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        if self.port == 0:  # later restarts reuse this port, like a node with a fixed config
            self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._started_at = time.monotonic()
        log.info("fake Lavalink listening on %s", self.url)

    async def stop(self) -> None:
        """Graceful shutdown: every socket closed with 1001 (Going Away), then all state gone."""
        if self._runner is None:
            return
        sockets = [s._ws for s in self.sessions.values() if s._ws is not None]
        self._forget_everything()
        if sockets:
            closing = (asyncio.wait_for(ws.close(code=1001), timeout=2) for ws in sockets)
            await asyncio.gather(*closing, return_exceptions=True)
        await self._shutdown_runner()

    async def kill(self) -> None:
        """Die like a crashed process: no close frames, every connection reset, state gone."""
        if self._runner is None:
            return
        runner = self._runner
        self._forget_everything()
        for conn in runner.server.connections if runner.server is not None else []:
            if conn.transport is not None:
                conn.transport.abort()
        await self._shutdown_runner()

    async def _shutdown_runner(self) -> None:
        runner, self._runner = self._runner, None
        await self._cancel_tasks()
        if runner is not None:
            await runner.cleanup()
        await self._cancel_tasks()

    def _forget_everything(self) -> None:
        for session in list(self.sessions.values()):
            self._destroy_session(session)
        self.sessions.clear()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- test control ------------------------------------------------------------------------

    def player(self, guild_id: int | str) -> Player | None:
        """The guild's player in any session; the most recently created session wins."""
        gid = int(guild_id)
        for session in sorted(self.sessions.values(), key=lambda s: s.created, reverse=True):
            if gid in session.players:
                return session.players[gid]
        return None

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` every 20 ms."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    def events(
        self, guild_id: int | str | None = None, type: str | None = None
    ) -> list[dict[str, Any]]:
        """Event messages sent so far, optionally filtered."""
        return [
            m
            for _, m in self.sent
            if m.get("op") == "event"
            and (guild_id is None or m.get("guildId") == str(guild_id))
            and (type is None or m.get("type") == type)
        ]

    async def wait_for_event(
        self, guild_id: int | str, type: str, timeout: float = 10.0, after: int = 0
    ) -> dict[str, Any]:
        """The first event of ``type`` for the guild at index >= ``after`` in :attr:`sent`."""
        gid = str(guild_id)
        found: list[dict[str, Any]] = []

        def match() -> bool:
            for _, msg in self.sent[after:]:
                if (
                    msg.get("op") == "event"
                    and msg.get("type") == type
                    and msg.get("guildId") == gid
                ):
                    found.append(msg)
                    return True
            return False

        await self.wait_for(match, timeout, what=f"{type} for guild {gid}")
        return found[0]

    async def end_track(self, guild_id: int | str, reason: str = "finished") -> None:
        """End the guild's current track now with ``reason`` (e.g. ``loadFailed``, ``cleanup``)."""
        player = self._require_player(guild_id)
        if player.track is None:
            raise AssertionError(f"guild {guild_id} has no track to end")
        self._end_track(player, reason)

    async def send_event(self, guild_id: int | str, type: str, **fields: Any) -> None:
        """Emit an event the fake cannot cause by itself, with the real follow-ups.

        * ``TrackExceptionEvent``: ``exception=`` or ``message=``/``severity=``/``cause=``.
          The track keeps going; follow with :meth:`end_track` (``loadFailed``/``finished``).
        * ``TrackStuckEvent``: ``thresholdMs`` defaults to 10000; a ``playerUpdate`` follows.
        * ``WebSocketClosedEvent``: ``code``, ``reason`` (default ``""``), ``byRemote``
          (default true); voice is disconnected (position stops) and ``playerUpdate`` follows.
        """
        player = self._require_player(guild_id)
        track = player.track_object()
        if type == "TrackExceptionEvent":
            exception = fields.pop("exception", None) or _exception_json(
                fields.pop("message", "Something broke while playing the track."),
                fields.pop("severity", "common"),
                fields.pop("cause", None),
            )
            self._emit_event(player, type, track=track, exception=exception, **fields)
        elif type == "TrackStuckEvent":
            fields.setdefault("thresholdMs", _STUCK_THRESHOLD_MS)
            self._emit_event(player, type, track=track, **fields)
            self._emit_player_update(player)
        elif type == "WebSocketClosedEvent":
            self._voice_lost(
                player,
                fields.pop("code"),
                fields.pop("reason", ""),
                fields.pop("byRemote", True),
            )
        else:
            self._emit_event(player, type, track=track, **fields)

    async def drop_connections(self) -> None:
        """Cut every websocket abnormally (no close frame) but keep serving.

        Sessions with resuming enabled become paused; the others are destroyed.
        """
        dropped = [s for s in self.sessions.values() if s._ws is not None]
        for session in dropped:
            if session._transport is not None:
                session._transport.abort()
        await self.wait_for(
            lambda: all(s._ws is None for s in dropped), timeout=5, what="sockets to drop"
        )

    def stall(self, guild_id: int | str) -> None:
        """The source stops delivering audio: the position freezes, nothing is reported.

        Lavalink sends ``TrackStuckEvent`` only once, after its threshold, and sometimes not
        at all (a source that hangs without erroring); this models the silent case. A PATCH
        that loads a track (``track.encoded``/``identifier``, even the same one) starts a new
        source and clears the stall; a seek, pause or voice change does not.
        """
        player = self._require_player(guild_id)
        player._rebase()
        player.stalled = True
        self._reschedule(player)

    def drop_player(self, guild_id: int | str) -> None:
        """The node loses the guild's player without telling anyone: no event, no update.

        Why: state can vanish behind the client's back (a node-side bug, a plugin, an operator);
        the bot must notice (GET player answers 404 "Player not found", GET players no longer
        lists it) and rebuild it. A later PATCH creates a fresh, idle, voiceless player.
        """
        self._destroy_player(self._require_player(guild_id), emit=False)

    def swap_track(self, guild_id: int | str, info: TrackInfo, position: int = 0) -> None:
        """The player silently plays ``info`` from ``position``: no TrackEnd/TrackStart events.

        Why: a client that trusts its own idea of "what is playing" drifts from the node; this
        lets a test check that the bot notices from ``playerUpdate``/REST. ``info`` may be a
        catalogue entry or any other track. The new track has no ``userData`` and no
        ``endTime`` marker and is not stalled; paused state, voice, volume and filters stay.
        An idle player starts sending the periodic ``playerUpdate`` like any playing one.
        """
        player = self._require_player(guild_id)
        for timer in (player._end_timer, player._cleanup_timer):
            if timer is not None:
                timer.cancel()
        player._end_timer = player._cleanup_timer = None
        player.track = info
        player.encoded = encode_track(info)
        player.user_data = {}
        player.end_time = None
        player.stalled = False
        player._anchor_pos = float(max(0, position))  # clamped to the end by the clock
        player._anchor_t = time.monotonic()
        if player._updates is None:
            player._updates = self._spawn(self._player_updates(player))
        self._reschedule(player)

    def stagger_player_updates(self, session_id: str | None = None) -> int:
        """Re-time the ``playerUpdate`` timers of the players that report (a track loaded) in
        ``session_id`` (every session: ``None``) as if their tracks had started at evenly
        spread moments: of N players, the k-th (k = 1..N, in creation order) reports next
        ``k / N`` of :attr:`player_update_interval` from now, then every interval on its own
        timer. Returns N; sends nothing itself.

        Why: on a real node players start their tracks at unrelated moments, so their reports
        come one at a time, spread over the interval. Players a harness starts in one quick
        burst would report in bursts instead; this spreads them as a long-running node has.
        """
        players = [
            player
            for session in self.sessions.values()
            if session_id is None or session.id == session_id
            for player in session.players.values()
            if player._updates is not None
        ]
        interval = self.player_update_interval
        for k, player in enumerate(players, start=1):
            if player._updates is not None:
                player._updates.cancel()
            delay = k * interval / len(players)
            player._updates = self._spawn(self._player_updates(player, delay))
        return len(players)

    def set_paused(self, guild_id: int | str, paused: bool) -> None:
        """Pause or unpause the player silently, as a ``paused`` PATCH would but unrequested.

        Why: a pause the client did not ask for (another client on the same session, lost
        state) must be noticed and undone by the bot. The position clock freezes or runs
        again exactly as for the PATCH; no event, no ``playerUpdate``, nothing in
        :attr:`requests`.
        """
        player = self._require_player(guild_id)
        if player.paused == paused:
            return
        player._rebase()
        player.paused = paused
        self._reschedule(player)

    def close_voice(
        self, guild_id: int | str, code: int = 4014, reason: str = "Disconnected."
    ) -> None:
        """Discord closed the voice socket: ``WebSocketClosedEvent`` ``byRemote: true``.

        Why: the common real-world voice loss (4014 = disconnected, e.g. kicked or the channel
        deleted) without spelling out :meth:`send_event`'s fields; the effect is the same as
        ``send_event(guild_id, "WebSocketClosedEvent", code=code, reason=reason,
        byRemote=True)``: voice disconnected, position frozen, a ``playerUpdate`` follows.
        The client recovers by PATCHing a complete voice state, new or identical. Unlike
        :meth:`send_event` this is a plain (not ``async``) method.
        """
        self._voice_lost(self._require_player(guild_id), code, reason, True)

    def send_stats(self) -> None:
        """Send ``stats`` to every session now (queued for paused ones), as the timer would."""
        for session in list(self.sessions.values()):
            self._emit(session, {"op": "stats", **self._stats_json(session)})

    def refuse_websocket(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` websocket upgrades with ``status`` (empty body)."""
        self._refuse = count
        self._refuse_status = status

    def fail_next(self, path_fragment: str, status: int = 500, count: int = 1) -> None:
        """Fail the next ``count`` REST requests whose path contains ``path_fragment``."""
        self._failures.append([path_fragment, status, count])

    def delay_next(
        self, path_fragment: str, seconds: float, count: int = 1, *, method: str | None = None
    ) -> None:
        """Hold the next ``count`` matching REST requests ``seconds`` before handling them.

        The request is still carried out afterwards, as a slow node would (a client that gave
        up does not undo it).
        """
        self._delays.append(_Injection(path_fragment, method, count, delay=seconds))

    def answer_next(
        self,
        path_fragment: str,
        body: bytes | str,
        status: int = 200,
        count: int = 1,
        *,
        method: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Answer the next ``count`` matching REST requests with ``body`` verbatim.

        For what no Lavalink would send (malformed JSON, a wrong shape) and what a newer one
        might (extra fields). The request is not carried out.
        """
        raw = body.encode() if isinstance(body, str) else body
        self._answers.append(
            _Injection(
                path_fragment, method, count, status=status, body=raw, content_type=content_type
            )
        )

    async def send_raw(self, text: str) -> None:
        """Send ``text`` verbatim to every attached websocket (not recorded in :attr:`sent`)."""
        for session in self.sessions.values():
            if session._outbox is not None:
                session._outbox.put_nowait(text)

    # -- load generation (benchmarks; not something a node does) -------------------------------

    async def write_frames(self, session_id: str, chunks: tuple[bytes, ...]) -> int:
        """Load generation for the benchmarks, not Lavalink behaviour: write ``chunks`` of
        ready-made websocket frames (unmasked text frames, see :func:`websocket_frames`) to
        ``session_id``'s socket as fast as it takes them; returns the bytes written.

        The node's own frames are not held back meanwhile (run it with a long
        ``player_update_interval`` and ``stats_interval`` for a clean stream, and write only
        once the client has what the node sent before), and the written frames are not
        recorded in :attr:`sent`.
        """
        session = self.sessions.get(session_id)
        if session is None or session._transport is None or session._outbox is None:
            raise KeyError(session_id)
        transport, protocol = session._transport, session._protocol
        written = 0
        for chunk in chunks:
            if transport.is_closing():
                break
            transport.write(chunk)
            written += len(chunk)
            if transport.get_write_buffer_size() > _HIGH_WATER:
                await protocol._drain_helper()  # what aiohttp's own writer awaits
        return written

    def _require_player(self, guild_id: int | str) -> Player:
        player = self.player(guild_id)
        if player is None:
            raise AssertionError(f"no player for guild {guild_id}")
        return player

    # -- outbound messages -------------------------------------------------------------------

    def _emit(self, session: Session, message: dict[str, Any]) -> None:
        """Send now, queue (paused: events and stats), or drop (paused: playerUpdate)."""
        if self.sessions.get(session.id) is not session:
            return
        if session._outbox is not None and not session.paused:
            if self.keep_sent:
                self.sent.append((session.id, message))
            for hook in self.sent_hooks:
                hook(session.id, message)
            session._outbox.put_nowait(json.dumps(message, separators=(",", ":")))
        elif message.get("op") in ("event", "stats"):
            session.queued.append(message)

    def _emit_event(self, player: Player, type: str, **fields: Any) -> None:
        message = {"op": "event", "type": type, "guildId": str(player.guild_id), **fields}
        self._emit(player.session, message)

    def _emit_player_update(self, player: Player) -> None:
        message = {"op": "playerUpdate", "guildId": str(player.guild_id), "state": player.state()}
        self._emit(player.session, message)

    async def _writer(self, ws: web.WebSocketResponse, outbox: asyncio.Queue[str | None]) -> None:
        """One writer per socket keeps frames in exactly the order they were emitted."""
        while (text := await outbox.get()) is not None:
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("fake Lavalink: send failed: %r", exc)
                return

    def _stats_json(self, session: Session | None) -> dict[str, Any]:
        players = [p for s in self.sessions.values() for p in s.players.values()]
        playing = [p for p in players if p.track is not None and not p.paused]
        stats: dict[str, Any] = {
            "players": len(players),
            "playingPlayers": len(playing),
            "uptime": int((time.monotonic() - self._started_at) * 1000),
            "memory": {
                "free": 100_000_000,
                "used": 150_000_000,
                "allocated": 250_000_000,
                "reservable": 1_073_741_824,
            },
            "cpu": {"cores": 4, "systemLoad": self.system_load, "lavalinkLoad": 0.01},
        }
        if session is not None:
            # WS only: present, null until a playing player of *this* session has a full
            # minute of frame data. The fake counts a minute of uptime as that minute.
            mine = [p for p in playing if p.session is session]
            full = time.monotonic() - self._started_at >= 60
            if mine and full:
                sent = sum(3000 if p.connected else 0 for p in mine) // len(mine)
                stats["frameStats"] = {"sent": sent, "nulled": 0, "deficit": 3000 - sent}
            else:
                stats["frameStats"] = None
        return stats

    async def _stats_loop(self, session: Session) -> None:
        while True:
            await asyncio.sleep(self.stats_interval)
            self._emit(session, {"op": "stats", **self._stats_json(session)})

    async def _player_updates(self, player: Player, delay: float = 0.0) -> None:
        """Lavalink's ``scheduleAtFixedRate(sendPlayerUpdate, 0, playerUpdateInterval)``, one
        per player from its track's start: fixed rate (a late report does not push the next
        ones back), each report its own websocket message. ``delay``: the first report's."""
        loop = asyncio.get_running_loop()
        if delay > 0:
            await asyncio.sleep(delay)
        due = loop.time()
        while True:
            self._emit_player_update(player)
            due += self.player_update_interval
            await asyncio.sleep(max(0.0, due - loop.time()))

    # -- websocket ---------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        record = request[_RECORD]
        if self._refuse > 0:
            self._refuse -= 1
            return web.Response(status=self._refuse_status)
        if request.headers.get("Authorization") != self.password:
            return web.Response(status=401)
        user_id = request.headers.get("User-Id", "")
        if not user_id.isdigit() or int(user_id) == 0:
            return web.Response(status=400)
        resume_id = request.headers.get("Session-Id")
        session = self.sessions.get(resume_id) if resume_id else None
        resumed = (
            session is not None and session.paused and session.resuming and not session._claimed
        )
        if resumed:
            assert session is not None
            session._claimed = True
            if session._expiry is not None:
                session._expiry.cancel()
                session._expiry = None
        ws = web.WebSocketResponse(autoping=True)
        ws.headers["Session-Resumed"] = "true" if resumed else "false"
        ws.headers["Lavalink-Api-Version"] = API_VERSION
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            if resumed and session is not None:
                session._claimed = False
                self._pause(session)
            raise
        record.status = 101
        if resumed and session is not None:
            self._attach(session, ws, request)
            self._emit(session, {"op": "ready", "resumed": True, "sessionId": session.id})
            backlog, session.queued = session.queued, []
            for message in backlog:
                self._emit(session, message)
            for player in session.players.values():
                self._emit_player_update(player)
        else:
            session = self._new_session(int(user_id), request.headers.get("Client-Name"))
            self._attach(session, ws, request)
            self._emit(session, {"op": "ready", "resumed": False, "sessionId": session.id})
            self._emit(session, {"op": "stats", **self._stats_json(session)})
            session._stats = self._spawn(self._stats_loop(session))
        try:
            async for msg in ws:
                # Lavalink v4 ignores client messages ("does not support websocket messages").
                log.debug("fake Lavalink: ignoring client frame %r", msg.data)
        finally:
            self._detach(session, ws)
        return ws

    def _new_session(self, user_id: int, client_name: str | None) -> Session:
        alphabet = string.ascii_lowercase + string.digits
        while (sid := "".join(random.choices(alphabet, k=16))) in self.sessions:
            pass
        self._created += 1
        session = Session(id=sid, user_id=user_id, client_name=client_name, created=self._created)
        self.sessions[sid] = session
        return session

    def _attach(self, session: Session, ws: web.WebSocketResponse, request: web.Request) -> None:
        outbox: asyncio.Queue[str | None] = asyncio.Queue()
        session._ws = ws
        session._transport = request.transport
        session._protocol = request.protocol
        session._outbox = outbox
        session._writer = self._spawn(self._writer(ws, outbox))
        session.paused = False
        session._claimed = False

    def _detach(self, session: Session, ws: web.WebSocketResponse) -> None:
        """The socket closed (any reason): pause a resumable session, else destroy it."""
        if session._ws is not ws:
            return
        if session._outbox is not None:
            session._outbox.put_nowait(None)
        session._ws = session._transport = session._outbox = session._writer = None
        session._protocol = None
        if self.sessions.get(session.id) is not session:
            return
        if session.resuming and session.timeout > 0:
            self._pause(session)
        else:
            self._destroy_session(session)

    def _pause(self, session: Session) -> None:
        session.paused = True
        loop = asyncio.get_running_loop()
        session._expiry = loop.call_later(session.timeout, self._expire, session)

    def _expire(self, session: Session) -> None:
        session._expiry = None
        if session.paused and self.sessions.get(session.id) is session and not session._claimed:
            log.info("fake Lavalink: session %s not resumed in time", session.id)
            self._destroy_session(session)

    def _destroy_session(self, session: Session) -> None:
        """Shut a session down: players destroyed, timers stopped, forgotten."""
        for player in list(session.players.values()):
            self._destroy_player(player, emit=False)
        for task in (session._stats, session._writer):
            if task is not None:
                task.cancel()
        if session._expiry is not None:
            session._expiry.cancel()
        if session._outbox is not None:
            session._outbox.put_nowait(None)
        session._ws = session._transport = session._outbox = None
        session._stats = session._writer = session._expiry = None
        session.paused = True
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]

    # -- player mechanics --------------------------------------------------------------------

    def _reschedule(self, player: Player) -> None:
        """Re-arm the end-of-track and cleanup timers after any change to the clock."""
        if player._end_timer is not None:
            player._end_timer.cancel()
            player._end_timer = None
        loop = asyncio.get_running_loop()
        limit = player.stop_at
        if player.running and limit is not None and player.rate > 0:
            remaining_ms = max(0.0, (limit - player._exact_position()) / player.rate)
            player._end_timer = loop.call_later(remaining_ms / 1000.0, self._finish, player)
        if player.track is not None and not player.connected:
            if player._cleanup_timer is None:
                player._cleanup_timer = loop.call_later(
                    self.cleanup_after, self._end_track, player, "cleanup"
                )
        elif player._cleanup_timer is not None:
            player._cleanup_timer.cancel()
            player._cleanup_timer = None

    def _finish(self, player: Player) -> None:
        player._end_timer = None
        limit = player.stop_at
        if player.track is None or limit is None:
            return
        if player._exact_position() < limit:  # the loop's clock woke us a hair early
            self._reschedule(player)
            return
        self._end_track(player, "finished")

    def _end_track(self, player: Player, reason: str) -> None:
        """``TrackEndEvent`` with the ended track, then the player is idle."""
        track = player.track_object()
        self._clear_track(player)
        if track is not None:
            self._emit_event(player, "TrackEndEvent", track=track, reason=reason)

    def _clear_track(self, player: Player) -> None:
        player._rebase()
        player.track = None
        player.encoded = None
        player.end_time = None
        player.user_data = {}
        player._anchor_pos = 0.0
        for timer in (player._end_timer, player._cleanup_timer):
            if timer is not None:
                timer.cancel()
        player._end_timer = player._cleanup_timer = None
        if player._updates is not None:
            player._updates.cancel()
            player._updates = None

    def _play(
        self,
        player: Player,
        encoded: str,
        info: TrackInfo,
        *,
        position: int | None,
        user_data: dict[str, Any] | None,
        end_time: int | None,
    ) -> None:
        """Start a track: the old one ends ``replaced`` first, then ``TrackStartEvent``."""
        if player.track is not None:
            self._end_track(player, "replaced")
        start = max(0, position) if position is not None else 0
        player.track = info  # as decoded from ``encoded``; the start position is in the clock
        player.encoded = encoded
        player.user_data = dict(user_data) if user_data else {}
        player.end_time = end_time
        player.stalled = False
        player._anchor_pos = float(start)
        player._anchor_t = time.monotonic()
        self._emit_event(player, "TrackStartEvent", track=player.track_object())
        player._updates = self._spawn(self._player_updates(player))
        self._reschedule(player)

    def _destroy_player(self, player: Player, emit: bool = True) -> None:
        if emit and player.track is not None:
            self._end_track(player, "stopped")
        if emit and player.connected:
            self._emit_event(player, "WebSocketClosedEvent", code=1000, reason="", byRemote=False)
        self._clear_track(player)
        player.connected = False
        player.session.players.pop(player.guild_id, None)

    def _voice_lost(self, player: Player, code: int, reason: str, by_remote: bool) -> None:
        """The Discord voice socket closed: frames stop, then the event and a playerUpdate."""
        player._rebase()
        player.connected = False
        self._reschedule(player)
        self._emit_event(
            player, "WebSocketClosedEvent", code=code, reason=reason, byRemote=by_remote
        )
        self._emit_player_update(player)

    @staticmethod
    def _voice_reconnects(player: Player, voice: dict[str, str]) -> bool:
        """Whether these voice values start a connect attempt (not a no-op, not a 500)."""
        return voice["channelId"].isdigit() and not (player.connected and player.voice == voice)

    def _apply_voice(self, player: Player, voice: dict[str, str]) -> None:
        """Connect unless the same four values already hold a live connection."""
        if not voice["channelId"].isdigit():
            raise _ApiError(500, f'For input string: "{voice["channelId"]}"')
        if player.connected and player.voice == voice:
            return
        if player.connected:  # the old Discord voice socket is closed by Lavalink itself
            self._voice_lost(player, 1000, "", False)
        player._rebase()
        player.voice = dict(voice)
        code = self.voice_check(player.guild_id, dict(voice)) if self.voice_check else None
        if code is None:
            player.connected = True
            self._reschedule(player)
            self._emit_player_update(player)
        else:
            player.connected = False
            self._voice_lost(player, code, "", True)

    # -- HTTP plumbing -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body_json: object | None = None
        if request.can_read_body:
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body_json = json.loads(raw) if raw else None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            json=body_json,
        )
        self.requests.append(record)
        request[_RECORD] = record
        response = await self._dispatch(request, handler)
        if not response.prepared:
            response.headers["Lavalink-Api-Version"] = API_VERSION
        if record.status == 0:
            record.status = response.status
        return response

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v4/websocket":
            return await handler(request)
        auth = request.headers.get("Authorization")
        if auth is None:
            return web.Response(status=401)
        if auth != self.password:
            return web.Response(status=403)
        for delay in self._delays:
            if delay.matches(request):
                delay.count -= 1
                self._delays = [d for d in self._delays if d.count > 0]
                await asyncio.sleep(delay.delay)
                break
        for answer in self._answers:
            if answer.matches(request):
                answer.count -= 1
                self._answers = [a for a in self._answers if a.count > 0]
                return web.Response(
                    status=answer.status, body=answer.body, content_type=answer.content_type
                )
        for failure in self._failures:
            if failure[0] in request.path and failure[2] > 0:
                failure[2] -= 1
                self._failures = [f for f in self._failures if f[2] > 0]
                return self._error(request, failure[1], "Injected failure (FakeLavalink.fail_next)")
        try:
            return await handler(request)
        except _ApiError as exc:
            return self._error(request, exc.status, exc.message)
        except web.HTTPMethodNotAllowed:
            return self._error(request, 405, f"Request method '{request.method}' is not supported")
        except web.HTTPNotFound:
            return self._error(request, 404, f"No static resource {request.path.lstrip('/')}.")

    def _error(self, request: web.Request, status: int, message: str) -> web.Response:
        """Spring's error body; ``trace`` only with ``?trace=true``."""
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        body: dict[str, Any] = {
            "timestamp": _now_ms(),
            "status": status,
            "error": phrase,
        }
        if request.query.get("trace", "").lower() == "true":
            body["trace"] = (
                "org.springframework.web.server.ResponseStatusException: "
                f'{status} {phrase} "{message}"\n'
                "\tat lavalink.server.FakeLavalink.handle(FakeLavalink.kt:1)\n"
            )
        body["message"] = message
        body["path"] = request.path
        return _json_response(body, status=status)

    async def _json_body(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            raise _ApiError(415, f"Content-Type '{request.content_type}' is not supported")
        raw = await request.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise _ApiError(400, _BAD_BODY) from None

    def _session_for(self, request: web.Request) -> Session:
        """The session of the route; a paused one is not addressable (404) until resumed."""
        session = self.sessions.get(request.match_info["sid"])
        if session is None or session.paused:
            raise _ApiError(404, "Session not found")
        return session

    @staticmethod
    def _guild_id(request: web.Request) -> int:
        raw = request.match_info["gid"]
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not raw.lstrip("-").isdigit() or not -(2**63) <= value < 2**63:
            raise _ApiError(
                400,
                "Failed to convert value of type 'java.lang.String' to required type 'long'; "
                f'For input string: "{raw}"',
            )
        return value

    # -- REST: info, stats, tracks -----------------------------------------------------------

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.version, content_type="text/plain", charset="utf-8")

    def _version_json(self) -> dict[str, Any]:
        core, _, pre = self.version.partition("-")
        parts = core.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            major, minor, patch = (int(p) for p in parts)
        else:
            major = minor = patch = 0
        # Code: ``build`` is listed in the docs but not emitted by 4.2.2.
        return {
            "semver": self.version,
            "major": major,
            "minor": minor,
            "patch": patch,
            "preRelease": pre or None,
        }

    async def _info(self, request: web.Request) -> web.StreamResponse:
        return _json_response(
            {
                "version": self._version_json(),
                "buildTime": 1772839275000,
                "git": {"branch": "master", "commit": "e8503fd", "commitTime": 1772839275000},
                "jvm": "17.0.12",
                "lavaplayer": "2.2.6",
                "sourceManagers": list(self.source_managers),
                "filters": list(FILTER_NAMES),
                "plugins": [dict(plugin) for plugin in self.plugins],
            }
        )

    async def _rest_stats(self, request: web.Request) -> web.StreamResponse:
        return _json_response(self._stats_json(None))  # REST: no frameStats key at all

    async def _loadtracks(self, request: web.Request) -> web.StreamResponse:
        identifier = request.query.get("identifier")
        if identifier is None:
            raise _ApiError(
                400,
                "Required request parameter 'identifier' for method parameter type String "
                "is not present",
            )
        return web.Response(
            body=self.catalogue.body(identifier), content_type="application/json", charset="utf-8"
        )

    @staticmethod
    def _decode(encoded: str) -> TrackInfo:
        try:
            info = decode_track(encoded)
        except TrackDecodeError:
            raise _ApiError(500, _DECODE_FAILED) from None
        if info.source_name not in SOURCE_MANAGERS:
            raise _ApiError(500, _DECODE_FAILED)
        return info

    async def _decodetrack(self, request: web.Request) -> web.StreamResponse:
        encoded = request.query.get("encodedTrack", request.query.get("track"))
        if encoded is None:
            raise _ApiError(400, "No track to decode provided")
        return _json_response(track_json(self._decode(encoded), encoded=encoded))

    async def _decodetracks(self, request: web.Request) -> web.StreamResponse:
        body = await self._json_body(request)
        if not isinstance(body, list) or not all(isinstance(x, str) for x in body):
            raise _ApiError(400, _BAD_BODY)
        if not body:
            raise _ApiError(400, "No tracks to decode provided")
        return _json_response([track_json(self._decode(e), encoded=e) for e in body])

    # -- REST: sessions and players ----------------------------------------------------------

    async def _get_players(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        return _json_response([p.to_json() for p in session.players.values()])

    async def _get_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        player = session.players.get(self._guild_id(request))
        if player is None:
            raise _ApiError(404, "Player not found")
        return _json_response(player.to_json())

    async def _delete_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        player = session.players.get(self._guild_id(request))
        if player is not None:
            self._destroy_player(player)
        return web.Response(status=204)

    async def _patch_session(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise _ApiError(400, _BAD_BODY)
        resuming = body.get("resuming", _OMIT)
        timeout = body.get("timeout", _OMIT)
        if (resuming is not _OMIT and not isinstance(resuming, bool)) or (
            timeout is not _OMIT and not _is_int(timeout)
        ):
            raise _ApiError(400, _BAD_BODY)
        if resuming is not _OMIT:
            session.resuming = resuming
        if timeout is not _OMIT:
            session.timeout = timeout  # no validation: <= 0 means destroyed at once
        return _json_response({"resuming": session.resuming, "timeout": session.timeout})

    async def _routeplanner_status(self, request: web.Request) -> web.StreamResponse:
        if self.route_planner is None:
            return web.Response(status=204)  # no ratelimit.ipBlocks configured
        return _json_response(self.route_planner.status())

    async def _routeplanner_free_address(self, request: web.Request) -> web.StreamResponse:
        # Spring reads the body before the handler runs: a bad body is a 400 even when disabled.
        body = await self._json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("address"), str):
            raise _ApiError(400, _BAD_BODY)
        planner = self.route_planner
        if planner is None:
            raise _ApiError(500, _PLANNER_DISABLED)
        address = body["address"]
        try:
            parsed = ipaddress.ip_address(address.strip())
        except ValueError:
            # InetAddress.getByName -> UnknownHostException (the fake resolves no names).
            raise _ApiError(400, f"Invalid address: {address}: Name or service not known") from None
        planner.free(parsed)
        return web.Response(status=204)

    async def _routeplanner_free_all(self, request: web.Request) -> web.StreamResponse:
        if self.route_planner is None:
            raise _ApiError(500, _PLANNER_DISABLED)
        self.route_planner.failing.clear()
        return web.Response(status=204)

    async def _patch_player(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        guild_id = self._guild_id(request)
        body = await self._json_body(request)
        update = _PlayerUpdate.parse(body)
        no_replace = _query_bool(request, "noReplace")
        player = session.players.get(guild_id)
        if player is None:
            player = Player(guild_id=guild_id, session=session, _fake=self)
            session.players[guild_id] = player
        if update.voice is not _OMIT:
            if self.voice_connect_delay > 0 and self._voice_reconnects(player, update.voice):
                # The real node blocks this request until the voice connect attempt is over.
                await asyncio.sleep(self.voice_connect_delay)
            self._apply_voice(player, update.voice)
        new_track = update.new_track
        if not new_track and update.paused is not _OMIT and update.paused != player.paused:
            player._rebase()
            player.paused = update.paused
            self._reschedule(player)
        if not new_track and update.user_data is not _OMIT and player.track is not None:
            player.user_data = dict(update.user_data)
        if update.volume is not _OMIT:
            player.volume = min(1000, max(0, update.volume))
        if not new_track and update.position is not _OMIT:
            self._seek(player, update.position)
        if not new_track and update.end_time not in (_OMIT, None) and player.track is not None:
            player._rebase()
            player.end_time = update.end_time
            self._reschedule(player)
        if update.filters is not _OMIT:
            player._rebase()
            player.filters = _apply_filters(update.filters)
            self._reschedule(player)
            self._emit_player_update(player)
        if update.track_given:
            if not new_track:
                if player.track is not None:
                    self._end_track(player, "stopped")
            elif not (no_replace and player.track is not None):
                self._start_from_update(player, update)
        return _json_response(player.to_json())

    def _seek(self, player: Player, position: int) -> None:
        """Seek the current track; ignored when idle or for non-seekable (stream) tracks."""
        if player.track is None or player.track.is_stream:
            return
        player._anchor_pos = float(max(0, position))
        player._anchor_t = time.monotonic()
        limit = player.stop_at
        if limit is not None:
            player._anchor_pos = min(player._anchor_pos, float(limit))
        self._reschedule(player)
        self._emit_player_update(player)

    def _start_from_update(self, player: Player, update: _PlayerUpdate) -> None:
        player._rebase()
        player.paused = update.paused if update.paused is not _OMIT else False
        self._reschedule(player)
        if update.encoded is not _OMIT:
            encoded: str = update.encoded
            info = self._decode(encoded)
        else:
            encoded, info = self._resolve(update.identifier)
        position = update.position if update.position is not _OMIT else None
        user_data = update.user_data if update.user_data is not _OMIT else None
        end_time = update.end_time if update.end_time not in (_OMIT, None) else None
        self._play(player, encoded, info, position=position, user_data=user_data, end_time=end_time)

    def _resolve(self, identifier: str) -> tuple[str, TrackInfo]:
        result = self.catalogue.load(identifier)
        load_type = result["loadType"]
        if load_type == "track":
            encoded = result["data"]["encoded"]
            return encoded, decode_track(encoded)
        if load_type in ("playlist", "search"):
            raise _ApiError(400, "Cannot play a playlist or search result")
        if load_type == "error":
            raise _ApiError(400, result["data"]["message"])
        raise _ApiError(400, "No matches found for identifier")


# --- PATCH player body ----------------------------------------------------------------------


@dataclass
class _PlayerUpdate:
    """A validated Update Player body; ``_OMIT`` marks absent fields (distinct from null)."""

    track_given: bool = False
    encoded: Any = _OMIT
    identifier: Any = _OMIT
    user_data: Any = _OMIT
    position: Any = _OMIT
    end_time: Any = _OMIT
    volume: Any = _OMIT
    paused: Any = _OMIT
    filters: Any = _OMIT
    voice: Any = _OMIT

    @property
    def new_track(self) -> bool:
        """A track to start (``encoded`` non-null or ``identifier``); null encoded = stop."""
        return (self.encoded is not _OMIT and self.encoded is not None) or (
            self.identifier is not _OMIT
        )

    @classmethod
    def parse(cls, body: Any) -> _PlayerUpdate:
        """Step 1 of the update: every 400 here leaves the player untouched."""
        if not isinstance(body, dict):
            raise _ApiError(400, _BAD_BODY)
        update = cls()
        update._parse_track(body)
        update._parse_scalars(body)
        voice = body.get("voice", _OMIT)
        if voice is not _OMIT:
            if not isinstance(voice, dict):
                raise _ApiError(400, _BAD_BODY)
            values = {k: voice.get(k) for k in _VOICE_KEYS}
            if not all(isinstance(v, str) and v.strip() for v in values.values()):
                raise _ApiError(400, _VOICE_MESSAGE)
            update.voice = values
        filters = body.get("filters", _OMIT)
        if filters is not _OMIT:
            _validate_filters(filters)
            update.filters = filters
        return update

    def _parse_track(self, body: dict[str, Any]) -> None:
        track = body.get("track", _OMIT)
        legacy = [k for k in ("encodedTrack", "identifier") if k in body]
        if track is not _OMIT:
            if legacy:
                raise _ApiError(400, "Cannot specify both track and encodedTrack/identifier")
            if not isinstance(track, dict):
                raise _ApiError(400, _BAD_BODY)
            self.encoded = track.get("encoded", _OMIT)
            self.identifier = track.get("identifier", _OMIT)
            self.user_data = track.get("userData", _OMIT)
        else:
            self.encoded = body.get("encodedTrack", _OMIT)
            self.identifier = body.get("identifier", _OMIT)
        if self.encoded is not _OMIT and self.identifier is not _OMIT:
            raise _ApiError(400, "Cannot specify both encodedTrack and identifier")
        if self.encoded not in (_OMIT, None) and not isinstance(self.encoded, str):
            raise _ApiError(400, _BAD_BODY)
        if self.identifier is not _OMIT and not isinstance(self.identifier, str):
            raise _ApiError(400, _BAD_BODY)
        if self.user_data is not _OMIT and not isinstance(self.user_data, dict):
            raise _ApiError(400, _BAD_BODY)
        self.track_given = self.encoded is not _OMIT or self.identifier is not _OMIT

    def _parse_scalars(self, body: dict[str, Any]) -> None:
        for key, attr in (("position", "position"), ("volume", "volume")):
            value = body.get(key, _OMIT)
            if value is not _OMIT and not _is_int(value):
                raise _ApiError(400, _BAD_BODY)
            setattr(self, attr, value)
        end_time = body.get("endTime", _OMIT)
        if end_time not in (_OMIT, None):
            if not _is_int(end_time):
                raise _ApiError(400, _BAD_BODY)
            if end_time <= 0:
                raise _ApiError(400, "End time must be greater than 0")
        self.end_time = end_time
        paused = body.get("paused", _OMIT)
        if paused is not _OMIT and not isinstance(paused, bool):
            raise _ApiError(400, _BAD_BODY)
        self.paused = paused


def _validate_filters(filters: Any) -> None:
    """Deserialisation-level checks only: the real node does not range-check values."""
    if not isinstance(filters, dict):
        raise _ApiError(400, _BAD_BODY)
    if "volume" in filters and not _is_number(filters["volume"]):
        raise _ApiError(400, _BAD_BODY)  # volume/equalizer must not be null
    if "equalizer" in filters:
        bands = filters["equalizer"]
        if not isinstance(bands, list) or not all(
            isinstance(b, dict)
            and _is_int(b.get("band"))
            and ("gain" not in b or _is_number(b["gain"]))
            for b in bands
        ):
            raise _ApiError(400, _BAD_BODY)
    for name in _OBJECT_FILTER_DEFAULTS:
        value = filters.get(name)
        if value is not None and (
            not isinstance(value, dict) or not all(_is_number(v) for v in value.values())
        ):
            raise _ApiError(400, _BAD_BODY)
    plugin = filters.get("pluginFilters")
    if plugin is not None and not isinstance(plugin, dict):
        raise _ApiError(400, _BAD_BODY)


def _apply_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The replacement filter chain, as a node reports it back.

    Sub-objects take defaults for omitted fields (not the previous values); a band without
    ``gain`` gets 1.0; duplicate bands: last wins; a band outside 0..14 is a 500.
    """
    chain: dict[str, Any] = {}
    if "volume" in filters:
        chain["volume"] = float(filters["volume"])
    if "equalizer" in filters:
        bands: dict[int, float] = {}
        for band in filters["equalizer"]:
            if not 0 <= band["band"] <= 14:
                raise _ApiError(500, f"Index {band['band']} out of bounds for length 15")
            bands[band["band"]] = float(band.get("gain", 1.0))
        chain["equalizer"] = [{"band": b, "gain": g} for b, g in sorted(bands.items())]
    for name, defaults in _OBJECT_FILTER_DEFAULTS.items():
        value = filters.get(name)
        if value is not None:
            chain[name] = {k: float(value.get(k, v)) for k, v in defaults.items()}
    if not math.isfinite(chain.get("volume", 1.0)):
        raise _ApiError(400, _BAD_BODY)
    return chain
