"""Taking some guilds' players out of a paused session this client does not hold.

A bot process that died leaves its Lavalink session paused: the node keeps its players
playing until the session's resume timeout, and answers every REST call for it with 404
"Session not found" (Lavalink's ``SocketServer``: only a session held by a socket is
addressable). A process that now drives some of those guilds (the bot was restarted with
another shard layout) must stop their old players before it starts them again, or they play
twice. So it resumes the session on a socket of its own, for the moment it takes: held, the
session lists its players, those of the given guilds are deleted, and the session gets back
what was left of its timeout (or, with no player left, resuming off, so that it ends with the
socket). Its queued events are replayed to that socket and dropped: nobody resumes a session
of an old layout, whose guilds are rebuilt from storage.

Two processes of the new layout may want the same session at once. Lavalink gives the second
a brand-new session instead (``resumed: false``, as for a session that is gone); the session
held elsewhere still answers REST (200) where a gone one answers 404, which tells them apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Final

import aiohttp
import msgspec

from . import errors
from .models import Ready, WireOp
from .node import NodeConfig
from .rest import RestClient

__all__ = ["ClearStatus", "SessionCleared", "clear_session"]

_DECODER: Final = msgspec.json.Decoder(WireOp, strict=False)
_DELETES_AT_ONCE: Final = 16
"""Player deletions in flight at once while the session is held (others wait to hold it)."""


class ClearStatus(enum.Enum):
    CLEARED = "cleared"
    """The session was held, and the players of the given guilds are gone from it."""
    BUSY = "busy"
    """Another socket holds the session right now (another process clearing it): try again."""
    GONE = "gone"
    """The node has no such session (expired, never resumable, or the node restarted)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SessionCleared:
    """What :func:`clear_session` did."""

    status: ClearStatus
    removed: frozenset[int] = frozenset()
    """The guilds whose players it destroyed."""
    left: int = 0
    """Players of other guilds still in the session (it stays paused for them)."""


async def clear_session(
    config: NodeConfig,
    http: aiohttp.ClientSession,
    *,
    user_id: int,
    client_name: str,
    session_id: str,
    drop: Callable[[int], bool],
    expires_in: float,
) -> SessionCleared:
    """Destroy the players of the guilds ``drop`` picks in the paused session ``session_id``;
    ``expires_in``: seconds the session had left (it keeps them for the other players).

    Raises:
        LavalinkError: the node could not be reached or refused (the session is unchanged,
            or paused again with what it held).
    """
    rest = RestClient(http, config.url, config.password, timeout=config.request_timeout)
    headers = {
        "Authorization": config.password,
        "User-Id": str(user_id),
        "Client-Name": client_name,
        "Session-Id": session_id,
    }
    for _ in range(2):
        try:
            async with asyncio.timeout(config.request_timeout):
                ws = await http.ws_connect(
                    config.websocket_url,
                    headers=headers,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                )
        except TimeoutError:
            raise errors.RequestTimeoutError("the WebSocket did not open in time") from None
        except aiohttp.ClientError as exc:
            raise errors.UnreachableError(f"WebSocket: {exc}") from exc
        try:
            if await _resumed(ws, config.request_timeout):
                return await _clear_held(rest, session_id, drop, expires_in)
        finally:
            # Held: paused again (or ended, with resuming off). Not resumed: the new session
            # Lavalink opened instead had resuming off, and ends here.
            await ws.close()
        try:
            await rest.get_players(session_id)
        except errors.NotFoundError:
            continue  # gone, or paused again by its holder between our two requests: retry
        return SessionCleared(ClearStatus.BUSY)
    return SessionCleared(ClearStatus.GONE)


async def _resumed(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> bool:
    """Whether the node's ``ready`` says the session was resumed on this socket."""
    try:
        async with asyncio.timeout(timeout):
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                op = _DECODER.decode(message.data)
                if isinstance(op, Ready):
                    return op.resumed
    except TimeoutError:
        raise errors.RequestTimeoutError("no ready from the node in time") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise errors.ProtocolError(f"malformed first frame: {exc}") from exc
    raise errors.UnreachableError("the node closed the WebSocket before ready")


async def _clear_held(
    rest: RestClient, session_id: str, drop: Callable[[int], bool], expires_in: float
) -> SessionCleared:
    players = await rest.get_players(session_id)
    removed = frozenset(player.guild_id for player in players if drop(player.guild_id))
    limit = asyncio.Semaphore(_DELETES_AT_ONCE)

    async def delete(guild_id: int) -> None:
        async with limit:
            await rest.destroy_player(session_id, guild_id)

    await asyncio.gather(*(delete(guild_id) for guild_id in removed))
    left = len(players) - len(removed)
    # The others' players keep what the session had left; none left: it ends with the socket.
    timeout = max(1, math.ceil(expires_in))
    await rest.update_session(session_id, resuming=left > 0, timeout=timeout)
    return SessionCleared(ClearStatus.CLEARED, removed, left)
