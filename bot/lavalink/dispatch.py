"""Event dispatch: each guild's events reach the listener in order, one guild never waits on
another, and nothing is kept for a guild with no events in flight.

Also the client's background tasks, so that a failure is logged rather than lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .events import Event

__all__ = ["BackgroundTasks", "Dispatcher", "EventListener", "Mailbox"]

_log = logging.getLogger(__name__)

EventListener = Callable[[Event], Awaitable[None]]


class Mailbox:
    """Runs callbacks one after another; a task exists only while there is work."""

    __slots__ = ("_idle", "_items", "_name", "_task")

    def __init__(self, name: str, idle: Callable[[Mailbox], None] | None = None) -> None:
        self._name = name
        self._idle = idle
        self._items: collections.deque[Callable[[], Awaitable[None]]] = collections.deque()
        self._task: asyncio.Task[None] | None = None

    def post(self, work: Callable[[], Awaitable[None]]) -> None:
        self._items.append(work)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._name)

    async def _drain(self) -> None:
        try:
            while self._items:
                work = self._items.popleft()
                try:
                    await work()
                except Exception:
                    # A failing listener must not stop later events from being delivered.
                    _log.exception("Lavalink event listener failed")
        finally:
            self._task = None
            # No await between the last item and here: nothing can be posted in between.
            if not self._items and self._idle is not None:
                self._idle(self)

    def cancel(self) -> None:
        self._items.clear()
        if self._task is not None:
            self._task.cancel()


class Dispatcher:
    """Delivers events to one listener: per guild in order, the rest in one global order."""

    def __init__(self) -> None:
        self._listener: EventListener | None = None
        self._guilds: dict[int, Mailbox] = {}
        self._global = Mailbox("lavalink-events")

    def set_listener(self, listener: EventListener) -> None:
        self._listener = listener

    def post(self, guild_id: int, event: Event) -> None:
        mailbox = self._guilds.get(guild_id)
        if mailbox is None:
            mailbox = self._guilds[guild_id] = Mailbox(
                f"lavalink-guild-{guild_id}", lambda done: self._drained(guild_id, done)
            )
        mailbox.post(lambda: self._deliver(event))

    def post_global(self, event: Event) -> None:
        self._global.post(lambda: self._deliver(event))

    @property
    def busy_guilds(self) -> int:
        """Guilds with events not yet delivered (each holds a mailbox only until then)."""
        return len(self._guilds)

    def pending(self, guild_id: int) -> bool:
        """Whether events for ``guild_id`` are posted but not yet delivered to the listener."""
        return guild_id in self._guilds

    def close(self) -> None:
        for mailbox in (*self._guilds.values(), self._global):
            mailbox.cancel()
        self._guilds.clear()

    def _drained(self, guild_id: int, mailbox: Mailbox) -> None:
        if self._guilds.get(guild_id) is mailbox:
            del self._guilds[guild_id]

    async def _deliver(self, event: Event) -> None:
        if self._listener is not None:
            await self._listener(event)


class BackgroundTasks:
    """Fire-and-forget work the client starts; kept referenced, failures logged."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("Lavalink client task failed", exc_info=task.exception())
