"""Reading what a node says its players are, for the reconciler (:mod:`.reconciler`).

A node with a few guilds to read is asked for each of them; one with many for its whole
list. A node whose players cannot be read (a Lavalink-compatible server may lack the route)
is said once, not every pass.
"""

from __future__ import annotations

import asyncio
import logging

from bot import lavalink

from .ports import VoiceTruth

__all__ = ["SINGLY_UP_TO", "PlayerLists"]

_log = logging.getLogger("bot.services.reconciler")

SINGLY_UP_TO = 16
"""A node with at most this many guilds to read is asked for each, not for its list."""


class PlayerLists:
    """Reads the players of the nodes a reconciler pass needs, through ``client``."""

    def __init__(self, client: VoiceTruth) -> None:
        self._client = client
        self._unlisted: set[str] = set()

    async def read(
        self, unheard: dict[str, list[int]]
    ) -> dict[str, dict[int, lavalink.Player] | None]:
        """The players by guild of each node in ``unheard`` (at least of the guilds named
        there); ``None`` for a node whose players could not be read. A node with a few such
        guilds is asked for each of them, not for its whole list: at 10,000 guilds the list
        is 10 MB of JSON, decoded in one piece (a quarter of a second of a busy loop)."""
        names = list(unheard)
        results = await asyncio.gather(
            *(
                self._singly(guilds)
                if len(guilds) <= SINGLY_UP_TO
                else self._client.get_players(name)
                for name, guilds in unheard.items()
            ),
            return_exceptions=True,
        )
        players: dict[str, dict[int, lavalink.Player] | None] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, lavalink.NoNodeAvailableError):
                players[name] = None
            elif isinstance(result, BaseException):
                if name not in self._unlisted:
                    # Said once per node: a Lavalink-compatible server may lack the route.
                    _log.warning("cannot list the players on node %s: %s", name, result)
                    self._unlisted.add(name)
                players[name] = None
            else:
                self._unlisted.discard(name)
                players[name] = {player.guild_id: player for player in result}
        return players

    async def _singly(self, guild_ids: list[int]) -> tuple[lavalink.Player, ...]:
        """The players of ``guild_ids`` as their node reports them, one request each (a guild
        it has no player for is left out, as in its list)."""

        async def one(guild_id: int) -> lavalink.Player | None:
            try:
                player = await self._client.get_player(guild_id)
            except lavalink.NotFoundError:
                return None
            if player is None:  # its node dropped meanwhile: the list would fail too
                raise lavalink.NoNodeAvailableError("the node is not connected")
            return player

        found = await asyncio.gather(*(one(guild_id) for guild_id in guild_ids))
        return tuple(player for player in found if player is not None)
