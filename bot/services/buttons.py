"""The controller's buttons: each press is the command it stands for, with the same rules.

A button carries only its action; the guild and the member come with the press, and whether
the message is the guild's live controller is the stored truth
(:meth:`.controller.Controller.live`), so a press works the same before and after a restart.
A press on a controller whose music ended (or that a newer one replaced) changes nothing and
is told so (:class:`~.errors.PlayerEnded`).
Everything else is the command's own method, called with the presser's id: who may press is
who may give the command, and a refusal is the command's refusal.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from bot.storage import LoopMode

from .errors import NothingPlaying, PlayerEnded
from .views import (
    PlayerSettings,
    PreviousOutcome,
    Shuffled,
    SkipOutcome,
    StopOutcome,
    VoteCounted,
)

if TYPE_CHECKING:
    from .controller import Controller
    from .queue import QueueService

__all__ = ["LOOP_CYCLE", "Button", "Buttons", "Pressed"]


class Button(enum.Enum):
    """A controller button, by the action its custom id carries."""

    PREVIOUS = "previous"
    """Plays the track before this one again (``/previous``)."""
    PAUSE = "pause"
    """Pauses a playing track, resumes a paused one."""
    SKIP = "skip"
    STOP = "stop"
    LOOP = "loop"
    """The next loop mode in :data:`LOOP_CYCLE`."""
    SHUFFLE = "shuffle"


LOOP_CYCLE = {LoopMode.OFF: LoopMode.TRACK, LoopMode.TRACK: LoopMode.QUEUE}
"""Each press of the loop button: off, this song, the whole queue, off again."""

Pressed = PlayerSettings | SkipOutcome | VoteCounted | StopOutcome | Shuffled | PreviousOutcome
"""What a press did, as the command would have answered it."""


class Buttons:
    """Presses on the controller, turned into the service's commands."""

    def __init__(self, service: QueueService, controller: Controller) -> None:
        self._service = service
        self._controller = controller

    async def press(self, guild_id: int, message_id: int, user_id: int, button: Button) -> Pressed:
        """Do what ``button`` on controller ``message_id`` stands for, as ``user_id``.

        Raises:
            PlayerEnded: the message is not the guild's live controller.
            ServiceError: whatever the command would refuse with.
        """
        if not self._controller.live(guild_id, message_id):
            raise PlayerEnded()
        service = self._service
        match button:
            case Button.PREVIOUS:
                return await service.previous(guild_id, user_id)
            case Button.PAUSE:
                view = service.queue(guild_id, limit=0)
                if view.current is None:
                    raise NothingPlaying()
                if view.paused:
                    return await service.resume(guild_id, user_id)
                return await service.pause(guild_id, user_id)
            case Button.SKIP:
                return await service.skip(guild_id, user_id)
            case Button.STOP:
                return await service.controls.stop(guild_id, user_id)
            case Button.LOOP:
                mode = service.queue(guild_id, limit=0).loop_mode
                return await service.set_loop(guild_id, user_id, LOOP_CYCLE.get(mode, LoopMode.OFF))
            case Button.SHUFFLE:
                return await service.edits.shuffle(guild_id, user_id)
