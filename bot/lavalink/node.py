"""One Lavalink node: its REST client and the life of its WebSocket.

The node keeps one WebSocket open, reconnecting with exponential back-off and jitter, and
resumes its previous session by sending ``Session-Id``. It checks the server's version before
each connect: Lavalink older than 4.2 cannot join Discord voice any more (DAVE), so such a node
is refused with a clear log line instead of failing silently later.

It does not interpret ops beyond ``ready``; frames are decoded and handed to the owner through
:class:`NodeListener` synchronously, so the read loop never waits on a listener.

A node that cannot be reached is reported once, with the likely fix; the attempts after that
fail quietly (DEBUG) but for a reminder every :data:`REMINDER_INTERVAL` seconds, and the
connect that finally works says how many attempts failed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from typing import Final, Protocol

import aiohttp
import msgspec

from . import errors
from .models import NodeInfo, Ready, WireOp
from .readhold import ReadHold
from .rest import RestClient

__all__ = ["MIN_VERSION", "REMINDER_INTERVAL", "Backoff", "Node", "NodeConfig", "NodeListener"]

_log = logging.getLogger(__name__)

MIN_VERSION: Final = (4, 2, 0)
_DECODER: Final = msgspec.json.Decoder(WireOp, strict=False)
REMINDER_INTERVAL = 300.0
"""Seconds between WARNING reminders that a node still cannot be reached; the failed attempts
in between are logged at DEBUG only (read at each failure, so a test may shorten it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class NodeConfig:
    """Where a node is and how to authenticate. ``url`` is ``http(s)://host:port``.

    ``request_timeout`` bounds every REST call; ``voice_timeout`` bounds a player update that
    carries voice credentials, which Lavalink answers only once its voice connect attempt ends.
    """

    name: str
    url: str
    password: str = dataclasses.field(repr=False)
    request_timeout: float = 10.0
    voice_timeout: float = 20.0

    @property
    def websocket_url(self) -> str:
        scheme, _, rest = self.url.rstrip("/").partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/v4/websocket"


class NodeListener(Protocol):
    """What a node reports to its owner. Called from the read loop: must not block."""

    def node_ready(self, node: Node, ready: Ready) -> None: ...

    def node_op(self, node: Node, op: WireOp) -> None: ...

    def node_disconnected(self, node: Node) -> None: ...


@dataclasses.dataclass(slots=True)
class Backoff:
    """Exponential back-off with jitter, so many bots don't reconnect in lock-step."""

    base: float = 0.5
    cap: float = 30.0
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        return float(delay * random.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.attempts = 0


@dataclasses.dataclass(slots=True)
class _Trouble:
    """The failed connection attempts since the node last became ready."""

    failures: int = 0
    since: float = 0.0  # time.monotonic() of the first of them
    said: str | None = None  # the failure last logged above DEBUG
    said_at: float = 0.0


class Node:
    """A Lavalink node the client talks to.

    ``session_id`` is the last session this node gave us (or the stored one we try to resume);
    ``available`` is true only while the socket is open and ``ready`` has arrived. ``info`` is
    the node's ``/v4/info`` as fetched before the last connect that got that far, and
    ``failed_attempts`` the number of attempts that failed before the last ``ready``.
    """

    def __init__(
        self,
        config: NodeConfig,
        http: aiohttp.ClientSession,
        listener: NodeListener,
        *,
        user_id: int,
        client_name: str,
        session_id: str | None = None,
        backoff: Backoff | None = None,
        heartbeat: float = 15.0,
    ) -> None:
        self.config = config
        self.rest = RestClient(
            http,
            config.url,
            config.password,
            timeout=config.request_timeout,
            voice_timeout=config.voice_timeout,
        )
        self.session_id = session_id
        self.available = False
        self.info: NodeInfo | None = None
        self.failed_attempts = 0
        self._trouble = _Trouble()
        self._http = http
        self._listener = listener
        self._user_id = user_id
        self._client_name = client_name
        self._backoff = backoff or Backoff()
        self._heartbeat = heartbeat
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lavalink-node-{self.name}")

    async def close(self) -> None:
        """Close the socket normally; a session with resuming on stays resumable."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def require_session(self) -> str:
        """The session id to use for a REST call, or raise if the node is not ready."""
        if not self.available or self.session_id is None:
            raise errors.NoNodeAvailableError(f"Lavalink node {self.name!r} is not connected")
        return self.session_id

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._check_version()
                await self._connect_and_read()
            except asyncio.CancelledError:
                raise
            except _RefusedError as exc:
                # The fix (password, version) is in the message already.
                self._failed(logging.ERROR, "refused", str(exc), "")
            except (errors.LavalinkError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._failed(logging.WARNING, "unreachable", _describe(exc), _likely_fix(exc))
            except Exception:
                # Never let the connection loop die: a bug here must not silence the bot.
                _log.exception("Lavalink node %s: unexpected error in connection loop", self.name)
                self._trouble.failures += 1
            if self._closing:
                break
            delay = self._backoff.next_delay()
            _log.debug("reconnecting to Lavalink node %s in %.1f s", self.name, delay)
            await asyncio.sleep(delay)

    def _failed(self, level: int, state: str, cause: str, fix: str) -> None:
        """Log a failed attempt: a new failure at ``level`` with its fix, the same failure
        again at DEBUG, and at most every REMINDER_INTERVAL s a WARNING that it goes on."""
        now = time.monotonic()
        trouble = self._trouble
        if trouble.failures == 0:
            trouble.since = now
        trouble.failures += 1
        what = f"{cause}; {fix}" if fix else cause
        if what != trouble.said:
            trouble.said, trouble.said_at = what, now
            _log.log(
                level,
                "Lavalink node %s %s at %s: %s (retrying in the background; "
                "a reminder every %s while this lasts)",
                self.name,
                state,
                self.config.url,
                what,
                _duration(REMINDER_INTERVAL),
            )
        elif now - trouble.said_at >= REMINDER_INTERVAL:
            trouble.said_at = now
            _log.warning(
                "still cannot reach Lavalink node %s for %s (%d failed attempts): %s",
                self.name,
                _duration(now - trouble.since),
                trouble.failures,
                what,
            )
        else:
            _log.debug(
                "Lavalink node %s: attempt %d failed again: %s", self.name, trouble.failures, cause
            )

    async def _check_version(self) -> None:
        try:
            info = await self.rest.info()
        except (errors.UnauthorizedError, errors.ForbiddenError) as exc:
            raise _RefusedError("the password was rejected (check LAVALINK_PASSWORD)") from exc
        self.info = info
        version = (info.version.major, info.version.minor, info.version.patch)
        if version[0] != MIN_VERSION[0]:
            # Another major version serves other routes (``/v4`` is this client's only API).
            raise _RefusedError(
                f"it runs Lavalink {info.version.semver}; this client speaks the Lavalink 4 "
                "API and needs 4.2.0 or newer 4.x"
            )
        if version < MIN_VERSION:
            raise _RefusedError(
                f"it runs Lavalink {info.version.semver}; 4.2.0 or newer is required "
                "(older versions cannot join Discord voice channels)"
            )

    async def _connect_and_read(self) -> None:
        headers = {
            "Authorization": self.config.password,
            "User-Id": str(self._user_id),
            "Client-Name": self._client_name,
        }
        if self.session_id:
            headers["Session-Id"] = self.session_id
        try:
            ws = await self._http.ws_connect(
                self.config.websocket_url,
                headers=headers,
                heartbeat=self._heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise _RefusedError("the password was rejected (check LAVALINK_PASSWORD)") from exc
            raise
        self._ws = ws
        try:
            await self._read(ws)
        finally:
            self._ws = None
            was_available, self.available = self.available, False
            if not ws.closed:
                await ws.close()
            if was_available:
                self._listener.node_disconnected(self)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        hold = ReadHold(ws)
        try:
            await self._read_held(ws, hold)
        finally:
            hold.close()
        # Our own close() ends the loop too: that is no news worth a warning.
        _log.log(
            logging.DEBUG if self._closing else logging.WARNING,
            "Lavalink node %s closed the connection (code %s)",
            self.name,
            ws.close_code,
        )

    async def _read_held(self, ws: aiohttp.ClientWebSocketResponse, hold: ReadHold) -> None:
        async for message in ws:
            hold.frame_read()
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue  # v4 sends only text frames; anything else is noise.
            try:
                op = _DECODER.decode(message.data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._log_bad_frame(message.data, exc)
                continue
            if isinstance(op, Ready):
                self.session_id = op.session_id
                self.available = True
                self._backoff.reset()
                self.failed_attempts, trouble = self._trouble.failures, self._trouble
                self._trouble = _Trouble()
                if trouble.failures:
                    _log.info(
                        "Lavalink node %s connected after %d failed attempt%s over %s "
                        "(session %s, resumed=%s)",
                        self.name,
                        trouble.failures,
                        "" if trouble.failures == 1 else "s",
                        _duration(time.monotonic() - trouble.since),
                        op.session_id,
                        op.resumed,
                    )
                else:
                    _log.info(
                        "Lavalink node %s ready (session %s, resumed=%s)",
                        self.name,
                        op.session_id,
                        op.resumed,
                    )
                self._listener.node_ready(self, op)
            else:
                self._listener.node_op(self, op)

    def _log_bad_frame(self, data: str, exc: Exception) -> None:
        # An op from a newer server is expected news, not a fault: keep it out of the warnings.
        try:
            name = _OP_NAME.decode(data).op
        except (msgspec.DecodeError, msgspec.ValidationError):
            name = None
        if name is not None and name not in _KNOWN_OPS:
            _log.debug("ignoring unknown op %r from Lavalink node %s", name, self.name)
            return
        _log.warning(
            "ignoring malformed frame from Lavalink node %s: %s (%.120r)", self.name, exc, data
        )


class _OpName(msgspec.Struct):
    op: str


_OP_NAME: Final = msgspec.json.Decoder(_OpName)
_KNOWN_OPS: Final = frozenset({"ready", "playerUpdate", "stats", "event"})


class _RefusedError(Exception):
    """The node answered but will not work with us (password, version)."""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _likely_fix(exc: BaseException) -> str:
    """What an operator should check, for a node that could not be reached or understood."""
    if isinstance(exc, errors.RequestTimeoutError | TimeoutError):
        return "it did not answer in time: is Lavalink still starting, and LAVALINK_URL right?"
    if isinstance(exc, errors.NotFoundError | errors.ProtocolError):
        return "is LAVALINK_URL the address of a Lavalink 4 server?"
    if isinstance(exc, errors.ServerError):
        return "Lavalink failed to answer; see its own log"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return "is LAVALINK_URL the address of a Lavalink 4 server?"
    return "is Lavalink running and LAVALINK_URL right?"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
