"""Lavalink session-id bookkeeping, kept apart from playback.

A node's session id is what lets a restarted bot resume its players, so each one is stored as
the node reports it ready. This is the app's wiring, not a playback rule: :func:`in_turn` puts
it before the queue service's handler, so the id is stored before the service starts its
restores for the same event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot import lavalink
from bot.storage import StorageError

__all__ = ["SessionStore", "in_turn", "session_keeper"]

_log = logging.getLogger(__name__)

Listener = Callable[[lavalink.Event], Awaitable[None]]


class SessionStore(Protocol):
    async def save_session(self, node: str, session_id: str) -> None: ...


def session_keeper(store: SessionStore) -> Listener:
    """A listener that stores each :class:`~bot.lavalink.SessionReady`'s session id."""

    async def keep(event: lavalink.Event) -> None:
        if isinstance(event, lavalink.SessionReady):
            try:
                await store.save_session(event.node, event.session_id)
            except StorageError:
                _log.error("could not store the Lavalink session id")

    return keep


def in_turn(*listeners: Listener) -> Listener:
    """One listener that hands each event to ``listeners``, one after the other."""

    async def each(event: lavalink.Event) -> None:
        for listener in listeners:
            await listener(event)

    return each
