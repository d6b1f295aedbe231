"""What the service refuses or could not do, as typed values: no sentence for users lives here.

The service decides *what* happened (nothing is playing, the queue is full, the music server
refused a track); :mod:`bot.extensions.sentences` decides how to say it. Every class here is a
:class:`ServiceError`: a command raises it for its caller to render, and the playback steps
return the ones in :data:`PlaybackProblem` as values (a skip that was stored but that Lavalink
did not follow is still a skip).
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = [
    "Action",
    "AlreadyPaused",
    "BackwardRange",
    "BadLength",
    "BadLink",
    "BadTimecode",
    "EmptyQuery",
    "EmptySearch",
    "GuildGone",
    "LinkWithCredentials",
    "LiveStream",
    "LoadFailed",
    "NoHistory",
    "NoSuchPosition",
    "NoVoiceChannel",
    "NotALink",
    "NotDJ",
    "NotInBotChannel",
    "NotInVoice",
    "NotManager",
    "NotPaused",
    "NotSeekable",
    "NothingFound",
    "NothingPlaying",
    "NothingQueued",
    "PastTheEnd",
    "PlaybackProblem",
    "PlaybackRefused",
    "PlayerEnded",
    "PlayingElsewhere",
    "PrivateAddress",
    "QueryTooLong",
    "QueueFull",
    "SamePosition",
    "SaveFailed",
    "SearchFailed",
    "SeekRefused",
    "ServerUnreachable",
    "ServiceError",
    "Setting",
    "SettingOutOfRange",
    "ShareFull",
    "StopRefused",
    "TooFewToShuffle",
    "TrackTooLong",
    "UnknownFilter",
    "UnknownHost",
    "Unsaved",
    "VoiceJoinFailed",
    "VolumeOutOfRange",
    "WaitingForServer",
]


class ServiceError(Exception):
    """Something the user should be told instead of a result; the fields say what."""

    def __str__(self) -> str:
        return repr(self)  # for logs; users see the rendered sentence


class Action(enum.Enum):
    """What a user tried that only people listening with the bot may do (and, with a DJ role
    set, some only DJs: see :mod:`.permissions`)."""

    SKIP = "skip"
    SKIP_TO = "skip to"
    PREVIOUS = "previous"
    PLAY_NEXT = "play next"
    PAUSE = "pause"
    RESUME = "resume"
    VOLUME = "volume"
    LOOP = "loop"
    FILTER = "filter"
    SEEK = "seek"
    STOP = "stop"
    LEAVE = "leave"
    REMOVE = "remove"
    MOVE = "move"
    SHUFFLE = "shuffle"
    CLEAR = "clear"


class Unsaved(enum.Enum):
    """What did not happen because the database refused the write."""

    ADD = "add"
    SKIP = "skip"
    CHANGE = "change"
    SEEK = "seek"
    STOP = "stop"
    LEAVE = "leave"
    REMOVE = "remove"
    MOVE = "move"
    SHUFFLE = "shuffle"
    CLEAR = "clear"
    PREVIOUS = "previous"
    """The history could not be read or taken back (``/previous``)."""


# --- the query --------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class EmptyQuery(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class QueryTooLong(ServiceError):
    limit: int


@dataclasses.dataclass(eq=False)
class EmptySearch(ServiceError):
    """A search prefix (``ytsearch:``) with nothing after it."""


@dataclasses.dataclass(eq=False)
class NotALink(ServiceError):
    """A local path or a scheme other than http(s)."""


@dataclasses.dataclass(eq=False)
class BadLink(ServiceError):
    """A link whose host cannot be read the same way by every parser."""


@dataclasses.dataclass(eq=False)
class LinkWithCredentials(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class PrivateAddress(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class UnknownHost(ServiceError):
    host: str


# --- commands ---------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class NoVoiceChannel(ServiceError):
    """``/play`` from someone in no voice channel."""


@dataclasses.dataclass(eq=False)
class GuildGone(ServiceError):
    """The bot was removed from the server while the command waited."""


@dataclasses.dataclass(eq=False)
class PlayingElsewhere(ServiceError):
    channel_id: int


@dataclasses.dataclass(eq=False)
class NotInBotChannel(ServiceError):
    channel_id: int
    action: Action


@dataclasses.dataclass(eq=False)
class NotDJ(ServiceError):
    """With a DJ role set, ``action`` needs it (or Manage Server); nothing was changed.

    For :attr:`Action.SKIP` and :attr:`Action.REMOVE`: of other people's tracks (one's own
    are free; a skip is a vote while the bot is in voice)."""

    role_id: int
    action: Action


@dataclasses.dataclass(eq=False)
class QueueFull(ServiceError):
    limit: int


@dataclasses.dataclass(eq=False)
class TrackTooLong(ServiceError):
    """The server's longest track (``limit_ms``) is shorter than the track (``length_ms``)."""

    limit_ms: int
    length_ms: int


@dataclasses.dataclass(eq=False)
class ShareFull(ServiceError):
    """The member's upcoming tracks fill their share of the queue: at most ``percent`` % of
    the longest queue, which is ``limit`` tracks."""

    percent: int
    limit: int


@dataclasses.dataclass(eq=False)
class NothingFound(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class LoadFailed(ServiceError):
    """Lavalink answered that loading failed; ``message`` is its own (``None``: none given)."""

    message: str | None


@dataclasses.dataclass(eq=False)
class SearchFailed(ServiceError):
    """The node did not answer the search properly (an error status, a timeout)."""


@dataclasses.dataclass(eq=False)
class ServerUnreachable(ServiceError):
    """No Lavalink node answered; ``nothing_added``: the tracks were found but not queued."""

    nothing_added: bool = False


@dataclasses.dataclass(eq=False)
class VoiceJoinFailed(ServiceError):
    """Joining the caller's channel failed; nothing was added.

    ``lavalink_refused``: Discord sent the credentials but Lavalink refused them (not a
    permissions problem); otherwise Discord sent none in time.
    """

    lavalink_refused: bool


@dataclasses.dataclass(eq=False)
class SaveFailed(ServiceError):
    not_done: Unsaved


@dataclasses.dataclass(eq=False)
class NothingPlaying(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class PlayerEnded(ServiceError):
    """A button was pressed on a controller that is no longer the guild's live one (its
    music ended, or a newer controller replaced it): nothing is done."""


@dataclasses.dataclass(eq=False)
class AlreadyPaused(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class NotPaused(ServiceError):
    pass


@dataclasses.dataclass(eq=False)
class VolumeOutOfRange(ServiceError):
    maximum: int


@dataclasses.dataclass(eq=False)
class UnknownFilter(ServiceError):
    name: str
    choices: tuple[str, ...]


# --- queue edits (positions count the upcoming entries from 1, as /queue shows them) --------


@dataclasses.dataclass(eq=False)
class NothingQueued(ServiceError):
    """Nothing is queued after the current track."""


@dataclasses.dataclass(eq=False)
class NoHistory(ServiceError):
    """No track has played in the guild yet (or ``/previous`` took every one back)."""

    going_back: bool = False
    """Asked by ``/previous`` (``False``: ``/history``)."""


@dataclasses.dataclass(eq=False)
class NoSuchPosition(ServiceError):
    """``position`` is outside the upcoming queue, which runs from 1 to ``last``."""

    position: int
    last: int


@dataclasses.dataclass(eq=False)
class BackwardRange(ServiceError):
    """A range whose end comes before its start."""

    start: int
    end: int


@dataclasses.dataclass(eq=False)
class SamePosition(ServiceError):
    """A move to the place the entry already has."""

    position: int


@dataclasses.dataclass(eq=False)
class TooFewToShuffle(ServiceError):
    """Only one entry is queued after the current track."""


# --- playback: returned by the steps, raised by /play -----------------------------------------


@dataclasses.dataclass(eq=False)
class WaitingForServer(ServiceError):
    """No node could start the track; it is kept and plays once a node is back."""


@dataclasses.dataclass(eq=False)
class PlaybackRefused(ServiceError):
    """A node that is up refused the track; the bot left, the track stays first in line."""

    title: str


@dataclasses.dataclass(eq=False)
class StopRefused(ServiceError):
    """The node did not stop a skipped track, so the bot left the voice channel."""


PlaybackProblem = WaitingForServer | PlaybackRefused | StopRefused
"""A change that was stored but that Lavalink did not follow."""


# --- /seek, /stop, /leave (services/controls.py) ----------------------------------------------


@dataclasses.dataclass(eq=False)
class BadTimecode(ServiceError):
    """``/seek`` got a time it cannot read; ``text`` is what the user typed."""

    text: str


@dataclasses.dataclass(eq=False)
class LiveStream(ServiceError):
    """A live stream has no position to move to."""


@dataclasses.dataclass(eq=False)
class NotSeekable(ServiceError):
    """The track's source cannot seek (Lavalink would ignore the new position)."""


@dataclasses.dataclass(eq=False)
class PastTheEnd(ServiceError):
    """The asked position is at or past the end of the track, ``length_ms`` long."""

    length_ms: int


@dataclasses.dataclass(eq=False)
class SeekRefused(ServiceError):
    """Lavalink did not take the new position: the song stays where it was (stored so)."""


@dataclasses.dataclass(eq=False)
class NotInVoice(ServiceError):
    """``/leave`` while the bot is in no voice channel and holds no queue."""


# --- /settings (services/settings.py) ---------------------------------------------------------


class Setting(enum.Enum):
    """A ``/settings`` value that has a range."""

    VOLUME = "volume"
    IDLE_TIMEOUT = "idle_timeout"
    """In seconds."""
    QUEUE_LENGTH = "queue_length"
    TRACK_LENGTH = "track_length"
    """In milliseconds."""
    USER_SHARE = "user_share"
    VOTE_SKIP = "vote_skip"


@dataclasses.dataclass(eq=False)
class NotManager(ServiceError):
    """Only members with Manage Server (or Administrator) may see or change ``/settings``."""


@dataclasses.dataclass(eq=False)
class SettingOutOfRange(ServiceError):
    """``setting`` takes ``minimum`` to ``maximum`` (``None``: no upper bound), in its unit."""

    setting: Setting
    minimum: int
    maximum: int | None


@dataclasses.dataclass(eq=False)
class BadLength(ServiceError):
    """A length (a track limit, an idle timeout) that cannot be read; ``text`` as typed."""

    text: str
