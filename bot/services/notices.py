"""What the bot tells a guild's text channel on its own, as typed values.

The service decides that the channel should hear something (the next track started, the
music server was lost) and hands one of these to :meth:`DiscordView.announce`; the words are
:mod:`bot.extensions.sentences`' business.
"""

from __future__ import annotations

import dataclasses

from .errors import PlaybackProblem

__all__ = [
    "Announcement",
    "BackPlaying",
    "ChannelGone",
    "LeftAlone",
    "LeftIdle",
    "NodeLostNotice",
    "PlaybackTrouble",
    "QueueFinished",
    "RejoinFailed",
    "StoppedUnsaved",
    "StuckSkipped",
    "StuckUnsaved",
    "TrackFailed",
    "VoiceLost",
    "VoiceUnstable",
    "VoteSkipped",
]


@dataclasses.dataclass(frozen=True, slots=True)
class QueueFinished:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class TrackFailed:
    """Lavalink reported an exception for a track; ``message`` is its own, if any."""

    title: str
    message: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class StoppedUnsaved:
    """A track ended, but the move to the next one could not be stored."""

    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class StuckSkipped:
    title: str
    problem: PlaybackProblem | None = None
    """The skip was stored but Lavalink did not follow."""


@dataclasses.dataclass(frozen=True, slots=True)
class StuckUnsaved:
    """A track got stuck and the skip past it could not be stored."""

    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlaybackTrouble:
    """A move to the next track was stored, but Lavalink did not follow."""

    problem: PlaybackProblem


@dataclasses.dataclass(frozen=True, slots=True)
class NodeLostNotice:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class BackPlaying:
    """Playback came back after a restart or a lost node."""

    title: str


@dataclasses.dataclass(frozen=True, slots=True)
class VoiceLost:
    """Someone disconnected the bot from voice."""


@dataclasses.dataclass(frozen=True, slots=True)
class VoiceUnstable:
    """Discord kept refusing the voice connection in ``channel_id``; the bot left."""

    channel_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class RejoinFailed:
    """The voice connection in ``channel_id`` died and a re-join failed; the bot left."""

    channel_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelGone:
    """The voice channel the bot played in was deleted."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeftAlone:
    """Everyone left ``channel_id`` and nobody came back in time; the bot left too."""

    channel_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class LeftIdle:
    """The queue ended and nothing more was asked for in time; the bot left ``channel_id``."""

    channel_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class VoteSkipped:
    """A listener left, and the votes of those still listening were enough: ``title`` was
    skipped (``next_title``: what plays now, ``None``: the queue ended or waits)."""

    title: str
    next_title: str | None
    problem: PlaybackProblem | None = None


Announcement = (
    QueueFinished
    | TrackFailed
    | StoppedUnsaved
    | StuckSkipped
    | StuckUnsaved
    | PlaybackTrouble
    | NodeLostNotice
    | BackPlaying
    | VoiceLost
    | VoiceUnstable
    | RejoinFailed
    | ChannelGone
    | LeftAlone
    | LeftIdle
    | VoteSkipped
)
