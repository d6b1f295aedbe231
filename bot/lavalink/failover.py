"""What happens to players when their node comes, goes, or comes back.

A node that resumes its session keeps its players: they are adopted again, and stale twins
destroyed. A node that stays away longer than ``failover_delay`` while another node is up
has its players moved there, at their track and position. When no node is up for
``node_loss_grace`` seconds the bot leaves voice in every guild the node served (Lavalink
never leaves Discord channels on its own) and a :class:`~.events.NodeLost` goes out.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import errors
from .events import NodeLost, PlayerMoved, SessionReady
from .guild import GuildPlayer, Playback
from .models import UNSET, Ready, TrackUpdate, UpdatePlayer
from .node import Node
from .parts import Part, Parts

__all__ = ["Failover"]

_log = logging.getLogger(__name__)


class Failover(Part):
    """Reacts to a node's session starting, resuming or ending."""

    def __init__(
        self,
        parts: Parts,
        *,
        resume_timeout: int,
        failover_delay: float,
        node_loss_grace: float,
    ) -> None:
        super().__init__(parts)
        self._resume_timeout = resume_timeout
        self._failover_delay = failover_delay
        self._node_loss_grace = node_loss_grace
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def node_ready(self, node: Node, ready: Ready) -> None:
        self._cancel_timers(node.name)
        # Also on a resume: the session keeps the timeout of the run that set it, and the
        # operator may have changed LAVALINK_RESUME_TIMEOUT since.
        self._tasks.spawn(self._enable_resuming(node, ready.session_id))
        if ready.resumed:
            self._tasks.spawn(self._adopt(node, ready))
            return
        # Every player this node had is gone: forget what we sent it.
        for player in self._players.on(node):
            player.player_gone()
        self._dispatcher.post_global(SessionReady(node.name, ready.session_id, ready.resumed))

    def node_disconnected(self, node: Node) -> None:
        self._freeze_positions(node)
        loop = asyncio.get_running_loop()
        self._timers[node.name, "failover"] = loop.call_later(
            self._failover_delay, lambda: self._tasks.spawn(self._failover(node))
        )
        self._timers[node.name, "lost"] = loop.call_later(
            self._node_loss_grace, lambda: self._tasks.spawn(self._node_lost(node))
        )

    def _freeze_positions(self, node: Node) -> None:
        """Pin each of the node's players at where it stood when the socket dropped.

        A node that crashed stopped the music then; its last ``playerUpdate`` may be up to one
        report interval older. Without a frozen sample the position would be that older report
        (losing music nobody heard end) or an extrapolation over the outage (skipping music
        nobody heard). A node that only lost its socket and resumes sends fresh reports at
        once, which replace these.
        """
        now = time.time()
        for player in self._players.on(node):
            player.freeze(now)

    def _cancel_timers(self, node_name: str) -> None:
        for kind in ("failover", "lost"):
            handle = self._timers.pop((node_name, kind), None)
            if handle is not None:
                handle.cancel()

    async def _adopt(self, node: Node, ready: Ready) -> None:
        """After a resume: the node's surviving players are this client's again.

        A guild that moved elsewhere meanwhile has a stale twin here, and one whose voice the
        bot left meanwhile has a leftover: destroy both, so no guild ever has two players and
        none plays outside voice. The ``SessionReady`` goes out only once ownership is settled.
        """
        try:
            players = await node.rest.get_players(ready.session_id)
        except errors.LavalinkError as exc:
            _log.warning("could not list players on node %s after resuming: %s", node.name, exc)
            players = ()
        for found in players:
            known = self._players.get(found.guild_id)
            # The bot left this guild's voice while the node was away (the DELETE could not
            # reach the paused session): the player is a leftover, not one to take back. A
            # guild with no record at all (the bot restarted) is taken back.
            left = (
                known is not None
                and known.node is None
                and (known.leaving or known.voice.channel_id is None)
            )
            player = self._players.ensure(found.guild_id)
            holder = player.node
            if left or (holder is not None and holder is not node and holder.available):
                try:
                    await node.rest.destroy_player(ready.session_id, found.guild_id)
                except errors.LavalinkError as exc:
                    _log.warning("could not destroy a stale player: %s", exc)
                continue
            player.node = node
            if player.sample is None:
                player.sample = (found.state, time.time())
            if found.track is not None and player.playback is None:
                player.playback = Playback(
                    found.track.encoded, dict(found.track.user_data), found.paused, found.volume
                )
        self._dispatcher.post_global(SessionReady(node.name, ready.session_id, ready.resumed))

    async def _failover(self, node: Node) -> None:
        """Move the players of a node that stayed down to the other nodes."""
        self._timers.pop((node.name, "failover"), None)
        if node.available or not self._pool.available:
            return
        moving = self._players.on(node)
        # Side by side: each move waits on the new node's voice connect, and one after another
        # the last guild would stay silent for the sum of them. Each holds its own guild lock.
        results = await asyncio.gather(
            *(self._move(player, node) for player in moving), return_exceptions=True
        )
        for player, result in zip(moving, results, strict=True):
            if isinstance(result, Exception):
                _log.error("guild %s: moving its player failed", player.guild_id,
                           exc_info=result)  # fmt: skip

    async def _move(self, player: GuildPlayer, lost: Node) -> None:
        async with player.lock:
            if player.node is not lost:
                return
            player.node = None
            try:
                target = self._pool.place(player)
                await self._updates.send(player, _rebuild(player))
            except errors.LavalinkError as exc:
                _log.warning("guild %s: moving its player off node %s failed: %s",
                             player.guild_id, lost.name, exc)  # fmt: skip
                player.node = lost
                return
        _log.info("guild %s: player moved from node %s to %s",
                  player.guild_id, lost.name, target.name)  # fmt: skip
        self._dispatcher.post(player.guild_id, PlayerMoved(player.guild_id, lost.name, target.name))

    async def _node_lost(self, node: Node) -> None:
        self._timers.pop((node.name, "lost"), None)
        if node.available:
            return
        if self._pool.available:
            # Another node is up (the grace may end before the failover delay): move the
            # players now; only a guild that could not be moved leaves voice.
            failover = self._timers.pop((node.name, "failover"), None)
            if failover is not None:
                failover.cancel()
            await self._failover(node)
            leaving = self._players.on(node)
            if not leaving:
                return
        else:
            leaving = [
                player
                for player in self._players
                if player.node is node
                or (player.node is None and (player.voice.channel_id is not None
                                             or player.forwarded))
            ]  # fmt: skip
        _log.warning(
            "Lavalink node %s lost for %.0f s; leaving voice in %d guild(s)",
            node.name,
            self._node_loss_grace,
            len(leaving),
        )
        for player in leaving:
            player.leaving = True
            # The frozen sample stays: it is where the music stopped, for whoever resumes it.
            player.player_gone()
            try:
                await self._gateway.update_voice_state(player.guild_id, None)
            except Exception:
                _log.exception("could not leave voice in guild %s", player.guild_id)
        self._dispatcher.post_global(NodeLost(node.name, frozenset(p.guild_id for p in leaving)))

    async def _enable_resuming(self, node: Node, session_id: str) -> None:
        try:
            await node.rest.update_session(session_id, resuming=True, timeout=self._resume_timeout)
        except errors.LavalinkError as exc:
            _log.warning("could not enable resuming on node %s: %s", node.name, exc)


def _rebuild(player: GuildPlayer) -> UpdatePlayer:
    """The update that recreates the player on a new node as it stood on the old one."""
    playing = player.playback
    filters = player.filters if player.filters is not None else UNSET
    if playing is None:
        return UpdatePlayer(filters=filters)
    return UpdatePlayer(
        track=TrackUpdate(encoded=playing.encoded, user_data=playing.user_data),
        position=player.position() or 0,
        end_time=playing.end_time if playing.end_time is not None else UNSET,
        paused=playing.paused,
        volume=playing.volume,
        filters=filters,
    )
