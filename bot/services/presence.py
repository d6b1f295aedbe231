"""Leaving and staying: the bot neither plays to an empty channel nor sits in one forever.

When every listener has left the bot's voice channel it pauses at once (a pause of its own,
undone when someone comes back); if nobody comes back within the idle timeout it leaves and
keeps the queue. After the queue has ended it leaves after the same timeout. The moments are
stored (``alone_since_ms``; an ended queue's moment is its last write, ``position_at_ms``), so
a restart neither forgets a timer nor starts it again from zero.

The timeout is the server's own (``/settings idle-timeout``; 0: leave as soon as that is
noticed) or else the bot's ``IDLE_TIMEOUT`` (0 there: never leave on its own). A server with
24/7 on (``always_on``) is never left for an empty channel or an ended queue. Either way the
music still pauses while nobody listens (nobody hears it) and plays on when someone is back.

Judged when a member's voice state changes in a guild with a player, and every
:data:`CHECK_INTERVAL` seconds for the timers. A pass looks only at the guilds that may need
something done (a timer runs, or the last judgement did not settle them); every guild in voice
is looked at on the first pass, after a reconnect (:meth:`Presence.wake`: what changed while
the bot was away) and every :data:`FULL_CHECK_S` seconds, in case a voice event was missed.
Counting listeners reads hikari's cache, which is not free: at thousands of playing guilds a
look at each every few seconds would cost more than everything else the bot does meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from bot import lavalink
from bot.background import BackgroundLoop
from bot.storage import PlayerStatus

from .guild import GuildState, now_ms
from .notices import LeftAlone, LeftIdle
from .playback import Playback
from .ports import DiscordView, Lavalink
from .positions import position

__all__ = ["CHECK_INTERVAL", "FULL_CHECK_S", "OWN_TIMEOUT_FLOOR", "Presence"]

_log = logging.getLogger(__name__)

CHECK_INTERVAL = 5.0
YIELD_EVERY = 200
"""Guilds judged in one go before a pass lets the event loop run other work."""
FULL_CHECK_S = 60.0
"""At least this often every guild in voice is judged, not only those with a timer."""
OWN_TIMEOUT_FLOOR = 5.0
"""A server's own timeout shorter than this (0 included) is still checked every second."""


class Presence:
    """Pauses for an empty channel, resumes for a listener, leaves after the idle timeout."""

    def __init__(
        self,
        guilds: dict[int, GuildState],
        playback: Playback,
        lava: Lavalink,
        discord: DiscordView,
        *,
        idle_timeout: float,
    ) -> None:
        self._guilds = guilds
        self._playback = playback
        self._lava = lava
        self._discord = discord
        self.idle_timeout = idle_timeout
        """Seconds alone (or after the queue ended) before the bot leaves; 0: never."""
        self._loop = BackgroundLoop("presence", self._run)
        self._unsettled: set[int] = set()
        """Guilds whose last judgement left them half-way (a write failed, the lock was
        busy): judged again on the next pass."""
        self._full_due = 0.0
        """``time.monotonic()`` from which the next pass judges every guild in voice."""

    def wake(self) -> None:
        """After a reconnect: the next pass judges every guild in voice (whatever changed
        while the gateway was away reached no event)."""
        self._full_due = 0.0

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()

    async def voice_changed(self, guild_id: int) -> None:
        """A member joined, left or moved in ``guild_id``: judge the bot's channel now."""
        guild = self._guilds.get(guild_id)
        if guild is not None and guild.player.voice_channel_id is not None:
            async with guild.lock:
                await self._judge(guild)

    async def check_all(self) -> None:
        """Judge the guilds in voice that may need something done (all of them when a full
        pass is due) whose lock is free; a busy one is judged on the next pass."""
        full = time.monotonic() >= self._full_due
        if full:
            self._full_due = time.monotonic() + FULL_CHECK_S
        judged = 0
        for guild in list(self._guilds.values()):
            if guild.player.voice_channel_id is None:
                continue
            if not (full or self._pending(guild)):
                continue
            judged += 1
            if judged % YIELD_EVERY == 0:
                # Counting listeners builds hikari entities (~20 us a guild): a full pass over
                # thousands of guilds would hold the loop for tens of ms in one piece.
                await asyncio.sleep(0)
            if guild.lock.locked():
                self._unsettled.add(guild.guild_id)
                continue
            async with guild.lock:
                await self._judge(guild)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval())
            try:
                await self.check_all()
            except Exception:
                _log.exception("checking who is listening failed; trying again")

    def _interval(self) -> float:
        """A short timeout is checked often enough to be kept within a fifth of it (a
        server's own timeout: at least every second)."""
        shortest = self.idle_timeout if self.idle_timeout > 0 else CHECK_INTERVAL * 5
        for guild in self._guilds.values():
            own = guild.settings.idle_timeout_s
            if own is not None and guild.player.voice_channel_id is not None:
                shortest = min(shortest, max(own, OWN_TIMEOUT_FLOOR))
        return min(CHECK_INTERVAL, max(0.1, shortest / 5))

    def _pending(self, guild: GuildState) -> bool:
        """Whether a pass may have something to do in ``guild`` (a timer, or unsettled)."""
        player = guild.player
        return (
            player.alone_since_ms is not None
            or self._ended(guild)
            or guild.guild_id in self._unsettled
        )

    async def _judge(self, guild: GuildState) -> None:
        channel_id = guild.player.voice_channel_id
        if channel_id is None or guild.removed:
            self._unsettled.discard(guild.guild_id)
            return
        heard = self._discord.listeners(guild.guild_id, channel_id) > 0
        await self._act(guild, channel_id, heard)
        # Settled when the stored timer agrees with what was heard; else (a write failed)
        # the next pass judges it again.
        player = guild.player
        if (
            guild.removed
            or player.voice_channel_id is None
            or heard == (player.alone_since_ms is None)
        ):
            self._unsettled.discard(guild.guild_id)
        else:
            self._unsettled.add(guild.guild_id)

    async def _act(self, guild: GuildState, channel_id: int, heard: bool) -> None:
        player, now = guild.player, now_ms()
        if heard:
            if player.alone_since_ms is not None:
                await self._welcome_back(guild)
            elif self._ended(guild) and self._due(guild, player.position_at_ms, now):
                await self._leave(guild, LeftIdle(channel_id))
            return
        if player.alone_since_ms is None:
            await self._alone(guild, now)
        # Judged again at once: a timeout of 0 leaves in the same turn.
        alone_since = guild.player.alone_since_ms
        if alone_since is not None and self._due(guild, alone_since, now):
            await self._leave(guild, LeftAlone(channel_id))

    @staticmethod
    def _ended(guild: GuildState) -> bool:
        """The queue has ended (the time of that is the player's last write)."""
        return guild.current is None and guild.player.status is PlayerStatus.IDLE

    def _due(self, guild: GuildState, since_ms: int, now: int) -> bool:
        settings = guild.settings
        if settings.always_on:
            return False
        if settings.idle_timeout_s is not None:
            return now - since_ms >= settings.idle_timeout_s * 1000
        return self.idle_timeout > 0 and now - since_ms >= self.idle_timeout * 1000

    async def _alone(self, guild: GuildState, now: int) -> None:
        """Nobody listens: pause (if the music plays) and start the idle timer."""
        player = guild.player
        pausing = guild.is_playing and not player.paused
        alone = dataclasses.replace(player, alone_since_ms=now, alone_paused=pausing)
        if pausing:
            alone = dataclasses.replace(
                alone,
                paused=True,
                position_ms=position(guild, self._lava),
                position_at_ms=now,
            )
        if await self._playback.store(guild, alone) and pausing:
            _log.info("guild %s: everyone left; paused", guild.guild_id)
            await self._playback.apply(guild, lavalink.UpdatePlayer(paused=True))

    async def _welcome_back(self, guild: GuildState) -> None:
        """Someone is back: the timer stops, and the bot's own pause ends."""
        player = guild.player
        resuming = player.alone_paused and guild.is_playing
        back = dataclasses.replace(player, alone_since_ms=None, alone_paused=False)
        if resuming:
            back = dataclasses.replace(back, paused=False, position_at_ms=now_ms())
        if await self._playback.store(guild, back) and resuming:
            _log.info("guild %s: a listener is back; playing on", guild.guild_id)
            await self._playback.apply(guild, lavalink.UpdatePlayer(paused=False))

    async def _leave(self, guild: GuildState, notice: LeftAlone | LeftIdle) -> None:
        status = PlayerStatus.INTERRUPTED if guild.current is not None else PlayerStatus.IDLE
        at = position(guild, self._lava)
        _log.info("guild %s: leaving voice after the idle timeout", guild.guild_id)
        await self._playback.store_left(guild, status, at)
        await self._playback.leave(guild.guild_id)
        await self._playback.announce(guild, notice)
