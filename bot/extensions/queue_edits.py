"""The queue-editing commands (/remove, /move, /shuffle, /clear): thin wrappers around
:class:`~bot.services.editing.QueueEdits`. ``/skip to`` lives with ``/skip`` in :mod:`.music`.

Positions count the upcoming songs from 1, as ``/queue`` numbers them.
"""

from __future__ import annotations

import lightbulb

from bot.metrics import Metrics
from bot.services import QueueService
from bot.services.views import Cleared, Moved, Removed, Shuffled

from .replies import GUILD_ONLY, guild_of, reply_with
from .sentences import title_text

__all__ = ["loader", "render_shuffled"]

loader = lightbulb.Loader()

_PLACE = "Its place in the queue (1 = the next song; see /queue)"


@loader.command
class Remove(
    lightbulb.SlashCommand,
    name="remove",
    description="Remove a song, or a range of songs, from the queue",
    contexts=GUILD_ONLY,
):
    position = lightbulb.integer("position", _PLACE, min_value=1)
    to = lightbulb.integer(
        "to", "Remove every song up to this place too", min_value=1, default=None
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.edits.remove(guild_id, ctx.user.id, self.position, self.to)
            await reply_with(ctx, metrics, work, _render_removed)


@loader.command
class Move(
    lightbulb.SlashCommand,
    name="move",
    description="Move a song to another place in the queue",
    contexts=GUILD_ONLY,
):
    source = lightbulb.integer("from", _PLACE, min_value=1)
    target = lightbulb.integer("to", "The place to move it to (1 = play it next)", min_value=1)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.edits.move(guild_id, ctx.user.id, self.source, self.target)
            await reply_with(ctx, metrics, work, _render_moved)


@loader.command
class Shuffle(
    lightbulb.SlashCommand,
    name="shuffle",
    description="Shuffle the songs in the queue (the one playing plays on)",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.edits.shuffle(guild_id, ctx.user.id)
            await reply_with(ctx, metrics, work, render_shuffled)


@loader.command
class Clear(
    lightbulb.SlashCommand,
    name="clear",
    description="Remove every song from the queue (the one playing plays on)",
    contexts=GUILD_ONLY,
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, service: QueueService, metrics: Metrics) -> None:
        if (guild_id := await guild_of(ctx)) is not None:
            work = service.edits.clear(guild_id, ctx.user.id)
            await reply_with(ctx, metrics, work, _render_cleared)


def _render_removed(removed: Removed) -> str:
    if len(removed.entries) == 1:
        return f"Removed **{title_text(removed.entries[0].title)}**."
    return f"Removed {len(removed.entries)} tracks ({removed.first}–{removed.last})."  # noqa: RUF001


def _render_moved(moved: Moved) -> str:
    return (
        f"Moved **{title_text(moved.entry.title)}** from position {moved.source} "
        f"to position {moved.target}."
    )


def render_shuffled(shuffled: Shuffled) -> str:
    return f"Shuffled {_tracks(shuffled.count)}. Next up: **{title_text(shuffled.next.title)}**."


def _render_cleared(cleared: Cleared) -> str:
    text = f"Cleared the queue: removed {_tracks(cleared.count)}."
    if cleared.current is not None:
        text += f" **{title_text(cleared.current.title)}** plays on."
    return text


def _tracks(count: int) -> str:
    return f"{count} track" if count == 1 else f"{count} tracks"
