"""The music commands: thin wrappers around :class:`QueueService`."""

from __future__ import annotations

import logging
from typing import TypeVar

import hikari
import lightbulb

from bot.metrics import Metrics
from bot.services import (
    FILTER_PRESETS,
    PlayerSettings,
    PlayOutcome,
    QueueService,
    QueueView,
    SkipOutcome,
    Suggester,
)
from bot.services.query import MAX_QUERY_LENGTH
from bot.services.views import VoteCounted
from bot.storage import LoopMode

from .replies import ACCENT, GUILD_ONLY, Answer, entry_line, guild_of, reply_with, volume_option
from .sentences import (
    PAGE_BUTTONS,
    duration,
    error_text,
    left_out_text,
    length_text,
    page_text,
    settings_text,
    suggestion_choice,
    title_text,
    vote_text,
)

__all__ = ["loader"]

_log = logging.getLogger(__name__)

loader = lightbulb.Loader()
_T = TypeVar("_T")

QUEUE_PAGE = 10
PAGE_PREFIX = "queue:"
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
    page = lightbulb.integer(
        "page", f"Which page of the queue ({QUEUE_PAGE} songs each)", min_value=1, default=1
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            view = queue_page(service, guild_id, self.page)
            await reply_with(ctx, metrics, _now(view), _queue_answer)


@loader.listener(hikari.InteractionCreateEvent)
async def on_page(
    event: hikari.InteractionCreateEvent, service: QueueService = lightbulb.di.INJECTED
) -> None:
    """A /queue page button: that page of the queue as it is now, in the same message.

    The button says which page it leads to (:func:`page_button_target`), so it works on any
    /queue message, also one sent before a restart; anyone may page, as reading changes
    nothing.
    """
    interaction = event.interaction
    if not isinstance(interaction, hikari.ComponentInteraction):
        return
    if not interaction.custom_id.startswith(PAGE_PREFIX) or interaction.guild_id is None:
        return
    total = service.queue(interaction.guild_id, 0).total
    page = page_button_target(interaction.custom_id, _pages(total))
    answer = _queue_answer(queue_page(service, interaction.guild_id, page))
    await interaction.create_initial_response(
        hikari.ResponseType.MESSAGE_UPDATE, embed=answer.embed, components=answer.components
    )


def queue_page(service: QueueService, guild_id: int, page: int) -> QueueView:
    """Page ``page`` (from 1) of the guild's queue, clamped to the pages it has now."""
    pages = _pages(service.queue(guild_id, 0).total)
    page = min(max(page, 1), pages)
    return service.queue(guild_id, QUEUE_PAGE, (page - 1) * QUEUE_PAGE)


def page_button_target(custom_id: str, pages: int) -> int:
    """The page a button leads to: ``queue:first``, ``queue:last`` (the last page now), or
    ``queue:<page>:prev`` / ``queue:<page>:next``; clamped to ``1..pages``."""
    parts = custom_id.removeprefix(PAGE_PREFIX).split(":")
    if parts[0] == "last":
        return pages
    target = int(parts[0]) if parts[0].isdigit() else 1
    return min(max(target, 1), pages)


def _pages(total: int) -> int:
    return max(1, -(-total // QUEUE_PAGE))


def _queue_answer(view: QueueView) -> Answer:
    """The queue's embed, with page buttons when it has more than one page."""
    embed = _render_queue(view)
    pages = _pages(view.total)
    if view.current is None or pages == 1:
        return Answer(embed=embed)
    page = view.offset // QUEUE_PAGE + 1
    row = hikari.impl.MessageActionRowBuilder()
    for custom_id, key, usable in (
        (f"{PAGE_PREFIX}first", "first", page > 1),
        (f"{PAGE_PREFIX}{page - 1}:prev", "prev", page > 1),
        (f"{PAGE_PREFIX}{page + 1}:next", "next", page < pages),
        (f"{PAGE_PREFIX}last", "last", page < pages),
    ):
        row.add_interactive_button(
            hikari.ButtonStyle.SECONDARY, custom_id, label=PAGE_BUTTONS[key], is_disabled=not usable
        )
    return Answer(embed=embed, components=[row])


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
    level = volume_option()

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
        head = f"Queued **{len(outcome.added)}** tracks from **{title_text(outcome.playlist)}**."
        head += "".join(" " + left_out_text(left) for left in outcome.left_out)
        return head + (f"\nNow playing {entry_line(first)}" if outcome.started else "")
    if outcome.started:
        return f"Now playing {entry_line(first)}"
    return f"Added {entry_line(first)} to the queue at position **{outcome.position}**."


async def _now(value: _T) -> _T:
    """A result that is already there, for :func:`reply_with`."""
    return value


def _render_skip(outcome: SkipOutcome | VoteCounted) -> str:
    if isinstance(outcome, VoteCounted):
        return vote_text(outcome, title_text(outcome.entry.title))
    if outcome.vote is not None:
        return f"{vote_text(outcome.vote, '')} {_render_skipped(outcome)}"
    return _render_skipped(outcome)


def _render_skipped(outcome: SkipOutcome) -> str:
    more = f" and the {outcome.passed} after it" if outcome.passed > 1 else ""
    more = " and the next one" if outcome.passed == 1 else more
    skipped = f"Skipped **{title_text(outcome.skipped.title)}**{more}."
    if outcome.problem is not None:
        return f"{skipped} {error_text(outcome.problem)}"
    if outcome.next is None:
        return skipped + " The queue is empty now."
    if outcome.waiting:
        return f"{skipped} Next up is {entry_line(outcome.next)}; use /play to bring me back."
    return f"{skipped} Now playing {entry_line(outcome.next)}"


def _render_pause(settings: PlayerSettings) -> str:
    title = f" **{title_text(settings.current.title)}**" if settings.current else ""
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
    pages = _pages(view.total)
    page = f" · {page_text(view.offset // QUEUE_PAGE + 1, pages)}" if pages > 1 else ""
    embed.set_footer(
        f"{view.total} {track_word} in queue · {duration(view.total_ms)} total{page} · "
        + settings_text(view.volume, view.loop_mode, view.filter_name, " · ")
    )
    return embed


def _upcoming_lines(view: QueueView) -> str:
    """As many upcoming entries as fit in one embed field, then how many more there are."""
    lines: list[str] = []
    used = 0
    for i, entry in enumerate(view.upcoming, view.offset + 1):
        line = f"`{i}.` {entry_line(entry)}"
        if used + len(line) + 1 > FIELD_LIMIT - MORE_RESERVE:
            break
        lines.append(line)
        used += len(line) + 1
    if (more := view.total - view.offset - len(lines)) > 0:
        lines.append(f"…and {more} more")
    return "\n".join(lines)


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
