"""``/search``: up to five results in a select menu; the one picked is queued as ``/play`` would.

Only the member who searched may pick; the menu disables itself after :data:`PICK_SECONDS`.
A pending search lives in memory only (a search is worth nothing after a restart): a pick that
finds none, because it expired or the bot restarted, is told so and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import hikari
import lightbulb

from bot.metrics import Metrics
from bot.services import QueueService, ServiceError, Suggester, Suggestion
from bot.services.query import MAX_QUERY_LENGTH

from .music import render_play
from .replies import GUILD_ONLY, Answer, guild_of, reply_with
from .sentences import clip, error_text, length_text

__all__ = ["MAX_RESULTS", "PICK_SECONDS", "loader"]

_log = logging.getLogger(__name__)

loader = lightbulb.Loader()

MAX_RESULTS = 5
PICK_SECONDS = 60.0
_PREFIX = "search:"


@dataclasses.dataclass(slots=True)
class _Pick:
    user_id: int
    links: list[str]
    """What ``/play`` receives for each option, by option value (its index)."""
    interaction: hikari.CommandInteraction
    expiry: asyncio.TimerHandle | None = None
    busy: bool = False
    """A pick is being played: a second click waits for its outcome."""


_pending: dict[str, _Pick] = {}
"""Open menus by custom id (``search:<interaction id>``)."""


@loader.command
class Search(
    lightbulb.SlashCommand,
    name="search",
    description="Search, then pick one of five results to play",
    contexts=GUILD_ONLY,
):
    query = lightbulb.string("query", "What to search for", max_length=MAX_QUERY_LENGTH)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, suggester: Suggester, metrics: Metrics) -> None:
        if await guild_of(ctx) is None:
            return
        work = suggester.search(self.query, MAX_RESULTS)
        await reply_with(ctx, metrics, work, lambda found: _menu(ctx, found))


def _menu(ctx: lightbulb.Context, found: tuple[Suggestion, ...]) -> Answer:
    custom_id = f"{_PREFIX}{ctx.interaction.id}"
    row = hikari.impl.MessageActionRowBuilder()
    menu = row.add_text_menu(custom_id, placeholder="Pick a song to play")
    for index, result in enumerate(found):
        length = length_text(result.is_stream, result.length_ms)
        menu.add_option(
            clip(result.title), str(index), description=clip(f"{result.author} · {length}")
        )
    links = [r.link or f"{r.title} {r.author}" for r in found]
    pick = _Pick(ctx.user.id, links, ctx.interaction)
    pick.expiry = asyncio.get_running_loop().call_later(
        PICK_SECONDS, lambda: asyncio.ensure_future(_expire(custom_id))
    )
    _pending[custom_id] = pick
    return Answer(f"{len(found)} result(s). Pick one to play:", components=[row])


async def _expire(custom_id: str) -> None:
    pick = _pending.pop(custom_id, None)
    if pick is None:
        return
    try:
        await pick.interaction.edit_initial_response(
            "This search has expired. Use /search again.", components=[]
        )
    except hikari.HikariError as exc:  # the message may be gone
        _log.debug("could not close an expired search: %s", exc)


@loader.listener(hikari.InteractionCreateEvent)
async def on_pick(
    event: hikari.InteractionCreateEvent, service: QueueService = lightbulb.di.INJECTED
) -> None:
    """A pick in a /search menu: the searcher's, while it is open, plays what was picked."""
    interaction = event.interaction
    if not isinstance(interaction, hikari.ComponentInteraction):
        return
    if not interaction.custom_id.startswith(_PREFIX) or interaction.guild_id is None:
        return
    pick = _pending.get(interaction.custom_id)
    if pick is None or pick.user_id != interaction.user.id or pick.busy:
        await interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_CREATE,
            _refusal(pick, interaction.user.id),
            flags=hikari.MessageFlag.EPHEMERAL,
        )
        return
    pick.busy = True
    # Joining voice may take longer than Discord waits for an answer: acknowledge first.
    await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_UPDATE)
    link = pick.links[int(interaction.values[0])]
    try:
        outcome = await service.play(
            interaction.guild_id, interaction.user.id, interaction.channel_id, link
        )
    except ServiceError as exc:
        # Nothing was queued: the menu stays open for another try, the reason goes privately.
        pick.busy = False
        await interaction.execute(error_text(exc), flags=hikari.MessageFlag.EPHEMERAL)
        return
    _pending.pop(interaction.custom_id, None)
    if pick.expiry is not None:
        pick.expiry.cancel()
    await interaction.edit_initial_response(render_play(outcome), components=[])


def _refusal(pick: _Pick | None, user_id: int) -> str:
    if pick is None:
        return "This search has expired. Use /search again."
    if pick.user_id != user_id:
        return f"Only <@{pick.user_id}> can pick from this search. Use /search for your own."
    return "Your pick is on its way."
