"""The now-playing controller: one message per guild, shown while its music plays.

When a track starts the guild's text channel gets one message (an embed and buttons, rendered
by the Discord view); when the track, the pause, the loop mode, the volume or the filter
changes, that same message is edited; when playback ends (the queue finished, ``/stop``,
``/leave``, the bot kicked or gone from voice) it is deleted. While the music waits for a lost
music server the message stays and says so.

This module decides *whether* and *when*; it never looks at what changed. Every change to a
guild's playback reaches :meth:`Controller.changed` (through :meth:`.playback.Playback.touched`);
a worker per guild then reads the guild as it stands and makes Discord's message match it.
Bursts are coalesced: at most one call per :data:`EDIT_INTERVAL` seconds per guild, always with
the latest state, and none at all when what would be shown did not change (Discord allows
about five message edits per five seconds in a channel). The message's place is stored
(:class:`bot.storage.ControllerMessage`), so a restart edits and deletes the same message, and
a press on its buttons is recognised as the live controller's (:meth:`Controller.live`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable

from bot.storage import ControllerMessage, PlayerStatus, Repository, StorageError

from .guild import GuildState, preset_name, track_info
from .ports import Delivery, DiscordView, Lavalink
from .positions import position, speed
from .views import ControllerView

__all__ = ["DRIFT_S", "EDIT_INTERVAL", "Controller"]

_log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.5
"""Least seconds between two posts or edits of one guild's controller."""
DRIFT_S = 2
"""An end time that moved by at most this many seconds (position reports, rounding) is not
worth an edit."""


@dataclasses.dataclass(slots=True)
class _Slot:
    """One guild's controller: the message, what it shows, the worker keeping it right."""

    message: ControllerMessage | None = None
    shown: ControllerView | None = None
    """What the message shows as last sent; ``None``: unknown (after a restart, a failure)."""
    dirty: bool = False
    sent_at: float = -math.inf
    task: asyncio.Task[None] | None = None


class Controller:
    """Keeps each guild's controller message in step with its playback."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        repository: Repository,
        lava: Lavalink,
        discord: DiscordView,
        *,
        interval: float = EDIT_INTERVAL,
    ) -> None:
        self._guilds = guilds
        self._store = repository.controllers
        self._lava = lava
        self._discord = discord
        self.interval = interval
        self._slots: dict[int, _Slot] = {}
        self._closed = False

    async def load(self, owned: Callable[[int], bool] | None = None) -> None:
        """Take in the stored controller messages (at start, before anything plays) of the
        guilds ``owned`` accepts (default: all)."""
        for message in await self._store.load():
            if owned is None or owned(message.guild_id):
                self._slots[message.guild_id] = _Slot(message=message)

    def refresh_all(self) -> None:
        """After a start: bring every stored controller up to date (or delete it if its
        music ended while the bot was away)."""
        for guild_id, slot in self._slots.items():
            if slot.message is not None:
                self.changed(guild_id)

    async def settled(self) -> None:
        """Until every change so far has reached Discord (tests wait on this)."""
        while tasks := [slot.task for slot in self._slots.values() if slot.task is not None]:
            await asyncio.wait(tasks)

    def live(self, guild_id: int, message_id: int) -> bool:
        """Whether ``message_id`` is the guild's current controller and its music still
        plays (a press may come in after the music ended, before the message is deleted)."""
        slot = self._slots.get(guild_id)
        guild = self._guilds.get(guild_id)
        if slot is None or slot.message is None or guild is None:
            return False
        return slot.message.message_id == message_id and _shows(guild)

    def changed(self, guild_id: int) -> None:
        """Something about the guild's playback changed: bring its controller up to date soon."""
        if self._closed:
            return
        slot = self._slots.setdefault(guild_id, _Slot())
        slot.dirty = True
        if slot.task is None:
            slot.task = asyncio.create_task(self._run(guild_id, slot), name="controller")

    async def close(self) -> None:
        """Stop the workers; what they did not do yet, the next start's refresh does."""
        self._closed = True
        tasks = [slot.task for slot in self._slots.values() if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the worker --------------------------------------------------------------------------

    async def _run(self, guild_id: int, slot: _Slot) -> None:
        try:
            while slot.dirty:
                # Never sooner than the interval after the last call; at least one yield, so
                # the change that woke this finishes first.
                await asyncio.sleep(max(0.0, slot.sent_at + self.interval - time.monotonic()))
                slot.dirty = False
                try:
                    await self._sync(guild_id, slot)
                except Exception:
                    _log.exception("guild %s: could not update the controller", guild_id)
        finally:
            slot.task = None

    async def _sync(self, guild_id: int, slot: _Slot) -> None:
        guild = self._guilds.get(guild_id)
        view = None
        channel_id = None
        if guild is not None:
            async with guild.lock:  # read between changes, never half-way through one
                view = self.view(guild)
                channel_id = controller_channel(guild)
        message = slot.message
        if message is not None and (view is None or message.channel_id != channel_id):
            await self._delete(slot, message)
            message = None
        if view is None or channel_id is None:
            return
        if message is None:
            await self._post(guild_id, slot, channel_id, view)
            return
        if slot.shown is not None and not _differs(slot.shown, view):
            return
        slot.sent_at = time.monotonic()
        match await self._discord.edit_controller(channel_id, message.message_id, view):
            case Delivery.DONE:
                slot.shown = view
            case Delivery.GONE:  # someone deleted it: post it again
                await self._forget(slot, message)
                await self._post(guild_id, slot, channel_id, view)
            case Delivery.FAILED:
                slot.shown = None  # unknown: the next change edits whatever it shows

    async def _post(
        self, guild_id: int, slot: _Slot, channel_id: int, view: ControllerView
    ) -> None:
        slot.sent_at = time.monotonic()
        message_id = await self._discord.post_controller(channel_id, view)
        if message_id is None:
            return
        slot.message = ControllerMessage(guild_id, channel_id, message_id)
        slot.shown = view
        try:
            if not await self._store.save(slot.message):
                slot.dirty = True  # the guild went meanwhile: the next pass deletes it
        except StorageError:
            # Logged by the repository; this run still edits and deletes it.
            _log.warning("guild %s: a restart will not know the controller message", guild_id)

    async def _delete(self, slot: _Slot, message: ControllerMessage) -> None:
        """Delete the message; forgotten either way (a message left behind by a failure
        answers presses politely as one whose music ended)."""
        await self._discord.delete_controller(message.channel_id, message.message_id)
        await self._forget(slot, message)

    async def _forget(self, slot: _Slot, message: ControllerMessage) -> None:
        slot.message = None
        slot.shown = None
        with contextlib.suppress(StorageError):  # logged; a restart tries the delete again
            await self._store.forget(message.guild_id, message.message_id)

    # --- what is shown -----------------------------------------------------------------------

    def view(self, guild: GuildState) -> ControllerView | None:
        """What the guild's controller shows now; ``None``: there should be none."""
        entry = guild.current
        if entry is None or not _shows(guild):
            return None
        player = guild.player
        waiting = player.status is PlayerStatus.INTERRUPTED
        ends_at = None
        if not (entry.is_stream or player.paused or waiting):
            left_ms = max(0, entry.length_ms - position(guild, self._lava))
            ends_at = round(time.time() + left_ms / 1000 / speed(guild.filters))
        return ControllerView(
            current=entry,
            artwork_url=info.artwork_url if (info := track_info(entry)) is not None else None,
            paused=player.paused,
            waiting=waiting,
            ends_at_s=ends_at,
            volume=player.volume,
            loop_mode=player.loop_mode,
            filter_name=preset_name(guild.filters),
        )


def _shows(guild: GuildState) -> bool:
    """Whether the guild's music plays, paused or waiting for a music server: not ended,
    and not out of voice (kicked, channel gone, left alone), which ends it too."""
    if guild.removed or guild.current is None:
        return False
    status = guild.player.status
    if status is PlayerStatus.INTERRUPTED:
        return guild.player.voice_channel_id is not None
    return status is PlayerStatus.PLAYING


def controller_channel(guild: GuildState) -> int | None:
    """The text channel the guild's controller belongs in (``None``: announcements are off):
    the server's announce channel, else where the music was asked for."""
    return guild.announce_channel_id


def _differs(shown: ControllerView, now: ControllerView) -> bool:
    if dataclasses.replace(shown, ends_at_s=None) != dataclasses.replace(now, ends_at_s=None):
        return True
    if shown.ends_at_s is None or now.ends_at_s is None:
        return shown.ends_at_s != now.ends_at_s
    return abs(shown.ends_at_s - now.ends_at_s) > DRIFT_S
