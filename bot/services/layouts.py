"""Earlier shard layouts found in storage: the bot restarted with another ``SHARD_COUNT`` or
``SHARD_IDS`` (resharding).

Each process keys what it keeps as its own by its share of the bot (its liveness row,
:func:`.heartbeat.process_key`; its Lavalink session ids, :func:`.sessions.session_key`). A
process of a new layout therefore resumes none of the old sessions: it loads its guilds by
the new rule and rebuilds each from storage. Three rules make that lose nothing and play
nothing twice; they live here.

* **Old players go first** (:meth:`Layouts.clear_old_sessions`, before the client connects to
  any node, so before any guild starts). A session of a stopped process is paused, not gone:
  Lavalink keeps its players playing until the resume timeout, and a guild would play on its
  old player and on its new one. So a process removes its own guilds' players from every
  stored session of another layout that is not alive, whose players may still play (its
  last sign of life plus the resume timeout is ahead) and whose share overlaps its own. A
  layout is not alive when its liveness row is older than
  :data:`~.heartbeat.STALE_AFTER_MS`; a younger one is looked at again once it would be that
  old, and if it beat meanwhile it is alive and left alone (two live layouts sharing guilds
  are a mistake to log, not to repair).
* **Positions** (:meth:`Layouts.stopped_at`): a rebuilt track goes where its old player
  stopped: when the guild's previous owner was last alive plus the resume timeout, or when its
  old player was removed here, whichever is earlier. The previous owner is, of the stored
  processes whose share held the guild, the one alive last (keys name their shares, read back
  by :func:`.heartbeat.process_shards`), this process's own layout included.
* **Forgetting** (:meth:`Layouts.sweep`, at start and every :data:`SWEEP_INTERVAL` while
  something is left): another layout's session ids are deleted once its players are surely
  gone (last sign of life older than the resume timeout plus :data:`FORGET_MARGIN_MS`), and
  its liveness row once, besides, newer rows together hold every guild it held (it can then
  be no guild's previous owner), so the tables do not grow with every layout ever run.

A key longer than 40 characters is stored as a digest (:attr:`ShardSet.key`), whose shards
cannot be read back: such a process may have held any guild, so it counts as a possible
previous owner of each (the latest of them then wins, as the latest stale row would), it is
cleared of this process's guilds whenever it is not alive, and its row is forgotten only once
newer rows hold every guild. Wall clocks of different machines are compared: they are assumed
to agree within a second (NTP), far below the margins here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Final

from bot import lavalink
from bot.background import BackgroundLoop
from bot.shards import ShardSet, covered, overlap
from bot.storage import Repository, StorageError, StoredSession

from .guild import now_ms
from .heartbeat import STALE_AFTER_MS, process_key, process_shards
from .ports import Lavalink
from .sessions import session_owner

__all__ = ["FORGET_MARGIN_MS", "SWEEP_INTERVAL", "Layouts"]

_log = logging.getLogger(__name__)

FORGET_MARGIN_MS: Final = 60_000
"""Past the resume timeout, how long another layout's rows are kept before they go."""
SWEEP_INTERVAL: Final = 60.0
"""Seconds between two looks for rows to forget, while some may have to go later."""
BUSY_RETRY: Final = 0.1
"""Seconds before asking again for a session another process is clearing right now."""
CLEAR_BUDGET_MS: Final = 10_000
"""The longest one session may stay busy before this process gives up clearing it."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Layout:
    """Another layout's stored process: its share (``None``: a digest), when it was last
    alive (its liveness row, else when it stored its session ids), and its session ids."""

    key: str
    shares: ShardSet | None
    alive_at_ms: int
    sessions: tuple[StoredSession, ...]


class Layouts:
    """What this process does about the layouts stored before it (see the module)."""

    def __init__(self, repository: Repository, lava: Lavalink, shards: ShardSet | None) -> None:
        self._repo = repository
        self._lava = lava
        self._shares = shards or ShardSet.whole()
        self._key = process_key(shards)
        self._owners: list[tuple[int, ShardSet | None]] = []
        self._cleared: dict[int, int] = {}
        self._loop = BackgroundLoop("layouts", self._sweeping)

    @property
    def _timeout_ms(self) -> int:
        return round(self._lava.resume_timeout * 1000)

    # --- positions ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Read every process's last sign of life, before this one's first beat."""
        rows = await self._repo.liveness.all()
        self._owners = sorted(
            ((alive_at, process_shards(key)) for key, alive_at in rows.items()),
            key=lambda owner: -owner[0],
        )

    def stopped_at(self, guild_id: int) -> int | None:
        """When the guild's player of the previous run stopped (Unix ms); ``None``: no
        process that could have held it ever beat (a database from before the liveness row)."""
        stop = next(
            (
                alive_at + self._timeout_ms
                for alive_at, shares in self._owners
                if shares is None or shares.owns(guild_id)
            ),
            None,
        )
        cleared = self._cleared.get(guild_id)
        if cleared is not None:
            stop = cleared if stop is None else min(stop, cleared)
        return stop

    # --- clearing old sessions ---------------------------------------------------------------

    async def clear_old_sessions(self, user_id: int) -> None:
        """Remove this process's guilds' players from the sessions of layouts that are not
        alive (see the module); each failure is logged and the start goes on."""
        try:
            layouts = await self._stopped_layouts()
        except StorageError:
            _log.warning("could not read the earlier layouts: their sessions are left alone")
            return
        nodes = set(self._lava.node_names)
        for layout in layouts:
            deadline = layout.alive_at_ms + self._timeout_ms
            for stored in layout.sessions:
                node, _ = session_owner(stored.key)
                if node in nodes and deadline > now_ms():
                    await self._clear(layout, node, stored.session_id, deadline, user_id)

    async def _stopped_layouts(self) -> list[_Layout]:
        """The other layouts sharing guilds with this one whose players may still play and
        that are not alive; a young row is looked at again once it would be stale."""
        layouts = self._relevant(await self._layouts())
        young = [layout for layout in layouts if now_ms() - layout.alive_at_ms < STALE_AFTER_MS]
        if young:
            youngest = max(layout.alive_at_ms for layout in young)
            _log.info(
                "waiting up to %.0f s to see whether %s still run(s)",
                STALE_AFTER_MS / 1000,
                ", ".join(repr(layout.key) for layout in young),
            )
            await asyncio.sleep((youngest + STALE_AFTER_MS - now_ms()) / 1000)
            layouts = self._relevant(await self._layouts())
        alive = [layout for layout in layouts if now_ms() - layout.alive_at_ms < STALE_AFTER_MS]
        for layout in alive:
            _log.warning(
                "the process %r is alive and runs some of this process's servers: check "
                "SHARD_COUNT and SHARD_IDS; its Lavalink sessions are left alone",
                layout.key,
            )
        return [layout for layout in layouts if layout not in alive]

    def _relevant(self, layouts: list[_Layout]) -> list[_Layout]:
        now = now_ms()
        return [
            layout
            for layout in layouts
            if layout.sessions
            and layout.alive_at_ms + self._timeout_ms > now
            and (layout.shares is None or overlap(layout.shares, self._shares))
        ]

    async def _clear(
        self, layout: _Layout, node: str, session_id: str, deadline: int, user_id: int
    ) -> None:
        """Clear one session, asking again while another process holds it."""
        give_up = min(deadline, now_ms() + CLEAR_BUDGET_MS)
        while True:
            try:
                done = await self._lava.clear_session(
                    node,
                    session_id,
                    user_id=user_id,
                    drop=self._shares.owns,
                    expires_in=(deadline - now_ms()) / 1000,
                )
            except lavalink.LavalinkError as exc:
                _log.warning(
                    "Lavalink node %s: could not remove this process's servers from the "
                    "session of %r (%s); they may play twice until it expires",
                    node,
                    layout.key,
                    exc,
                )
                return
            if done.status is not lavalink.ClearStatus.BUSY:
                break
            if now_ms() + BUSY_RETRY * 1000 >= give_up:
                _log.warning(
                    "Lavalink node %s: the session of %r stayed busy; this process's servers "
                    "in it may play twice until it expires",
                    node,
                    layout.key,
                )
                return
            await asyncio.sleep(BUSY_RETRY)
        if done.status is lavalink.ClearStatus.CLEARED:
            at = now_ms()
            for guild_id in done.removed:
                self._cleared[guild_id] = at
            _log.log(
                logging.INFO if done.removed else logging.DEBUG,
                "Lavalink node %s: %d player(s) of this process's servers removed from the "
                "session of the earlier layout %r (%d left to others)",
                node,
                len(done.removed),
                layout.key,
                done.left,
            )

    # --- forgetting ----------------------------------------------------------------------------

    def start(self) -> None:
        """Forget what can no longer matter now, and later while anything may."""
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()

    async def sweep(self) -> bool:
        """Forget the rows of other layouts that can no longer matter; whether rows of
        stopped layouts are left (a later sweep may forget them)."""
        rows = await self._repo.liveness.all()
        layouts = await self._layouts(rows)
        now = now_ms()
        before = now - self._timeout_ms - FORGET_MARGIN_MS
        sessions = [
            stored.key
            for layout in layouts
            if layout.alive_at_ms < before
            for stored in layout.sessions
        ]
        ran = [
            (alive_at, shares)
            for key, alive_at in rows.items()
            if (shares := process_shards(key)) is not None
        ]
        gone = [
            layout.key
            for layout in layouts
            if layout.key in rows
            and layout.alive_at_ms < before
            and covered(
                layout.shares or ShardSet.whole(),
                [shares for alive_at, shares in ran if alive_at > layout.alive_at_ms],
            )
        ]
        forgotten = await self._repo.sessions.forget(sessions, before)
        forgotten += await self._repo.liveness.forget(gone, before)
        if forgotten:
            _log.info("forgot %d stored row(s) of earlier shard layouts", forgotten)
        return any(
            now - layout.alive_at_ms >= STALE_AFTER_MS
            and (
                (layout.key in rows and layout.key not in gone)
                or (bool(layout.sessions) and layout.alive_at_ms >= before)
            )
            for layout in layouts
        )

    async def _sweeping(self) -> None:
        while True:
            try:
                if not await self.sweep():
                    return
            except StorageError:
                pass  # the repository logged it; the next sweep tries again
            await asyncio.sleep(SWEEP_INTERVAL)

    # --- reading -------------------------------------------------------------------------------

    async def _layouts(self, rows: dict[str, int] | None = None) -> list[_Layout]:
        """Every other layout's stored process, from its liveness row and its session ids."""
        if rows is None:
            rows = await self._repo.liveness.all()
        sessions: dict[str, list[StoredSession]] = {}
        for stored in await self._repo.sessions.all():
            sessions.setdefault(session_owner(stored.key)[1], []).append(stored)
        layouts = []
        for key in set(rows) | set(sessions):
            if key == self._key:
                continue
            held = tuple(sessions.get(key, ()))
            # Without a liveness row (forgotten, or a process from before it), the session
            # ids it stored are its last sign of life.
            alive_at = rows[key] if key in rows else max(s.updated_at_ms for s in held)
            layouts.append(_Layout(key, process_shards(key), alive_at, held))
        return layouts
