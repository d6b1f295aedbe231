"""The node pool: the configured nodes, their load, and where a new player goes.

A guild's player is placed on the available node with the lowest
:func:`~.penalty.penalty` the first time it is needed, and stays there until that node goes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import aiohttp

from . import errors
from .guild import GuildPlayer
from .models import Stats
from .node import Backoff, Node, NodeConfig, NodeListener
from .penalty import penalty

__all__ = ["NodePool", "NodeStatus"]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node at one moment: up or not, how often it connected, its load as last reported."""

    name: str
    up: bool
    connects: int
    """Sessions opened (the first connect, every reconnect and resume)."""
    penalty: float | None
    """The placement penalty (lower gets new players); ``None`` while the node is down."""
    players: int | None
    playing_players: int | None
    frames_sent: int | None
    """Audio frames per minute, from the node's last stats (``None`` until it has a minute)."""
    frames_nulled: int | None
    frames_deficit: int | None


class NodePool:
    """Every configured node, started together; placement by penalty."""

    def __init__(self, configs: Sequence[NodeConfig], *, reconnect_cap: float) -> None:
        if not configs:
            raise ValueError("at least one Lavalink node is required")
        names = [config.name for config in configs]
        if len(set(names)) != len(names):
            raise ValueError("Lavalink node names must be unique")
        self.configs = tuple(configs)
        self.nodes: list[Node] = []
        self.stats: dict[str, Stats] = {}
        """The last stats each node pushed over its WebSocket."""
        self._reconnect_cap = reconnect_cap
        self._placed: dict[str, int] = {}
        self._connects: dict[str, int] = {}

    def start(
        self,
        http: aiohttp.ClientSession,
        listener: NodeListener,
        *,
        user_id: int,
        client_name: str,
        session_ids: Mapping[str, str],
    ) -> None:
        for config in self.configs:
            node = Node(
                config,
                http,
                listener,
                user_id=user_id,
                client_name=client_name,
                session_id=session_ids.get(config.name),
                backoff=Backoff(cap=self._reconnect_cap),
            )
            self.nodes.append(node)
            node.start()

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()

    @property
    def available(self) -> bool:
        return any(node.available for node in self.nodes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(config.name for config in self.configs)

    def connected(self, node: Node) -> None:
        """``node`` opened a session: count it; its load is known afresh from now on."""
        self._connects[node.name] = self._connects.get(node.name, 0) + 1
        self._placed[node.name] = 0

    def reported(self, node: Node, stats: Stats) -> None:
        self.stats[node.name] = stats
        self._placed[node.name] = 0

    def find(self, name: str) -> Node | None:
        return next((node for node in self.nodes if node.name == name), None)

    def named(self, name: str) -> Node:
        node = self.find(name)
        if node is None:
            raise errors.NoNodeAvailableError(f"no Lavalink node named {name!r}")
        return node

    def for_rest(self, name: str | None) -> Node:
        """For session-less REST calls: the named node (connected or not), else the best one."""
        return self.named(name) if name is not None else self.best()

    def best(self) -> Node:
        """The available node with the lowest penalty."""
        candidates = [node for node in self.nodes if node.available]
        if not candidates:
            if not self.nodes:
                raise errors.NoNodeAvailableError("the Lavalink client has not been started")
            raise errors.NoNodeAvailableError("no Lavalink node is connected")
        return min(
            candidates,
            key=lambda n: penalty(self.stats.get(n.name), self._placed.get(n.name, 0)),
        )

    def place(self, player: GuildPlayer) -> Node:
        """The guild's node, placing the guild on the best node if it has none that is up."""
        node = player.node
        if node is None or not node.available:
            node = self.best()
            player.node = node
            player.forward_again()
            self._placed[node.name] = self._placed.get(node.name, 0) + 1
        return node

    def statuses(self) -> tuple[NodeStatus, ...]:
        """Every configured node as it stands now (for metrics); no request is made."""
        statuses = []
        for config in self.configs:
            node = self.find(config.name)
            stats = self.stats.get(config.name)
            frames = stats.frame_stats if stats is not None else None
            up = node is not None and node.available
            statuses.append(
                NodeStatus(
                    name=config.name,
                    up=up,
                    connects=self._connects.get(config.name, 0),
                    penalty=penalty(stats, self._placed.get(config.name, 0)) if up else None,
                    players=stats.players if stats is not None else None,
                    playing_players=stats.playing_players if stats is not None else None,
                    frames_sent=frames.sent if frames is not None else None,
                    frames_nulled=frames.nulled if frames is not None else None,
                    frames_deficit=frames.deficit if frames is not None else None,
                )
            )
        return tuple(statuses)
