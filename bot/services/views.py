"""Read-only pictures of the service's state, handed to commands, ``/doctor`` and metrics.

Plain frozen values: whoever renders them cannot change the guild they came from.
"""

from __future__ import annotations

import dataclasses

from bot.storage import GuildSettings, LoopMode, PlayedTrack, PlayerStatus, QueueEntry

from .errors import PlaybackProblem, QueueFull, SeekRefused, ShareFull, TrackTooLong

__all__ = [
    "Cleared",
    "ControllerView",
    "HistoryView",
    "LeaveOutcome",
    "LeftOut",
    "Moved",
    "NowPlayingView",
    "PlayOutcome",
    "PlayerSettings",
    "PlayerState",
    "PreviousOutcome",
    "QueueView",
    "Removed",
    "SeekOutcome",
    "ServiceStats",
    "SettingsView",
    "Shuffled",
    "SkipOutcome",
    "StopOutcome",
    "VoteCounted",
]


@dataclasses.dataclass(frozen=True, slots=True)
class LeftOut:
    """Tracks of a playlist that were not queued, and the limit that kept them out."""

    count: int
    why: TrackTooLong | ShareFull | QueueFull


@dataclasses.dataclass(frozen=True, slots=True)
class PlayOutcome:
    added: tuple[QueueEntry, ...]
    started: bool
    """The first added track started playing now (the player was idle)."""
    position: int
    """1-based place of the first added track among the upcoming ones (0 when it started)."""
    playlist: str | None = None
    left_out: tuple[LeftOut, ...] = ()
    """A playlist's tracks kept out by the server's limits, by limit."""


@dataclasses.dataclass(frozen=True, slots=True)
class SettingsView:
    """A server's ``/settings``, and the bot-wide idle timeout its ``None`` stands for."""

    settings: GuildSettings
    default_idle_timeout_s: float
    """The process's ``IDLE_TIMEOUT`` (0: never leaves on its own)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SkipOutcome:
    skipped: QueueEntry
    next: QueueEntry | None
    waiting: bool = False
    """Out of voice: ``next`` waits for a /play to bring the bot back."""
    problem: PlaybackProblem | None = None
    """The skip was stored but Lavalink did not follow; says what happened instead."""
    passed: int = 0
    """Upcoming entries skipped along with the current one (``/skip to``)."""
    vote: VoteCounted | None = None
    """The vote that made this skip, when it was one (see :mod:`.permissions`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class VoteCounted:
    """A vote to skip ``entry``: ``votes`` of the ``needed`` so far (passed when equal)."""

    entry: QueueEntry
    votes: int
    needed: int
    again: bool = False
    """The voter had already voted for this track; the count is unchanged."""

    @property
    def passed(self) -> bool:
        return self.votes >= self.needed


@dataclasses.dataclass(frozen=True, slots=True)
class QueueView:
    current: QueueEntry | None
    position_ms: int
    paused: bool
    interrupted: bool
    upcoming: tuple[QueueEntry, ...]
    """Upcoming entries in order, from place ``offset + 1`` (a page of them)."""
    total: int
    """Number of upcoming entries."""
    total_ms: int
    """Length of all upcoming entries that are not streams."""
    volume: int = 100
    loop_mode: LoopMode = LoopMode.OFF
    filter_name: str = "off"
    """A :data:`~.guild.FILTER_PRESETS` name, or ``custom``."""
    offset: int = 0
    """How many upcoming entries come before ``upcoming[0]``."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceStats:
    """The service's state at one moment, for metrics."""

    guilds: int
    in_voice: int
    playing: int
    paused: int
    queued_tracks: int
    longest_queue: int
    restores: dict[str, int]
    """Guilds brought back after a restart or a lost node, by kind (``resumed``/``rebuilt``)."""
    failovers: int
    repairs: dict[str, int]
    """Divergences the reconciler set about repairing, by kind."""


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerSettings:
    """A guild's playback settings after a change."""

    current: QueueEntry | None
    paused: bool
    volume: int
    loop_mode: LoopMode
    filter_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerState:
    """A guild's player as the service holds it, read-only (for ``/doctor``)."""

    status: PlayerStatus
    current: QueueEntry | None
    queued: int
    """Upcoming entries, the current one not counted."""
    voice_channel_id: int | None
    """The voice channel the bot plays in; ``None`` while out of voice."""
    text_channel_id: int | None
    node: str | None
    """The Lavalink node holding the player (also one that dropped and may come back)."""
    paused: bool
    volume: int
    loop_mode: LoopMode
    filter_name: str


# --- /nowplaying, /seek, /stop, /leave (services/controls.py) ---------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class NowPlayingView:
    """The current track and where it stands, for ``/nowplaying``."""

    current: QueueEntry
    position_ms: int
    paused: bool
    interrupted: bool
    """Out of voice or without a music server: it plays again after a /play (or the node)."""
    next: QueueEntry | None
    queued: int
    """Upcoming entries, the current one not counted."""
    artwork_url: str | None
    """Decoded from the entry's track (not stored); ``None``: the source gives none."""
    volume: int
    loop_mode: LoopMode
    filter_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerView:
    """What the now-playing controller shows: the track, its state, the settings."""

    current: QueueEntry
    artwork_url: str | None
    paused: bool
    waiting: bool
    """The music stopped with the music server and plays on when a node is back."""
    ends_at_s: int | None
    """Unix time the track ends at if nothing changes (its remaining length at the filter's
    speed); ``None`` for a stream, a paused or a waiting track. A time, not a countdown, so
    the message needs no edit while it plays."""
    volume: int
    loop_mode: LoopMode
    filter_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class SeekOutcome:
    entry: QueueEntry
    position_ms: int
    """Where the track stands now: the new position, or the old one after ``problem``."""
    paused: bool
    waiting: bool = False
    """Out of voice: the track starts from ``position_ms`` once a /play brings the bot back."""
    problem: SeekRefused | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StopOutcome:
    cleared: int
    """Entries removed, the current one included."""
    problem: PlaybackProblem | None = None
    """Stored, but Lavalink did not stop the track (so the bot left voice)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeaveOutcome:
    channel_id: int | None
    """The voice channel the bot left (``None``: it was in none, only the queue went)."""
    cleared: int


# --- queue edits (positions count the upcoming entries from 1) --------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Removed:
    entries: tuple[QueueEntry, ...]
    first: int
    last: int


@dataclasses.dataclass(frozen=True, slots=True)
class Moved:
    entry: QueueEntry
    source: int
    target: int


@dataclasses.dataclass(frozen=True, slots=True)
class Shuffled:
    count: int
    next: QueueEntry
    """The entry that now plays next."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cleared:
    count: int
    current: QueueEntry | None
    """The track that plays on, if any."""


# --- /history and /previous (services/history.py) ---------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryView:
    tracks: tuple[PlayedTrack, ...]
    """The last tracks that played, newest first."""


@dataclasses.dataclass(frozen=True, slots=True)
class PreviousOutcome:
    """``/previous``: a played track is the current one again, from its start."""

    track: QueueEntry
    pushed_back: QueueEntry | None
    """The track that was current, now first among the upcoming ones."""
    joined: bool
    """The bot was out of voice (or idle) and joined the caller's channel for it."""
    problem: PlaybackProblem | None = None
    """Stored, but Lavalink did not start it."""
