"""Player updates: every PATCH and DELETE of a guild's player goes through here.

Each update carries the held voice credentials when the node lacks them, is tried again
after a passing failure, and keeps the guild's :class:`~.guild.Playback` record in step
with what the node was told and reports, so a failover can rebuild the player elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from . import errors
from .events import Event, TrackEndEvent, TrackEndReason, TrackStartEvent
from .filters import Filters
from .guild import GuildPlayer, Playback
from .models import UNSET, Player, TrackUpdate, UpdatePlayer
from .node import Node
from .pacing import Pacing
from .pool import NodePool

__all__ = ["PlayerUpdates", "remember_event"]

_log = logging.getLogger(__name__)

_PASSING = (errors.ServerError, errors.RequestTimeoutError, errors.UnreachableError)
"""Failures of one request that say nothing about the next one."""


class PlayerUpdates:
    """Sends player updates to the node holding each guild's player."""

    def __init__(self, pool: NodePool, pacing: Pacing) -> None:
        self._pool = pool
        self._retries = pacing.update_retries

    async def send(
        self, player: GuildPlayer, update: UpdatePlayer, *, no_replace: bool = False
    ) -> Player:
        """PATCH the guild's player on its node; the caller holds ``player.lock``."""
        node = self._pool.place(player)
        session = node.require_session()
        state = player.voice.complete()
        include_voice = state is not None and (
            player.forwarded_to != session or player.forwarded != state
        )
        if include_voice:
            update = msgspec.structs.replace(update, voice=state)
        # With noReplace and a track playing, Lavalink ignores the track part of the request.
        kept = no_replace and player.playback is not None
        result = await self._patch(node, session, player.guild_id, update, no_replace=no_replace)
        if include_voice:
            player.forwarded, player.forwarded_to, player.error = state, session, None
            player.notify()
        _remember_update(player, update, result, kept=kept)
        return result

    async def send_voice_again(self, player: GuildPlayer) -> None:
        """Forward the held credentials even though they were sent before (the caller holds
        ``player.lock``): Lavalink reconnects a closed voice socket on identical values."""
        player.forward_again()
        await self.send(player, UpdatePlayer())

    async def destroy(self, player: GuildPlayer) -> None:
        """Destroy the guild's player and forget it; the caller holds ``player.lock``.
        A failure is only logged: the player is gone from this client's view either way."""
        node = player.node
        player.reset()
        if node is None or not node.available or node.session_id is None:
            return
        try:
            await node.rest.destroy_player(node.session_id, player.guild_id)
        except errors.LavalinkError as exc:
            _log.warning("destroying the player of guild %s failed: %s", player.guild_id, exc)

    async def _patch(
        self, node: Node, session: str, guild_id: int, update: UpdatePlayer, *, no_replace: bool
    ) -> Player:
        """One player update, tried again after a passing failure.

        A single 5xx or time-out is not a verdict on the node: giving up on it would leave the
        bot silent (or gone) for a hiccup. An update sets absolute values, so sending it twice
        is harmless, even when the first attempt was carried out late. Only while the node
        stays connected: a node that dropped is the failover's business.
        """
        for attempt, delay in enumerate((*self._retries, None)):
            try:
                return await node.rest.update_player(
                    session, guild_id, update, no_replace=no_replace
                )
            except _PASSING as exc:
                if delay is None or not node.available or node.session_id != session:
                    raise
                _log.warning(
                    "guild %s: Lavalink update failed (%s); trying again (%d of %d)",
                    guild_id, exc, attempt + 1, len(self._retries),
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def remember_event(player: GuildPlayer, event: Event) -> None:
    """Keep the playback record in step with what the node reports."""
    if isinstance(event, TrackStartEvent):
        if player.playback is None:
            player.playback = Playback(event.track.encoded, dict(event.track.user_data))
    elif isinstance(event, TrackEndEvent) and event.reason is not TrackEndReason.REPLACED:
        player.playback = None


def _remember_update(
    player: GuildPlayer, update: UpdatePlayer, result: Player, *, kept: bool = False
) -> None:
    """Keep the record a failover rebuilds the player from in step with the node."""
    if isinstance(update.filters, Filters):
        player.filters = update.filters
    if result.track is None:
        player.playback = None
        return
    playing = player.playback
    track = update.track
    new_track = isinstance(track, TrackUpdate) and (
        track.encoded not in (UNSET, None) or track.identifier is not UNSET
    )
    if playing is None or (isinstance(track, TrackUpdate) and not kept):
        fresh = playing is None or new_track
        end_time = playing.end_time if playing is not None and not new_track else None
        playing = player.playback = Playback(result.track.encoded, dict(result.track.user_data))
        playing.end_time = end_time
        if fresh:
            # The last report was of the track before (or of none): the node's answer says
            # where this one stands, so a reader never extrapolates the old track's clock.
            player.sample = (result.state, time.time())
    playing.paused, playing.volume = result.paused, result.volume
    # ``endTime: null`` does not clear a marker on the current track (server behaviour).
    if isinstance(update.end_time, int) and not kept:
        playing.end_time = update.end_time
