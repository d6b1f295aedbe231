"""What ``/play`` may add, and where it goes: the server's queue limits and queue order.

Limits (from the guild's :class:`~bot.storage.GuildSettings`): the longest queue, the longest
track, and each member's share of the queue. A single track over a limit is refused with the
limit's typed error; a playlist queues the tracks that fit and says how many each limit kept
out (:class:`~.views.LeftOut`); a playlist of which none fit is refused as a single track is.

Order: at the back, unless ``next`` (first in line, before every upcoming track) or the
server's fair queue (round-robin by requester: a member's k-th upcoming track goes after every
other member's k-th, so one member's playlist cannot push everyone else back). Either way each
new entry takes a sort key in its gap (:func:`bot.storage.insert_keys`): one transaction of
inserts, plus a few re-keyed rows when a gap is full; the queue is never rewritten.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Sequence

import msgspec

from bot.storage import NewEntry, PlayerRecord, QueueEntry, Repository, insert_keys

from .errors import QueueFull, ShareFull, TrackTooLong
from .guild import GuildState
from .views import LeftOut

__all__ = [
    "MAX_QUEUE_LENGTH",
    "MAX_VOLUME",
    "MIN_TRACK_LIMIT_MS",
    "Admitted",
    "admit",
    "check_room",
    "gaps",
    "store_new",
]

MAX_QUEUE_LENGTH = 10_000
"""The longest queue a server may allow (and the default)."""
MAX_VOLUME = 200
"""Highest volume a user may set. Lavalink takes 0..1000, but above 200 % the sound only
clips and distorts, which nobody in the channel wants and can hurt with headphones on."""
MIN_TRACK_LIMIT_MS = 10_000
"""The shortest track limit a server may set: below it hardly any song could be queued."""


@dataclasses.dataclass(frozen=True, slots=True)
class Admitted:
    entries: list[NewEntry]
    left_out: tuple[LeftOut, ...]


def share_limit(guild: GuildState) -> int | None:
    """How many upcoming tracks one member may have (``None``: no share limit)."""
    percent = guild.settings.user_share_percent
    if percent is None:
        return None
    return max(1, guild.settings.max_queue_length * percent // 100)


def _mine(guild: GuildState, user_id: int) -> int:
    return sum(1 for e in guild.upcoming if e.requester_id == user_id)


def check_room(guild: GuildState, user_id: int) -> None:
    """Refuse before loading anything when nothing at all could be added."""
    settings = guild.settings
    if len(guild.upcoming) >= settings.max_queue_length:
        raise QueueFull(settings.max_queue_length)
    limit = share_limit(guild)
    if limit is not None and _mine(guild, user_id) >= limit:
        raise ShareFull(settings.user_share_percent or 0, limit)


def admit(
    guild: GuildState, entries: Sequence[NewEntry], user_id: int, *, playlist: bool
) -> Admitted:
    """The entries that fit the server's limits, in order, and what each limit kept out.

    Raises:
        TrackTooLong, ShareFull, QueueFull: a single track, or a playlist of which none fit.
    """
    settings = guild.settings
    kept, left_out = list(entries), []
    longest = settings.max_track_ms
    if longest is not None:
        fits = [e for e in kept if e.is_stream or e.length_ms <= longest]
        if len(fits) < len(kept):
            too_long = next(e for e in kept if not e.is_stream and e.length_ms > longest)
            why = TrackTooLong(longest, too_long.length_ms)
            if not fits:
                raise why
            left_out.append(LeftOut(len(kept) - len(fits), why))
            kept = fits
    most = settings.max_queue_length
    starts = 1 if guild.current is None else 0  # the first one plays now: it is not waiting
    limits: list[tuple[int, ShareFull | QueueFull]] = []
    if (share := share_limit(guild)) is not None:
        percent = settings.user_share_percent or 0
        limits.append((share + starts - _mine(guild, user_id), ShareFull(percent, share)))
    limits.append((most + starts - len(guild.upcoming), QueueFull(most)))
    for room, full in limits:
        if room <= 0 or (not playlist and room < len(kept)):
            raise full
        if room < len(kept):
            left_out.append(LeftOut(len(kept) - room, full))
            kept = kept[:room]
    return Admitted(kept, tuple(left_out))


def gaps(guild: GuildState, count: int, user_id: int, *, first: bool) -> list[int] | None:
    """For each of ``count`` new entries of ``user_id``, the index of the upcoming entry it
    goes in front of (``len(upcoming)``: the back); ``None``: all at the back.

    ``first`` (``/play next``) puts them all in front. With the fair queue, a member's k-th
    upcoming track goes right after the last upcoming track that is some member's k-th or
    earlier (in a fair queue: after every other member's k-th).
    """
    if not guild.upcoming or count == 0:
        return None
    if first:
        return [0] * count
    if not guild.settings.fair_queue:
        return None
    seen: collections.Counter[int] = collections.Counter()
    last_of_round: dict[int, int] = {}  # round -> index of its last entry
    for index, entry in enumerate(guild.upcoming):
        seen[entry.requester_id] += 1
        last_of_round[seen[entry.requester_id]] = index
    mine = seen[user_id]
    rounds = range(mine + 1, mine + count + 1)
    # After the last entry of the same round or an earlier one (rounds only go up).
    latest = (last_of_round.get(r, -1) for r in range(1, rounds[-1] + 1))
    after = list(itertools.accumulate(latest, max))
    return [after[r - 1] + 1 for r in rounds]


async def store_new(
    repo: Repository,
    guild: GuildState,
    player: PlayerRecord,
    entries: Sequence[NewEntry],
    places: list[int] | None,
    *,
    start: bool,
) -> tuple[tuple[QueueEntry, ...], bool, int]:
    """Store ``entries`` (at ``places``, see :func:`gaps`), then take them into memory.

    Returns the stored entries, whether the first became the current one, and its 1-based
    place among the upcoming ones (0 when it is the current one).

    Raises:
        StorageError: nothing was stored, and memory is unchanged.
    """
    if places is None or guild.current is None:
        player, added = await repo.enqueue(player, entries, start=start)
        guild.player = player
        if guild.current is None:
            guild.current = added[0]
            guild.push(added[1:])
            return added, True, 0
        guild.push(added)
        return added, False, len(guild.upcoming) - len(added) + 1
    upcoming = list(guild.upcoming)
    keys, rekeys = insert_keys([e.sort_key for e in upcoming], places)
    moved = [(upcoming[i].id, key) for i, key in rekeys]
    player, added = await repo.inserts.insert(player, entries, keys, moved, start=start)
    guild.player = player
    for index, key in rekeys:
        upcoming[index] = msgspec.structs.replace(upcoming[index], sort_key=key)
    merged: list[QueueEntry] = []
    new = iter(zip(places, added, strict=True))
    pending = next(new, None)
    for index, entry in enumerate([*upcoming, None]):
        while pending is not None and pending[0] == index:
            merged.append(pending[1])
            pending = next(new, None)
        if entry is not None:
            merged.append(entry)
    guild.upcoming.clear()
    guild.upcoming_ms = 0
    guild.push(merged)
    return added, False, places[0] + 1
