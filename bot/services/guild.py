"""One guild's player and queue as the service holds them, and the arithmetic on them.

Cost per command does not grow with the queue: the upcoming tracks are a deque with a running
total of their length. This module only holds and reads that state (which Lavalink track is
which entry); where the current track stands is :mod:`.positions`'s, the changes, and the
rule that memory changes only once the database took them, are :mod:`.playback`'s.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec

from bot import lavalink
from bot.storage import (
    GuildSettings,
    NewEntry,
    PlayerRecord,
    PlayerStatus,
    QueueEntry,
    StoredGuild,
)

__all__ = [
    "ENTRY_KEY",
    "FILTER_PRESETS",
    "GuildState",
    "Heard",
    "has_played",
    "is_entry",
    "names_entry",
    "new_entry",
    "now_ms",
    "preset_name",
    "stamped",
    "track_info",
]

_log = logging.getLogger(__name__)

ENTRY_KEY = "entry"
"""``userData`` key carrying the queue entry id, so a track's end is matched to its entry."""

FILTER_PRESETS: Final[Mapping[str, lavalink.Filters]] = {
    "off": lavalink.Filters(),
    "bassboost": lavalink.Filters().with_equalizer({0: 0.2, 1: 0.15, 2: 0.1, 3: 0.05}),
    "treble": lavalink.Filters().with_equalizer({10: 0.1, 11: 0.15, 12: 0.2, 13: 0.2, 14: 0.2}),
    "soft": lavalink.Filters().with_equalizer(dict.fromkeys(range(8, 15), -0.15)),
    "nightcore": lavalink.Filters(timescale=lavalink.Timescale(speed=1.1, pitch=1.25)),
    "vaporwave": lavalink.Filters(timescale=lavalink.Timescale(speed=0.85, pitch=0.8)),
    "8d": lavalink.Filters(rotation=lavalink.Rotation(rotation_hz=0.2)),
    "karaoke": lavalink.Filters(karaoke=lavalink.Karaoke()),
    "tremolo": lavalink.Filters(tremolo=lavalink.Tremolo(frequency=4.0, depth=0.6)),
    "vibrato": lavalink.Filters(vibrato=lavalink.Vibrato(frequency=4.0, depth=0.6)),
    "lowpass": lavalink.Filters(low_pass=lavalink.LowPass(smoothing=20.0)),
    "mono": lavalink.Filters(
        channel_mix=lavalink.ChannelMix(
            left_to_left=0.5, left_to_right=0.5, right_to_left=0.5, right_to_right=0.5
        )
    ),
}
"""The filter sets a user can pick by name; ``off`` clears every filter. Each is one kind of
filter, so a name always says what the sound does (Discord shows at most 25 choices)."""


class Heard(NamedTuple):
    """A position report from Lavalink that agreed with the anchor, voice connected: the node
    was playing ``entry_id`` (paused as ``paused``) at ``at`` (``time.monotonic()``). While it is
    fresh, the reconciler needs no list of the node's players to trust the guild."""

    entry_id: int
    paused: bool
    at: float


@dataclasses.dataclass(slots=True)
class GuildState:
    player: PlayerRecord
    current: QueueEntry | None = None
    upcoming: collections.deque[QueueEntry] = dataclasses.field(default_factory=collections.deque)
    upcoming_ms: int = 0
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    changed_at: float = 0.0
    """``time.monotonic()`` of the last change to playback; the reconciler leaves a guild
    alone for a moment after one, and skips a repair if another came meanwhile."""
    heard: Heard | None = None
    """The last position report that agreed with what the guild promises (see :class:`Heard`)."""
    corrected: tuple[int, int] | None = None
    """The entry id and position of the last anchor a drifting report corrected."""
    removed: bool = False
    """The bot left the guild and its rows are deleted: whoever still holds this object and
    waited for its lock must neither play nor write anything for it."""
    _decoded: tuple[str | None, lavalink.Filters | None] = (None, None)
    settings: GuildSettings = dataclasses.field(init=False)
    """The server's ``/settings``: the rules every command and button of the guild obeys."""

    def __post_init__(self) -> None:
        self.settings = GuildSettings(self.player.guild_id)

    @classmethod
    def from_stored(cls, stored: StoredGuild) -> GuildState:
        guild = cls(stored.player)
        if guild.filters is None and stored.player.filters is not None:
            # Unreadable: play without filters; the next write clears the stored value.
            guild.player = dataclasses.replace(guild.player, filters=None)
        current_id = stored.player.current_entry_id
        upcoming = []
        for entry in stored.entries:
            if entry.id == current_id:
                guild.current = entry
            else:
                upcoming.append(entry)
        guild.push(upcoming)
        if guild.current is None and stored.player.status is not PlayerStatus.IDLE:
            guild.player = dataclasses.replace(guild.player, status=PlayerStatus.IDLE)
        return guild

    @property
    def guild_id(self) -> int:
        return self.player.guild_id

    @property
    def filters(self) -> lavalink.Filters | None:
        """The stored filter set decoded (``None``: no filters); derived from the record, so
        it never disagrees with what a restart loads. Decoded once per stored value."""
        stored = self.player.filters
        if self._decoded[0] != stored:
            self._decoded = (stored, _decode_filters(self.player))
        return self._decoded[1]

    @property
    def announce_channel_id(self) -> int | None:
        """Where the bot posts on its own (notices, the now-playing controller): the channel
        the server chose, else the one the music was asked for in; ``None``: nowhere (the
        server turned announcements off, or no channel is known). The one place that decides."""
        settings = self.settings
        if not settings.announce:
            return None
        return settings.announce_channel_id or self.player.text_channel_id

    @property
    def is_playing(self) -> bool:
        """Users were told a track plays (it may be paused); not interrupted, not idle."""
        return self.current is not None and self.player.status is PlayerStatus.PLAYING

    def touch(self) -> None:
        self.changed_at = time.monotonic()

    def push(self, entries: Sequence[QueueEntry]) -> None:
        self.upcoming.extend(entries)
        self.upcoming_ms += sum(e.length_ms for e in entries if not e.is_stream)

    def push_front(self, entry: QueueEntry) -> None:
        """``entry`` plays next (``/previous`` puts the track it interrupts back here)."""
        self.upcoming.appendleft(entry)
        if not entry.is_stream:
            self.upcoming_ms += entry.length_ms

    def pop(self) -> QueueEntry | None:
        if not self.upcoming:
            return None
        entry = self.upcoming.popleft()
        if not entry.is_stream:
            self.upcoming_ms -= entry.length_ms
        return entry

    def clear(self) -> None:
        """The guild's rows are deleted: nothing of it is left to play."""
        self.removed = True
        self.current = None
        self.upcoming.clear()
        self.upcoming_ms = 0


def has_played(guild: GuildState) -> bool:
    """Whether the current track was heard, so moving past it goes into the history: Lavalink
    took it (the guild plays) or it stopped part-way. One that became current out of voice and
    never started, or that Lavalink refused at its start, is not history. Read from the stored
    record, so a restart judges the same."""
    player = guild.player
    return guild.current is not None and (
        player.status is PlayerStatus.PLAYING or player.position_ms > 0
    )


def stamped(player: PlayerRecord, status: PlayerStatus, position_ms: int) -> PlayerRecord:
    """``player`` with ``status``, standing at ``position_ms`` now."""
    return dataclasses.replace(
        player, status=status, position_ms=position_ms, position_at_ms=now_ms()
    )


# --- entries and filters ---------------------------------------------------------------------


def track_info(entry: QueueEntry) -> lavalink.TrackInfo | None:
    """The entry's track info from its encoded string (artwork and seekability are not
    stored); ``None`` when the string does not decode."""
    try:
        return lavalink.decode_track(entry.encoded)
    except lavalink.LavalinkError:
        return None


def is_entry(track: lavalink.Track, entry: QueueEntry) -> bool:
    """Whether Lavalink's ``track`` is ``entry``.

    By the entry id sent as ``userData``, which Lavalink echoes on every event; servers that
    drop it (NodeLink) are matched by the track itself, its position aside. Without the id, a
    queue holding the same song twice in a row cannot tell the two apart.
    """
    return names_entry(track.encoded, track.user_data, entry)


def names_entry(encoded: str, user_data: Mapping[str, Any], entry: QueueEntry) -> bool:
    """Whether a track Lavalink holds (its ``encoded`` string and ``userData``) is ``entry``
    (see :func:`is_entry`)."""
    tagged = lavalink.read_tag(user_data, ENTRY_KEY)
    if tagged is not None:
        return tagged == entry.id
    return lavalink.same_track(encoded, entry.encoded)


def new_entry(track: lavalink.Track, requester_id: int) -> NewEntry:
    info = track.info
    return NewEntry(
        encoded=track.encoded,
        title=info.title or "Unknown title",
        author=info.author or "Unknown artist",
        length_ms=0 if info.is_stream else max(0, info.length),
        is_stream=info.is_stream,
        uri=info.uri,
        requester_id=requester_id,
    )


def preset_name(filters: lavalink.Filters | None) -> str:
    if filters is None:
        return "off"
    return next((name for name, f in FILTER_PRESETS.items() if f == filters), "custom")


def _decode_filters(player: PlayerRecord) -> lavalink.Filters | None:
    """The stored filter set, or ``None`` (no filters, or a value that is not valid)."""
    if player.filters is None:
        return None
    try:
        return msgspec.json.decode(player.filters, type=lavalink.Filters)
    except (msgspec.DecodeError, lavalink.FilterError) as exc:
        _log.warning("guild %s: ignoring unreadable stored filters: %s", player.guild_id, exc)
        return None


def now_ms() -> int:
    return int(time.time() * 1000)
