"""Read-only views of the guilds, built from memory without I/O or locks: what ``/queue``,
the player settings replies, ``/doctor`` and the metrics show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.storage import PlayerStatus

from .guild import GuildState, preset_name
from .ports import Lavalink, VoiceTruth
from .positions import position
from .views import PlayerSettings, PlayerState, QueueView, ServiceStats

__all__ = ["player_settings", "player_state", "queue_view", "service_stats"]


def queue_view(guild: GuildState | None, lava: Lavalink, limit: int, offset: int) -> QueueView:
    """The current track, ``limit`` upcoming entries from place ``offset + 1``, and totals;
    read by index, so a late page costs what the first does but the deque's block walk."""
    if guild is None:
        return QueueView(None, 0, False, False, (), 0, 0)
    upcoming = guild.upcoming
    page = range(max(0, offset), min(len(upcoming), max(0, offset) + limit))
    return QueueView(
        current=guild.current,
        position_ms=position(guild, lava) if guild.current else 0,
        paused=guild.player.paused,
        interrupted=guild.player.status is PlayerStatus.INTERRUPTED,
        upcoming=tuple(upcoming[i] for i in page),
        total=len(guild.upcoming),
        total_ms=guild.upcoming_ms,
        volume=guild.player.volume,
        loop_mode=guild.player.loop_mode,
        filter_name=preset_name(guild.filters),
        offset=page.start,
    )


def player_settings(guild: GuildState) -> PlayerSettings:
    return PlayerSettings(
        current=guild.current,
        paused=guild.player.paused,
        volume=guild.player.volume,
        loop_mode=guild.player.loop_mode,
        filter_name=preset_name(guild.filters),
    )


def player_state(guild: GuildState, lava: VoiceTruth) -> PlayerState:
    """The guild's player and queue as stored now."""
    player = guild.player
    return PlayerState(
        status=player.status,
        current=guild.current,
        queued=len(guild.upcoming),
        voice_channel_id=player.voice_channel_id,
        text_channel_id=player.text_channel_id,
        node=lava.node_of(guild.guild_id, connected=False),
        paused=player.paused,
        volume=player.volume,
        loop_mode=player.loop_mode,
        filter_name=preset_name(guild.filters),
    )


def service_stats(
    guilds: Iterable[GuildState],
    *,
    restores: dict[str, int],
    failovers: int,
    repairs: Mapping[str, int],
) -> ServiceStats:
    """Counts over every guild in one pass; the event counters come from their owners."""
    count = in_voice = playing = paused = queued = longest = 0
    for guild in guilds:
        count += 1
        queued += len(guild.upcoming)
        longest = max(longest, len(guild.upcoming))
        if guild.player.voice_channel_id is None or guild.player.status is not (
            PlayerStatus.PLAYING
        ):
            continue
        in_voice += 1
        if guild.current is not None:
            if guild.player.paused:
                paused += 1
            else:
                playing += 1
    return ServiceStats(
        guilds=count,
        in_voice=in_voice,
        playing=playing,
        paused=paused,
        queued_tracks=queued,
        longest_queue=longest,
        restores=restores,
        failovers=failovers,
        repairs=dict(repairs),
    )
