"""Shared presentation: answer an interaction in time, show errors privately, format tracks.

Discord allows three seconds for the first answer. A command's work runs as a task; if it is
not done in :data:`DEFER_AFTER` seconds the interaction is deferred (the user sees "thinking")
and the result follows. Errors meant for the user are ephemeral either way: after a public
defer, the placeholder is deleted and the error sent as a private follow-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import hikari
import lightbulb

from bot.metrics import Metrics, Outcome
from bot.services import MAX_VOLUME, ServiceError
from bot.storage import NewEntry

from .sentences import duration, error_text, length_text

__all__ = [
    "DEFER_AFTER",
    "GUILD_ONLY",
    "Answer",
    "Body",
    "duration",
    "entry_line",
    "guild_of",
    "reply_with",
    "volume_option",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFER_AFTER = 1.5
ACCENT = hikari.Color(0x5865F2)
GUILD_ONLY = (hikari.ApplicationContextType.GUILD,)


def volume_option() -> int:
    """The ``level`` option of ``/volume`` and ``/settings volume``: one range, one wording."""
    return lightbulb.integer(
        "level",
        f"0 to {MAX_VOLUME}; 100 is the song as recorded",
        min_value=0,
        max_value=MAX_VOLUME,
    )


async def guild_of(ctx: lightbulb.Context) -> int | None:
    """The guild the command came from; outside a server, say so and return ``None``."""
    if ctx.guild_id is None:
        await ctx.respond(
            "Music commands work in a server, not in direct messages.", ephemeral=True
        )
    return ctx.guild_id


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A reply with more than text: an embed, components (buttons, a select menu)."""

    content: str = ""
    embed: hikari.Embed | None = None
    components: Sequence[hikari.api.ComponentBuilder] = ()


Body = str | hikari.Embed | Answer


async def reply_with(
    ctx: lightbulb.Context,
    metrics: Metrics,
    work: Awaitable[_T],
    render: Callable[[_T], Body],
    *,
    ephemeral: bool = False,
) -> None:
    """Run ``work`` and answer with ``render(result)``, or with what a :class:`ServiceError`
    says (:func:`~.sentences.error_text`); count the command, its outcome and how long the
    answer took. ``ephemeral``: the answer (and the "thinking" placeholder before it) is for
    the caller's eyes only."""
    started = time.monotonic()
    outcome = Outcome.FAILED
    try:
        outcome = await _answer(ctx, work, render, ephemeral)
    finally:
        metrics.command_done(ctx.command_data.qualified_name, outcome, time.monotonic() - started)


async def _answer(
    ctx: lightbulb.Context,
    work: Awaitable[_T],
    render: Callable[[_T], Body],
    ephemeral: bool,
) -> Outcome:
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=DEFER_AFTER)
    deferred = not done
    if deferred:
        # Discord: the defer decides who sees the answer that replaces it.
        await ctx.defer(ephemeral=ephemeral)
    try:
        result = await task
    except ServiceError as exc:
        if deferred:
            await ctx.delete_response(-1)
        await ctx.respond(error_text(exc), ephemeral=True)
        return Outcome.REFUSED
    body = render(result)
    if isinstance(body, hikari.Embed):
        await ctx.respond(embed=body, ephemeral=ephemeral)
    elif isinstance(body, Answer):
        await ctx.respond(
            body.content or hikari.UNDEFINED,
            embed=body.embed or hikari.UNDEFINED,
            components=body.components,
            ephemeral=ephemeral,
        )
    else:
        await ctx.respond(body, ephemeral=ephemeral)
    return Outcome.OK


def entry_line(entry: NewEntry) -> str:
    """One track as a line: linked title, artist, length."""
    title = _escape(entry.title)
    if entry.uri and entry.uri.startswith(("http://", "https://")):
        title = f"[{title}]({entry.uri})"
    length = length_text(entry.is_stream, entry.length_ms)
    return f"{title} · {_escape(entry.author)} · `{length}`"


def _escape(text: str) -> str:
    # Titles come from the internet: keep them from turning into markdown or mentions.
    for ch in "\\*_~`|[]()<>@#":
        text = text.replace(ch, "\\" + ch)
    return text[:200]
