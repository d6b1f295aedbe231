"""Voice: Discord's credentials for the bot's voice connection, forwarded to Lavalink.

The credentials arrive in two Discord events of either order; they go to Lavalink once all
four values are known and whenever they change, never with a null endpoint and never a new
token with an old endpoint. When Lavalink's voice socket closes, the close code says what
helps: stale credentials (4006, 4009) need a fresh join, a transient drop (1006, 4015) the
same values again, each with back-off so that a broken channel ends in one clear
:class:`~.events.VoiceFailed` rather than a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from . import errors
from .events import VoiceDisconnected, VoiceFailed, VoiceMoved, WebSocketClosedEvent
from .guild import GuildPlayer
from .models import UpdatePlayer
from .node import Node
from .pacing import Pacing
from .parts import Part, Parts

__all__ = ["VoiceLink"]

_log = logging.getLogger(__name__)

_STALE_VOICE_CODES = frozenset({4006, 4009})
"""Discord voice close codes that mean the credentials are stale: only a re-join helps."""
_TRANSIENT_VOICE_CODES = frozenset({1006, 4015})
"""Voice close codes after which the same credentials may connect again (network, crash)."""
_REJOIN_LIMIT = 3
_RESEND_LIMIT = 3
_REPAIR_WINDOW = 60.0
"""Seconds over which re-joins and re-sends are counted for back-off."""


class VoiceLink(Part):
    """Joins, forwards, repairs and leaves each guild's voice connection."""

    def __init__(
        self,
        parts: Parts,
        *,
        voice_timeout: float,
        voice_recheck: float,
        pacing: Pacing,
    ) -> None:
        super().__init__(parts)
        self._voice_timeout = voice_timeout
        self._voice_recheck = voice_recheck
        self._pacing = pacing

    async def connect(self, guild_id: int, channel_id: int) -> None:
        """Join ``channel_id`` and return once Lavalink has the voice credentials for it."""
        player = self._players.ensure(guild_id)
        node = self._pool.place(player)
        # After a give-up the held credentials are the ones Discord keeps refusing: join anew.
        if (
            player.voice.channel_id == channel_id
            and player.voice.complete() is not None
            and not player.gave_up
        ):
            if player.forwarded_to == node.session_id and player.error is None:
                return
            await self.forward(guild_id)
            if player.error is not None:
                raise errors.VoiceConnectError(str(player.error)) from player.error
            return
        player.error = None
        player.leaving = False
        # Someone asked to play again: a fresh join earns a fresh set of re-joins.
        player.rejoins.times.clear()
        player.gave_up = False
        await self._gateway.update_voice_state(guild_id, channel_id)
        await self._forwarded(player, channel_id)

    async def _forwarded(self, player: GuildPlayer, channel_id: int) -> None:
        """Wait until Lavalink holds credentials for ``channel_id`` (or say why not)."""
        deadline = time.monotonic() + self._voice_timeout
        while True:
            forwarded = player.forwarded
            if (
                forwarded is not None
                and forwarded.channel_id == str(channel_id)
                and player.node is not None
                and player.forwarded_to == player.node.session_id
            ):
                return
            if player.error is not None:
                raise errors.VoiceConnectError(str(player.error)) from player.error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.VoiceConnectError("Discord did not send voice credentials in time")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await player.changed.wait()

    async def disconnect(self, guild_id: int) -> None:
        """Destroy the guild's player and leave its voice channel."""
        player = self._players.ensure(guild_id)
        player.leaving = True
        async with player.lock:
            await self._updates.destroy(player)
        await self._gateway.update_voice_state(guild_id, None)

    async def forget(self, guild_id: int) -> None:
        """Destroy the guild's player and drop everything known of it, sending no op 4."""
        player = self._players.get(guild_id)
        if player is None:
            return
        player.leaving = True
        async with player.lock:
            await self._updates.destroy(player)
        self._players.drop(guild_id)

    def session_ended(self, guild_ids: Iterable[int]) -> None:
        """Discord ended the bot's voice connections in these guilds without telling us."""
        for guild_id in guild_ids:
            player = self._players.get(guild_id)
            if player is not None and player.voice.channel_id is not None:
                player.out_of_voice()

    async def refresh(self, guild_id: int) -> bool:
        """Send the held credentials to the guild's player again; ``False``: none held."""
        player = self._players.get(guild_id)
        if player is None or player.voice.complete() is None:
            return False
        async with player.lock:
            if player.voice.complete() is None or player.leaving:
                return False
            await self._updates.send_voice_again(player)
        return True

    # --- Discord's voice events -----------------------------------------------------------

    def state_update(self, guild_id: int, session_id: str, channel_id: int | None) -> None:
        """The bot's own VOICE_STATE_UPDATE."""
        player = self._players.ensure(guild_id)
        player.heard_at = time.monotonic()
        if channel_id is None:
            was_in = player.voice.channel_id
            player.out_of_voice()
            if player.leaving:
                player.leaving = False
            elif was_in is not None:
                self._tasks.spawn(self._kicked(guild_id, was_in))
            return
        moved_from = player.voice.channel_id
        player.voice.session_id, player.voice.channel_id = session_id, channel_id
        if moved_from is not None and moved_from != channel_id:
            self._dispatcher.post(guild_id, VoiceMoved(guild_id, moved_from, channel_id))
        self._tasks.spawn(self.forward(guild_id))

    def server_update(self, guild_id: int, token: str, endpoint: str | None) -> None:
        """The bot's VOICE_SERVER_UPDATE; ``endpoint`` is hikari's ``raw_endpoint``."""
        player = self._players.ensure(guild_id)
        player.heard_at = time.monotonic()
        # A null endpoint means Discord is moving the voice server: drop both values so the
        # new token is never paired with the old endpoint, and wait for the next update.
        player.voice.token, player.voice.endpoint = (token, endpoint) if endpoint else (None, None)
        if not endpoint:
            # Lavalink's socket to the old server is gone: the next pair must be sent even if
            # Discord hands back the same values, or the player stays disconnected.
            player.forward_again()
        else:
            self._tasks.spawn(self.forward(guild_id))

    def socket_closed(self, closed: WebSocketClosedEvent, node: Node) -> None:
        """Lavalink's voice socket for a guild closed: start the repair the code calls for."""
        if closed.code in _STALE_VOICE_CODES:
            self._tasks.spawn(self._rejoin(closed))
        elif closed.code in _TRANSIENT_VOICE_CODES:
            self._tasks.spawn(self._resend(closed.guild_id, node))

    # --- forwarding and repairs -----------------------------------------------------------

    async def forward(self, guild_id: int) -> None:
        player = self._players.ensure(guild_id)
        async with player.lock:
            state = player.voice.complete()
            if player.leaving:
                return  # queued behind a destroy: sending it would re-create the player
            if state is None or not self._pool.available:
                return  # play() carries the cached values once a node is back.
            node = self._pool.place(player)
            if player.forwarded == state and player.forwarded_to == node.session_id:
                return
            try:
                await self._updates.send(player, UpdatePlayer())
            except errors.LavalinkError as exc:
                _log.warning("forwarding voice for guild %s failed: %s", guild_id, exc)
                player.error = exc
                player.notify()

    async def _rejoin(self, closed: WebSocketClosedEvent) -> None:
        """Get fresh voice credentials by joining the same channel again, with back-off.

        Re-sending the old credentials would fail the same way (the 4006 loop); a new op 4
        makes Discord send a new voice session and token, which are forwarded as usual.
        4014 is deliberately not handled here: it also means "moved", and the voice state
        that follows tells a move (new channel) from a kick (no channel).

        After :data:`_REJOIN_LIMIT` re-joins within :data:`_REPAIR_WINDOW` seconds the client
        stops and posts :class:`~.events.VoiceFailed` once: the bot would otherwise sit in
        the channel in silence with nobody told.
        """
        guild_id = closed.guild_id
        player = self._players.ensure(guild_id)
        if player.rejoins.pending or player.gave_up:
            return  # one re-join answers every close that arrived before it
        if player.leaving or player.voice.channel_id is None:
            return  # leaving, or already out: nothing to renew
        tries = player.rejoins.recent(time.monotonic(), _REPAIR_WINDOW)
        if tries >= _REJOIN_LIMIT:
            _log.warning("guild %s: voice keeps failing (%s); giving up after %d re-joins",
                         guild_id, closed.code, tries)  # fmt: skip
            player.gave_up = True
            failed = VoiceFailed(guild_id, player.voice.channel_id, closed.code, closed.reason)
            self._dispatcher.post(guild_id, failed)
            return
        player.rejoins.pending = True
        try:
            await asyncio.sleep(self._pacing.rejoin_delay(tries))  # 0 s, 1 s, 3 s
        finally:
            player.rejoins.pending = False
        player.rejoins.times.append(time.monotonic())
        channel_id = player.voice.channel_id
        if channel_id is None or player.leaving:
            return
        _log.info("guild %s: voice credentials went stale; re-joining", guild_id)
        player.forward_again()
        # Discord answers with a new session id *and* a new token/endpoint, in two events and
        # either order: forget all three so the new session id is never sent with the old
        # token (a mixed set is refused with 4006 again and would feed the loop).
        player.voice.session_id = player.voice.token = player.voice.endpoint = None
        await self._gateway.update_voice_state(guild_id, channel_id)

    async def _resend(self, guild_id: int, node: Node) -> None:
        """Re-send the voice state if Lavalink's voice socket stayed closed after a 1006/4015.

        Lavalink reconnects on identical values only while its voice socket is closed, so this
        is harmless if it already healed; if the credentials turn out stale, the 4006 that
        follows takes the re-join path.
        """
        player = self._players.get(guild_id)
        if player is None or player.resends.pending:
            return  # one re-send answers every close that arrived before it
        player.resends.pending = True
        try:
            await asyncio.sleep(self._voice_recheck)
        finally:
            player.resends.pending = False
        if player.sample is not None and player.sample[0].connected:
            return  # voice came back by itself (or through fresh credentials)
        now = time.monotonic()
        if player.resends.recent(now, _REPAIR_WINDOW) >= _RESEND_LIMIT:
            _log.warning("guild %s: voice keeps dropping; not re-sending it again for now",
                         guild_id)  # fmt: skip
            return
        async with player.lock:
            state = player.voice.complete()
            if state is None or player.leaving or player.node is not node or not node.available:
                return
            player.resends.times.append(now)
            _log.info("guild %s: voice connection still down; re-sending the voice state",
                      guild_id)  # fmt: skip
            try:
                await self._updates.send_voice_again(player)
            except errors.LavalinkError as exc:
                _log.warning("re-sending voice for guild %s failed: %s", guild_id, exc)

    async def _kicked(self, guild_id: int, channel_id: int) -> None:
        player = self._players.ensure(guild_id)
        async with player.lock:
            await self._updates.destroy(player)
        self._dispatcher.post(guild_id, VoiceDisconnected(guild_id, channel_id))
