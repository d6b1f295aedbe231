"""The music commands: thin wrappers around :class:`QueueService`."""

from __future__ import annotations

import logging
from typing import TypeVar

import hikari
import lightbulb

from bot.metrics import Metrics
from bot.services import (
    FILTER_PRESETS,
    MAX_VOLUME,
    PlayerSettings,
    PlayOutcome,
    QueueService,
    QueueView,
    SkipOutcome,
    Suggester,
)
from bot.services.query import MAX_QUERY_LENGTH
from bot.storage import LoopMode

from .replies import ACCENT, GUILD_ONLY, entry_line, guild_of, reply_with
from .sentences import (
    duration,
    error_text,
    left_out_text,
    length_text,
    settings_text,
    suggestion_choice,
)

__all__ = ["loader"]

_log = logging.getLogger(__name__)

loader = lightbulb.Loader()
_T = TypeVar("_T")

QUEUE_PAGE = 10
FIELD_LIMIT = 1024
"""Discord refuses an embed whose field value is longer than this."""
MORE_RESERVE = 32


@lightbulb.di.with_di
async def _suggest_songs(
    ctx: lightbulb.AutocompleteContext[str], suggester: Suggester = lightbulb.di.INJECTED
) -> None:
    """Live search results while /play's query is typed; never an error (no choices instead)."""
    typed = ctx.focused.value
    found = await suggester.suggest(
        ctx.interaction.user.id, typed if isinstance(typed, str) else ""
    )
    try:
        await ctx.respond([suggestion_choice(s) for s in found])
    except hikari.HikariError as exc:  # e.g. answered after Discord stopped waiting
        _log.debug("autocomplete answer not taken: %s", exc)


@loader.command
class Play(
    lightbulb.SlashCommand,
    name="play",
    description="Play a song, or add it to the queue",
    contexts=GUILD_ONLY,
):
    query = lightbulb.string(
        "query",
        "A song name, or a link to a song or playlist",
        max_length=MAX_QUERY_LENGTH,
        autocomplete=_suggest_songs,
    )
    next = lightbulb.boolean("next", "Play it before the rest of the queue", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.play(
                guild_id, ctx.user.id, ctx.channel_id, self.query, play_next=self.next
            )
            await reply_with(ctx, metrics, work, render_play)


@loader.command
class Skip(
    lightbulb.SlashCommand,
    name="skip",
    description="Skip the song that is playing",
    contexts=GUILD_ONLY,
):
    to = lightbulb.integer(
        "to", "Skip ahead to this place in the queue (1 = the next song)", min_value=1, default=None
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = (
                service.skip(guild_id, ctx.user.id)
                if self.to is None
                else service.edits.skip_to(guild_id, ctx.user.id, self.to)
            )
            await reply_with(ctx, metrics, work, _render_skip)


@loader.command
class Queue(
    lightbulb.SlashCommand,
    name="queue",
    description="Show what is playing and what is next",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, metrics, _now(service.queue(guild_id, QUEUE_PAGE)), _render_queue)


@loader.command
class Pause(
    lightbulb.SlashCommand,
    name="pause",
    description="Pause the song that is playing",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, metrics, service.pause(guild_id, ctx.user.id), _render_pause)


@loader.command
class Resume(
    lightbulb.SlashCommand,
    name="resume",
    description="Resume the paused song",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            await reply_with(ctx, metrics, service.resume(guild_id, ctx.user.id), _render_pause)


@loader.command
class Volume(
    lightbulb.SlashCommand,
    name="volume",
    description="Set the volume",
    contexts=GUILD_ONLY,
):
    level = lightbulb.integer(
        "level",
        f"0 to {MAX_VOLUME}; 100 is the song as recorded",
        min_value=0,
        max_value=MAX_VOLUME,
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.set_volume(guild_id, ctx.user.id, self.level)
            await reply_with(ctx, metrics, work, _render_volume)


_LOOP_CHOICES = [
    lightbulb.Choice("off", LoopMode.OFF.value),
    lightbulb.Choice("this song", LoopMode.TRACK.value),
    lightbulb.Choice("the whole queue", LoopMode.QUEUE.value),
]


@loader.command
class Loop(
    lightbulb.SlashCommand,
    name="loop",
    description="Repeat the song or the whole queue",
    contexts=GUILD_ONLY,
):
    mode = lightbulb.string("mode", "What to repeat", choices=_LOOP_CHOICES)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is None:
            return
        try:
            mode = LoopMode(self.mode)
        except ValueError:
            await ctx.respond("Pick off, this song or the whole queue.", ephemeral=True)
            return
        await reply_with(ctx, metrics, service.set_loop(guild_id, ctx.user.id, mode), _render_loop)


@loader.command
class Filter(
    lightbulb.SlashCommand,
    name="filter",
    description="Change how the music sounds",
    contexts=GUILD_ONLY,
):
    preset = lightbulb.string(
        "preset", "A sound filter", choices=[lightbulb.Choice(n, n) for n in FILTER_PRESETS]
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.set_filter(guild_id, ctx.user.id, self.preset)
            await reply_with(ctx, metrics, work, _render_filter)


def render_play(outcome: PlayOutcome) -> str:
    first = outcome.added[0]
    if outcome.playlist is not None:
        head = f"Queued **{len(outcome.added)}** tracks from **{_plain(outcome.playlist)}**."
        head += "".join(" " + left_out_text(left) for left in outcome.left_out)
        return head + (f"\nNow playing {entry_line(first)}" if outcome.started else "")
    if outcome.started:
        return f"Now playing {entry_line(first)}"
    return f"Added {entry_line(first)} to the queue at position **{outcome.position}**."


async def _now(value: _T) -> _T:
    """A result that is already there, for :func:`reply_with`."""
    return value


def _render_skip(outcome: SkipOutcome) -> str:
    more = f" and the {outcome.passed} after it" if outcome.passed > 1 else ""
    more = " and the next one" if outcome.passed == 1 else more
    skipped = f"Skipped **{_plain(outcome.skipped.title)}**{more}."
    if outcome.problem is not None:
        return f"{skipped} {error_text(outcome.problem)}"
    if outcome.next is None:
        return skipped + " The queue is empty now."
    if outcome.waiting:
        return f"{skipped} Next up is {entry_line(outcome.next)}; use /play to bring me back."
    return f"{skipped} Now playing {entry_line(outcome.next)}"


def _render_pause(settings: PlayerSettings) -> str:
    title = f" **{_plain(settings.current.title)}**" if settings.current else ""
    return f"Paused{title}. Use /resume to go on." if settings.paused else f"Resumed{title}."


def _render_volume(settings: PlayerSettings) -> str:
    return f"Volume set to **{settings.volume}%**."


_LOOP_TEXT = {
    LoopMode.OFF: "Loop is off: the queue plays once.",
    LoopMode.TRACK: "Looping this song. /skip moves on; `/loop off` stops repeating.",
    LoopMode.QUEUE: "Looping the queue: each song goes to the back when it ends.",
}


def _render_loop(settings: PlayerSettings) -> str:
    return _LOOP_TEXT[settings.loop_mode]


def _render_filter(settings: PlayerSettings) -> str:
    if settings.filter_name == "off":
        return "Filters are off."
    return f"Filter set to **{settings.filter_name}**."


def _render_queue(view: QueueView) -> hikari.Embed:
    embed = hikari.Embed(title="Queue", color=ACCENT)
    if view.current is None:
        embed.description = "Nothing is playing. Use `/play` to start."
        return embed
    state = " (paused)" if view.paused else " (interrupted)" if view.interrupted else ""
    length = length_text(view.current.is_stream, view.current.length_ms)
    embed.add_field(
        "Now playing" + state,
        f"{entry_line(view.current)}\n`{duration(view.position_ms)} / {length}`",
    )
    if view.upcoming:
        embed.add_field("Up next", _upcoming_lines(view))
    track_word = "track" if view.total == 1 else "tracks"
    embed.set_footer(
        f"{view.total} {track_word} in queue · {duration(view.total_ms)} total · "
        + settings_text(view.volume, view.loop_mode, view.filter_name, " · ")
    )
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
