"""Where a guild's current track stands: derived from a stored anchor, not stored per report.

A playing track's position is a function of time. The stored player record holds its anchor:
the position (``position_ms``) at a known moment (``position_at_ms``); with the playback speed
(the timescale filter's ``speed * rate``) and whether the track runs (playing, not paused), any
later moment follows. So the anchor is written only when that function changes (a start, a
seek, a pause or resume, a speed change, a track change) or when Lavalink's reports drift from
it by more than :data:`DRIFT_MS`; a ``playerUpdate`` otherwise changes nothing stored. Readers
prefer Lavalink's own clock (the client extrapolates its last report) while it reports on the
current track, and derive from the anchor otherwise: after a restart, while a node is away.
"""

from __future__ import annotations

import dataclasses

from bot import lavalink
from bot.storage import PlayerRecord, PlayerStatus

from .guild import GuildState, names_entry, now_ms
from .ports import Lavalink

__all__ = [
    "DRIFT_MS",
    "anchored",
    "drifted",
    "just_anchored",
    "names_current",
    "plays_current",
    "position",
    "reanchored",
    "rebuild_position",
    "speed",
]

DRIFT_MS = 1000
"""How far Lavalink's report may stray from the anchor before the anchor is corrected (the
start of a track lands a little after the anchor's moment; reports come every 5 s)."""


def speed(filters: lavalink.Filters | None) -> float:
    """How much faster than recorded the track plays (nightcore: 1.1)."""
    timescale = filters.timescale if filters is not None else None
    return timescale.speed * timescale.rate if timescale is not None else 1.0


def anchored(guild: GuildState, at_ms: int | None = None) -> int:
    """Where the stored anchor puts the current track at ``at_ms`` (default: now), within
    the track; the clock runs only while the guild plays and is not paused."""
    player = guild.player
    at = player.position_ms
    if player.status is PlayerStatus.PLAYING and not player.paused:
        moment = now_ms() if at_ms is None else at_ms
        at += round(max(0, moment - player.position_at_ms) * speed(guild.filters))
    return _within(guild, at)


def position(guild: GuildState, lava: Lavalink) -> int:
    """Best estimate of the current position: Lavalink's clock while it plays the current
    track for a playing guild, else the anchor's."""
    if guild.current is None:
        return 0
    live = lava.snapshot(guild.guild_id)
    reported = live.position if live is not None else None
    if (
        reported is not None
        and guild.player.status is PlayerStatus.PLAYING
        and plays_current(guild, lava)
    ):
        return _within(guild, reported)
    return anchored(guild)


def drifted(guild: GuildState, reported: int, at_ms: int, sent_ms: int | None = None) -> bool:
    """Whether a report of ``reported``, read at ``at_ms``, strays from the anchor enough to
    store. With ``sent_ms`` (the node's own stamp) it must stray at both moments: a report
    read late (the loop was busy) is not a drift, nor one from a node whose clock is off."""
    where = _within(guild, reported)
    if abs(where - anchored(guild, at_ms)) <= DRIFT_MS:
        return False
    return sent_ms is None or abs(where - anchored(guild, sent_ms)) > DRIFT_MS


def just_anchored(player: PlayerRecord, position_ms: int) -> bool:
    """Whether the stored anchor already says "playing from ``position_ms``" as of a moment
    ago: the write that made a track current stores its anchor, and Lavalink starting it
    within :data:`DRIFT_MS` after needs no second write."""
    return (
        player.status is PlayerStatus.PLAYING
        and player.position_ms == position_ms
        and 0 <= now_ms() - player.position_at_ms <= DRIFT_MS
    )


def reanchored(player: PlayerRecord, position_ms: int) -> PlayerRecord:
    """``player`` anchored at ``position_ms`` now (its status kept)."""
    return dataclasses.replace(player, position_ms=position_ms, position_at_ms=now_ms())


def plays_current(guild: GuildState, lava: Lavalink) -> bool:
    """Whether the player runs the current entry, as far as the client knows (nothing known
    either way counts: the reports are trusted)."""
    return names_current(guild, lava) is not False


def names_current(guild: GuildState, lava: Lavalink) -> bool | None:
    """Whether the client's player names the current entry as its track; ``None``: it names
    no track (or there is no current entry)."""
    track = lava.track_of(guild.guild_id)
    entry = guild.current
    if track is None or entry is None:
        return None
    return names_entry(track[0], track[1], entry)


def rebuild_position(guild: GuildState, lava: Lavalink, stopped_at_ms: int | None) -> int:
    """Where a rebuilt player starts: where its music actually stopped.

    With Lavalink's clock in this run, that is its position. Without it (the bot restarted
    and the node's session was gone), the old player played on until ``stopped_at_ms``
    (:meth:`.layouts.Layouts.stopped_at`: its process's last beat plus the node's resume
    timeout, or earlier if a new layout removed it): the anchor is followed up to then, not
    to now. With no liveness known (a database from before it existed), the anchor's own
    moment stands in for the bot's last sign of life.
    """
    live = lava.snapshot(guild.guild_id)
    if live is not None and live.position is not None:
        return position(guild, lava)
    if stopped_at_ms is None:
        stopped_at_ms = guild.player.position_at_ms + round(lava.resume_timeout * 1000)
    return anchored(guild, min(now_ms(), stopped_at_ms))


def _within(guild: GuildState, at: int) -> int:
    entry = guild.current
    if entry is None or entry.is_stream:
        return max(0, at)
    return max(0, min(at, entry.length_ms))
