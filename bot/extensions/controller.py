"""The now-playing controller as Discord shows it, and its buttons.

:func:`render_controller` turns the service's :class:`~bot.services.views.ControllerView` into
the embed and the row of buttons that :mod:`bot.discord_view` posts and edits. Each button's
custom id carries only its action (``player:skip``); the guild and the member come with the
press, so a button works as well after a restart. :func:`on_press` hands a press to
:meth:`bot.services.buttons.Buttons.press`, the same commands with the same rules, and answers
within Discord's three seconds: a success only acknowledges (the controller's own edit shows
it), a refusal is answered privately with the command's own sentence.
"""

from __future__ import annotations

import asyncio
import logging
import time

import hikari
import lightbulb

from bot.metrics import Metrics, Outcome
from bot.services import QueueService, ServiceError
from bot.services.buttons import Button, Pressed
from bot.services.errors import PlayerEnded
from bot.services.views import (
    ControllerView,
    PreviousOutcome,
    Shuffled,
    SkipOutcome,
    StopOutcome,
    VoteCounted,
)
from bot.storage import LoopMode

from .controls import add_settings, render_stop, track_embed
from .queue_edits import render_shuffled
from .replies import DEFER_AFTER
from .sentences import controller_status, error_text, length_text, plain, vote_text

__all__ = ["PREFIX", "custom_id", "loader", "on_press", "render_controller"]

_log = logging.getLogger(__name__)

loader = lightbulb.Loader()

PREFIX = "player:"
_ROWS: tuple[tuple[tuple[Button, str], ...], ...] = (
    ((Button.PREVIOUS, "⏮"), (Button.PAUSE, "⏯"), (Button.SKIP, "⏭")),
    ((Button.STOP, "⏹"), (Button.LOOP, "🔁"), (Button.SHUFFLE, "🔀")),
)
"""Two rows of three: Discord takes at most five buttons a row; playback, then the rest."""


def custom_id(button: Button) -> str:
    return PREFIX + button.value


def render_controller(
    view: ControllerView,
) -> tuple[hikari.Embed, list[hikari.api.ComponentBuilder]]:
    """The controller's embed and buttons, inside Discord's limits whatever the track says."""
    entry = view.current
    status = controller_status(paused=view.paused, waiting=view.waiting, ends_at_s=view.ends_at_s)
    embed = track_embed(entry, view.artwork_url, status)
    embed.add_field("Duration", length_text(entry.is_stream, entry.length_ms), inline=True)
    add_settings(embed, view.volume, view.loop_mode, view.filter_name)
    rows: list[hikari.api.ComponentBuilder] = []
    for buttons in _ROWS:
        row = hikari.impl.MessageActionRowBuilder()
        for button, emoji in buttons:
            row.add_interactive_button(_style(button, view), custom_id(button), emoji=emoji)
        rows.append(row)
    return embed, rows


def _style(button: Button, view: ControllerView) -> hikari.components.InteractiveButtonTypesT:
    if button is Button.STOP:
        return hikari.ButtonStyle.DANGER
    if (button is Button.LOOP and view.loop_mode is not LoopMode.OFF) or (
        button is Button.PAUSE and view.paused
    ):
        return hikari.ButtonStyle.SUCCESS  # lit: looping, or paused
    return hikari.ButtonStyle.SECONDARY


@loader.listener(hikari.InteractionCreateEvent)
async def on_press(
    event: hikari.InteractionCreateEvent,
    service: QueueService = lightbulb.di.INJECTED,
    metrics: Metrics = lightbulb.di.INJECTED,
) -> None:
    """A press on a controller button: the command it stands for, answered in time."""
    interaction = event.interaction
    if not isinstance(interaction, hikari.ComponentInteraction):
        return
    if not interaction.custom_id.startswith(PREFIX) or interaction.guild_id is None:
        return
    try:
        button = Button(interaction.custom_id.removeprefix(PREFIX))
    except ValueError:  # a button of another version of the bot: nothing it does here
        await _private(interaction, error_text(PlayerEnded()), deferred=False)
        return
    started = time.monotonic()
    outcome = Outcome.FAILED
    try:
        outcome = await _answer(interaction, service, interaction.guild_id, button)
    finally:
        # Counted with the commands, as "button skip" and so on.
        metrics.command_done(f"button {button.value}", outcome, time.monotonic() - started)


async def _answer(
    interaction: hikari.ComponentInteraction,
    service: QueueService,
    guild_id: int,
    button: Button,
) -> Outcome:
    work = asyncio.ensure_future(
        service.buttons.press(guild_id, interaction.message.id, interaction.user.id, button)
    )
    done, _ = await asyncio.wait({work}, timeout=DEFER_AFTER)
    deferred = not done
    if deferred:  # a skip waiting on the music server: acknowledge now, answer after
        await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_UPDATE)
    try:
        pressed = await work
    except ServiceError as exc:
        await _private(interaction, error_text(exc), deferred=deferred)
        return Outcome.REFUSED
    if (said := _said(pressed)) is not None:
        await _private(interaction, said, deferred=deferred)
    elif not deferred:
        # The controller's own (coalesced) edit shows what changed.
        await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_UPDATE)
    return Outcome.OK


def _said(pressed: Pressed) -> str | None:
    """What a press that worked says privately: only what the controller cannot show."""
    match pressed:
        case Shuffled():
            return render_shuffled(pressed)  # the controller shows no queue
        case VoteCounted() if not pressed.passed:
            return vote_text(pressed, plain(pressed.entry.title))  # the count, to the voter
        case SkipOutcome(problem=problem) if problem is not None:
            return error_text(problem)
        case PreviousOutcome(problem=problem) if problem is not None:
            return error_text(problem)
        case StopOutcome(problem=problem) if problem is not None:
            return render_stop(pressed)
    return None


async def _private(interaction: hikari.ComponentInteraction, text: str, *, deferred: bool) -> None:
    if deferred:
        await interaction.execute(text, flags=hikari.MessageFlag.EPHEMERAL)
    else:
        await interaction.create_initial_response(
            hikari.ResponseType.MESSAGE_CREATE, text, flags=hikari.MessageFlag.EPHEMERAL
        )
