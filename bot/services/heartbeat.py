"""The bot's heartbeat: its liveness row rewritten every second while it runs.

A restarted bot reads the rows before its first beat (:meth:`.layouts.Layouts.load`): the
previous run's says when it stopped, within a second, even after ``kill -9``. A lost Lavalink
session's players played on until then plus the node's resume timeout, so a rebuild places
each track there (:func:`.positions.rebuild_position`) instead of storing every position
report. One statement a second: the "+1" in "commits per second at most the track changes
per second plus one"."""

from __future__ import annotations

import asyncio
import logging

from bot.background import BackgroundLoop
from bot.shards import ShardSet
from bot.storage import Repository, StorageError

from .guild import now_ms

__all__ = [
    "BEAT_INTERVAL",
    "PROCESS_KEY",
    "STALE_AFTER_MS",
    "Heartbeat",
    "process_key",
    "process_shards",
]

_log = logging.getLogger(__name__)

BEAT_INTERVAL = 1.0
"""Seconds between two beats: how exactly a restart knows when the last run stopped."""
STALE_AFTER_MS = 5_000
"""A row older than this (five beats) is a process that is no longer alive; younger, it may
be alive, and what it keeps as its own (its Lavalink sessions) is left alone."""
PROCESS_KEY = "bot"
"""The liveness row of a bot that runs as one process."""


def process_key(shards: ShardSet | None) -> str:
    """The liveness row of a process running ``shards`` (``None``: the whole bot)."""
    return PROCESS_KEY if shards is None else f"{PROCESS_KEY} {shards.key}"


def process_shards(key: str) -> ShardSet | None:
    """The share of the bot the process keyed ``key`` ran, read back from its key (the whole
    bot: :meth:`ShardSet.whole`); ``None`` when the key cannot say (a digest of a long list
    of shards, or not a process key)."""
    if key == PROCESS_KEY:
        return ShardSet.whole()
    head, _, shards = key.partition(" ")
    return ShardSet.from_key(shards) if head == PROCESS_KEY else None


class Heartbeat:
    """Writes the process's liveness row every :data:`BEAT_INTERVAL` seconds."""

    def __init__(
        self, repository: Repository, *, key: str = PROCESS_KEY, interval: float = BEAT_INTERVAL
    ) -> None:
        self._store = repository.liveness
        self._key = key
        self._interval = interval
        self._loop = BackgroundLoop("heartbeat", self._run)
        self._failing = False

    def start(self) -> None:
        self._loop.start()

    async def close(self, *, last_beat: bool = True) -> None:
        """Stop beating; the last beat says when this run stopped (``last_beat=False``: as a
        process killed at this moment would, with no last word)."""
        if await self._loop.stop() and last_beat:
            await self.beat()

    async def beat(self) -> None:
        try:
            await self._store.beat(self._key, now_ms())
        except StorageError as exc:
            if not self._failing:  # said once, not every second
                _log.warning(
                    "database: %s; after a restart, positions of lost sessions may be less "
                    "exact until it works again",
                    exc,
                )
            self._failing = True
            return
        if self._failing:
            _log.info("recording that the bot is alive works again")
            self._failing = False

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self._interval)
