"""The fake Discord's gateway sessions, connections and shards (see :mod:`peers.fake_discord`).

Why a module of its own: Discord serves a bot as many shards, each its own websocket and its
own session (session id, sequence, resume URL), and routes every guild's events to one of them.
Keeping that bookkeeping here (which session is current for which shard, which guild is on
which shard, the IDENTIFY buckets of ``max_concurrency``) keeps the server readable.

Facts from Discord's gateway documentation ("Sharding", "Identifying", "Session Start Limit
Object", "Gateway Close Event Codes"):

* IDENTIFY's ``shard`` is ``[shard_id, num_shards]`` (left out: ``[0, 1]``); a guild's events go
  to shard ``(guild_id >> 22) % num_shards``, DMs (events of no guild) to shard 0 only.
* An invalid ``shard`` closes the connection 4010 "Invalid shard"; a session that would hold
  more guilds than a shard may (2,500) closes 4011 "Sharding required".
* ``max_concurrency`` IDENTIFYs per 5 s, bucketed by ``rate_limit_key = shard_id %
  max_concurrency``; an IDENTIFY over that limit is answered with op 9 Invalid Session.
* GET /gateway/bot recommends a shard count; about 1,000 guilds a shard.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "GUILDS_PER_RECOMMENDED_SHARD",
    "IDENTIFY_WINDOW",
    "MAX_GUILDS_PER_SHARD",
    "Connection",
    "Session",
    "ShardTable",
    "parse_shard",
    "recommended_shards",
    "shard_of",
]

JSON = dict[str, Any]

MAX_GUILDS_PER_SHARD = 2500
"""Discord: a session may hold at most 2,500 guilds; more closes it 4011."""
GUILDS_PER_RECOMMENDED_SHARD = 1000
"""GET /gateway/bot recommends about one shard per 1,000 guilds."""
IDENTIFY_WINDOW = 5.0
"""Seconds of Discord's IDENTIFY window: ``max_concurrency`` IDENTIFYs per bucket each."""


def shard_of(guild_id: int, num_shards: int) -> int:
    """The shard a guild's events go to (Discord's sharding formula)."""
    return (guild_id >> 22) % num_shards


def recommended_shards(guild_count: int) -> int:
    """What GET /gateway/bot answers as ``shards``: at least one, ~1,000 guilds each."""
    return max(1, math.ceil(guild_count / GUILDS_PER_RECOMMENDED_SHARD))


def parse_shard(value: object) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as ``(shard_id, num_shards)``; None when Discord would close 4010.

    Left out (or null) means unsharded: ``(0, 1)``.
    """
    if value is None:
        return 0, 1
    if not isinstance(value, list) or len(value) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return None
    shard_id, count = value
    if count < 1 or not 0 <= shard_id < count:
        return None
    return shard_id, count


@dataclass
class Session:
    """One gateway session: what one IDENTIFY started, for one shard of one layout."""

    id: str
    intents: int
    shard_id: int = 0
    num_shards: int = 1
    seq: int = 0
    sent: list[JSON] = field(default_factory=list)
    live: bool = True
    guilds_sent: bool = False

    def owns(self, guild_id: int) -> bool:
        """The guild's events go to this session's shard."""
        return shard_of(guild_id, self.num_shards) == self.shard_id


class Connection:
    """One websocket; sends are serialised because the zlib stream is stateful."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        compress: bool,
        transport: asyncio.Transport | None,
        index: int = 0,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.index = index
        """Its place in :attr:`FakeDiscord.connection_ops`."""
        self.zlib = zlib.compressobj() if compress else None
        self.lock = asyncio.Lock()
        self.session: Session | None = None
        self.received: collections.deque[float] = collections.deque()
        self.ops: list[tuple[float, int]] = []

    @property
    def open(self) -> bool:
        return not self.ws.closed

    async def send(self, payload: JSON) -> bool:
        data = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return False
            try:
                if self.zlib is not None:
                    frame = self.zlib.compress(data.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                return False
            return True


class ShardTable:
    """Which session and connection are current for each shard of the bot's layout.

    One layout (``num_shards``) at a time: the bot's latest IDENTIFY sets it, and an IDENTIFY
    with another count ends the sessions of the old one (a bot restarted with a new shard
    count). Discord would let both layouts run side by side; the fake does not model that.
    """

    def __init__(self) -> None:
        self.num_shards = 1
        self.sessions: dict[int, Session] = {}
        """The current (latest identified) session per shard id; it may have ended."""
        self.conns: dict[int, Connection] = {}
        """The connection serving each shard's current session, while it is open."""
        self._identified_at: dict[int, collections.deque[float]] = {}

    def session_for(self, guild_id: int | None) -> Session | None:
        """The current session the guild's events go to (None: a DM, shard 0's)."""
        shard = 0 if guild_id is None else shard_of(guild_id, self.num_shards)
        return self.sessions.get(shard)

    def is_current(self, session: Session | None) -> bool:
        return session is not None and self.sessions.get(session.shard_id) is session

    def conn_for(self, session: Session) -> Connection | None:
        conn = self.conns.get(session.shard_id)
        return conn if conn is not None and conn.session is session else None

    def attach(self, conn: Connection, session: Session) -> None:
        conn.session = session
        self.conns[session.shard_id] = conn

    def detach(self, conn: Connection) -> None:
        """The connection closed: its shard has none until the bot comes back."""
        for shard, current in list(self.conns.items()):
            if current is conn:
                del self.conns[shard]

    def connected_shards(self) -> list[int]:
        """Shards whose current session is served by an open, identified connection."""
        return sorted(
            shard
            for shard, session in self.sessions.items()
            if (conn := self.conn_for(session)) is not None and conn.open
        )

    def over_concurrency(
        self, shard_id: int, max_concurrency: int, window: float, now: float
    ) -> bool:
        """Record an IDENTIFY of ``shard_id``; True if its bucket already had one within
        ``window`` s (Discord answers op 9). ``window`` 0 turns the check off."""
        if window <= 0:
            return False
        times = self._identified_at.setdefault(shard_id % max_concurrency, collections.deque())
        while times and times[0] <= now - window:
            times.popleft()
        if times:
            return True
        times.append(now)
        return False
