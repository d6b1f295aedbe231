"""The reconciler: compares what the bot promised with what actually plays, and repairs.

Every path that can leave the bot silent in a voice channel (a gateway session Discord
invalidated, a player the node lost, an update that timed out, a source that froze) ends in
the same state: the stored player says "playing X in channel C" while something else is true.
Rather than a special case per path, a pass looks at every guild that is meant to be playing
and compares

* the promise (the service's player: channel, entry, paused), with
* the truth: the bot's voice state as Discord last reported it (held by the Lavalink client,
  cleared when a new gateway session starts) and the node's player from one
  ``GET /v4/sessions/{id}/players`` per node (track, paused, voice connected, position).

A guild the node vouched for since about the last pass is compared without the node's list:
a position report that agreed with its promise (this entry, paused or not, at the anchored
position, voice connected; :attr:`Promise.heard_at`) says the player exists and plays it, so
only the bot's voice state is checked. The list is read only for nodes holding a guild with
no such report (just changed, paused, a node that reports less often, or one gone quiet):
Lavalink reports every playing player every 5 s, and at 2,500 guilds the list is 2.5 MB of
JSON per pass.

A pass runs every :data:`PASS_INTERVAL` seconds and at once after a gateway or Lavalink
reconnect (:meth:`Reconciler.wake`); for one interval after a reconnect, passes follow up as
soon as the guilds a pass could not judge yet may be judged. It is silent when everything
matches: at most one request per node, no log line, no write. Guilds that changed within
:data:`SETTLE` seconds (by the service, or by a voice update from Discord), whose lock is held
by a command, or whose Lavalink events the client holds but the service has not handled yet,
are left to the next pass, so it never argues with work in flight. The node's list is read
while events still travel: a guild whose promise changed during the request waits for the
next pass, and a player with no track (the promised one may have just ended, its end event not
yet handled) is repaired only when the next pass sees it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from bot import lavalink
from bot.background import BackgroundLoop
from bot.storage import QueueEntry

from .player_lists import PlayerLists
from .ports import VoiceTruth

__all__ = [
    "HEARD_SLACK",
    "PASS_INTERVAL",
    "SETTLE",
    "Divergence",
    "Healer",
    "Promise",
    "Reconciler",
    "Sighting",
    "diagnose",
]

_log = logging.getLogger(__name__)

PASS_INTERVAL = 5.0
"""Seconds between two passes when nothing wakes the reconciler earlier."""
SETTLE = 2.0
"""Seconds a guild must have been left alone before a pass judges it."""
RETRY_SOON = 0.5
"""After a reconnect: seconds before a guild that could not be judged (busy, events on their
way) is tried again."""
FROZEN_AFTER = 2.0
"""Seconds the position must stand still, voice connected and unpaused, to count as frozen."""
HEARD_SLACK = 1.0
"""Seconds a position report may be older than a pass interval and still vouch for its guild."""
MAX_PARALLEL = 16
"""Repairs run side by side (each waits on Discord and Lavalink), up to this many."""


class Divergence(enum.Enum):
    """What differs between the promise and the truth, in the order a pass checks."""

    VOICE_GONE = "the bot is in no voice channel"
    VOICE_MOVED = "the bot is in another voice channel"
    PLAYER_GONE = "the node has no player"
    WRONG_TRACK = "the player plays another track, or none"
    PAUSE = "the player's pause differs"
    VOICE_DOWN = "the player's voice connection is down"
    FROZEN = "the position does not move"


@dataclasses.dataclass(frozen=True, slots=True)
class Promise:
    """What the bot told its users about a guild: this entry plays in this channel."""

    guild_id: int
    channel_id: int
    entry: QueueEntry
    paused: bool
    changed_at: float
    """``time.monotonic()`` of the last change the service made to the guild's playback."""
    heard_at: float = 0.0
    """``time.monotonic()`` of the node's last position report that agreed with this promise
    (this entry, paused or not, at the anchored position, voice connected); ``0.0``: none."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sighting:
    """One pass's reading of a guild: what was wrong (if anything) and the position seen."""

    divergence: Divergence | None
    entry_id: int
    position: int | None
    at: float
    changed_at: float = 0.0
    """The promise's ``changed_at`` when seen: a confirmation must be of the same promise."""


class Healer(Protocol):
    """The side that owns the promises and may change playback (the queue service)."""

    def promises(self) -> Iterable[Promise]:
        """Every guild that is meant to be playing now."""

    def is_busy(self, guild_id: int) -> bool:
        """A command or event is changing the guild right now."""

    async def heal(
        self, promise: Promise, divergence: Divergence, player: lavalink.Player | None, repeat: int
    ) -> None:
        """Repair one divergence; ``repeat`` counts earlier passes that saw the same one."""


def diagnose(
    promise: Promise,
    *,
    bot_channel: int | None,
    player: lavalink.Player | None,
    is_entry: Callable[[lavalink.Track, QueueEntry], bool],
    earlier: Sighting | None,
    now: float,
) -> Divergence | None:
    """The first way in which the truth differs from ``promise``, or ``None``.

    ``player`` is the node's player (``None``: the node holding the guild lists none, or no
    node holds it); ``earlier`` is the previous pass's sighting of the same guild.
    """
    if (voice := _voice_divergence(promise, bot_channel)) is not None:
        return voice
    if player is None:
        return Divergence.PLAYER_GONE
    if player.track is None or not is_entry(player.track, promise.entry):
        return Divergence.WRONG_TRACK
    if player.paused != promise.paused:
        return Divergence.PAUSE
    if not player.state.connected:
        return Divergence.VOICE_DOWN
    if (
        not promise.paused
        and not promise.entry.is_stream
        and earlier is not None
        and earlier.entry_id == promise.entry.id
        and earlier.position == player.state.position
        and now - earlier.at >= FROZEN_AFTER
        # A track standing at its very end is finishing, not frozen: its end event follows.
        and player.state.position < promise.entry.length_ms - 1000
    ):
        return Divergence.FROZEN
    return None


def _voice_divergence(promise: Promise, bot_channel: int | None) -> Divergence | None:
    if bot_channel is None:
        return Divergence.VOICE_GONE
    if bot_channel != promise.channel_id:
        return Divergence.VOICE_MOVED
    return None


def _may_be_ending(divergence: Divergence, player: lavalink.Player | None) -> bool:
    """The node holds no track: the promised one may just have ended by itself.

    The node's list can be newer than what the service heard: its ``TrackEndEvent`` may still
    be on the socket or waiting behind another event of the guild, and the service moves on
    when it arrives. Judged now, the ended track would be played again and then the next one
    (a song twice). So the sighting waits for the next pass to confirm it (a lost end event).
    """
    return divergence is Divergence.WRONG_TRACK and player is not None and player.track is None


class Reconciler:
    """Runs the passes; see the module docstring.

    Args:
        client: the Lavalink client (voice truth and the node's players), as
            :class:`~.ports.VoiceTruth`.
        healer: the service that holds the promises and repairs.
        is_entry: whether a Lavalink track is a queue entry (by ``userData`` or by the track).
        interval: seconds between passes.
        settle: seconds a guild must be left alone before it is judged.
    """

    def __init__(
        self,
        client: VoiceTruth,
        healer: Healer,
        is_entry: Callable[[lavalink.Track, QueueEntry], bool],
        *,
        interval: float = PASS_INTERVAL,
        settle: float = SETTLE,
    ) -> None:
        self._client = client
        self._healer = healer
        self._is_entry = is_entry
        self._interval = interval
        # A short interval (tests) judges sooner; the settle never exceeds two passes.
        self._settle = min(settle, 2 * interval)
        # Lavalink reports every 5 s while a track plays: with passes as far apart, each
        # playing guild has been heard from since the last pass, give or take a late report.
        self._fresh = interval + HEARD_SLACK
        self._wake = asyncio.Event()
        self._loop = BackgroundLoop("reconciler", self._run)
        self._sightings: dict[int, Sighting] = {}
        self._repeats: dict[int, int] = {}
        self._lists = PlayerLists(client)
        self._later: float | None = None
        self.repairs: collections.Counter[Divergence] = collections.Counter()
        """Repairs set about so far, by divergence (for metrics)."""
        self.passes = 0
        """Passes run so far (for tests and benchmarks)."""

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()

    def wake(self) -> None:
        """Run a pass now (after a reconnect) instead of at the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        delay, chase_until = self._interval, 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            if self._wake.is_set():
                chase_until = time.monotonic() + self._interval
            self._wake.clear()
            delay = self._interval
            try:
                later = await self.run_pass()
                # After a reconnect, the guilds a pass could not judge yet (still settling,
                # busy, events on their way) are judged as soon as they may be, not a whole
                # interval later: passes follow up for at most one interval.
                left = chase_until - time.monotonic()
                if later is not None and left > 0:
                    delay = min(left, later)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The safety net must not be the thing that falls over.
                _log.exception("reconciling playback failed; trying again next pass")

    async def run_pass(self) -> float | None:
        """One comparison of every promise with the truth, and the repairs it calls for.
        Returns the seconds until a guild this pass could not judge yet may be judged
        (``None``: every guild was judged)."""
        if not self._client.available:
            return None  # no node: the node-loss path owns every guild until one is back
        started = time.monotonic()
        every = list(self._healer.promises())
        promises: list[Promise] = []
        self._later = None
        for p in every:
            last_change = max(p.changed_at, self._client.voice_heard_at(p.guild_id))
            left = last_change + self._settle - started
            if left <= 0:
                promises.append(p)
            else:
                self._judge_later(left)
        self.passes += 1
        known = {p.guild_id for p in every}
        for gone in self._sightings.keys() - known:
            del self._sightings[gone]
            self._repeats.pop(gone, None)
        if not promises:
            return self._later
        # A guild the node vouched for a moment ago (a report that agreed with its promise)
        # is judged without the node's list: at 2,500 guilds that list is 2.5 MB of JSON.
        heard = {p.guild_id for p in promises if started - p.heard_at <= self._fresh}
        unheard: dict[str, list[int]] = {}
        for p in promises:
            if p.guild_id not in heard and (node := self._client.node_of(p.guild_id)):
                unheard.setdefault(node, []).append(p.guild_id)
        players = await self._lists.read(unheard) if unheard else {}
        now = time.monotonic()
        # The players were read while the service went on: a guild it changed meanwhile is
        # compared with a reading from between two promises, so it waits for the next pass.
        still = {p.guild_id: p for p in self._healer.promises()} if unheard else None
        due: list[tuple[Promise, Divergence, lavalink.Player | None]] = []
        for promise in promises:
            if still is not None and still.get(promise.guild_id) != promise:
                self._judge_later(RETRY_SOON)
                continue
            judged = self._judge(promise, players, now, heard=promise.guild_id in heard)
            if judged is not None:
                due.append(judged)
        if due:
            await self._repair(due)
        return self._later

    def _judge_later(self, seconds: float) -> None:
        """A guild could not be judged now; it may be in ``seconds``."""
        self._later = seconds if self._later is None else min(self._later, seconds)

    def _judge(
        self,
        promise: Promise,
        players: dict[str, dict[int, lavalink.Player] | None],
        now: float,
        *,
        heard: bool = False,
    ) -> tuple[Promise, Divergence, lavalink.Player | None] | None:
        """Compare one promise with the truth; what to repair, or ``None`` (nothing, or not
        now). Records the sighting either way, for "frozen" and for repeats. A guild ``heard``
        from lately is compared with the bot's voice state only: its node vouched for the rest."""
        guild_id = promise.guild_id
        if self._healer.is_busy(guild_id) or self._client.events_pending(guild_id):
            self._judge_later(RETRY_SOON)
            return None  # being changed, or events on their way that may explain what differs
        if heard:
            return self._judge_heard(promise, now)
        node = self._client.node_of(guild_id)
        if node is None and self._client.node_of(guild_id, connected=False) is not None:
            return None  # its node dropped: resuming or failing over is the client's business
        listed = players.get(node) if node is not None else {}
        if listed is None:
            self._judge_later(RETRY_SOON)
            return None  # this node's players could not be read: judge it next pass
        player = listed.get(guild_id)
        earlier = self._sightings.get(guild_id)
        divergence = diagnose(
            promise,
            bot_channel=self._client.voice_channel(guild_id),
            player=player,
            is_entry=self._is_entry,
            earlier=earlier,
            now=now,
        )
        position = player.state.position if player is not None else None
        seen_at = now
        if (
            earlier is not None
            and earlier.entry_id == promise.entry.id
            and earlier.position == position
        ):
            # Standing still: keep the first sighting's time, so "frozen" is measured from
            # when the position stopped, not from the last pass.
            seen_at = earlier.at
        self._sightings[guild_id] = Sighting(
            divergence, promise.entry.id, position, seen_at, promise.changed_at
        )
        return self._due(promise, divergence, player, earlier)

    def _judge_heard(
        self, promise: Promise, now: float
    ) -> tuple[Promise, Divergence, lavalink.Player | None] | None:
        guild_id = promise.guild_id
        earlier = self._sightings.get(guild_id)
        divergence = _voice_divergence(promise, self._client.voice_channel(guild_id))
        # No position: "frozen" is judged from two readings of the node's list only.
        self._sightings[guild_id] = Sighting(
            divergence, promise.entry.id, None, now, promise.changed_at
        )
        return self._due(promise, divergence, None, earlier)

    def _due(
        self,
        promise: Promise,
        divergence: Divergence | None,
        player: lavalink.Player | None,
        earlier: Sighting | None,
    ) -> tuple[Promise, Divergence, lavalink.Player | None] | None:
        """What to repair after a sighting, counting the passes that saw the same."""
        guild_id = promise.guild_id
        if divergence is None:
            self._repeats.pop(guild_id, None)
            return None
        if earlier is not None and earlier.divergence is divergence:
            self._repeats[guild_id] = self._repeats.get(guild_id, 0) + 1
        else:
            self._repeats[guild_id] = 0
        confirmed = (
            earlier is not None
            and earlier.divergence is divergence
            and earlier.entry_id == promise.entry.id
            and earlier.changed_at == promise.changed_at
        )
        if not confirmed and _may_be_ending(divergence, player):
            return None
        return promise, divergence, player

    async def _repair(self, due: list[tuple[Promise, Divergence, lavalink.Player | None]]) -> None:
        gate = asyncio.Semaphore(MAX_PARALLEL)

        async def repair(
            promise: Promise, divergence: Divergence, player: lavalink.Player | None
        ) -> None:
            async with gate:
                repeat = self._repeats.get(promise.guild_id, 0)
                self.repairs[divergence] += 1
                _log.warning(
                    "guild %s: %s (promised: entry %s in <#%s>); repairing",
                    promise.guild_id, divergence.value, promise.entry.id, promise.channel_id,
                )  # fmt: skip
                try:
                    await self._healer.heal(promise, divergence, player, repeat)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    _log.exception("guild %s: repairing playback failed", promise.guild_id)

        # Re-joins are gateway commands: they leave in this order through the op 4 limiter.
        await asyncio.gather(*(repair(*item) for item in due))
