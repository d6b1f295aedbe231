"""Lavalink session-id bookkeeping, kept apart from playback.

A node's session id is what lets a restarted bot resume its players, so each one is stored as
the node reports it ready. This is the app's wiring, not a playback rule: :func:`in_turn` puts
it before the queue service's handler, so the id is stored before the service starts its
restores for the same event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from bot import lavalink
from bot.shards import ShardSet
from bot.storage import StorageError

from .heartbeat import PROCESS_KEY

__all__ = [
    "SessionStore",
    "in_turn",
    "own_sessions",
    "session_keeper",
    "session_key",
    "session_owner",
]

_log = logging.getLogger(__name__)

Listener = Callable[[lavalink.Event], Awaitable[None]]


class SessionStore(Protocol):
    async def save_session(self, node: str, session_id: str) -> None: ...


def session_key(node: str, shards: ShardSet | None) -> str:
    """Where a process running ``shards`` (``None``: the whole bot) keeps its session id on
    ``node``: processes sharing a node each resume their own session, never another's."""
    return node if shards is None else f"{node} {shards.key}"


def session_owner(key: str) -> tuple[str, str]:
    """The node and the process (its liveness row, :func:`.heartbeat.process_key`) a stored
    session key belongs to: :func:`session_key` read back (node names hold no space)."""
    node, _, shards = key.partition(" ")
    return node, PROCESS_KEY if not shards else f"{PROCESS_KEY} {shards}"


def own_sessions(
    stored: Mapping[str, str], nodes: Iterable[str], shards: ShardSet | None
) -> dict[str, str]:
    """This process's session id on each of ``nodes``, of every one ``stored``."""
    return {node: stored[key] for node in nodes if (key := session_key(node, shards)) in stored}


def session_keeper(store: SessionStore, shards: ShardSet | None = None) -> Listener:
    """A listener that stores each :class:`~bot.lavalink.SessionReady`'s session id (under
    :func:`session_key`)."""

    async def keep(event: lavalink.Event) -> None:
        if isinstance(event, lavalink.SessionReady):
            try:
                await store.save_session(session_key(event.node, shards), event.session_id)
            except StorageError:
                _log.error("could not store the Lavalink session id")

    return keep


def in_turn(*listeners: Listener) -> Listener:
    """One listener that hands each event to ``listeners``, one after the other."""

    async def each(event: lavalink.Event) -> None:
        for listener in listeners:
            await listener(event)

    return each
