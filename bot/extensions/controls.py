"""Playback controls: ``/nowplaying``, ``/seek``, ``/stop`` and ``/leave``.

Thin wrappers around :class:`bot.services.controls.Controls` (``service.controls``); the rules
live there, the sentences for refusals in :mod:`.sentences`.
"""

from __future__ import annotations

import hikari
import lightbulb

from bot.metrics import Metrics
from bot.services import QueueService
from bot.services.views import LeaveOutcome, NowPlayingView, SeekOutcome, StopOutcome
from bot.storage import LoopMode, QueueEntry

from .replies import ACCENT, GUILD_ONLY, duration, entry_line, guild_of, reply_with
from .sentences import clip, error_text, plain

__all__ = [
    "add_settings",
    "loader",
    "render_leave",
    "render_now_playing",
    "render_seek",
    "render_stop",
    "track_embed",
    "web_url",
]

loader = lightbulb.Loader()

TITLE_LIMIT = 256
"""Discord's limits for an embed: title, field value, description, all text together."""
FIELD_LIMIT = 1024
URL_LIMIT = 2048
BAR_WIDTH = 18

_LOOP_NAMES = {LoopMode.OFF: "off", LoopMode.TRACK: "this song", LoopMode.QUEUE: "the whole queue"}


@loader.command
class NowPlaying(
    lightbulb.SlashCommand,
    name="nowplaying",
    description="Show the song that is playing and how far along it is",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, metrics, _now_playing(service, guild_id), render_now_playing)


@loader.command
class Seek(
    lightbulb.SlashCommand,
    name="seek",
    description="Jump to a time in the song",
    contexts=GUILD_ONLY,
):
    time = lightbulb.string(
        "time", "83, 1:23 or 1:02:03; +10 or -10 jumps from where it is", max_length=32
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.controls.seek(guild_id, ctx.user.id, self.time)
            await reply_with(ctx, metrics, work, render_seek)


@loader.command
class Stop(
    lightbulb.SlashCommand,
    name="stop",
    description="Stop the music and clear the queue",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.controls.stop(guild_id, ctx.user.id)
            await reply_with(ctx, metrics, work, render_stop)


@loader.command
class Leave(
    lightbulb.SlashCommand,
    name="leave",
    description="Leave the voice channel and clear the queue",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.controls.leave(guild_id, ctx.user.id)
            await reply_with(ctx, metrics, work, render_leave)


async def _now_playing(service: QueueService, guild_id: int) -> NowPlayingView:
    """Read at the moment the command runs (a refusal is raised inside the awaited work)."""
    return service.controls.now_playing(guild_id)


# --- rendering ---------------------------------------------------------------------------


def render_now_playing(view: NowPlayingView) -> hikari.Embed:
    """The current song as an embed, inside Discord's limits however long its texts are."""
    embed = track_embed(view.current, view.artwork_url, _progress(view))
    add_settings(embed, view.volume, view.loop_mode, view.filter_name)
    embed.add_field("Up next", _next_line(view.next, view.queued))
    return embed


def track_embed(entry: QueueEntry, artwork_url: str | None, status: str) -> hikari.Embed:
    """The head of a song's embed (``/nowplaying``, the controller): linked title, artist and
    ``status`` line, artwork, who asked for it; inside Discord's limits whatever it says."""
    embed = hikari.Embed(
        title=clip(entry.title, TITLE_LIMIT),
        url=web_url(entry.uri),
        color=ACCENT,
        description=f"by {clip(plain(entry.author), 200)}\n{status}",
    )
    if (artwork := web_url(artwork_url)) is not None:
        embed.set_thumbnail(artwork)
    embed.add_field("Requested by", f"<@{entry.requester_id}>", inline=True)
    return embed


def add_settings(embed: hikari.Embed, volume: int, loop_mode: LoopMode, filter_name: str) -> None:
    """The player's volume, loop and filter as three short fields."""
    embed.add_field("Volume", f"{volume}%", inline=True)
    embed.add_field("Loop", _LOOP_NAMES[loop_mode], inline=True)
    embed.add_field("Filter", filter_name, inline=True)


def _progress(view: NowPlayingView) -> str:
    entry = view.current
    state = "⏸ Paused · " if view.paused else ""
    if view.interrupted:
        state = "Waiting: use /play to bring me back · "
    if entry.is_stream:
        return f"{state}`LIVE`"
    length = max(1, entry.length_ms)
    filled = min(BAR_WIDTH, view.position_ms * BAR_WIDTH // length)
    bar = "▬" * filled + "🔘" + "▬" * (BAR_WIDTH - filled)
    return f"{state}{bar} `{duration(view.position_ms)} / {duration(entry.length_ms)}`"


def _next_line(following: QueueEntry | None, queued: int) -> str:
    if following is None:
        return "Nothing: the queue ends after this song."
    line = entry_line(following)
    if len(line) > FIELD_LIMIT - 40:  # a link too long to show: the title alone
        line = clip(plain(following.title), 200)
    more = queued - 1
    return line + (f"\n…and {more} more" if more > 0 else "")


def render_seek(outcome: SeekOutcome) -> str:
    title = f"**{clip(plain(outcome.entry.title), 200)}**"
    at = duration(outcome.position_ms)
    if outcome.problem is not None:
        return error_text(outcome.problem)
    if outcome.waiting:
        return f"{title} will start from **{at}** when I'm back: use /play to bring me back."
    paused = " It stays paused: /resume to go on." if outcome.paused else ""
    return f"Jumped to **{at}** in {title}.{paused}"


def render_stop(outcome: StopOutcome) -> str:
    cleared = _tracks(outcome.cleared)
    if outcome.problem is not None:
        return f"Cleared the queue ({cleared}). {error_text(outcome.problem)}"
    return f"Stopped, and cleared the queue ({cleared}). I'm staying in the voice channel."


def render_leave(outcome: LeaveOutcome) -> str:
    cleared = _tracks(outcome.cleared)
    if outcome.channel_id is None:
        return f"I wasn't in a voice channel; cleared the queue ({cleared})."
    return f"Left <#{outcome.channel_id}> and cleared the queue ({cleared})."


def _tracks(count: int) -> str:
    return f"{count} track" if count == 1 else f"{count} tracks"


def web_url(url: str | None) -> str | None:
    """``url`` if Discord will take it in an embed (http(s), not too long), else ``None``."""
    if url is None or len(url) > URL_LIMIT or not url.startswith(("https://", "http://")):
        return None
    return url
