"""The client's only contact with hikari: voice events in, gateway op 4 out.

hikari's own voice component stays idle (we never call ``bot.voice.connect_to``), so these
listeners see the raw voice events and Lavalink, not hikari, opens the voice connection.

Discord allows 120 gateway commands per 60 s per connection (each shard is one), heartbeats
included, and closes the connection (4008) past that. hikari's shard limiter uses fixed 60 s
windows, so a long run of op 4 (re-joining hundreds of guilds after a restart) can put 117
commands at the end of one window and 117 at the start of the next: 234 within 60 s.
:class:`SlidingWindowLimiter` keeps op 4 under :data:`VOICE_UPDATES_PER_MINUTE` in *every* 60 s
window of each shard (a guild's op 4 goes through the shard the guild is on, so shards re-join
side by side), leaving room for the heartbeats, IDENTIFY and RESUME that share the budget, and
stretches the window by :data:`WINDOW_SLACK` seconds: a burst of op 4 stamped here when sent
reaches Discord spread by network and server delays, and the same burst 60 s later must not
land inside the window of the first (a 4008 close measured at 100 guilds). An op 4 due while
the shard reconnects (a RESUME takes a moment) waits for it, up to :data:`RECONNECT_WAIT`
seconds, rather than being lost: a lost leave would keep the bot in a channel where nothing
plays.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import hikari

from .client import LavalinkClient
from .errors import VoiceConnectError

__all__ = ["VOICE_UPDATES_PER_MINUTE", "HikariVoiceGateway", "SlidingWindowLimiter", "attach"]

_log = logging.getLogger(__name__)

VOICE_UPDATES_PER_MINUTE = 110
"""Op 4 per sliding 60 s; Discord's 120 minus room for heartbeats (<= 3), IDENTIFY, RESUME."""
WINDOW_SLACK = 2.0
"""Seconds added to the 60 s window for the spread between sending and Discord's count."""
RECONNECT_WAIT = 30.0
"""Seconds an op 4 waits for its shard to be connected again before it gives up."""


class SlidingWindowLimiter:
    """At most ``limit`` uses in any ``period`` seconds; waiters go first come, first served.

    A use is stamped when it *ends* (the payload is written), so time spent queued behind
    hikari's own limiter never lets two uses sit closer than the window allows.
    """

    def __init__(
        self, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self._limit = limit
        self._period = period
        self._clock = clock
        self._stamps: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()  # FIFO: the first caller to wait is the first to send

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self._period:
                    self._stamps.popleft()
                if len(self._stamps) < self._limit:
                    break
                await asyncio.sleep(self._stamps[0] + self._period - now)
            try:
                yield
            finally:
                self._stamps.append(self._clock())


class HikariVoiceGateway:
    """A :class:`~.client.VoiceGateway` that sends op 4 through a hikari ``GatewayBot``."""

    def __init__(
        self,
        bot: hikari.GatewayBot,
        *,
        per_minute: int = VOICE_UPDATES_PER_MINUTE,
        period: float = 60.0 + WINDOW_SLACK,
    ) -> None:
        self._bot = bot
        self._per_minute = per_minute
        self._period = period
        self._limiters: dict[int, SlidingWindowLimiter] = {}

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
        shard_id = hikari.snowflakes.calculate_shard_id(self._bot, guild_id)
        limiter = self._limiters.get(shard_id)
        if limiter is None:
            limiter = SlidingWindowLimiter(self._per_minute, self._period)
            self._limiters[shard_id] = limiter
        async with limiter.slot():
            await self._shard_connected(shard_id)
            # Discord documents self_mute and self_deaf as required on every op 4 (hikari omits
            # them unless given), and a strict server closes the gateway (4002) without them.
            # Deafened while in a channel: the bot never listens, so Discord sends it no audio.
            try:
                await self._bot.update_voice_state(
                    guild_id, channel_id, self_mute=False, self_deaf=channel_id is not None
                )
            except hikari.ComponentStateConflictError as exc:
                # A shard still down after the wait, or shutting down: a failure the callers
                # handle (a restore leaves voice and keeps the queue), not a crash.
                raise VoiceConnectError(f"the gateway is not connected: {exc}") from exc

    async def _shard_connected(self, shard_id: int) -> None:
        """Until the shard is connected (it may be resuming), at most :data:`RECONNECT_WAIT`
        seconds; then hikari says why it cannot send."""
        shard = self._bot.shards.get(shard_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_WAIT
        while shard is not None and shard.is_alive and not shard.is_connected:
            if loop.time() > deadline:
                return
            await asyncio.sleep(0.05)


def attach(bot: hikari.GatewayBot, client: LavalinkClient) -> None:
    """Forward the bot's own voice events from ``bot`` to ``client``."""

    async def on_voice_state(event: hikari.VoiceStateUpdateEvent) -> None:
        if event.state.user_id != client.user_id:
            return
        client.handle_voice_state(event.guild_id, event.state.session_id, event.state.channel_id)

    async def on_voice_server(event: hikari.VoiceServerUpdateEvent) -> None:
        client.handle_voice_server(event.guild_id, event.token, event.raw_endpoint)

    bot.subscribe(hikari.VoiceStateUpdateEvent, on_voice_state)
    bot.subscribe(hikari.VoiceServerUpdateEvent, on_voice_server)
