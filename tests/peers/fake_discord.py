"""A Discord-compatible server on 127.0.0.1 for the real hikari ``GatewayBot`` and lightbulb.

It serves the gateway (HELLO, IDENTIFY/READY/GUILD_CREATE, RESUME with replay, heartbeats,
zlib-stream transport compression, Discord's 120-commands-per-60-s limit) and the REST
routes the bot uses (start-up calls, command sync, interaction callbacks and webhooks,
channel messages), all with payloads hikari's own deserialisers accept.

It plays the Discord side of voice: op 4 joining a channel is answered with the bot's
``VOICE_STATE_UPDATE`` (a fresh voice session id) and then a ``VOICE_SERVER_UPDATE``
(token and ``host:port`` endpoint); op 4 with ``channel_id: null`` with a state update only.
As on Discord, a new gateway session (IDENTIFY, not RESUME) drops the bot from every voice
channel.

Tests drive it as a user would: :meth:`FakeDiscord.invoke` sends a slash command and
:meth:`Interaction.reply` waits for what the user ends up seeing.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import logging
import re
import secrets
import time
import zlib
from collections.abc import Callable
from typing import Any, Self

from aiohttp import WSMsgType, web

__all__ = [
    "ALICE",
    "BOT_ID",
    "GUILD",
    "OTHER_VOICE_CHANNEL",
    "TEXT_CHANNEL",
    "VOICE_CHANNEL",
    "FakeDiscord",
    "Guild",
    "Interaction",
    "Reply",
    "SentMessage",
    "VoiceOp",
    "default_guild",
]

log = logging.getLogger(__name__)

BOT_ID = 111111111111111111
OWNER_ID = 222222222222222222
GUILD = 333333333333333333
TEXT_CHANNEL = 444444444444444441
VOICE_CHANNEL = 444444444444444442
OTHER_VOICE_CHANNEL = 444444444444444443
ALICE = 555555555555555555

EPHEMERAL = 1 << 6
PERMISSIONS = "2248473465835073"
RATE_LIMIT = (120, 60.0)  # payloads per seconds, per connection, heartbeats included
TIMESTAMP = "2026-11-22T15:41:29.046286+00:00"

_OP_DISPATCH, _OP_HEARTBEAT, _OP_IDENTIFY, _OP_VOICE = 0, 1, 2, 4
_OP_RESUME, _OP_INVALID_SESSION, _OP_HELLO, _OP_HEARTBEAT_ACK = 6, 9, 10, 11

_snowflakes = itertools.count(900_000_000_000_000_000)


def _snowflake() -> str:
    return str(next(_snowflakes))


def _user(user_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "avatar": None,
        "bot": user_id == BOT_ID,
    }


@dataclasses.dataclass
class Guild:
    """A guild as the fake knows it; ``user_voice`` maps users to their voice channel."""

    id: int
    name: str
    text_channel_ids: list[int]
    voice_channel_ids: list[int]
    members: list[int]
    user_voice: dict[int, int] = dataclasses.field(default_factory=dict)


def default_guild() -> Guild:
    """One guild: a text channel, two voice channels, and Alice sitting in the first."""
    return Guild(
        id=GUILD,
        name="Fake Guild",
        text_channel_ids=[TEXT_CHANNEL],
        voice_channel_ids=[VOICE_CHANNEL, OTHER_VOICE_CHANNEL],
        members=[ALICE],
        user_voice={ALICE: VOICE_CHANNEL},
    )


@dataclasses.dataclass(frozen=True)
class VoiceOp:
    """One gateway op 4 the bot sent."""

    guild_id: int
    channel_id: int | None
    self_mute: bool
    self_deaf: bool
    at: float


@dataclasses.dataclass(frozen=True)
class SentMessage:
    """A message the bot posted with ``POST /channels/{id}/messages``."""

    channel_id: int
    content: str
    embeds: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the user finally sees as the answer to a command."""

    content: str
    embeds: list[dict[str, Any]]
    ephemeral: bool

    @property
    def text(self) -> str:
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            for field in embed.get("fields") or []:
                parts += [field.get("name") or "", field.get("value") or ""]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(p for p in parts if p)


@dataclasses.dataclass
class Interaction:
    """A slash command sent to the bot, and every way the bot answered it."""

    id: str
    token: str
    responses: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    acknowledged: bool = False
    deferred_flags: int | None = None
    original_deleted: bool = False
    final: Reply | None = None
    _answered: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def reply(self, timeout: float = 10.0) -> Reply:
        """Wait for the answer the user ends up seeing (deferred or not)."""
        try:
            async with asyncio.timeout(timeout):
                await self._answered.wait()
        except TimeoutError:
            raise AssertionError(
                f"no reply to interaction {self.id} within {timeout} s; got {self.responses}"
            ) from None
        assert self.final is not None
        return self.final

    def _answer(self, body: dict[str, Any], ephemeral: bool) -> None:
        if self.final is None:
            self.final = Reply(body.get("content") or "", list(body.get("embeds") or []), ephemeral)
            self._answered.set()


@dataclasses.dataclass
class _Session:
    """A gateway session: survives its connection so a RESUME can replay what was missed."""

    id: str
    seq: int = 0
    sent: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    connection: _Connection | None = None


class _Connection:
    """One gateway websocket; compression state and the rate-limit window are per socket."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self.deflate = zlib.compressobj() if compress else None
        self.received: list[float] = []
        self.session: _Session | None = None
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return
            if self.deflate is None:
                await self.ws.send_str(text)
            else:
                data = self.deflate.compress(text.encode()) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)


class FakeDiscord:
    """Discord's gateway and REST API for one bot, on a random port of 127.0.0.1."""

    def __init__(
        self,
        bot_id: int = BOT_ID,
        guilds: list[Guild] | None = None,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        self.bot_id = bot_id
        self.guilds = {g.id: g for g in (guilds if guilds is not None else [default_guild()])}
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.token = (
            base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
            + "."
            + secrets.token_urlsafe(6)
            + "."
            + secrets.token_urlsafe(27)
        )
        self.registered_commands: dict[str, dict[str, Any]] = {}
        self.voice_ops: list[VoiceOp] = []
        self.gateway_ops: list[tuple[float, int]] = []
        self.messages: list[SentMessage] = []
        self.unhandled: list[str] = []
        self.identify_count = 0
        self.resume_count = 0
        self.rate_limited = 0
        self.requests: list[str] = []
        self._bot_voice: dict[int, tuple[int, str]] = {}  # guild -> (channel, voice session)
        self._interactions: dict[str, Interaction] = {}
        self._sessions: dict[str, _Session] = {}
        self._current: _Session | None = None
        self._connections: set[_Connection] = set()
        self._synced_at: float | None = None
        self._identified_at = 0.0
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._routes = self._rest_routes()

    # --- life ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        for conn in list(self._connections):
            await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def connected(self) -> bool:
        session = self._current
        return session is not None and session.connection is not None

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Until a bot is connected, has its guilds, and synced its commands this session."""

        def ready() -> bool:
            return (
                self.connected
                and self._synced_at is not None
                and self._synced_at >= self._identified_at
                # lightbulb marks itself started right after the sync's last answer.
                and time.monotonic() - self._synced_at > 0.1
            )

        await self._wait(ready, timeout, "the bot to connect and sync its commands")

    # --- what a user does ---------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        options: dict[str, object] | None = None,
        *,
        guild_id: int = GUILD,
        user_id: int = ALICE,
        channel_id: int = TEXT_CHANNEL,
    ) -> Interaction:
        """Send the slash command ``/name`` as ``user_id`` typed it in ``channel_id``."""
        command = self.registered_commands.get(name)
        if command is None:
            raise AssertionError(
                f"/{name} is not registered (have {list(self.registered_commands)})"
            )
        interaction = Interaction(id=_snowflake(), token="itoken-" + secrets.token_hex(16))
        self._interactions[interaction.token] = interaction
        data = {
            "id": interaction.id,
            "application_id": str(self.bot_id),
            "type": 2,
            "token": interaction.token,
            "version": 1,
            "guild_id": str(guild_id),
            "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "guild_id": str(guild_id)},
            "member": self._member(guild_id, user_id) | {"permissions": PERMISSIONS},
            "data": {
                "id": command["id"],
                "name": name,
                "type": 1,
                "guild_id": str(guild_id),
                "options": [_option(k, v) for k, v in (options or {}).items()],
            },
            "locale": "en-US",
            "guild_locale": "en-US",
            "app_permissions": PERMISSIONS,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": 10_485_760,
        }
        await self.dispatch("INTERACTION_CREATE", data)
        return interaction

    async def set_user_voice(self, guild_id: int, user_id: int, channel_id: int | None) -> None:
        """A user joins, moves or (``None``) leaves voice."""
        guild = self.guilds[guild_id]
        if channel_id is None:
            guild.user_voice.pop(user_id, None)
        else:
            guild.user_voice[user_id] = channel_id
        await self.dispatch(
            "VOICE_STATE_UPDATE", self._voice_state(guild_id, user_id, channel_id, "user-voice")
        )

    def bot_voice_channel(self, guild_id: int) -> int | None:
        entry = self._bot_voice.get(guild_id)
        return entry[0] if entry else None

    async def wait_for_voice_op(
        self, guild_id: int, channel_id: int | None, *, after: int = 0, timeout: float = 10.0
    ) -> VoiceOp:
        """The first op 4 at or after index ``after`` for this guild and channel."""
        found: list[VoiceOp] = []

        def seen() -> bool:
            for op in self.voice_ops[after:]:
                if op.guild_id == guild_id and op.channel_id == channel_id:
                    found.append(op)
                    return True
            return False

        await self._wait(seen, timeout, f"op 4 guild={guild_id} channel={channel_id}")
        return found[0]

    async def wait_for_message(self, fragment: str, timeout: float = 10.0) -> SentMessage:
        """The first channel message the bot posted that contains ``fragment``."""
        found: list[SentMessage] = []

        def seen() -> bool:
            found.extend(m for m in self.messages if fragment in m.content)
            return bool(found)

        await self._wait(seen, timeout, f"a message containing {fragment!r}")
        return found[0]

    async def move_bot(self, guild_id: int, channel_id: int) -> None:
        """A moderator drags the bot to another channel: a state update, same voice session."""
        _, session = self._bot_voice.get(guild_id, (0, secrets.token_hex(16)))
        self._bot_voice[guild_id] = (channel_id, session)
        await self.dispatch(
            "VOICE_STATE_UPDATE", self._voice_state(guild_id, self.bot_id, channel_id, session)
        )

    async def kick_bot(self, guild_id: int) -> None:
        """A moderator disconnects the bot (or deletes its channel)."""
        _, session = self._bot_voice.pop(guild_id, (0, "gone"))
        await self.dispatch(
            "VOICE_STATE_UPDATE", self._voice_state(guild_id, self.bot_id, None, session)
        )

    async def drop_gateway(self, resumable: bool = True) -> None:
        """Cut the bot's gateway connection; a non-resumable drop invalidates its session."""
        session = self._current
        if session is None or session.connection is None:
            raise AssertionError("no bot is connected")
        conn = session.connection
        if resumable:
            await conn.ws.close(code=4000, message=b"Unknown error")
            return
        self._sessions.pop(session.id, None)
        await conn.send({"op": _OP_INVALID_SESSION, "d": False})
        await asyncio.sleep(0.2)
        await conn.ws.close(code=1000)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to the bot's session; kept for replay if the bot is away."""
        session = self._current
        if session is None:
            return  # no session: Discord has nobody to send it to
        session.seq += 1
        payload = {"op": _OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.sent.append(payload)
        if session.connection is not None:
            await session.connection.send(payload)

    # --- gateway ------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        compress = request.query.get("compress")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        if compress not in (None, "zlib-stream"):
            self.unhandled.append(f"gateway compress={compress}")
            await ws.close(code=4000, message=b"unsupported compression")
            return ws
        conn = _Connection(ws, compress == "zlib-stream")
        self._connections.add(conn)
        try:
            await conn.send(
                {"op": _OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                payload = json.loads(message.data)
                if not await self._count(conn):
                    break
                await self._on_payload(conn, payload)
        finally:
            self._connections.discard(conn)
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
        return ws

    async def _count(self, conn: _Connection) -> bool:
        now = time.monotonic()
        limit, window = RATE_LIMIT
        conn.received = [t for t in conn.received if now - t < window]
        conn.received.append(now)
        if len(conn.received) > limit:
            self.rate_limited += 1
            await conn.ws.close(code=4008, message=b"Rate limited.")
            return False
        return True

    async def _on_payload(self, conn: _Connection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        self.gateway_ops.append((time.monotonic(), op))
        if op == _OP_HEARTBEAT:
            await conn.send({"op": _OP_HEARTBEAT_ACK})
        elif op == _OP_IDENTIFY:
            await self._identify(conn, data)
        elif op == _OP_RESUME:
            await self._resume(conn, data)
        elif op == _OP_VOICE:
            await self._voice(data)

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identify_count += 1
        self._identified_at = time.monotonic()
        # A new gateway session: Discord drops the bot's voice connections.
        self._bot_voice.clear()
        old = self._current
        if old is not None and old.connection is not None and old.connection is not conn:
            await old.connection.ws.close(code=4000)
        session = _Session(id=secrets.token_hex(16), connection=conn)
        self._sessions[session.id] = session
        self._current, conn.session = session, session
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": _user(self.bot_id, "musicbot") | {"mfa_enabled": False, "flags": 0},
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                "session_id": session.id,
                "resume_gateway_url": self.gateway_url,
                "shard": [0, 1],
                "application": {"id": str(self.bot_id), "flags": 0},
            },
        )
        for guild in self.guilds.values():
            await self.dispatch("GUILD_CREATE", self._guild_create(guild))

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        session = self._sessions.get(data.get("session_id", ""))
        if data.get("token") != self.token or session is None:
            await conn.send({"op": _OP_INVALID_SESSION, "d": False})
            return
        self.resume_count += 1
        if session.connection is not None and session.connection is not conn:
            await session.connection.ws.close(code=4000)
        session.connection, conn.session, self._current = conn, session, session
        seq = data.get("seq") or 0
        for payload in session.sent:
            if payload["s"] > seq:
                await conn.send(payload)
        await self.dispatch("RESUMED", {})

    async def _voice(self, data: dict[str, Any]) -> None:
        guild_id = int(data["guild_id"])
        channel = data.get("channel_id")
        channel_id = int(channel) if channel is not None else None
        self.voice_ops.append(
            VoiceOp(
                guild_id,
                channel_id,
                bool(data.get("self_mute")),
                bool(data.get("self_deaf")),
                time.monotonic(),
            )
        )
        guild = self.guilds.get(guild_id)
        if guild is None or (channel_id is not None and channel_id not in guild.voice_channel_ids):
            return  # Discord ignores a join it cannot honour
        if channel_id is None:
            if self._bot_voice.pop(guild_id, None) is None:
                return
            state = self._voice_state(guild_id, self.bot_id, None, secrets.token_hex(16))
            await self.dispatch("VOICE_STATE_UPDATE", state)
            return
        previous = self._bot_voice.get(guild_id)
        session = previous[1] if previous else secrets.token_hex(16)
        self._bot_voice[guild_id] = (channel_id, session)
        state = self._voice_state(guild_id, self.bot_id, channel_id, session)
        state["self_deaf"] = bool(data.get("self_deaf"))
        state["self_mute"] = bool(data.get("self_mute"))
        await self.dispatch("VOICE_STATE_UPDATE", state)
        await self.dispatch(
            "VOICE_SERVER_UPDATE",
            {
                "token": secrets.token_hex(8),
                "guild_id": str(guild_id),
                "endpoint": f"fake-voice-{secrets.randbelow(10_000):04}.discord.media:443",
            },
        )

    # --- payloads -----------------------------------------------------------------------

    def _member(self, guild_id: int, user_id: int) -> dict[str, Any]:
        name = "musicbot" if user_id == self.bot_id else f"user{user_id % 1000}"
        if user_id == ALICE:
            name = "alice"
        return {
            "user": _user(user_id, name),
            "roles": [],
            "joined_at": TIMESTAMP,
            "deaf": False,
            "mute": False,
        }

    def _voice_state(
        self, guild_id: int, user_id: int, channel_id: int | None, session: str
    ) -> dict[str, Any]:
        return {
            "guild_id": str(guild_id),
            "channel_id": str(channel_id) if channel_id is not None else None,
            "user_id": str(user_id),
            "member": self._member(guild_id, user_id),
            "session_id": session,
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }

    def _guild_create(self, guild: Guild) -> dict[str, Any]:
        channels: list[dict[str, Any]] = [
            {
                "id": str(c),
                "type": 0,
                "guild_id": str(guild.id),
                "name": f"text-{i}",
                "position": i,
                "permission_overwrites": [],
                "topic": None,
                "nsfw": False,
            }
            for i, c in enumerate(guild.text_channel_ids)
        ]
        channels += [
            {
                "id": str(c),
                "type": 2,
                "guild_id": str(guild.id),
                "name": f"voice-{i}",
                "position": len(channels) + i,
                "permission_overwrites": [],
                "bitrate": 64_000,
                "user_limit": 0,
            }
            for i, c in enumerate(guild.voice_channel_ids)
        ]
        members = [self._member(guild.id, u) for u in (self.bot_id, *guild.members)]
        voice_states = [
            self._voice_state(guild.id, user, channel, f"voice-{user}")
            for user, channel in guild.user_voice.items()
        ]
        for state in voice_states:
            del state["member"]
        return {
            "id": str(guild.id),
            "unavailable": False,
            "name": guild.name,
            "icon": None,
            "splash": None,
            "owner_id": str(OWNER_ID),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "joined_at": TIMESTAMP,
            "large": False,
            "member_count": len(members),
            "roles": [
                {
                    "id": str(guild.id),
                    "name": "@everyone",
                    "color": 0,
                    "hoist": False,
                    "position": 0,
                    "permissions": PERMISSIONS,
                    "managed": False,
                    "mentionable": False,
                }
            ],
            "emojis": [],
            "stickers": [],
            "channels": channels,
            "threads": [],
            "members": members,
            "voice_states": voice_states,
            "presences": [],
        }

    def _message(self, channel_id: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "id": _snowflake(),
            "channel_id": channel_id,
            "author": _user(self.bot_id, "musicbot"),
            "content": body.get("content") or "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
            **extra,
        }

    # --- REST ---------------------------------------------------------------------------

    def _rest_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        app = r"(?P<app>\d+)"
        token = r"(?P<token>[^/]+)"
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"gateway/bot", self._gateway_bot),
            ("GET", r"oauth2/applications/@me", self._application),
            ("GET", r"users/@me", lambda **_: _user(self.bot_id, "musicbot")),
            ("GET", rf"applications/{app}/commands", self._get_commands),
            ("PUT", rf"applications/{app}/commands", self._put_commands),
            ("GET", rf"applications/{app}/guilds/(?P<guild>\d+)/commands", self._get_commands),
            ("PUT", rf"applications/{app}/guilds/(?P<guild>\d+)/commands", self._put_commands),
            ("POST", rf"interactions/(?P<iid>\d+)/{token}/callback", self._callback),
            ("POST", rf"webhooks/{app}/{token}", self._followup),
            ("GET", rf"webhooks/{app}/{token}/messages/@original", self._get_original),
            ("PATCH", rf"webhooks/{app}/{token}/messages/(?P<mid>@original|\d+)", self._edit),
            ("DELETE", rf"webhooks/{app}/{token}/messages/(?P<mid>@original|\d+)", self._delete),
            ("POST", r"channels/(?P<channel>\d+)/messages", self._create_message),
        ]
        return [(m, re.compile(p + r"/?"), h) for m, p, h in table]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        self.requests.append(f"{request.method} /{tail}")
        body = await request.json() if request.can_read_body else None
        for method, pattern, handler in self._routes:
            if method == request.method and (match := pattern.fullmatch(tail)):
                if not tail.startswith(("interactions/", "webhooks/")) and (
                    request.headers.get("Authorization") != f"Bot {self.token}"
                ):
                    return _error(401, 0, "401: Unauthorized")
                try:
                    result = handler(body=body, query=request.query, **match.groupdict())
                    if asyncio.iscoroutine(result):
                        result = await result
                except _RestError as exc:
                    return _error(exc.status, exc.code, exc.message)
                if result is None:
                    return web.Response(status=204)
                return web.json_response(result)
        self.unhandled.append(f"{request.method} /{tail}")
        return _error(404, 0, "404: Not Found")

    def _gateway_bot(self, **_: Any) -> dict[str, Any]:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 0,
                "max_concurrency": 1,
            },
        }

    def _application(self, **_: Any) -> dict[str, Any]:
        return {
            "id": str(self.bot_id),
            "name": "musicbot",
            "icon": None,
            "description": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": _user(OWNER_ID, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
        }

    def _get_commands(self, guild: str | None = None, **_: Any) -> list[dict[str, Any]]:
        if guild is not None:
            self._synced_at = time.monotonic()
        return [c for c in self.registered_commands.values() if c.get("guild_id") == guild]

    def _put_commands(
        self, body: list[dict[str, Any]], guild: str | None = None, **_: Any
    ) -> list[dict[str, Any]]:
        for name in [n for n, c in self.registered_commands.items() if c.get("guild_id") == guild]:
            del self.registered_commands[name]
        stored = []
        for command in body:
            full = {
                "id": _snowflake(),
                "application_id": str(self.bot_id),
                "version": _snowflake(),
                "type": command.get("type", 1),
                "name": command["name"],
                "description": command.get("description", ""),
                "options": command.get("options", []),
                "default_member_permissions": command.get("default_member_permissions"),
                "nsfw": command.get("nsfw", False),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types", [0]),
                "guild_id": guild,
            }
            self.registered_commands[command["name"]] = full
            stored.append(full)
        if guild is not None:
            self._synced_at = time.monotonic()
        return stored

    def _interaction(self, token: str) -> Interaction:
        interaction = self._interactions.get(token)
        if interaction is None:
            raise _RestError(404, 10015, "Unknown Webhook")
        return interaction

    def _callback(self, body: dict[str, Any], iid: str, token: str, **_: Any) -> dict[str, Any]:
        interaction = self._interaction(token)
        if interaction.id != iid:
            raise _RestError(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            raise _RestError(400, 40060, "Interaction has already been acknowledged.")
        interaction.acknowledged = True
        interaction.responses.append(("callback", body))
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        if body["type"] == 4:
            interaction._answer(data, bool(flags & EPHEMERAL))
        elif body["type"] == 5:
            interaction.deferred_flags = flags
        return {
            "interaction": {
                "id": interaction.id,
                "type": 2,
                "response_message_loading": body["type"] == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            }
        }

    def _followup(self, body: dict[str, Any], token: str, **_: Any) -> dict[str, Any]:
        interaction = self._interaction(token)
        if not interaction.acknowledged:
            raise _RestError(404, 10015, "Unknown Webhook")
        interaction.responses.append(("followup", body))
        flags = int(body.get("flags") or 0)
        if interaction.deferred_flags is not None and not interaction.original_deleted:
            # The first follow-up after a defer replaces the "thinking" placeholder, whose
            # visibility the defer decided.
            interaction._answer(body, bool(interaction.deferred_flags & EPHEMERAL))
        else:
            interaction._answer(body, bool(flags & EPHEMERAL))
        return self._message(str(TEXT_CHANNEL), body, webhook_id=str(self.bot_id))

    def _get_original(self, token: str, **_: Any) -> dict[str, Any]:
        interaction = self._interaction(token)
        if interaction.original_deleted or not interaction.acknowledged:
            raise _RestError(404, 10008, "Unknown Message")
        return self._message(str(TEXT_CHANNEL), {})

    def _edit(self, body: dict[str, Any], token: str, mid: str, **_: Any) -> dict[str, Any]:
        interaction = self._interaction(token)
        if mid == "@original" and (interaction.original_deleted or not interaction.acknowledged):
            raise _RestError(404, 10008, "Unknown Message")
        interaction.responses.append(("edit", body))
        if mid == "@original" and interaction.deferred_flags is not None:
            interaction._answer(body, bool(interaction.deferred_flags & EPHEMERAL))
        return self._message(str(TEXT_CHANNEL), body)

    def _delete(self, token: str, mid: str, **_: Any) -> None:
        interaction = self._interaction(token)
        if mid == "@original":
            if interaction.original_deleted or not interaction.acknowledged:
                raise _RestError(404, 10008, "Unknown Message")
            interaction.original_deleted = True
        interaction.responses.append(("delete", {"message": mid}))

    def _create_message(self, body: dict[str, Any], channel: str, **_: Any) -> dict[str, Any]:
        channel_id = int(channel)
        if not any(channel_id in g.text_channel_ids for g in self.guilds.values()):
            raise _RestError(404, 10003, "Unknown Channel")
        self.messages.append(
            SentMessage(channel_id, body.get("content") or "", list(body.get("embeds") or []))
        )
        return self._message(channel, body)

    # --- helpers ------------------------------------------------------------------------

    @staticmethod
    async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)


class _RestError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"message": message, "code": code}, status=status)


def _option(name: str, value: object) -> dict[str, Any]:
    kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else 3
    return {"name": name, "type": kind, "value": value}
