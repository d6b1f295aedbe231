"""``/play``, ``/skip`` and ``/queue``: thin wrappers around :class:`QueueService`."""

from __future__ import annotations

import logging

import hikari
import lightbulb

from bot.services import PlayOutcome, QueueService, QueueView, SkipOutcome
from bot.services.query import MAX_QUERY_LENGTH

from .replies import ACCENT, GUILD_ONLY, duration, entry_line, guild_of, reply_with

__all__ = ["loader"]

_log = logging.getLogger(__name__)

loader = lightbulb.Loader()

QUEUE_PAGE = 10
FIELD_LIMIT = 1024
"""Discord refuses an embed whose field value is longer than this."""
MORE_RESERVE = 32


@loader.command
class Play(
    lightbulb.SlashCommand,
    name="play",
    description="Play a song, or add it to the queue",
    contexts=GUILD_ONLY,
):
    query = lightbulb.string(
        "query", "A song name, or a link to a song or playlist", max_length=MAX_QUERY_LENGTH
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.play(guild_id, ctx.user.id, ctx.channel_id, self.query)
            await reply_with(ctx, work, _render_play)


@loader.command
class Skip(
    lightbulb.SlashCommand,
    name="skip",
    description="Skip the song that is playing",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, service.skip(guild_id, ctx.user.id), _render_skip)


@loader.command
class Queue(
    lightbulb.SlashCommand,
    name="queue",
    description="Show what is playing and what is next",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await ctx.respond(embed=_render_queue(service.queue(guild_id, QUEUE_PAGE)))


def _render_play(outcome: PlayOutcome) -> str:
    first = outcome.added[0]
    if outcome.playlist is not None:
        head = f"Queued **{len(outcome.added)}** tracks from **{_plain(outcome.playlist)}**."
        return head + (f"\nNow playing {entry_line(first)}" if outcome.started else "")
    if outcome.started:
        return f"Now playing {entry_line(first)}"
    return f"Added {entry_line(first)} to the queue at position **{outcome.position}**."


def _render_skip(outcome: SkipOutcome) -> str:
    skipped = f"Skipped **{_plain(outcome.skipped.title)}**."
    if outcome.next is None:
        return skipped + " The queue is empty now."
    return f"{skipped} Now playing {entry_line(outcome.next)}"


def _render_queue(view: QueueView) -> hikari.Embed:
    embed = hikari.Embed(title="Queue", color=ACCENT)
    if view.current is None:
        embed.description = "Nothing is playing. Use `/play` to start."
        return embed
    state = " (paused)" if view.paused else " (interrupted)" if view.interrupted else ""
    length = "live" if view.current.is_stream else duration(view.current.length_ms)
    embed.add_field(
        "Now playing" + state,
        f"{entry_line(view.current)}\n`{duration(view.position_ms)} / {length}`",
    )
    if view.upcoming:
        embed.add_field("Up next", _upcoming_lines(view))
    track_word = "track" if view.total == 1 else "tracks"
    embed.set_footer(f"{view.total} {track_word} in queue · {duration(view.total_ms)} total")
    return embed


def _upcoming_lines(view: QueueView) -> str:
    """As many upcoming entries as fit in one embed field, then how many more there are."""
    lines: list[str] = []
    used = 0
    for i, entry in enumerate(view.upcoming, 1):
        line = f"`{i}.` {entry_line(entry)}"
        if used + len(line) + 1 > FIELD_LIMIT - MORE_RESERVE:
            break
        lines.append(line)
        used += len(line) + 1
    if (more := view.total - len(lines)) > 0:
        lines.append(f"…and {more} more")
    return "\n".join(lines)


def _plain(text: str) -> str:
    return text.replace("*", "").replace("`", "")[:200]


@loader.error_handler
async def on_error(exc: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
    """Anything unexpected: log it, and tell the user politely instead of going silent."""
    _log.error("command /%s failed", exc.context.command_data.name, exc_info=exc.causes[0])
    message = "Something went wrong on my side. Nothing was changed; please try again."
    try:
        await exc.context.respond(message, ephemeral=True)
    except hikari.HikariError:
        _log.warning("could not tell the user about the error")
    return True
