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

__all__ = ["ShardSet", "shard_of"]


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
