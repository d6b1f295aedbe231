"""What the client's parts share (one instance of each, made by the client), and the one
thing they need from Discord: a way to send gateway op 4."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from .dispatch import BackgroundTasks, Dispatcher
from .guild import GuildPlayers
from .pool import NodePool
from .updates import PlayerUpdates

__all__ = ["Part", "Parts", "VoiceGateway"]


class VoiceGateway(Protocol):
    """Sends Discord gateway op 4 (join, move, or leave with ``channel_id=None``)."""

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Parts:
    """The node pool, the guilds' players, the player updates, the way to Discord's gateway,
    the event dispatcher and the background tasks."""

    pool: NodePool
    players: GuildPlayers
    updates: PlayerUpdates
    gateway: VoiceGateway
    dispatcher: Dispatcher
    tasks: BackgroundTasks


class Part:
    """Base of the client's working parts: each reaches the shared ones by the same names."""

    def __init__(self, parts: Parts) -> None:
        self._pool = parts.pool
        self._players = parts.players
        self._updates = parts.updates
        self._gateway = parts.gateway
        self._dispatcher = parts.dispatcher
        self._tasks = parts.tasks
