"""The typed records the repository takes and returns; no SQLAlchemy objects leave storage."""

from __future__ import annotations

import dataclasses
import enum

import msgspec

__all__ = [
    "ControllerMessage",
    "GuildSettings",
    "LoopMode",
    "NewEntry",
    "PlayedTrack",
    "PlayerRecord",
    "PlayerStatus",
    "QueueEntry",
    "StoredGuild",
    "StoredSession",
]


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSession:
    """A Lavalink session id as stored: ``key`` names the node and, for a process running
    some shards, its share (``host:port 0-1/4``); ``updated_at_ms`` is when it was stored."""

    key: str
    session_id: str
    updated_at_ms: int


class PlayerStatus(enum.StrEnum):
    IDLE = "idle"
    PLAYING = "playing"
    # The node was lost or the bot was disconnected: the queue is kept for a rebuild.
    INTERRUPTED = "interrupted"


class LoopMode(enum.StrEnum):
    """What happens when a track ends by itself."""

    OFF = "off"
    TRACK = "track"
    """Play the same entry again."""
    QUEUE = "queue"
    """The finished entry goes to the back of the queue."""


class NewEntry(msgspec.Struct, frozen=True):
    """A track about to be queued.

    The entry records are frozen msgspec structs rather than dataclasses: a shuffle or a
    re-key makes a copy of each of up to 10,000 entries with a new sort key, and a struct's
    copy costs a tenth of a frozen dataclass's (0.2 vs 2 µs).
    """

    encoded: str
    title: str
    author: str
    length_ms: int
    is_stream: bool
    uri: str | None
    requester_id: int


class QueueEntry(NewEntry, frozen=True):
    """A queued track as stored; ``id`` is stable for the entry's life."""

    id: int
    sort_key: int
    added_at_ms: int


class PlayedTrack(NewEntry, frozen=True):
    """A track that played in a guild (``/history``); ``id`` grows with each one recorded."""

    id: int
    played_at_ms: int
    """When it stopped being the current track (Unix ms)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerRecord:
    guild_id: int
    voice_channel_id: int | None = None
    text_channel_id: int | None = None
    current_entry_id: int | None = None
    position_ms: int = 0
    position_at_ms: int = 0
    paused: bool = False
    volume: int = 100
    status: PlayerStatus = PlayerStatus.IDLE
    loop_mode: LoopMode = LoopMode.OFF
    filters: str | None = None
    """The Lavalink filter set as JSON, ``None`` for none. Storage keeps it opaque: the service
    encodes and decodes it with ``bot.lavalink.Filters``, which owns its shape and ranges."""
    alone_since_ms: int | None = None
    """When every listener left the bot's voice channel (Unix ms); ``None`` while someone is
    there. Stored, so the idle timer outlives a restart instead of starting again."""
    alone_paused: bool = False
    """The bot paused because everyone left (not a user's pause): it resumes when one comes
    back."""


@dataclasses.dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a server's managers chose with ``/settings``; the defaults are how the bot behaves
    in a server that chose nothing."""

    guild_id: int
    dj_role_id: int | None = None
    """Members with this role (and members with Manage Server) change playback freely; others
    may queue, skip their own track and vote. ``None``: everyone in the channel may."""
    default_volume: int = 100
    announce: bool = True
    """Post the now-playing controller and notices at all."""
    announce_channel_id: int | None = None
    """Where they go; ``None``: the channel the music was asked for in."""
    always_on: bool = False
    """24/7: never leave voice for an empty channel or an ended queue."""
    idle_timeout_s: int | None = None
    """Seconds before leaving an empty channel or an ended queue; ``None``: the bot's
    configured IDLE_TIMEOUT."""
    max_queue_length: int = 10_000
    max_track_ms: int | None = None
    """Longest track that may be queued; ``None``: any length (streams are not limited)."""
    user_share_percent: int | None = None
    """Most of the queue one member's tracks may fill, in percent; ``None``: no limit."""
    vote_skip_percent: int = 50
    """A vote skip passes with votes from more than this share of the people listening
    (at most all of them): 50 means more than half."""
    fair_queue: bool = False
    """New tracks are interleaved round-robin by requester instead of appended."""


@dataclasses.dataclass(frozen=True, slots=True)
class StoredGuild:
    """A guild's player and its whole queue (current entry included), in order."""

    player: PlayerRecord
    entries: tuple[QueueEntry, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerMessage:
    """Where a guild's now-playing controller is posted, so that a restart edits and finally
    deletes that same message instead of leaving it behind."""

    guild_id: int
    channel_id: int
    message_id: int
