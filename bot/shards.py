"""Which guilds are this process's: the gateway shards it runs, of how many there are.

Discord puts guild ``g`` on shard ``(g >> 22) % count``. A bot too big for one process runs
several, each with its own ``SHARD_IDS``, over one shared database: each process restores,
re-joins and resumes only its own guilds, and keys what it stores for itself (its Lavalink
session ids, its liveness row) by :attr:`ShardSet.key`, so processes sharing a Lavalink node
or a database never take each other's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable

__all__ = ["ShardSet", "covered", "overlap", "shard_of"]

MAX_PERIOD = 100_000
"""The longest cycle of shard numbers :func:`covered` walks (the least common multiple of
the counts compared); past it, it answers ``False``, which only keeps a row longer."""


def shard_of(guild_id: int, count: int) -> int:
    """The shard ``guild_id`` is on, of ``count`` (Discord's rule)."""
    return (guild_id >> 22) % count


@dataclasses.dataclass(frozen=True, slots=True)
class ShardSet:
    """The shards ``ids`` of ``count``: this process's share of the bot's guilds."""

    ids: frozenset[int]
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("the shard count must be at least 1")
        if not self.ids:
            raise ValueError("names no shard")
        if not all(0 <= shard < self.count for shard in self.ids):
            raise ValueError(f"names a shard outside 0-{self.count - 1}")

    @classmethod
    def parse(cls, text: str, count: int) -> ShardSet:
        """``0-3`` or ``4,5,6,7`` (or a mix: ``0-1,6``) of ``count`` shards."""
        ids: set[int] = set()
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            try:
                first = int(low)
                last = int(high) if dash else first
            except ValueError:
                raise ValueError("must be shard numbers such as 0-3 or 4,5,6,7") from None
            if last < first:
                raise ValueError(f"has a backwards range {first}-{last}")
            ids.update(range(first, last + 1))
        return cls(frozenset(ids), count)

    @classmethod
    def whole(cls) -> ShardSet:
        """The whole bot: the one shard of one (what a process without ``SHARD_IDS`` runs,
        as far as which guilds it owns goes)."""
        return cls(frozenset({0}), 1)

    @classmethod
    def from_key(cls, key: str) -> ShardSet | None:
        """The share a :attr:`key` names, read back; ``None`` for a digest (a long list of
        single shards, whose shards cannot be recovered) or anything that is not a key."""
        text, slash, count = key.rpartition("/")
        if not slash or not count.isdigit():
            return None
        try:
            shards = cls.parse(text, int(count))
        except ValueError:
            return None  # a digest, or not a key at all
        return shards if shards.key == key else None

    def owns(self, guild_id: int) -> bool:
        return shard_of(guild_id, self.count) in self.ids

    @property
    def key(self) -> str:
        """A short stable name for this share (``0-3/8``), for what a process stores as its
        own; a long list of single shards is named by its digest instead."""
        ranges: list[str] = []
        for shard in sorted(self.ids):
            if ranges and shard - 1 == _last(ranges[-1]):
                ranges[-1] = f"{ranges[-1].split('-')[0]}-{shard}"
            else:
                ranges.append(str(shard))
        key = f"{','.join(ranges)}/{self.count}"
        if len(key) > 40:
            key = hashlib.sha256(key.encode()).hexdigest()[:16] + f"/{self.count}"
        return key


def _last(part: str) -> int:
    return int(part.rpartition("-")[2])


def overlap(first: ShardSet, second: ShardSet) -> bool:
    """Whether some guild is in both shares, whatever their counts.

    Guild ``g`` is on shard ``s % count`` of each, with ``s = g >> 22`` any whole number; by
    the Chinese remainder theorem shards ``i`` of ``a`` and ``j`` of ``b`` share guilds exactly
    when ``i`` and ``j`` agree modulo ``gcd(a, b)``.
    """
    common = math.gcd(first.count, second.count)
    return bool({i % common for i in first.ids} & {j % common for j in second.ids})


def covered(share: ShardSet, by: Iterable[ShardSet]) -> bool:
    """Whether every guild of ``share`` is in one of ``by`` (``False`` past :data:`MAX_PERIOD`).

    Which shards a guild is on, of every count at once, repeats with ``g >> 22`` modulo the
    counts' least common multiple: one cycle of it decides.
    """
    others = list(by)
    period = math.lcm(share.count, *(other.count for other in others))
    if period > MAX_PERIOD:
        return False
    return all(
        any(s % other.count in other.ids for other in others)
        for s in range(period)
        if s % share.count in share.ids
    )
