"""Editing the upcoming queue: skip ahead, remove, move, shuffle, clear.

Positions count the upcoming entries from 1 (the next track), as ``/queue`` numbers them; the
current track is never edited here. Each edit checks what the user may do, takes the guild's
lock, checks the state again (another command may have changed it meanwhile), and follows the
one write rule: the database first, in one short transaction touching only the rows that
change; memory only once it committed. A failed write is :class:`~.errors.SaveFailed`, with
nothing changed. ``upcoming_ms`` stays exact after every edit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import operator
import random
from collections.abc import AsyncIterator, Iterator, Sequence

import msgspec

from bot.storage import LoopMode, PlayerStatus, QueueEntry, Repository, StorageError, move_keys

from .errors import (
    Action,
    BackwardRange,
    GuildGone,
    NoSuchPosition,
    NothingPlaying,
    NothingQueued,
    SamePosition,
    SaveFailed,
    TooFewToShuffle,
    Unsaved,
)
from .guild import GuildState, has_played, stamped
from .permissions import Require
from .playback import Playback
from .views import Cleared, Moved, Removed, Shuffled, SkipOutcome

__all__ = ["QueueEdits"]

"""The permission hook (:meth:`.permissions.Permissions.require`): raises what stops the user."""


class QueueEdits:
    """The queue-editing commands; the service holds one (``QueueService.edits``)."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        repository: Repository,
        playback: Playback,
        require_listener: Require,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._guilds = guilds
        self._repo = repository
        self._playback = playback
        self._require_listener = require_listener
        self._rng = rng or random.Random()

    async def skip_to(self, guild_id: int, user_id: int, to: int) -> SkipOutcome:
        """Skip to upcoming entry ``to``, passing the ones before it: dropped, or with loop mode
        ``queue`` sent to the back after the skipped current one, as ``to`` skips in a row
        would. One transaction; only the target entry is started."""
        async with self._editing(guild_id, user_id, Action.SKIP_TO, current=True) as guild:
            _check(to, guild)
            skipped = guild.current
            assert skipped is not None
            heard = skipped if has_played(guild) else None
            passed = [skipped, *itertools.islice(guild.upcoming, to - 1)]
            target = guild.upcoming[to - 1]
            requeue = guild.player.loop_mode is LoopMode.QUEUE
            live = guild.is_playing
            player = stamped(guild.player, PlayerStatus.PLAYING if live else _INTERRUPTED, 0)
            player = dataclasses.replace(player, current_entry_id=target.id)
            try:
                keys = await self._repo.skip_to(
                    player, [e.id for e in passed], requeue=requeue, played=heard
                )
            except StorageError:
                raise SaveFailed(Unsaved.SKIP) from None
            _take(guild, 0, to)
            if requeue:
                guild.push(list(map(_keyed, passed, keys)))
            guild.current, guild.player = target, player
            self._playback.touched(guild)
            problem = await self._playback.start_current(guild) if live else None
            waiting = guild.player.status is _INTERRUPTED and problem is None
            return SkipOutcome(skipped, target, waiting, problem, passed=to - 1)

    async def remove(
        self, guild_id: int, user_id: int, position: int, to: int | None = None
    ) -> Removed:
        """Remove upcoming entry ``position``, or ``position`` to ``to`` inclusive (with a DJ
        role set, a member who is not a DJ removes only entries they asked for)."""
        last = position if to is None else to
        async with self._editing(guild_id, user_id, Action.REMOVE) as guild:
            _check(position, guild)
            if last < position:
                raise BackwardRange(position, last)
            _check(last, guild)
            doomed = list(itertools.islice(guild.upcoming, position - 1, last))
            # Asked again with the entries in hand: whose they are decides.
            mine = self._require_listener(guild_id, user_id, Action.REMOVE)
            mine.require_own(doomed, Action.REMOVE)
            try:
                await self._repo.remove_entries(guild_id, [e.id for e in doomed])
            except StorageError:
                raise SaveFailed(Unsaved.REMOVE) from None
            _take(guild, position - 1, len(doomed))
            guild.touch()
            return Removed(tuple(doomed), position, last)

    async def move(self, guild_id: int, user_id: int, source: int, target: int) -> Moved:
        """Move upcoming entry ``source`` to place ``target``: one row gets a key between its
        new neighbours (a few following rows are spaced out again when there is no room)."""
        async with self._editing(guild_id, user_id, Action.MOVE) as guild:
            _check(source, guild)
            _check(target, guild)
            if source == target:
                raise SamePosition(source)
            upcoming, src, at = guild.upcoming, source - 1, target - 1
            entry = upcoming[src]
            # Read in place (deque indexing and islice run in C): no Python walk of the queue.
            before = upcoming[at - 1 if at <= src else at].sort_key if at > 0 else None
            keys = move_keys(before, (e.sort_key for e in _others_from(upcoming, src, at)))
            following = itertools.islice(_others_from(upcoming, src, at), len(keys) - 1)
            moved = [entry, *following]
            try:
                await self._repo.reorder(
                    guild_id, [(e.id, k) for e, k in zip(moved, keys, strict=True)]
                )
            except StorageError:
                raise SaveFailed(Unsaved.MOVE) from None
            rekeyed = [_keyed(e, k) for e, k in zip(moved, keys, strict=True)]
            del upcoming[src]
            upcoming.insert(at, rekeyed[0])
            for n, e in enumerate(rekeyed[1:], start=at + 1):  # the re-spaced ones
                upcoming[n] = e
            guild.touch()
            return Moved(rekeyed[0], source, target)

    async def shuffle(self, guild_id: int, user_id: int) -> Shuffled:
        """Shuffle the upcoming entries: they trade their sort keys, in one statement."""
        async with self._editing(guild_id, user_id, Action.SHUFFLE) as guild:
            if len(guild.upcoming) < 2:
                raise TooFewToShuffle()
            keys = [e.sort_key for e in guild.upcoming]  # in order: ascending
            order = list(guild.upcoming)
            self._rng.shuffle(order)
            # Every pair, built in C: sifting out the few entries that kept their key cost
            # more (a Python loop over 10,000) than writing them again.
            pairs = list(zip(map(_ID, order), keys, strict=True))
            try:
                await self._repo.reorder(guild_id, pairs)
            except StorageError:
                raise SaveFailed(Unsaved.SHUFFLE) from None
            # Copies made inline, no call per entry: they are up to 10,000.
            _replace(guild, [_rekeyed(e, sort_key=k) for e, k in zip(order, keys, strict=True)])
            guild.touch()
            return Shuffled(len(order), guild.upcoming[0])

    async def clear(self, guild_id: int, user_id: int) -> Cleared:
        """Remove every upcoming entry (one statement); the current track plays on."""
        async with self._editing(guild_id, user_id, Action.CLEAR) as guild:
            current = guild.current
            try:
                await self._repo.clear_upcoming(guild_id, current.id if current else None)
            except StorageError:
                raise SaveFailed(Unsaved.CLEAR) from None
            count = len(guild.upcoming)
            guild.upcoming.clear()
            guild.upcoming_ms = 0
            guild.touch()
            return Cleared(count, current)

    @contextlib.asynccontextmanager
    async def _editing(
        self, guild_id: int, user_id: int, action: Action, *, current: bool = False
    ) -> AsyncIterator[GuildState]:
        """The guild, locked, once the user may edit it and it has something to edit."""
        guild = self._guilds.get(guild_id)
        _check_state(guild, current=current)
        self._require_listener(guild_id, user_id, action)
        assert guild is not None
        async with guild.lock:
            if guild.removed:
                raise GuildGone()
            _check_state(guild, current=current)  # again: the queue may have changed
            yield guild


_INTERRUPTED = PlayerStatus.INTERRUPTED
_ID = operator.attrgetter("id")
_rekeyed = msgspec.structs.replace


def _check_state(guild: GuildState | None, *, current: bool) -> None:
    if guild is None or (guild.current is None and (current or not guild.upcoming)):
        raise NothingPlaying()
    if not guild.upcoming:
        raise NothingQueued()


def _check(position: int, guild: GuildState) -> None:
    if not 1 <= position <= len(guild.upcoming):
        raise NoSuchPosition(position, len(guild.upcoming))


def _keyed(entry: QueueEntry, key: int) -> QueueEntry:
    """``entry`` with sort key ``key`` (a shuffle makes up to 10,000 of these)."""
    return entry if entry.sort_key == key else msgspec.structs.replace(entry, sort_key=key)


def _others_from(upcoming: Sequence[QueueEntry], src: int, at: int) -> Iterator[QueueEntry]:
    """The upcoming entries from place ``at`` on, as they are once entry ``src`` is taken out
    (``others[at:]``), without copying the queue."""
    if at < src:
        return itertools.chain(
            itertools.islice(upcoming, at, src), itertools.islice(upcoming, src + 1, None)
        )
    return itertools.islice(upcoming, at + 1, None)


def _take(guild: GuildState, start: int, count: int) -> list[QueueEntry]:
    """Take ``count`` upcoming entries from index ``start`` out of memory."""
    upcoming = guild.upcoming
    upcoming.rotate(-start)
    taken = [upcoming.popleft() for _ in range(count)]
    upcoming.rotate(start)
    guild.upcoming_ms -= sum(e.length_ms for e in taken if not e.is_stream)
    return taken


def _replace(guild: GuildState, entries: list[QueueEntry]) -> None:
    """The same upcoming entries in a new order (their total length is unchanged)."""
    guild.upcoming.clear()
    guild.upcoming.extend(entries)
