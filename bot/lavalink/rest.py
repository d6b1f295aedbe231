"""The REST half of a Lavalink v4 node.

All control in v4 is REST; the WebSocket only reports. Every call has its own time-out
(a ``PATCH`` carrying ``voice`` blocks until the voice connection attempt finishes, so it gets
a longer one), answers are decoded straight into typed models, and every failure surfaces as
one of the exceptions in :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import aiohttp
import msgspec

from . import errors
from .models import (
    GenericRoutePlanner,
    KnownRoutePlanner,
    LoadResult,
    NodeInfo,
    Player,
    RoutePlannerStatus,
    SessionInfo,
    Stats,
    Track,
    UpdatePlayer,
)

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


class _PlannerClass(msgspec.Struct):
    class_name: str | None = msgspec.field(default=None, name="class")


_KNOWN_PLANNERS: Final = frozenset(
    str(kind.__struct_config__.tag) for kind in KnownRoutePlanner.__args__
)


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

    # --- node --------------------------------------------------------------------------------

    async def info(self) -> NodeInfo:
        """``GET /v4/info``."""
        return await self._request("GET", "/v4/info", NodeInfo)

    async def version(self) -> str:
        """``GET /version``: the server's version as plain text (e.g. ``4.2.2``)."""
        raw: bytes = await self._request("GET", "/version", bytes)
        return raw.decode("utf-8", "replace").strip()

    async def stats(self) -> Stats:
        """``GET /v4/stats`` (``frame_stats`` is always ``None`` over REST)."""
        return await self._request("GET", "/v4/stats", Stats)

    # --- tracks ------------------------------------------------------------------------------

    async def load_tracks(self, identifier: str) -> LoadResult:
        """``GET /v4/loadtracks``: a load *failure* is an :class:`~.models.ErrorResult`, not
        an exception; exceptions mean the request itself failed."""
        return await self._request(
            "GET", "/v4/loadtracks", LoadResult, params={"identifier": identifier}
        )

    async def decode_track(self, encoded: str) -> Track:
        """``GET /v4/decodetrack``; a string the node cannot decode is a :class:`ServerError`.

        Prefer :func:`~.codec.decode_track` (local, no round trip) unless plugin info matters.
        """
        return await self._request(
            "GET", "/v4/decodetrack", Track, params={"encodedTrack": encoded}
        )

    async def decode_tracks(self, encoded: Sequence[str]) -> tuple[Track, ...]:
        """``POST /v4/decodetracks``: tracks in the same order; one bad string fails them all.

        An empty list is answered locally: Lavalink would reject it with a 400.
        """
        if not encoded:
            return ()
        return await self._request(
            "POST",
            "/v4/decodetracks",
            tuple[Track, ...],
            body=_ENCODER.encode(list(encoded)),
        )

    # --- players and sessions ----------------------------------------------------------------

    async def get_players(self, session_id: str) -> tuple[Player, ...]:
        """``GET /v4/sessions/{sid}/players``: every player of the session."""
        return await self._request("GET", f"/v4/sessions/{session_id}/players", tuple[Player, ...])

    async def get_player(self, session_id: str, guild_id: int) -> Player:
        """``GET /v4/sessions/{sid}/players/{gid}``; :class:`NotFoundError` if there is none."""
        return await self._request("GET", f"/v4/sessions/{session_id}/players/{guild_id}", Player)

    async def update_player(
        self,
        session_id: str,
        guild_id: int,
        update: UpdatePlayer,
        *,
        no_replace: bool = False,
    ) -> Player:
        """``PATCH /v4/sessions/{sid}/players/{gid}``; creates the player if it is missing.

        ``no_replace=True`` leaves a playing track alone: the request then returns early and
        its ``paused``/``position``/``end_time``/``user_data`` are ignored too (the server's
        rule). An update carrying ``voice`` blocks on Lavalink's voice connect, so it gets
        ``voice_timeout`` instead of ``timeout``.
        """
        timeout = self._voice_timeout if update.voice is not msgspec.UNSET else self._timeout
        player: Player | None = await self._request(
            "PATCH",
            f"/v4/sessions/{session_id}/players/{guild_id}",
            Player,
            params={"noReplace": "true" if no_replace else "false"},
            body=_ENCODER.encode(update),
            timeout=timeout,
        )
        if player is None:
            # The handler is annotated 204; 4.2.2 sends a body anyway, but any 2xx succeeds.
            player = await self.get_player(session_id, guild_id)
        return player

    async def destroy_player(self, session_id: str, guild_id: int) -> None:
        """``DELETE`` the player (204 even if it did not exist). The bot stays in the channel."""
        await self._request("DELETE", f"/v4/sessions/{session_id}/players/{guild_id}", None)

    async def update_session(self, session_id: str, *, resuming: bool, timeout: int) -> SessionInfo:
        """``PATCH /v4/sessions/{sid}``; ``timeout`` is in seconds."""
        body = _ENCODER.encode({"resuming": resuming, "timeout": timeout})
        return await self._request("PATCH", f"/v4/sessions/{session_id}", SessionInfo, body=body)

    # --- route planner -----------------------------------------------------------------------

    async def route_planner_status(self) -> RoutePlannerStatus | None:
        """``GET /v4/routeplanner/status``; ``None`` when the node has no route planner.

        4.2.2 answers 204 then; older builds and the docs send ``{"class": null, ...}``,
        which also means none. A class this client does not know comes back as a
        :class:`~.models.GenericRoutePlanner` with the details every planner shares.
        """
        raw: bytes | None = await self._request("GET", "/v4/routeplanner/status", bytes)
        if not raw:
            return None
        path = "/v4/routeplanner/status"
        head: _PlannerClass = self._decode("GET", path, _PlannerClass, raw)
        if head.class_name is None:
            return None
        if head.class_name in _KNOWN_PLANNERS:
            return self._decode("GET", path, KnownRoutePlanner, raw)
        return self._decode("GET", path, GenericRoutePlanner, raw)

    async def free_address(self, address: str) -> None:
        """``POST /v4/routeplanner/free/address``: use a failing address again.

        :class:`BadRequestError` if ``address`` is not an IP; :class:`ServerError` when the node
        has no route planner.
        """
        body = _ENCODER.encode({"address": address})
        await self._request("POST", "/v4/routeplanner/free/address", None, body=body)

    async def free_all_addresses(self) -> None:
        """``POST /v4/routeplanner/free/all``: forget every failing address."""
        await self._request("POST", "/v4/routeplanner/free/all", None)

    # --- plumbing ----------------------------------------------------------------------------

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
        if kind is bytes:
            return payload  # type: ignore[return-value]
        return self._decode(method, path, kind, payload)  # type: ignore[no-any-return]

    @staticmethod
    def _decode(method: str, path: str, kind: type[_T] | Any, payload: bytes) -> _T:
        """Decode an answer; anything that is not the expected shape is a ProtocolError."""
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
