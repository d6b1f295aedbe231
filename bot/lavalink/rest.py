"""The REST half of a Lavalink v4 node.

All control in v4 is REST; the WebSocket only reports. Every call has its own time-out
(a ``PATCH`` carrying ``voice`` blocks until the voice connection attempt finishes, so it gets
a longer one), answers are decoded straight into typed models, and every failure surfaces as
one of the exceptions in :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, TypeVar

import aiohttp
import msgspec

from . import errors
from .models import LoadResult, NodeInfo, Player, SessionInfo, Stats, UpdatePlayer

__all__ = ["RestClient"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_ENCODER: Final = msgspec.json.Encoder()
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.json.Decoder(kind, strict=False)
    return decoder


class _ErrorBody(msgspec.Struct):
    message: str | None = None
    error: str | None = None


class RestClient:
    """Typed access to one node's REST API.

    Args:
        session: a shared :class:`aiohttp.ClientSession` (HTTP/1.1 keep-alive).
        base_url: ``http(s)://host:port`` of the node, without a trailing slash.
        password: sent as ``Authorization``; never logged.
        timeout: seconds for ordinary calls.
        voice_timeout: seconds for a player update that carries voice credentials.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        password: str,
        *,
        timeout: float = 10.0,
        voice_timeout: float = 20.0,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": password}
        self._timeout = timeout
        self._voice_timeout = voice_timeout

    async def info(self) -> NodeInfo:
        return await self._request("GET", "/v4/info", NodeInfo)

    async def stats(self) -> Stats:
        return await self._request("GET", "/v4/stats", Stats)

    async def load_tracks(self, identifier: str) -> LoadResult:
        return await self._request(
            "GET", "/v4/loadtracks", LoadResult, params={"identifier": identifier}
        )

    async def get_players(self, session_id: str) -> tuple[Player, ...]:
        return await self._request("GET", f"/v4/sessions/{session_id}/players", tuple[Player, ...])

    async def update_player(
        self,
        session_id: str,
        guild_id: int,
        update: UpdatePlayer,
        *,
        no_replace: bool = False,
    ) -> Player:
        timeout = self._voice_timeout if update.voice is not msgspec.UNSET else self._timeout
        return await self._request(
            "PATCH",
            f"/v4/sessions/{session_id}/players/{guild_id}",
            Player,
            params={"noReplace": "true" if no_replace else "false"},
            body=_ENCODER.encode(update),
            timeout=timeout,
        )

    async def destroy_player(self, session_id: str, guild_id: int) -> None:
        await self._request("DELETE", f"/v4/sessions/{session_id}/players/{guild_id}", None)

    async def update_session(self, session_id: str, *, resuming: bool, timeout: int) -> SessionInfo:
        body = _ENCODER.encode({"resuming": resuming, "timeout": timeout})
        return await self._request("PATCH", f"/v4/sessions/{session_id}", SessionInfo, body=body)

    async def _request(
        self,
        method: str,
        path: str,
        kind: type[_T] | Any,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> _T:
        headers = self._headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(timeout or self._timeout):
                async with self._session.request(
                    method, self._base_url + path, params=params, data=body, headers=headers
                ) as response:
                    payload = await response.read()
                    status = response.status
        except TimeoutError:
            raise errors.RequestTimeoutError(f"{method} {path} timed out") from None
        except aiohttp.ClientError as exc:
            raise errors.UnreachableError(f"{method} {path}: {exc}") from exc

        if status >= 400:
            raise errors.rest_error_for(status, _error_message(status, payload), path)
        if kind is None or status == 204:
            return None  # type: ignore[return-value]
        try:
            return _decoder(kind).decode(payload)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            _log.warning("unexpected answer to %s %s: %s", method, path, exc)
            raise errors.ProtocolError(f"{method} {path}: malformed answer ({exc})") from exc


def _error_message(status: int, payload: bytes) -> str:
    """Lavalink's error message, or a stand-in for bodies it leaves empty (401/403)."""
    if payload:
        try:
            body = msgspec.json.decode(payload, type=_ErrorBody)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return payload[:200].decode("utf-8", "replace")
        if body.message or body.error:
            return body.message or body.error or ""
    if status == 401:
        return "no password sent"
    if status == 403:
        return "wrong password"
    return f"HTTP {status}"
