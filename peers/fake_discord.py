"""A local Discord (API v10) for tests: gateway websocket + REST, served by aiohttp on 127.0.0.1.

Why a fake: the bot must be tested with the *real* ``hikari.GatewayBot`` and lightbulb client,
including reconnects, resumes, interaction timing and voice hand-offs, which Discord will not
provoke on demand. Everything is in memory; the facts below were checked against hikari 2.6.0,
hikari-lightbulb 3.2.6 and Discord's documented behaviour, and are carried here so nothing reads
reference files at run time.

Gateway (``ws://127.0.0.1:PORT/gateway``; URL from ``GET /gateway/bot`` and READY's
``resume_gateway_url``)
    * ``?compress=zlib-stream``: one ``zlib.compressobj`` per connection, ``Z_SYNC_FLUSH`` per
      message, BINARY frames (hikari's default). Without it: TEXT frames. ``zstd-stream`` is not
      implemented: the attempt is recorded in :attr:`FakeDiscord.gateway_errors` and closed 4002.
      Client frames may be TEXT or BINARY JSON (hikari sends BINARY).
    * HELLO first; op 1 -> op 11. IDENTIFY -> new session: seq from 1, READY, one GUILD_CREATE per
      guild of its shard (listing no voice state for the bot). Bad token -> 4004,
      privileged intents not allowed -> 4014, anything but a heartbeat before IDENTIFY -> 4003,
      a second IDENTIFY -> 4005, unknown op -> 4001, bad JSON -> 4002, > 120 payloads in 60 s on
      one connection -> 4008 (hikari itself never exceeds 120).
    * Shards (:mod:`peers.gateway_shards`): IDENTIFY's ``shard`` ``[shard_id, num_shards]``
      (left out: ``[0, 1]``) makes the connection that shard's session, with its own session
      id, seq and resume URL; READY echoes ``shard`` and lists (unavailable) only the guilds
      with ``(guild_id >> 22) % num_shards == shard_id``, then GUILD_CREATEs them (a shard
      with no guild still gets READY). Every dispatch about a guild (voice states and servers,
      interactions, GUILD_CREATE/DELETE, channel, role and member events) goes to that guild's
      shard; one of no guild (a DM) to shard 0 (:meth:`FakeDiscord.dispatch` routes by
      ``guild_id``, ``id`` for GUILD_*). A malformed shard or ``shard_id >= num_shards`` ->
      4010; a session that would hold more than ``max_guilds_per_shard`` guilds (2,500, as
      Discord) -> 4011, so an unsharded bot in too many guilds is refused. With
      :attr:`FakeDiscord.identify_window` set (Discord: 5 s; 0 by default, off), a second
      IDENTIFY within it in one bucket (``shard_id % max_concurrency``) gets op 9 ``d=false``
      (recorded in ``identify_refusals``), as Discord documents. An op 4 for a guild of another
      shard is ignored (no event) and recorded in ``wrong_shard_voice_ops``, not
      ``voice_ops``. The 120-a-minute limit is per connection, so per shard. The fake holds one
      shard count at a time: an IDENTIFY with another count ends every session of the old one.
    * RESUME of a live session -> missed dispatches replayed in order, then RESUMED; an unknown
      or invalidated session -> op 9 ``d=false``.
    * The session survives (the client RESUMEs, keeping its voice channels): a close with 4000
      (:meth:`FakeDiscord.drop_gateway`) or 4002, op 7 RECONNECT
      (:meth:`FakeDiscord.request_reconnect`; hikari closes with 3000 and resumes), and a cut
      without any close frame, which the client sees as 1006 (``drop_gateway(abnormal=True)``).
      Dispatches to a disconnected but resumable session are kept for the RESUME.
    * The session ends with op 9 ``d=false`` (``drop_gateway(resumable=False)``), with an
      IDENTIFY for its shard while it is live (the new session replaces it) and with a client
      close of 1000/1001 (as Discord does: hikari closes with 3000 when it means to resume).
      Discord then ends the bot's voice connections: the fake drops the bot's voice state in
      every guild of that shard there and then, dispatches nothing (an ended session gets
      nothing; the next READY lists no voice state for the bot) and calls
      :attr:`FakeDiscord.voice_dropped_hooks` with ``(guild_id, channel_id)`` per guild, where
      a test closes the voice websocket Discord's voice servers would close (Lavalink:
      WebSocketClosedEvent 4014).
    * Intents filter: VOICE_STATE_UPDATE and GUILD_CREATE voice states need GUILD_VOICE_STATES;
      GUILD_CREATE lists the bot and users in voice (all members only with GUILD_MEMBERS).
    * Op 4 must carry all four fields Discord documents as required: ``guild_id`` (snowflake),
      ``channel_id`` (snowflake or null), ``self_mute`` and ``self_deaf`` (booleans); otherwise
      it is recorded in :attr:`FakeDiscord.gateway_errors` (``"op 4 without self_mute"``) and
      the connection closed 4002 with the reason ``"self_mute is required"`` (``"... must be a
      boolean"`` / ``"a snowflake"`` for a wrong type); the session stays resumable. hikari's
      ``update_voice_state`` leaves out ``self_mute``/``self_deaf`` unless they are given.
    * Op 4 join -> VOICE_STATE_UPDATE for the bot (fresh voice session id per join) then,
      ``voice_server_delay`` s later, VOICE_SERVER_UPDATE (endpoint ``host:port``, no scheme);
      op 4 with a null channel ->
      VOICE_STATE_UPDATE with ``channel_id: null`` (nothing if the bot was not in voice).
      Op 4 for an unknown guild or non-voice channel is recorded and ignored.
    * Guild events: :meth:`FakeDiscord.remove_bot` sends GUILD_DELETE ``{id}`` without
      ``unavailable`` (Discord's "you were removed"; ``unavailable: true`` would be an outage)
      and forgets the guild, so later READYs no longer list it; the bot leaves its voice
      channel silently (no voice state goes to a bot that is no longer a member; the
      voice-dropped hooks are called). :meth:`FakeDiscord.drop_bot_voice` (a plain method)
      drops the bot from one guild's voice with no gateway event at all (a voice server
      letting it go) and calls the hooks.
      :meth:`FakeDiscord.delete_channel` sends CHANNEL_DELETE with the full channel object,
      then ``channel_id: null`` voice states for everyone who was in it, the bot included.
      Discord documents no order between the two; the fake sends the deletion first.
    * Permissions (see :meth:`FakeDiscord.permissions`): GUILD_CREATE carries the roles
      (@everyone's id is the guild's; a bot's own role is ``managed`` with ``tags.bot_id``),
      every member's ``roles`` (voice states' members too) and each channel's
      ``permission_overwrites`` (``type`` 0 role / 1 member, ``allow``/``deny`` strings).
      :meth:`FakeDiscord.set_channel_overwrite` / :meth:`~FakeDiscord.remove_channel_overwrite`
      send CHANNEL_UPDATE with the whole channel, :meth:`~FakeDiscord.set_role_permissions`
      GUILD_ROLE_UPDATE ``{guild_id, role}`` (both need GUILDS), and
      :meth:`~FakeDiscord.set_member_roles` GUILD_MEMBER_UPDATE (needs GUILD_MEMBERS, except
      about the bot itself, which Discord tells any bot).

REST (``/api/v10``): ``Authorization: Bot <token>`` required (401 otherwise) except on the
interaction callback and webhook routes, which Discord authenticates by token (hikari sends no
header there). 2xx answers are JSON except 204. Unknown routes -> 404 and
:attr:`FakeDiscord.unhandled`. Interactions: the first callback must come within
:attr:`FakeDiscord.interaction_ack_timeout` (3 s, like Discord) else 404 10062; a second one ->
400 40060; after a defer (type 5) the first follow-up *replaces* the loading message (same id,
visibility decided by the defer), as Discord does; deleting ``@original`` first makes follow-ups
separate messages with their own flags. Unknown webhook token -> 404 10015. Embeds (interaction
answers, follow-ups, edits, channel messages) are held to Discord's limits (see
:data:`EMBED_LIMITS`; an empty field name or value, a URL that is not http(s)): otherwise 400
50035 "Invalid Form Body" with ``errors`` naming the path, as Discord answers.
INTERACTION_CREATE carries the invoking member's ``roles`` and ``permissions`` in the channel
(also as ``channel.permissions``) and the bot's as ``app_permissions``; a command registered with
``default_member_permissions`` is refused to a member lacking any of them (not an administrator
or the owner): ``invoke`` raises, as Discord neither shows nor sends it (``"0"``: administrators
only). Registered commands keep ``default_member_permissions`` as a string, as Discord answers.
A subcommand is invoked by its path (``invoke("settings dj set", ...)``): its options arrive
nested in the group and subcommand, a role or channel option as an id with the object in
``data.resolved`` (channels of the option's ``channel_types`` only); a group's
``default_member_permissions`` holds for each of its subcommands.
Posting a message needs View Channel (else 403 50001 Missing Access) and Send Messages (else 403
50013 Missing Permissions) in the channel; fetching a channel needs View Channel (403 50001).
Every message body, edit and interaction answer is held to Discord's component limits
(:mod:`peers.discord_limits`: 5 action rows of 5 buttons or one select menu, custom ids 1-100
and unique, labels 80; 25 autocomplete choices of 1-100 characters): else 400 50035 naming the
field. Stored components get numeric ``id`` s as Discord gives them. The bot's channel
messages can be edited and deleted (``channel_messages``, ``message_edits``,
``deleted_messages``); more than 5 edits of channel messages within 5 s in one channel
(``message_edit_limit``) are refused with a 429 (``retry_after`` in the body and
``Retry-After``), recorded in ``rate_limited_edits``; hikari waits ``retry_after`` and sends
the edit again.
:meth:`FakeDiscord.fail_command_sync` makes the next application-command requests (GET/PUT,
global and guild) fail with a 5xx (``{"message": "500: Internal Server Error", "code": 0}``) or
429 (``retry_after`` in the body and ``Retry-After``); any failed command request means the
commands are not synced (``wait_until_ready`` waits) until one succeeds again. hikari retries a
5xx up to 3 times (1, 2, 4 s back-offs) and a 429 after ``retry_after``, without limit.

REST ``GET /gateway/bot``: ``shards`` one per 1,000 guilds (at least 1; or
:attr:`FakeDiscord.recommended_shards`), ``session_start_limit.max_concurrency`` the
constructor's ``max_concurrency`` (1 by default; hikari starts that many shards per 5 s).

Test-control API (on :class:`FakeDiscord`): :meth:`~FakeDiscord.wait_until_ready` (every shard
of the count the bot identified with, or ``shards=[...]``),
:meth:`~FakeDiscord.invoke` -> :class:`Interaction` (:meth:`Interaction.reply` -> :class:`Reply`),
:meth:`~FakeDiscord.press` (a button or a select menu on a message the bot sent: type 3; only a
component the message shows, not disabled; answer types 4-7, 7 and a deferred 6 + edit update
that message in place), :meth:`~FakeDiscord.autocomplete` (type 4, the typed option
``focused``; answer type 8 only, :meth:`Interaction.choices`),
:meth:`~FakeDiscord.set_user_voice`, :meth:`~FakeDiscord.move_bot`,
:meth:`~FakeDiscord.kick_bot`, :meth:`~FakeDiscord.remove_bot`, :meth:`~FakeDiscord.delete_channel`,
:meth:`~FakeDiscord.drop_gateway` (``resumable``, ``abnormal``, ``shard``; default every
connected shard), :meth:`~FakeDiscord.request_reconnect` (``shard``), ``connected`` (every
shard with a session is connected), ``num_shards``, :meth:`~FakeDiscord.shard_session`,
:meth:`~FakeDiscord.drop_bot_voice`,
:meth:`~FakeDiscord.fail_command_sync`, :meth:`~FakeDiscord.dispatch`,
:meth:`~FakeDiscord.set_channel_overwrite`, :meth:`~FakeDiscord.remove_channel_overwrite`,
:meth:`~FakeDiscord.set_role_permissions`, :meth:`~FakeDiscord.set_member_roles`,
:meth:`~FakeDiscord.add_member`, :meth:`~FakeDiscord.message` (a message the bot sent, now),
:meth:`~FakeDiscord.permissions`,
:meth:`~FakeDiscord.bot_voice_channel`, :meth:`~FakeDiscord.bot_voice_session`,
:meth:`~FakeDiscord.wait_for_voice_op`,
:meth:`~FakeDiscord.wait_for_message`, :meth:`~FakeDiscord.wait_for`; hooks
``voice_dropped_hooks`` (:data:`VoiceDroppedHook`: ``(guild_id, channel_id)``, sync or async);
records ``registered_commands``, ``voice_ops`` (valid op 4s only), ``voice_credentials``
(session id, token and endpoint handed out per join), ``gateway_ops``, ``messages``,
``interactions``, ``unhandled``, ``rest_errors`` (every 4xx it answered on a known route, and
the failures :meth:`~FakeDiscord.fail_command_sync` injected), ``rest_calls``,
``gateway_errors``, ``gateway_queries``, ``identify_count``, ``resume_count``, ``rate_limited``,
``connection_ops`` (per connection) with ``connection_shards`` (the shard of each),
``wrong_shard_voice_ops``, ``identify_refusals``, and :meth:`~FakeDiscord.busiest_window`
(``shard``: that shard's connections only). :func:`sharded_guild` builds a guild on a given
shard.

Not modelled: several sessions for one shard or several shard counts at once (Discord allows
both; here an IDENTIFY replaces), the 1,000-a-day session start limit (``remaining`` is always
999), ETF encoding, zstd, presences, typing, member chunking, real voice
(UDP/DAVE; the voice-dropped hooks stand in for the voice websocket), REST rate limits other
than message edits, and the rate-limit headers (a 429 has ``retry_after`` and ``Retry-After``
only), attachments/files, modal submissions (a type 9 answer is only recorded), the 15-minute
token expiry, permission checks beyond the ones above (a voice join without Connect or
Speak, Embed Links, Use Application Commands, threads, time-outs, role hierarchy), server-side
heartbeat timeouts and the expiry of a disconnected session (it stays resumable), op 7 as the
first frame, guild outages (``unavailable``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import inspect
import json
import logging
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

from peers.discord_limits import autocomplete_problem, body_problem
from peers.discord_payloads import (
    ADMINISTRATOR,
    EVERY_PERMISSION,
    JSON,
    MEMBER_OVERWRITE,
    ROLE_OVERWRITE,
    Guild,
    Overwrite,
    Role,
    channel_payload,
    guild_create_payload,
    member_payload,
    message_payload,
    numbered_components,
    role_payload,
    user_payload,
    voice_state_payload,
)
from peers.gateway_shards import (
    MAX_GUILDS_PER_SHARD,
    Connection,
    Session,
    ShardTable,
    parse_shard,
    recommended_shards,
    shard_of,
)

__all__ = [
    "ALICE",
    "BOT_ID",
    "BOT_ROLE",
    "GUILD",
    "MANAGE_GUILD",
    "MODERATOR_ROLE",
    "OTHER_VOICE_CHANNEL",
    "TEXT_CHANNEL",
    "VOICE_CHANNEL",
    "FakeDiscord",
    "Guild",
    "Interaction",
    "Overwrite",
    "Reply",
    "Role",
    "SentMessage",
    "VoiceCredentials",
    "VoiceDroppedHook",
    "VoiceOp",
    "default_guild",
    "numbered_guild",
    "shard_of",
    "sharded_guild",
]

BOT_ID = 111111111111111111
GUILD = 333333333333333333
TEXT_CHANNEL = 444444444444444441
VOICE_CHANNEL = 444444444444444442
OTHER_VOICE_CHANNEL = 444444444444444443
ALICE = 555555555555555555
BOT_ROLE = 777777777777777771
"""The default guild's role for the bot, as Discord creates it for an invite with permissions."""
MODERATOR_ROLE = 777777777777777772
"""The default guild's role for Alice: Manage Server, so she may use /doctor."""
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_GUILD = 1 << 5
INVITE_PERMISSIONS = 3230720
"""View Channel, Send Messages, Embed Links, Read Message History, Connect, Speak."""

API = "/api/v10"
EPHEMERAL = 1 << 6
LOADING = 1 << 7
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_VOICE_STATES = 1 << 7
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content
RATE_LIMIT = (120, 60.0)  # payloads per seconds, per connection
MESSAGE_EDIT_LIMIT = (5, 5.0)  # channel-message edits per seconds, per channel
# How long wait_until_ready wants the command sync to be quiet: lightbulb sends GET then maybe
# PUT within milliseconds, and sets ``_started`` only after the last answer is processed.
SYNC_QUIET = 0.2
_KNOWN_OPS = {1, 2, 3, 4, 6, 8, 43}
_USERNAMES = {ALICE: "alice"}
# What Discord answers a failing request with; 502-504 come from its proxies, still JSON here.
_SYNC_FAILURES = {
    429: "You are being rate limited.",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}
_log = logging.getLogger(__name__)

VoiceDroppedHook = Callable[[int, int], Awaitable[None] | None]
"""Called with ``(guild_id, channel_id)`` when Discord drops the bot from voice without telling
its gateway (see :attr:`FakeDiscord.voice_dropped_hooks`)."""


def default_guild() -> Guild:
    """The e2e guild: one text channel, two voice channels, Alice sitting in VOICE_CHANNEL.

    The bot has its own role (:data:`BOT_ROLE`, what its invite link asks for), Alice is a
    moderator (:data:`MODERATOR_ROLE`: Manage Server); @everyone forbids nothing that is not
    moderation, and no channel has an overwrite.
    """
    return Guild(
        id=GUILD,
        name="Fake Guild",
        text_channel_ids=[TEXT_CHANNEL],
        voice_channel_ids=[VOICE_CHANNEL, OTHER_VOICE_CHANNEL],
        members=[ALICE],
        user_voice={ALICE: VOICE_CHANNEL},
        roles=[
            Role(BOT_ROLE, "musicbot", INVITE_PERMISSIONS, position=1, bot_id=BOT_ID),
            Role(MODERATOR_ROLE, "Moderator", MANAGE_GUILD, position=2),
        ],
        member_roles={BOT_ID: [BOT_ROLE], ALICE: [MODERATOR_ROLE]},
    )


def numbered_guild(index: int, listeners: int = 1) -> Guild:
    """Guild ``index`` (>= 1) of a many-guild test: one text channel, two voice channels.

    ``listeners`` users (>= 1) sit in the first voice channel; ``members[0]`` is the one to
    ``invoke`` commands as. Ids are distinct across indices and from :func:`default_guild`.
    """
    if index < 1 or listeners < 1:
        raise ValueError("index and listeners must be >= 1")
    base = 600_000_000_000_000_000 + index * 10_000
    users = [base + 100 + k for k in range(listeners)]
    return Guild(
        id=base,
        name=f"Guild {index}",
        text_channel_ids=[base + 1],
        voice_channel_ids=[base + 2, base + 3],
        members=users,
        user_voice=dict.fromkeys(users, base + 2),
    )


def sharded_guild(index: int, shard: int, num_shards: int, listeners: int = 1) -> Guild:
    """:func:`numbered_guild` ``index`` with its id moved onto ``shard`` of ``num_shards``
    (Discord's formula, ``(guild_id >> 22) % num_shards``); its channels and users keep
    their ids."""
    guild = numbered_guild(index, listeners)
    while shard_of(guild.id, num_shards) != shard:
        guild.id += 1 << 22
    return guild


@dataclass(frozen=True)
class VoiceOp:
    """One gateway op 4 the bot sent; ``channel_id`` None is a leave."""

    guild_id: int
    channel_id: int | None
    self_mute: bool
    self_deaf: bool
    at: float
    shard: int = 0
    """The shard whose connection carried it."""


@dataclass(frozen=True)
class VoiceCredentials:
    """What one op 4 join handed the bot: its voice session id and the voice server's token
    and endpoint (the three values, with the channel, that Lavalink needs)."""

    guild_id: int
    channel_id: int
    session_id: str
    token: str
    endpoint: str


@dataclass
class SentMessage:
    """A plain channel message (``POST /channels/{id}/messages``), e.g. a now-playing notice."""

    channel_id: int
    content: str
    embeds: list[JSON]
    id: int = 0
    components: list[JSON] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Content and embed text, as :attr:`Reply.text` has it."""
        return Reply(self.content, self.embeds, ephemeral=False).text


@dataclass(frozen=True)
class Reply:
    """What the user finally sees as the answer to a command."""

    content: str
    embeds: list[JSON]
    ephemeral: bool

    @property
    def text(self) -> str:
        """Content and every visible embed text, one per line, for ``in`` assertions."""
        parts: list[str | None] = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title"), (embed.get("author") or {}).get("name")]
            parts.append(embed.get("description"))
            for f in embed.get("fields") or []:
                parts += [f.get("name"), f.get("value")]
            parts.append((embed.get("footer") or {}).get("text"))
        return "\n".join(str(p) for p in parts if p)


@dataclass
class Interaction:
    """One INTERACTION_CREATE the fake sent, and everything the bot answered to it."""

    id: int
    token: str
    guild_id: int | None
    channel_id: int
    created_at: float
    responses: list[tuple[str, JSON]] = field(default_factory=list)
    acknowledged: bool = False
    deferred_flags: int | None = None
    original: JSON | None = None
    original_deleted: bool = False
    followups: dict[int, JSON] = field(default_factory=dict)
    kind: int = 2
    """2 a slash command, 3 a component (button, select), 4 an autocomplete request."""
    message: JSON | None = None
    """For a component: the message it sits on (edited in place by response type 7)."""
    sent_at: float | None = None
    """Loop time when the INTERACTION_CREATE was written to the bot's gateway socket."""
    callback_at: float | None = None
    """Loop time when the bot's first interaction response (the callback) arrived; with
    :attr:`sent_at`, what the bot took to answer (``bench/commands.py``)."""
    _reply: asyncio.Future[Reply] | None = None
    _choices: asyncio.Future[list[JSON]] | None = None

    def _answer(self, reply: Reply) -> None:
        assert self._reply is not None
        if not self._reply.done():
            self._reply.set_result(reply)

    async def choices(self, timeout: float = 10.0) -> list[JSON]:
        """Wait for the bot's answer to an autocomplete request (response type 8)."""
        assert self._choices is not None, "not an autocomplete interaction"
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._choices)

    async def reply(self, timeout: float = 10.0) -> Reply:
        """Wait for the answer the user sees (message, edited defer, or follow-up)."""
        assert self._reply is not None
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._reply)
        except TimeoutError:
            raise TimeoutError(
                f"no reply to interaction {self.id} within {timeout}s; responses so far: "
                f"{[kind for kind, _ in self.responses]}"
            ) from None


@dataclass
class _BotVoice:
    channel_id: int
    session_id: str
    self_mute: bool
    self_deaf: bool


class _RestError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: int = 0,
        *,
        body: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.body = body if body is not None else {"message": message, "code": code}
        self.headers = headers


_Handler = Callable[[web.Request, re.Match[str]], Awaitable[web.StreamResponse]]


class FakeDiscord:
    """The server; see the module docstring for the behaviour and the test-control API."""

    def __init__(  # noqa: PLR0915 - one attribute per recorded fact
        self,
        bot_id: int = BOT_ID,
        guilds: list[Guild] | None = None,
        heartbeat_interval_ms: int = 41250,
        *,
        max_guilds_per_shard: int = MAX_GUILDS_PER_SHARD,
        max_concurrency: int = 1,
    ) -> None:
        self.bot_id = bot_id
        self.max_guilds_per_shard = max_guilds_per_shard
        """A session that would hold more guilds is closed 4011 "Sharding required"."""
        self.max_concurrency = max_concurrency
        """GET /gateway/bot's ``session_start_limit.max_concurrency``: IDENTIFY buckets."""
        self.identify_window = 0.0
        """Seconds each IDENTIFY bucket (``shard_id % max_concurrency``) takes one IDENTIFY
        in; one more is answered with op 9. Discord's is
        :data:`peers.gateway_shards.IDENTIFY_WINDOW` (5 s); 0, the
        default, leaves it out so that tests may restart a bot at once."""
        self.recommended_shards: int | None = None
        """GET /gateway/bot's ``shards``; None: one per 1,000 guilds, as Discord answers."""
        self.guilds = {g.id: g for g in (guilds if guilds is not None else [default_guild()])}
        self.heartbeat_interval_ms = heartbeat_interval_ms
        id_part = base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
        self.token = f"{id_part}.FakeDs.{secrets.token_urlsafe(27)}"
        self.interaction_ack_timeout = 3.0
        self.voice_server_delay = 0.0
        """Seconds between a join's VOICE_STATE_UPDATE and its VOICE_SERVER_UPDATE (Discord
        sends them as two dispatches, often tens of milliseconds apart)."""
        self.allowed_privileged_intents = 0
        self.voice_dropped_hooks: list[VoiceDroppedHook] = []
        """Called (awaited if it returns an awaitable) with ``(guild_id, channel_id)`` for each
        guild the bot is dropped from voice in without a VOICE_STATE_UPDATE: its session ended
        (op 9, a replacing IDENTIFY, a 1000/1001 close), :meth:`remove_bot` or
        :meth:`drop_bot_voice`. Discord's voice servers then close the bot's voice websocket,
        which only the voice client sees (Lavalink: a WebSocketClosedEvent, code 4014); a test
        wires a hook to the fake Lavalink to play that part. A failing hook is raised to the
        test-control call that triggered it, and logged as an ERROR when the trigger was the
        bot's own gateway traffic (the gateway goes on)."""
        self.port = 0
        # Recorded for assertions.
        self.registered_commands: dict[str, JSON] = {}
        self.voice_ops: list[VoiceOp] = []
        self.wrong_shard_voice_ops: list[VoiceOp] = []
        """Valid op 4s sent on a shard the guild is not on: Discord ignores them."""
        self.identify_refusals: list[tuple[int, int]] = []
        """``(shard_id, num_shards)`` of IDENTIFYs answered op 9 (over max_concurrency)."""
        self.voice_credentials: list[VoiceCredentials] = []
        self.gateway_ops: list[tuple[float, int]] = []
        self.connection_ops: list[list[tuple[float, int]]] = []
        """``(loop time, op)`` of every client payload, one list per gateway connection."""
        self.connection_shards: list[int | None] = []
        """The shard each connection of :attr:`connection_ops` identified or resumed as
        (None: neither)."""
        self.messages: list[SentMessage] = []
        self.channel_messages: dict[int, JSON] = {}
        """Every channel message the bot posted and has not deleted, by id, as it stands."""
        self.message_edits: list[tuple[int, JSON]] = []
        """``(message id, body)`` of every edit of a message the bot sent, in order."""
        self.deleted_messages: list[int] = []
        self.message_edit_limit = MESSAGE_EDIT_LIMIT
        """``(edits, seconds)``: more channel-message edits than that in one channel within
        that window are refused with a 429, as Discord's per-channel bucket does."""
        self.rate_limited_edits: list[int] = []
        """Message ids whose edit was refused with a 429 (each refusal once)."""
        self._edit_times: dict[int, collections.deque[float]] = {}
        self.unhandled: list[str] = []
        self.rest_errors: list[str] = []
        self.gateway_errors: list[str] = []
        self.rest_calls: list[str] = []
        self.rest_connections: set[tuple[str, int]] = set()
        """The client ends (address, port) REST requests came from: one per connection."""
        self.gateway_queries: list[dict[str, str]] = []
        self.interactions: list[Interaction] = []
        self.identify_count = 0
        self.resume_count = 0
        self.rate_limited = 0
        # State.
        self._commands: dict[int | None, list[JSON]] = {}
        self._by_token: dict[str, Interaction] = {}
        self._bot_voice: dict[int, _BotVoice] = {}
        self._sessions: dict[str, Session] = {}
        self._shards = ShardTable()
        self._connections: set[Connection] = set()
        self._dispatch_lock = asyncio.Lock()
        self._next_id = 900000000000000000
        self._sync_seen = False
        self._sync_inflight = 0
        self._sync_at = 0.0
        self._keep_sync: set[int] = set()
        self._sync_error: str | None = None
        self._sync_failures = 0
        self._sync_failure_status = 500
        self._sync_retry_after = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._routes = self._route_table()

    # ------------------------------------------------------------------ lifecycle

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve."""
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        """Close every websocket (1001, as Discord does when a node goes away) and stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._tasks.clear()
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ waiting

    def _ready_problem(self, shards: list[int] | None = None) -> str | None:
        table = self._shards
        for shard in range(table.num_shards) if shards is None else shards:
            session = table.sessions.get(shard)
            conn = None if session is None else table.conn_for(session)
            name = "" if table.num_shards == 1 else f" (shard {shard} of {table.num_shards})"
            if conn is None or conn.ws.closed:
                return f"no bot is connected to the gateway{name}"
            if session is None or not session.live:
                return f"the connected bot has not identified{name}"
            if not session.guilds_sent:
                return f"READY/GUILD_CREATE not sent yet{name}"
        if not self._sync_seen and self._sync_error is not None:
            return f"the bot has not synced its commands (last attempt failed: {self._sync_error})"
        if not self._sync_seen:
            return "the bot has not synced its commands (no GET/PUT of commands)"
        loop_time = asyncio.get_running_loop().time()
        if self._sync_inflight or loop_time - self._sync_at < SYNC_QUIET:
            return "the command sync is still running"
        return None

    async def wait_until_ready(
        self, timeout: float = 10.0, *, shards: list[int] | None = None
    ) -> None:
        """Until a bot identified, got READY + GUILD_CREATEs and synced its commands.

        Sharded, on every shard of the count the bot identified with, or on ``shards`` only
        (a process that runs some of them).
        """
        await self._wait(
            lambda: self._ready_problem(shards) is None,
            timeout,
            lambda: self._ready_problem(shards),
        )

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition"
    ) -> None:
        """Poll ``predicate`` every 10 ms (same shape as ``FakeLavalink.wait_for``)."""
        await self._wait(predicate, timeout, lambda: f"{what} did not happen")

    async def _wait(
        self, ok: Callable[[], bool], timeout: float, why: Callable[[], str | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ok():
            if loop.time() > deadline:
                raise TimeoutError(f"fake Discord: gave up after {timeout}s: {why()}")
            await asyncio.sleep(0.01)

    async def wait_for_voice_op(
        self, guild_id: int, channel_id: int | None, *, after: int = 0, timeout: float = 10.0
    ) -> VoiceOp:
        """The first op 4 in ``voice_ops[after:]`` for that guild and channel (None: a leave)."""

        def find() -> VoiceOp | None:
            for op in self.voice_ops[after:]:
                if op.guild_id == guild_id and op.channel_id == channel_id:
                    return op
            return None

        await self._wait(
            lambda: find() is not None,
            timeout,
            lambda: f"no op 4 for guild {guild_id} channel {channel_id}; got {self.voice_ops}",
        )
        found = find()
        assert found is not None
        return found

    async def wait_for_message(self, fragment: str, timeout: float = 10.0) -> SentMessage:
        """The first channel message the bot posted whose text contains ``fragment``."""

        def find() -> SentMessage | None:
            return next((m for m in self.messages if fragment in m.text), None)

        await self._wait(
            lambda: find() is not None,
            timeout,
            lambda: f"no message containing {fragment!r}; got {[m.text for m in self.messages]}",
        )
        found = find()
        assert found is not None
        return found

    # ------------------------------------------------------------------ test controls

    @property
    def connected(self) -> bool:
        """A bot holds identified (or resumed) gateway connections right now, one on each
        shard it has a session on."""
        table = self._shards
        return bool(table.sessions) and table.connected_shards() == sorted(table.sessions)

    @property
    def num_shards(self) -> int:
        """The shard count of the bot's latest IDENTIFY (1 before any, or unsharded)."""
        return self._shards.num_shards

    def shard_session(self, shard_id: int = 0) -> Session | None:
        """The current session of a shard (its ``sent`` dispatches, ``live``), if any."""
        return self._shards.sessions.get(shard_id)

    @property
    def _session(self) -> Session | None:
        """Shard 0's session: the one session of an unsharded bot (kept for old tests)."""
        return self._shards.sessions.get(0)

    def bot_voice_channel(self, guild_id: int) -> int | None:
        state = self._bot_voice.get(guild_id)
        return None if state is None else state.channel_id

    def bot_voice_session(self, guild_id: int) -> str | None:
        """The bot's current voice session id in the guild (new with every join)."""
        state = self._bot_voice.get(guild_id)
        return None if state is None else state.session_id

    async def set_user_voice(self, guild_id: int, user_id: int, channel_id: int | None) -> None:
        """A user joins, moves or leaves voice; the bot gets VOICE_STATE_UPDATE."""
        guild = self._guild(guild_id)
        if user_id not in guild.members:
            raise ValueError(f"user {user_id} is not a member of guild {guild_id}")
        if channel_id is not None and channel_id not in guild.voice_channel_ids:
            raise ValueError(f"{channel_id} is not a voice channel of guild {guild_id}")
        if channel_id is None:
            guild.user_voice.pop(user_id, None)
        else:
            guild.user_voice[user_id] = channel_id
        await self._dispatch_voice_state(
            guild_id,
            user_id,
            channel_id,
            f"{user_id}-voice-session",
            self_mute=False,
            self_deaf=False,
        )

    async def move_bot(self, guild_id: int, channel_id: int) -> None:
        """A moderator drags the bot: state update only, same voice session, no server update."""
        state = self._bot_voice.get(guild_id)
        if state is None:
            raise ValueError(f"the bot is not in voice in guild {guild_id}")
        if channel_id not in self._guild(guild_id).voice_channel_ids:
            raise ValueError(f"{channel_id} is not a voice channel of guild {guild_id}")
        state.channel_id = channel_id
        await self._dispatch_voice_state(
            guild_id,
            self.bot_id,
            channel_id,
            state.session_id,
            self_mute=state.self_mute,
            self_deaf=state.self_deaf,
        )

    async def kick_bot(self, guild_id: int) -> None:
        """A moderator disconnects the bot from voice."""
        state = self._bot_voice.pop(guild_id, None)
        if state is None:
            raise ValueError(f"the bot is not in voice in guild {guild_id}")
        await self._dispatch_voice_state(
            guild_id,
            self.bot_id,
            None,
            state.session_id,
            self_mute=state.self_mute,
            self_deaf=state.self_deaf,
        )

    async def remove_bot(self, guild_id: int) -> None:
        """The bot is kicked from the guild (or leaves it): GUILD_DELETE without ``unavailable``."""
        self._guild(guild_id)
        async with self._dispatch_lock:
            del self.guilds[guild_id]
            state = self._bot_voice.pop(guild_id, None)
            await self._dispatch_locked("GUILD_DELETE", {"id": str(guild_id)})
        if state is not None:  # out of voice too, and no voice state says so
            await self._voice_dropped([(guild_id, state.channel_id)])

    async def delete_channel(self, guild_id: int, channel_id: int) -> None:
        """A moderator deletes a channel; everyone in it (the bot too) is dropped from voice."""
        guild = self._guild(guild_id)
        if channel_id not in guild.text_channel_ids + guild.voice_channel_ids:
            raise ValueError(f"{channel_id} is not a channel of guild {guild_id}")
        payload = channel_payload(guild, channel_id)
        for ids in (guild.text_channel_ids, guild.voice_channel_ids):
            if channel_id in ids:
                ids.remove(channel_id)
        await self.dispatch("CHANNEL_DELETE", payload)
        for user_id in [u for u, c in guild.user_voice.items() if c == channel_id]:
            del guild.user_voice[user_id]
            await self._dispatch_voice_state(
                guild_id,
                user_id,
                None,
                f"{user_id}-voice-session",
                self_mute=False,
                self_deaf=False,
            )
        state = self._bot_voice.get(guild_id)
        if state is not None and state.channel_id == channel_id:
            await self.kick_bot(guild_id)

    async def set_channel_overwrite(
        self,
        guild_id: int,
        channel_id: int,
        target_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
    ) -> None:
        """A moderator sets a channel's permission overwrite for a role (@everyone: the guild's
        id) or a member (the bot too); CHANNEL_UPDATE carries the whole channel."""
        guild = self._guild(guild_id)
        self._check_channel(guild, channel_id)
        if target_id == guild.id or guild.role(target_id) is not None:
            kind = ROLE_OVERWRITE
        elif target_id in (self.bot_id, *guild.members):
            kind = MEMBER_OVERWRITE
        else:
            raise ValueError(f"{target_id} is neither a role nor a member of guild {guild_id}")
        overwrites = [o for o in guild.overwrites.get(channel_id, []) if o.id != target_id]
        overwrites.append(Overwrite(target_id, kind, allow=allow, deny=deny))
        guild.overwrites[channel_id] = overwrites
        await self._dispatch_guild_event("CHANNEL_UPDATE", channel_payload(guild, channel_id))

    async def remove_channel_overwrite(
        self, guild_id: int, channel_id: int, target_id: int
    ) -> None:
        """A moderator removes an overwrite (nothing to remove is a ValueError)."""
        guild = self._guild(guild_id)
        self._check_channel(guild, channel_id)
        overwrites = guild.overwrites.get(channel_id, [])
        if not any(o.id == target_id for o in overwrites):
            raise ValueError(f"channel {channel_id} has no overwrite for {target_id}")
        guild.overwrites[channel_id] = [o for o in overwrites if o.id != target_id]
        await self._dispatch_guild_event("CHANNEL_UPDATE", channel_payload(guild, channel_id))

    async def set_role_permissions(self, guild_id: int, role_id: int, permissions: int) -> None:
        """A moderator changes a role's permissions (@everyone: the guild's id);
        GUILD_ROLE_UPDATE carries the whole role."""
        guild = self._guild(guild_id)
        if role_id == guild.id:
            guild.everyone_permissions = permissions
            role = role_payload(guild.id, "@everyone", permissions)
        elif (found := guild.role(role_id)) is not None:
            found.permissions = permissions
            role = role_payload(
                found.id, found.name, permissions, position=found.position, bot_id=found.bot_id
            )
        else:
            raise ValueError(f"{role_id} is not a role of guild {guild_id}")
        await self._dispatch_guild_event(
            "GUILD_ROLE_UPDATE", {"guild_id": str(guild_id), "role": role}
        )

    async def add_member(self, guild_id: int, user_id: int, name: str | None = None) -> None:
        """A user joins the guild (with no role but @everyone). GUILD_MEMBER_ADD goes to a bot
        with the GUILD_MEMBERS intent only, as Discord sends it."""
        guild = self._guild(guild_id)
        if user_id in guild.members or user_id == self.bot_id:
            raise ValueError(f"user {user_id} is already a member of guild {guild_id}")
        if name is not None:
            _USERNAMES[user_id] = name
        guild.members.append(user_id)
        guild.member_roles.setdefault(user_id, [])
        session = self._shards.session_for(guild_id)
        if session is not None and session.intents & INTENT_GUILD_MEMBERS:
            await self.dispatch("GUILD_MEMBER_ADD", self._member(guild_id, user_id))

    async def set_member_roles(self, guild_id: int, user_id: int, role_ids: list[int]) -> None:
        """A moderator gives a member (the bot too) exactly these roles. GUILD_MEMBER_UPDATE
        goes to a bot with the GUILD_MEMBERS intent, and about the bot itself to any bot."""
        guild = self._guild(guild_id)
        if user_id not in (self.bot_id, *guild.members):
            raise ValueError(f"user {user_id} is not a member of guild {guild_id}")
        for role_id in role_ids:
            role = guild.role(role_id)
            if role is None:
                raise ValueError(f"{role_id} is not a role of guild {guild_id}")
            if role.bot_id is not None and role.bot_id != user_id:
                raise ValueError(f"role {role_id} is the managed role of bot {role.bot_id}")
        guild.member_roles[user_id] = list(role_ids)
        session = self._shards.session_for(guild_id)
        if session is None or not (
            user_id == self.bot_id or session.intents & INTENT_GUILD_MEMBERS
        ):
            return
        await self.dispatch("GUILD_MEMBER_UPDATE", self._member(guild_id, user_id))

    def _check_channel(self, guild: Guild, channel_id: int) -> None:
        if channel_id not in guild.text_channel_ids + guild.voice_channel_ids:
            raise ValueError(f"{channel_id} is not a channel of guild {guild.id}")

    async def _dispatch_guild_event(self, event_name: str, data: JSON) -> None:
        """Channel and role events need the GUILDS intent."""
        session = self._shards.session_for(int(data["guild_id"]))
        if session is not None and session.intents & INTENT_GUILDS:
            await self.dispatch(event_name, data)

    def busiest_window(
        self,
        window: float = RATE_LIMIT[1],
        connection: int | None = None,
        *,
        shard: int | None = None,
    ) -> int:
        """Most payloads the bot sent on one connection within any ``window`` seconds.

        ``connection`` is an index into :attr:`connection_ops` (negative counts from the
        end); None means the busiest of all connections (of shard ``shard`` only, if given).
        """
        logs = self.connection_ops if connection is None else [self.connection_ops[connection]]
        if shard is not None and connection is None:
            logs = [ops for ops, s in zip(logs, self.connection_shards, strict=True) if s == shard]
        best = 0
        for ops in logs:
            times = [t for t, _ in ops]
            first = 0
            for last, t in enumerate(times):
                while first <= last and times[first] <= t - window:
                    first += 1
                best = max(best, last - first + 1)
        return best

    def drop_bot_voice(self, guild_id: int) -> asyncio.Task[None]:
        """Discord's voice server drops the bot in one guild: no gateway event says so.

        The fake forgets the bot's voice state there (the bot's cache still has it) and calls
        :attr:`voice_dropped_hooks`, as when the bot's session ends, but for this guild alone.
        A plain method, so it can be called from anywhere: the state is gone and every hook has
        been called when it returns; the returned task (await it or not) ends once the hooks'
        awaitables have.
        """
        state = self._bot_voice.pop(guild_id, None)
        if state is None:
            raise ValueError(f"the bot is not in voice in guild {guild_id}")
        return self._voice_dropped([(guild_id, state.channel_id)])

    async def drop_gateway(
        self, resumable: bool = True, *, abnormal: bool = False, shard: int | None = None
    ) -> None:
        """Cut the bot off: 4000 (it RESUMEs), or op 9 ``d=false`` (it must IDENTIFY anew).

        ``abnormal``: no close frame at all, the TCP connection is aborted (the client sees
        1006, as on a network failure or a crashed gateway node); the session stays resumable.
        Op 9 ends the session there and then: the bot is dropped from every voice channel of
        the shard, silently (the next READY lists no voice state for it), and
        :attr:`voice_dropped_hooks` are called before this returns. ``shard``: that shard's
        connection only; None: every connected shard's (an unsharded bot's one).
        """
        if abnormal and not resumable:
            raise ValueError("op 9 is a frame; an abnormal cut (1006) leaves the session resumable")
        table = self._shards
        shards = table.connected_shards() if shard is None else [shard]
        conns = [table.conns.get(s) for s in shards]
        if not conns or None in conns:
            raise RuntimeError(f"no bot is connected (shard {shard})")
        dropped: list[tuple[int, int]] = []
        async with self._dispatch_lock:
            for conn in conns:
                assert conn is not None
                assert conn.session is not None
                table.detach(conn)
                if abnormal:
                    if conn.transport is None:
                        raise RuntimeError("the connection has no transport to abort")
                    conn.transport.abort()
                elif resumable:
                    await conn.ws.close(code=4000, message=b"fake discord: unknown error")
                else:
                    dropped += self._end_session(conn.session)
                    # The same process identifies again and does not sync its commands anew.
                    self._keep_sync.add(conn.session.shard_id)
                    await conn.send({"op": 9, "d": False, "s": None, "t": None})
                    # hikari closes by itself on op 9; Discord closes the socket if not.
                    self._spawn(self._close_later(conn))
        if not resumable:
            await self._voice_dropped(dropped)

    async def request_reconnect(self, shard: int | None = None) -> None:
        """Discord asks the bot to reconnect (op 7, e.g. before a gateway node restarts).

        The session stays live: the client closes (hikari: 3000) and RESUMEs; dispatches sent
        meanwhile are replayed and the bot keeps its voice channels. ``shard``: that shard
        only; None: every connected shard.
        """
        table = self._shards
        shards = table.connected_shards() if shard is None else [shard]
        conns = [table.conns.get(s) for s in shards]
        if not conns or None in conns:
            raise RuntimeError(f"no identified bot is connected (shard {shard})")
        for conn in conns:
            assert conn is not None
            await conn.send({"op": 7, "d": None, "s": None, "t": None})

    def fail_command_sync(
        self, count: int, status: int = 500, *, retry_after: float = 0.05
    ) -> None:
        """Answer the next ``count`` application-command requests (GET and PUT, global and
        guild) with ``status`` and Discord's error body, recording each in :attr:`rest_errors`.

        ``status`` is 500, 502, 503, 504 (``{"message": "500: Internal Server Error", "code":
        0}``) or 429 (``{"message": "You are being rate limited.", "retry_after": ..., "global":
        false}`` and a ``Retry-After`` header; no bucket headers). Until a request succeeds
        again the commands do not count as synced. hikari retries each 5xx up to
        ``max_retries`` (3) times with 1, 2, 4 s back-offs and every 429 after ``retry_after``,
        so a failure reaches the caller only once its retries are used up.
        """
        if count < 0:
            raise ValueError("count must be >= 0")  # 0 cancels what is left of an earlier call
        if status not in _SYNC_FAILURES:
            raise ValueError(f"status must be one of {sorted(_SYNC_FAILURES)}")
        self._sync_failures = count
        self._sync_failure_status = status
        self._sync_retry_after = retry_after

    def _end_session(self, session: Session | None) -> list[tuple[int, int]]:
        """Mark ``session`` over; if it was live and current, the bot leaves voice in every
        guild of its shard.

        Returns ``(guild_id, channel_id)`` per dropped voice state, for the hooks. Nothing is
        dispatched: Discord sends no VOICE_STATE_UPDATE to a session it ended.
        """
        if session is None or not session.live:
            return []
        session.live = False
        if not self._shards.is_current(session):
            return []
        dropped = [
            (guild_id, state.channel_id)
            for guild_id, state in self._bot_voice.items()
            if session.owns(guild_id)
        ]
        for guild_id, _ in dropped:
            del self._bot_voice[guild_id]
        return dropped

    def _voice_dropped(self, dropped: list[tuple[int, int]]) -> asyncio.Task[None]:
        """Call every hook for every ``(guild_id, channel_id)`` now, in order; the task ends when
        the awaitables they returned have. A failure is raised to whoever awaits the task and
        logged as an ERROR (which the test suites fail on) for callers that do not."""
        pending: list[Awaitable[None]] = []
        for guild_id, channel_id in dropped:
            for hook in list(self.voice_dropped_hooks):
                result = hook(guild_id, channel_id)
                if inspect.isawaitable(result):
                    pending.append(result)
        task = self._spawn(_await_in_order(pending))
        task.add_done_callback(_log_hook_failure)
        return task

    async def _voice_dropped_from_server(self, dropped: list[tuple[int, int]]) -> None:
        """The hooks, called while serving a client: a failing hook must not kill the gateway,
        so its failure is logged as an ERROR instead."""
        try:
            task = self._voice_dropped(dropped)
        except Exception:
            _log.exception("fake Discord: a voice_dropped hook failed")
            return
        with contextlib.suppress(Exception):
            await task  # a failure here is logged by _log_hook_failure

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _close_later(self, conn: Connection) -> None:
        await asyncio.sleep(5.0)
        if not conn.ws.closed:
            await conn.ws.close(code=4009, message=b"Session timed out.")

    async def dispatch(self, event_name: str, data: JSON, *, shard: int | None = None) -> None:
        """Send a dispatch to the current session of the shard its guild is on (``data``'s
        ``guild_id``, or ``id`` for GUILD_CREATE/UPDATE/DELETE; none: shard 0, as Discord
        sends DMs), or keep it for a RESUME if that shard is disconnected. ``shard`` overrides
        the routing."""
        async with self._dispatch_lock:
            await self._dispatch_locked(event_name, data, shard=shard)

    async def _dispatch_locked(
        self, event_name: str, data: JSON, *, shard: int | None = None
    ) -> None:
        if shard is not None:
            session = self._shards.sessions.get(shard)
        else:
            session = self._shards.session_for(_event_guild(event_name, data))
        await self._send_to(session, event_name, data)

    async def _send_to(self, session: Session | None, event_name: str, data: JSON) -> None:
        if session is None or not session.live:
            return  # nobody to deliver to, as on Discord
        session.seq += 1
        payload = {"op": 0, "s": session.seq, "t": event_name, "d": data}
        session.sent.append(payload)
        conn = self._shards.conn_for(session)
        if conn is not None:
            await conn.send(payload)

    # ------------------------------------------------------------------ interactions

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _find_command(self, name: str, guild_id: int | None) -> tuple[JSON, bool]:
        for cmd in self._commands.get(guild_id, []) if guild_id is not None else []:
            if cmd["name"] == name:
                return cmd, True
        for cmd in self._commands.get(None, []):
            if cmd["name"] == name:
                return cmd, False
        raise AssertionError(
            f"/{name} is not registered (registered: {sorted(self.registered_commands)})"
        )

    def _resolved(self, values: list[JSON], specs: JSON, guild_id: int, user_id: int) -> JSON:
        """``data.resolved`` for the role and channel options among ``values``."""
        guild = self._guild(guild_id)
        resolved: JSON = {}
        for option in values:
            picked = int(option["value"]) if option["type"] in (7, 8) else None
            if picked is None:
                continue
            if option["type"] == 8:
                role = guild.role(picked)
                if picked != guild.id and role is None:
                    raise AssertionError(f"guild {guild_id} has no role {picked}")
                payload = (
                    role_payload(guild.id, "@everyone", guild.everyone_permissions)
                    if role is None
                    else role_payload(role.id, role.name, role.permissions, position=role.position)
                )
                resolved.setdefault("roles", {})[str(picked)] = payload
                continue
            if picked not in guild.text_channel_ids + guild.voice_channel_ids:
                raise AssertionError(f"guild {guild_id} has no channel {picked}")
            channel = channel_payload(guild, picked)
            allowed = specs[option["name"]].get("channel_types")
            if allowed and channel["type"] not in allowed:
                raise AssertionError(f"option {option['name']} takes no channel of that type")
            resolved.setdefault("channels", {})[str(picked)] = {
                "id": channel["id"],
                "name": channel["name"],
                "type": channel["type"],
                "parent_id": None,
                "permissions": str(self.permissions(guild_id, user_id, picked)),
            }
        return resolved

    @staticmethod
    def _option(name: str, value: object, spec: JSON | None) -> JSON:
        if spec is not None:
            kind = int(spec["type"])
        elif isinstance(value, bool):
            kind = 5
        elif isinstance(value, int):
            kind = 4
        elif isinstance(value, float):
            kind = 10
        elif isinstance(value, str):
            kind = 3
        else:
            raise TypeError(f"option {name}: cannot send a {type(value).__name__}")
        if kind in (7, 8):  # a channel or a role: its id, as a string
            return {"name": name, "type": kind, "value": str(value)}
        return {"name": name, "type": kind, "value": value}

    async def invoke(
        self,
        name: str,
        options: dict[str, object] | None = None,
        *,
        guild_id: int = GUILD,
        user_id: int = ALICE,
        channel_id: int = TEXT_CHANNEL,
    ) -> Interaction:
        """A user runs ``/name``: INTERACTION_CREATE goes to the bot; answers are recorded.

        ``name`` may name a subcommand as Discord's client shows it (``"settings volume"``,
        ``"settings dj set"``): the options then arrive nested in the subcommand group and the
        subcommand (types 2 and 1), as Discord sends them; a command with subcommands cannot
        be run without one. A role or channel option takes the id: the value goes as a string
        and the role or channel in ``data.resolved`` (a channel as Discord's partial one, with
        the member's permissions in it); a role or channel the guild lacks, or a channel of a
        type the option does not accept, cannot be picked (this raises)."""
        top, *path = name.split()
        command, in_guild = self._find_command(top, guild_id)
        leaf, chain = command, []
        for part in path:
            leaf = next(
                (o for o in leaf.get("options") or [] if o["name"] == part and o["type"] in (1, 2)),
                {},
            )
            if not leaf:
                raise AssertionError(f"/{name}: /{top} has no subcommand {part!r} there")
            chain.append(leaf)
        if any(o["type"] in (1, 2) for o in leaf.get("options") or []):
            raise AssertionError(f"/{name} needs a subcommand")
        specs = {o["name"]: o for o in leaf.get("options") or []}
        options = options or {}
        unknown = set(options) - set(specs)
        if specs and unknown:
            raise AssertionError(f"/{name} has no option(s) {sorted(unknown)}")
        missing = [o for o, s in specs.items() if s.get("required") and o not in options]
        if missing:
            raise AssertionError(f"/{name} needs option(s) {missing}")
        data = self._command_data(command, in_guild, guild_id)
        values = [self._option(k, v, specs.get(k)) for k, v in options.items()]
        resolved = self._resolved(values, specs, guild_id, user_id)
        if resolved:
            data["resolved"] = resolved
        for sub in reversed(chain):
            values = [{"name": sub["name"], "type": sub["type"], "options": values}]
        data["options"] = values
        return await self._interact(
            2, data, command=command, guild_id=guild_id, user_id=user_id, channel_id=channel_id
        )

    async def autocomplete(
        self,
        name: str,
        focused: str,
        typed: str,
        options: dict[str, object] | None = None,
        *,
        guild_id: int = GUILD,
        user_id: int = ALICE,
        channel_id: int = TEXT_CHANNEL,
    ) -> Interaction:
        """A user types ``typed`` into ``/name``'s option ``focused`` (an option registered
        with ``autocomplete``): an APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4) goes
        to the bot, with the other options filled so far. Await :meth:`Interaction.choices`."""
        command, in_guild = self._find_command(name, guild_id)
        specs = {o["name"]: o for o in command.get("options") or []}
        spec = specs.get(focused)
        if spec is None or not spec.get("autocomplete"):
            raise AssertionError(f"/{name} has no autocomplete option {focused!r}")
        data = self._command_data(command, in_guild, guild_id)
        data["options"] = [
            self._option(k, v, specs.get(k)) for k, v in (options or {}).items() if k != focused
        ] + [{"name": focused, "type": int(spec["type"]), "value": typed, "focused": True}]
        return await self._interact(
            4, data, command=command, guild_id=guild_id, user_id=user_id, channel_id=channel_id
        )

    async def press(
        self,
        message_id: int,
        custom_id: str,
        *,
        values: list[str] | None = None,
        guild_id: int = GUILD,
        user_id: int = ALICE,
    ) -> Interaction:
        """A user clicks a button, or picks ``values`` in a select menu, on a message the bot
        sent: a MESSAGE_COMPONENT interaction (type 3). Discord offers only what the message
        shows: a missing or disabled component cannot be clicked (this raises)."""
        message = self.message(message_id)
        component = next(
            (
                c
                for row in message.get("components") or []
                for c in row.get("components") or []
                if c.get("custom_id") == custom_id
            ),
            None,
        )
        if component is None or component.get("disabled"):
            raise AssertionError(f"message {message_id} shows no usable component {custom_id!r}")
        data: JSON = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            offered = {o["value"] for o in component.get("options") or []}
            low, high = component.get("min_values", 1), component.get("max_values", 1)
            if not set(values) <= offered or not low <= len(values) <= high:
                raise AssertionError(f"{values} cannot be picked in {custom_id!r}")
            data["values"] = values
        return await self._interact(
            3,
            data,
            command=None,
            guild_id=guild_id,
            user_id=user_id,
            channel_id=int(message["channel_id"]),
            message=message,
        )

    def _command_data(self, command: JSON, in_guild: bool, guild_id: int) -> JSON:
        data: JSON = {"id": command["id"], "name": command["name"], "type": 1}
        if in_guild:
            data["guild_id"] = str(guild_id)
        return data

    async def _interact(
        self,
        kind: int,
        data: JSON,
        *,
        command: JSON | None,
        guild_id: int,
        user_id: int,
        channel_id: int,
        message: JSON | None = None,
    ) -> Interaction:
        guild = self._guild(guild_id)
        if user_id not in guild.members:
            raise AssertionError(f"user {user_id} is not a member of guild {guild_id}")
        channel = channel_payload(guild, channel_id)
        permissions = self.permissions(guild_id, user_id, channel_id)
        required = command.get("default_member_permissions") if command is not None else None
        if required is not None and not (
            permissions & ADMINISTRATOR
            or (int(required) and permissions & int(required) == int(required))
        ):
            # Discord neither shows the command to such a member nor takes it from them.
            raise AssertionError(
                f"user {user_id} may not use /{data['name']}: it needs permissions {required} "
                f"(the user has {permissions} in channel {channel_id})"
            )
        loop = asyncio.get_running_loop()
        interaction = Interaction(
            id=self._new_id(),
            token=f"aW50ZXJhY3Rpb246{secrets.token_urlsafe(48)}",
            guild_id=guild_id,
            channel_id=channel_id,
            created_at=loop.time(),
            kind=kind,
            message=message,
            _reply=loop.create_future(),
            _choices=loop.create_future() if kind == 4 else None,
        )
        self.interactions.append(interaction)
        self._by_token[interaction.token] = interaction
        member = member_payload(self._user(user_id), roles=guild.member_roles.get(user_id, []))
        member["permissions"] = str(permissions)
        payload: JSON = {
            "id": str(interaction.id),
            "application_id": str(self.bot_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild_id),
            "channel_id": str(channel_id),
            "channel": {**channel, "permissions": str(permissions)},
            "member": member,
            "token": interaction.token,
            "version": 1,
            "app_permissions": str(self.permissions(guild_id, self.bot_id, channel_id)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": 10485760,
        }
        if message is not None:
            payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        interaction.sent_at = loop.time()
        return interaction

    def message(self, message_id: int) -> JSON:
        """A message the bot sent, in a channel or as an interaction answer."""
        found = self.channel_messages.get(message_id)
        if found is not None:
            return found
        for interaction in self.interactions:
            original = interaction.original
            if original is not None and int(original["id"]) == message_id:
                if interaction.original_deleted:
                    break
                return original
            if message_id in interaction.followups:
                return interaction.followups[message_id]
        raise AssertionError(f"the bot sent no message {message_id} (or it is deleted)")

    # ------------------------------------------------------------------ entities

    def _guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise ValueError(f"unknown guild {guild_id}") from None

    def _user(self, user_id: int) -> JSON:
        if user_id == self.bot_id:
            return user_payload(user_id, "musicbot", bot=True)
        return user_payload(user_id, _USERNAMES.get(user_id, f"user{user_id}"))

    def _own_user(self) -> JSON:
        return {**self._user(self.bot_id), "mfa_enabled": False, "flags": 0, "verified": True}

    def _member(self, guild_id: int, user_id: int) -> JSON:
        guild = self.guilds.get(guild_id)
        roles = guild.member_roles.get(user_id, []) if guild is not None else []
        return member_payload(self._user(user_id), guild_id=guild_id, roles=roles)

    def permissions(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        """What ``user_id`` may do in the guild (``channel_id`` None) or in one channel, as
        Discord computes it: the owner and ADMINISTRATOR hold everything; else @everyone's
        and the member's roles' permissions, then the channel's @everyone overwrite, the
        member's roles' overwrites (denies, then allows) and the member's own overwrite."""
        guild = self._guild(guild_id)
        if user_id == guild.owner_id:
            return EVERY_PERMISSION
        roles = [r for r in guild.member_roles.get(user_id, []) if r != guild.id]
        permissions = guild.everyone_permissions
        for role in guild.roles:
            if role.id in roles:
                permissions |= role.permissions
        if permissions & ADMINISTRATOR:
            return EVERY_PERMISSION
        if channel_id is None:
            return permissions
        overwrites = {o.id: o for o in guild.overwrites.get(channel_id, [])}
        everyone = overwrites.get(guild.id)
        if everyone is not None:
            permissions = permissions & ~everyone.deny | everyone.allow
        allow = deny = 0
        for role_id in roles:
            overwrite = overwrites.get(role_id)
            if overwrite is not None and overwrite.type == ROLE_OVERWRITE:
                allow, deny = allow | overwrite.allow, deny | overwrite.deny
        permissions = permissions & ~deny | allow
        own = overwrites.get(user_id)
        if own is not None and own.type == MEMBER_OVERWRITE:
            permissions = permissions & ~own.deny | own.allow
        return permissions

    async def _dispatch_voice_state(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int | None,
        session_id: str,
        *,
        self_mute: bool,
        self_deaf: bool,
    ) -> None:
        session = self._shards.session_for(guild_id)
        if session is None or not session.intents & INTENT_GUILD_VOICE_STATES:
            return
        await self.dispatch(
            "VOICE_STATE_UPDATE",
            voice_state_payload(
                guild_id,
                user_id,
                channel_id,
                session_id,
                self_mute=self_mute,
                self_deaf=self_deaf,
                member=self._member(guild_id, user_id),
            ),
        )

    def _guild_create(self, guild: Guild, intents: int) -> JSON:
        in_voice = dict(guild.user_voice)
        voice_states = []
        if intents & INTENT_GUILD_VOICE_STATES:
            voice_states = [
                voice_state_payload(guild.id, uid, cid, f"{uid}-voice-session")
                for uid, cid in in_voice.items()
            ]
            for state in voice_states:
                del state["guild_id"]  # implied by the guild, as Discord sends it
        listed = guild.members if intents & INTENT_GUILD_MEMBERS else list(in_voice)
        members = [
            member_payload(self._user(uid), roles=guild.member_roles.get(uid, []))
            for uid in [self.bot_id, *listed]
        ]
        return guild_create_payload(guild, members=members, voice_states=voice_states)

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress")
        self.gateway_queries.append(dict(request.query))
        index = len(self.connection_ops)
        conn = Connection(ws, compress == "zlib-stream", request.transport, index)
        self.connection_ops.append(conn.ops)
        self.connection_shards.append(None)
        self._connections.add(conn)
        try:
            if compress not in (None, "zlib-stream"):
                self.gateway_errors.append(f"compress={compress} is not implemented by the fake")
                await ws.close(code=4002, message=b"fake discord: only zlib-stream")
                return ws
            if request.query.get("encoding", "json") != "json":
                self.gateway_errors.append(f"encoding={request.query['encoding']} unsupported")
                await ws.close(code=4002, message=b"fake discord: json only")
                return ws
            if request.query.get("v") not in (None, "10"):
                self.gateway_errors.append(f"gateway version {request.query['v']} unsupported")
                await ws.close(code=4012, message=b"Invalid API version")
                return ws
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake"]}
            await conn.send({"op": 10, "d": hello, "s": None, "t": None})
            await self._serve(conn)
        finally:
            self._connections.discard(conn)
            self._shards.detach(conn)
        return ws

    async def _serve(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            msg = await conn.ws.receive()
            if msg.type == WSMsgType.CLOSE:
                # Only a close frame *from the client* counts (aiohttp reports our own closes
                # as CLOSING with 1000): 1000/1001 end the session, as on Discord.
                if msg.data in (1000, 1001) and conn.session is not None:
                    if self._shards.is_current(conn.session):
                        # That bot is gone; the next one syncs anew.
                        self._keep_sync.discard(conn.session.shard_id)
                    await self._voice_dropped_from_server(self._end_session(conn.session))
                return
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                return
            try:
                payload = json.loads(msg.data)
                op = int(payload["op"])
            except (ValueError, KeyError, TypeError):
                await conn.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            now = loop.time()
            self.gateway_ops.append((now, op))
            conn.ops.append((now, op))
            conn.received.append(now)
            while conn.received and conn.received[0] <= now - RATE_LIMIT[1]:
                conn.received.popleft()
            if len(conn.received) > RATE_LIMIT[0]:
                self.rate_limited += 1
                await conn.ws.close(code=4008, message=b"You are being rate limited.")
                return
            if not await self._handle_op(conn, op, payload.get("d")):
                return

    async def _handle_op(self, conn: Connection, op: int, d: Any) -> bool:
        """Answer one client payload; False once the connection is closed."""
        if op not in _KNOWN_OPS:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")
            return False
        if op == 1:
            await conn.send({"op": 11, "d": None, "s": None, "t": None})
            return True
        if op in (2, 6) and conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return False
        if op in (2, 6) and (not isinstance(d, dict) or d.get("token") != self.token):
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return False
        if op == 2:
            return await self._identify(conn, d)
        if op == 6:
            return await self._resume(conn, d)
        if conn.session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
            return False
        if op == 4:
            problem = _voice_op_problem(d)
            if problem is not None:
                self.gateway_errors.append(f"op 4 {problem[0]}")
                await conn.ws.close(code=4002, message=problem[1].encode())
                return False
            await self._voice_op(conn.session, d)
        return True

    async def _identify(self, conn: Connection, d: JSON) -> bool:
        intents = int(d.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return False
        shard = parse_shard(d.get("shard"))
        if shard is None:
            self.gateway_errors.append(f"IDENTIFY with shard={d.get('shard')!r}")
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return False
        shard_id, count = shard
        guilds = [g for g in self.guilds.values() if shard_of(g.id, count) == shard_id]
        if len(guilds) > self.max_guilds_per_shard:
            self.gateway_errors.append(
                f"IDENTIFY as shard {shard_id} of {count} would hold {len(guilds)} guilds"
            )
            await conn.ws.close(code=4011, message=b"Sharding required.")
            return False
        now = asyncio.get_running_loop().time()
        if self._shards.over_concurrency(shard_id, self.max_concurrency, self.identify_window, now):
            self.identify_refusals.append(shard)
            await conn.send({"op": 9, "d": False, "s": None, "t": None})
            return True
        self.identify_count += 1
        # A new login replaces the shard's session: Discord drops it from its voice channels.
        await self._voice_dropped_from_server(self._replace_sessions(shard_id, count))
        async with self._dispatch_lock:
            session = Session(secrets.token_hex(16), intents, shard_id, count)
            self._sessions[session.id] = session
            self._shards.sessions[shard_id] = session
            self._shards.attach(conn, session)
            self.connection_shards[conn.index] = shard_id
            if shard_id in self._keep_sync:
                self._keep_sync.discard(shard_id)
            else:
                self._sync_seen, self._sync_at, self._sync_error = False, 0.0, None
            ready = {
                "v": 10,
                "user": self._own_user(),
                "user_settings": {},
                "private_channels": [],
                "relationships": [],
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": [shard_id, count],
                "application": {"id": str(self.bot_id), "flags": 0},
                "_trace": ["fake"],
            }
            await self._send_to(session, "READY", ready)
            if intents & INTENT_GUILDS:
                for guild in guilds:
                    await self._send_to(session, "GUILD_CREATE", self._guild_create(guild, intents))
            session.guilds_sent = True
        return True

    def _replace_sessions(self, shard_id: int, count: int) -> list[tuple[int, int]]:
        """End what an IDENTIFY as ``[shard_id, count]`` replaces: that shard's session, or
        every session when the bot comes back with another shard count."""
        table = self._shards
        if count == table.num_shards:
            return self._end_session(table.sessions.get(shard_id))
        dropped = [pair for s in table.sessions.values() for pair in self._end_session(s)]
        table.sessions.clear()
        table.conns.clear()
        table.num_shards = count
        return dropped

    async def _resume(self, conn: Connection, d: JSON) -> bool:
        session = self._sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        if (
            session is None
            or not session.live
            or not self._shards.is_current(session)
            or not isinstance(seq, int)
            or seq > session.seq
        ):
            await conn.send({"op": 9, "d": False, "s": None, "t": None})
            return True
        self.resume_count += 1
        async with self._dispatch_lock:
            self._shards.attach(conn, session)
            self.connection_shards[conn.index] = session.shard_id
            for payload in session.sent:
                if payload["s"] > seq:
                    await conn.send(payload)
            await self._send_to(session, "RESUMED", {"_trace": ["fake"]})
        return True

    async def _voice_op(self, session: Session, d: JSON) -> None:
        loop = asyncio.get_running_loop()
        guild_id = int(d["guild_id"])
        channel_id = None if d["channel_id"] is None else int(d["channel_id"])
        self_mute, self_deaf = bool(d["self_mute"]), bool(d["self_deaf"])
        op = VoiceOp(guild_id, channel_id, self_mute, self_deaf, loop.time(), session.shard_id)
        if not session.owns(guild_id):
            self.wrong_shard_voice_ops.append(op)  # Discord ignores it: no event at all
            return
        self.voice_ops.append(op)
        guild = self.guilds.get(guild_id)
        if guild is None:
            return
        if channel_id is None:
            state = self._bot_voice.pop(guild_id, None)
            if state is not None:
                await self._dispatch_voice_state(
                    guild_id,
                    self.bot_id,
                    None,
                    state.session_id,
                    self_mute=self_mute,
                    self_deaf=self_deaf,
                )
            return
        if channel_id not in guild.voice_channel_ids:
            return
        state = _BotVoice(channel_id, secrets.token_hex(16), self_mute, self_deaf)
        self._bot_voice[guild_id] = state
        await self._dispatch_voice_state(
            guild_id,
            self.bot_id,
            channel_id,
            state.session_id,
            self_mute=self_mute,
            self_deaf=self_deaf,
        )
        server = {
            "token": secrets.token_hex(8),
            "guild_id": str(guild_id),
            "endpoint": f"fake-voice-{secrets.randbelow(10000):04}.discord.media:443",
        }
        self.voice_credentials.append(
            VoiceCredentials(
                guild_id, channel_id, state.session_id, server["token"], server["endpoint"]
            )
        )
        if self.voice_server_delay > 0:
            self._spawn(self._voice_server_later(server))
            return
        await self.dispatch("VOICE_SERVER_UPDATE", server)

    async def _voice_server_later(self, server: JSON) -> None:
        await asyncio.sleep(self.voice_server_delay)
        await self.dispatch("VOICE_SERVER_UPDATE", server)

    # ------------------------------------------------------------------ REST

    def _route_table(self) -> list[tuple[str, re.Pattern[str], _Handler, bool]]:
        app = r"(?P<app>\d+)"
        hook = rf"/webhooks/{app}/(?P<token>[^/]+)"
        table: list[tuple[str, str, _Handler, bool]] = [
            ("GET", r"/gateway/bot", self._get_gateway_bot, True),
            ("GET", r"/gateway", self._get_gateway, False),
            ("GET", r"/oauth2/applications/@me", self._get_application, True),
            ("GET", r"/applications/@me", self._get_application, True),
            ("GET", r"/users/@me", self._get_me, True),
            ("GET", rf"/applications/{app}/commands", self._get_commands, True),
            ("PUT", rf"/applications/{app}/commands", self._put_commands, True),
            (
                "GET",
                rf"/applications/{app}/guilds/(?P<guild>\d+)/commands",
                self._get_commands,
                True,
            ),
            (
                "PUT",
                rf"/applications/{app}/guilds/(?P<guild>\d+)/commands",
                self._put_commands,
                True,
            ),
            ("POST", r"/interactions/(?P<id>\d+)/(?P<token>[^/]+)/callback", self._callback, False),
            ("POST", hook, self._followup, False),
            ("GET", rf"{hook}/messages/(?P<msg>@original|\d+)", self._get_hook_message, False),
            ("PATCH", rf"{hook}/messages/(?P<msg>@original|\d+)", self._edit_hook_message, False),
            ("DELETE", rf"{hook}/messages/(?P<msg>@original|\d+)", self._delete_hook_msg, False),
            ("POST", r"/channels/(?P<channel>\d+)/messages", self._create_message, True),
            (
                "PATCH",
                r"/channels/(?P<channel>\d+)/messages/(?P<msg>\d+)",
                self._edit_message,
                True,
            ),
            (
                "DELETE",
                r"/channels/(?P<channel>\d+)/messages/(?P<msg>\d+)",
                self._delete_message,
                True,
            ),
            ("GET", r"/channels/(?P<channel>\d+)", self._get_channel, True),
        ]
        return [(m, re.compile(p + "$"), h, auth) for m, p, h, auth in table]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        line = f"{request.method} {path}"
        self.rest_calls.append(line)
        if request.transport is not None:
            self.rest_connections.add(request.transport.get_extra_info("peername")[:2])
        if path.startswith(API):
            sub = path[len(API) :]
            for method, pattern, handler, auth in self._routes:
                match = pattern.match(sub)
                if match is None or method != request.method:
                    continue
                try:
                    if auth and request.headers.get("Authorization") != f"Bot {self.token}":
                        raise _RestError(401, "401: Unauthorized")
                    return await handler(request, match)
                except _RestError as err:
                    self.rest_errors.append(f"{line} -> {err.status} {err.code} {err.message}")
                    return web.json_response(err.body, status=err.status, headers=err.headers)
        self.unhandled.append(line)
        return web.json_response({"message": "404: Not Found", "code": 0}, status=404)

    @staticmethod
    async def _body(request: web.Request) -> JSON:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            raw = form.get("payload_json")
            return json.loads(raw) if isinstance(raw, str) else {}
        if not request.can_read_body:
            return {}
        data = await request.json()
        return data if isinstance(data, dict) else {"_list": data}

    def _check_app(self, match: re.Match[str]) -> None:
        if int(match["app"]) != self.bot_id:
            raise _RestError(403, "Missing Access", 50001)

    async def _get_gateway_bot(self, _request: web.Request, _m: re.Match[str]) -> web.Response:
        limit = {
            "total": 1000,
            "remaining": 999,
            "reset_after": 86400000,
            "max_concurrency": self.max_concurrency,
        }
        shards = self.recommended_shards or recommended_shards(len(self.guilds))
        body = {"url": self.gateway_url, "shards": shards, "session_start_limit": limit}
        return web.json_response(body)

    async def _get_gateway(self, _request: web.Request, _m: re.Match[str]) -> web.Response:
        return web.json_response({"url": self.gateway_url})

    async def _get_application(self, _request: web.Request, _m: re.Match[str]) -> web.Response:
        owner = user_payload(222222222222222222, "owner")
        return web.json_response(
            {
                "id": str(self.bot_id),
                "name": "musicbot",
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot": self._user(self.bot_id),
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "hook": True,
                "is_monetized": False,
                "approximate_guild_count": len(self.guilds),
                "approximate_user_install_count": 0,
                "integration_types_config": {"0": {}},
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "tags": [],
            }
        )

    async def _get_me(self, _request: web.Request, _m: re.Match[str]) -> web.Response:
        return web.json_response({**self._own_user(), "locale": "en-US"})

    def _scope(self, match: re.Match[str]) -> int | None:
        self._check_app(match)
        guild = match.groupdict().get("guild")
        if guild is None:
            return None
        if int(guild) not in self.guilds:
            raise _RestError(403, "Missing Access", 50001)
        return int(guild)

    @contextlib.contextmanager
    def _syncing(self, request: web.Request) -> Iterator[None]:
        """Around one application-commands request: only an answered one counts as a sync, and
        a failed one (the bot will have to try again) undoes the ones before it."""
        self._sync_inflight += 1
        try:
            if self._sync_failures > 0:
                self._sync_failures -= 1
                raise self._sync_failure()
            yield
        except _RestError as err:
            self._sync_seen = False
            self._sync_error = f"{request.method} {request.path} -> {err.status}"
            raise
        else:
            self._sync_seen, self._sync_error = True, None
        finally:
            self._sync_inflight -= 1
            self._sync_at = asyncio.get_running_loop().time()

    def _sync_failure(self) -> _RestError:
        status = self._sync_failure_status
        message = _SYNC_FAILURES[status]
        if status != 429:
            return _RestError(status, message)
        retry_after = self._sync_retry_after
        body = {"message": message, "retry_after": retry_after, "global": False}
        return _RestError(status, message, body=body, headers={"Retry-After": f"{retry_after:g}"})

    async def _get_commands(self, request: web.Request, match: re.Match[str]) -> web.Response:
        with self._syncing(request):
            return web.json_response(self._commands.get(self._scope(match), []))

    async def _put_commands(self, request: web.Request, match: re.Match[str]) -> web.Response:
        with self._syncing(request):
            scope = self._scope(match)
            body = (await self._body(request)).get("_list")
            if not isinstance(body, list):
                raise _RestError(400, "Invalid Form Body", 50035)
            old = {c["name"]: c for c in self._commands.get(scope, [])}
            stored = [self._stored_command(c, scope, old.get(c["name"])) for c in body]
            self._commands[scope] = stored
            self.registered_commands = {
                c["name"]: c for cmds in self._commands.values() for c in cmds
            }
            return web.json_response(stored)

    def _stored_command(self, cmd: JSON, scope: int | None, old: JSON | None) -> JSON:
        stored: JSON = {
            "id": old["id"] if old else str(self._new_id()),
            "application_id": str(self.bot_id),
            "version": str(self._new_id()),
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": scope is None,
            "nsfw": False,
            "integration_types": [0],
            "contexts": None if scope is not None else [0, 1, 2],
            **cmd,
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        if stored["default_member_permissions"] is not None:  # Discord answers a string
            stored["default_member_permissions"] = str(int(stored["default_member_permissions"]))
        return stored

    def _interaction(self, match: re.Match[str]) -> Interaction:
        interaction = self._by_token.get(match["token"])
        if interaction is None or ("app" in match.groupdict() and int(match["app"]) != self.bot_id):
            raise _RestError(404, "Unknown Webhook", 10015)
        return interaction

    def _bot_message(self, interaction: Interaction, body: JSON, flags: int, **kw: Any) -> JSON:
        return message_payload(
            self._new_id(),
            interaction.channel_id,
            self._user(self.bot_id),
            body,
            flags=flags,
            webhook_id=self.bot_id,
            **kw,
        )

    async def _callback(self, request: web.Request, match: re.Match[str]) -> web.Response:
        interaction = self._by_token.get(match["token"])
        if interaction is None or interaction.id != int(match["id"]):
            raise _RestError(404, "Unknown interaction", 10062)
        if interaction.callback_at is None:
            interaction.callback_at = asyncio.get_running_loop().time()
        body = await self._body(request)
        _check_embeds(body.get("data") or {}, nested="data")
        interaction.responses.append(("callback", body))
        if interaction.acknowledged:
            raise _RestError(400, "Interaction has already been acknowledged.", 40060)
        age = asyncio.get_running_loop().time() - interaction.created_at
        if age > self.interaction_ack_timeout:
            raise _RestError(404, "Unknown interaction", 10062)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        if kind not in _RESPONSES_TO[interaction.kind]:
            raise _RestError(400, "Interaction response type is not valid here", 50035)
        problem = autocomplete_problem(data.get("choices")) if kind == 8 else body_problem(data)
        if problem is not None:
            error = _limit_error(problem, nested="data")
            raise _RestError(400, "Invalid Form Body", 50035, body=error)
        interaction.acknowledged = True
        flags = int(data.get("flags") or 0) & EPHEMERAL
        resource: JSON = {"type": kind}
        if kind == 4:
            interaction.original = self._bot_message(interaction, data, flags)
            resource["message"] = interaction.original
            interaction._answer(Reply(data.get("content") or "", _embeds(data), bool(flags)))
        elif kind == 5:
            interaction.deferred_flags = flags
            interaction.original = self._bot_message(interaction, {}, flags | LOADING)
            resource["message"] = interaction.original
        elif kind in (6, 7):
            # A component's own message: "@original" now means it, and type 7 edits it.
            assert interaction.message is not None
            interaction.original = interaction.message
            if kind == 7:
                message = self._edit(interaction.message, data, int(interaction.message["flags"]))
                self.message_edits.append((int(message["id"]), data))
                resource["message"] = message
                reply = Reply(message["content"], message["embeds"], bool(message["flags"]))
                interaction._answer(reply)
        elif kind == 8:
            assert interaction._choices is not None
            interaction._choices.set_result(list(data.get("choices") or []))
        callback: JSON = {
            "id": str(interaction.id),
            "type": 2,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags),
        }
        if interaction.original is not None:
            callback["response_message_id"] = interaction.original["id"]
        if request.query.get("with_response") in ("true", "True", "1"):
            return web.json_response({"interaction": callback, "resource": resource})
        return web.Response(status=204)

    def _loading(self, interaction: Interaction) -> bool:
        original = interaction.original
        return (
            original is not None
            and not interaction.original_deleted
            and bool(int(original["flags"]) & LOADING)
        )

    async def _followup(self, request: web.Request, match: re.Match[str]) -> web.Response:
        interaction = self._interaction(match)
        body = await self._body(request)
        _check_embeds(body)
        interaction.responses.append(("followup", body))
        if not interaction.acknowledged:
            raise _RestError(404, "Unknown Webhook", 10015)
        if (problem := body_problem(body)) is not None:
            raise _RestError(400, "Invalid Form Body", 50035, body=_limit_error(problem))
        if self._loading(interaction):
            # Discord: the first follow-up after a defer *is* the deferred message.
            assert interaction.original is not None
            assert interaction.deferred_flags is not None
            message = self._edit(interaction.original, body, interaction.deferred_flags)
            reply = Reply(message["content"], message["embeds"], bool(interaction.deferred_flags))
            interaction._answer(reply)
        else:
            flags = int(body.get("flags") or 0) & EPHEMERAL
            message = self._bot_message(interaction, body, flags)
            interaction.followups[int(message["id"])] = message
            if interaction.original_deleted or interaction.original is None:
                interaction._answer(Reply(message["content"], _embeds(body), bool(flags)))
        return web.json_response(message)

    def _edit(self, message: JSON, body: JSON, flags: int) -> JSON:
        if "content" in body:
            message["content"] = body["content"] or ""
        if "embeds" in body:
            message["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = numbered_components(body["components"] or [])
        message["flags"] = flags
        message["edited_timestamp"] = message["timestamp"]
        return message

    def _hook_message(self, interaction: Interaction, msg: str) -> JSON:
        if msg == "@original" or (
            interaction.original is not None and msg == interaction.original["id"]
        ):
            if interaction.original is None or interaction.original_deleted:
                raise _RestError(404, "Unknown Message", 10008)
            return interaction.original
        message = interaction.followups.get(int(msg))
        if message is None:
            raise _RestError(404, "Unknown Message", 10008)
        return message

    async def _get_hook_message(self, _request: web.Request, match: re.Match[str]) -> web.Response:
        return web.json_response(self._hook_message(self._interaction(match), match["msg"]))

    async def _edit_hook_message(self, request: web.Request, match: re.Match[str]) -> web.Response:
        interaction = self._interaction(match)
        body = await self._body(request)
        _check_embeds(body)
        interaction.responses.append(("edit", body))
        if (problem := body_problem(body)) is not None:
            raise _RestError(400, "Invalid Form Body", 50035, body=_limit_error(problem))
        message = self._hook_message(interaction, match["msg"])
        was_loading = message is interaction.original and self._loading(interaction)
        message = self._edit(message, body, int(message["flags"]) & EPHEMERAL)
        self.message_edits.append((int(message["id"]), body))
        if was_loading or message is interaction.message:
            ephemeral = bool(int(message["flags"]) & EPHEMERAL)
            interaction._answer(Reply(message["content"], message["embeds"], ephemeral))
        return web.json_response(message)

    async def _delete_hook_msg(self, _request: web.Request, match: re.Match[str]) -> web.Response:
        interaction = self._interaction(match)
        interaction.responses.append(("delete", {"message": match["msg"]}))
        message = self._hook_message(interaction, match["msg"])
        if message is interaction.original:
            interaction.original_deleted = True
        else:
            del interaction.followups[int(message["id"])]
        return web.Response(status=204)

    def _channel(self, channel_id: int) -> tuple[Guild, int]:
        for guild in self.guilds.values():
            if channel_id in guild.text_channel_ids + guild.voice_channel_ids:
                return guild, channel_id
        raise _RestError(404, "Unknown Channel", 10003)

    async def _create_message(self, request: web.Request, match: re.Match[str]) -> web.Response:
        guild, channel_id = self._channel(int(match["channel"]))
        permissions = self.permissions(guild.id, self.bot_id, channel_id)
        if not permissions & VIEW_CHANNEL:
            raise _RestError(403, "Missing Access", 50001)
        if not permissions & SEND_MESSAGES:
            raise _RestError(403, "Missing Permissions", 50013)
        body = await self._body(request)
        _check_embeds(body)
        if not (body.get("content") or body.get("embeds") or body.get("components")):
            raise _RestError(400, "Cannot send an empty message", 50006)
        if (problem := body_problem(body)) is not None:
            raise _RestError(400, "Invalid Form Body", 50035, body=_limit_error(problem))
        message = message_payload(
            self._new_id(), channel_id, self._user(self.bot_id), body, guild_id=guild.id
        )
        self.channel_messages[int(message["id"])] = message
        self.messages.append(
            SentMessage(
                channel_id,
                body.get("content") or "",
                _embeds(body),
                int(message["id"]),
                list(message["components"]),
            )
        )
        return web.json_response(message)

    def _own_message(self, match: re.Match[str]) -> JSON:
        self._channel(int(match["channel"]))
        message = self.channel_messages.get(int(match["msg"]))
        if message is None or message["channel_id"] != match["channel"]:
            raise _RestError(404, "Unknown Message", 10008)
        return message

    async def _edit_message(self, request: web.Request, match: re.Match[str]) -> web.Response:
        message = self._own_message(match)
        body = await self._body(request)
        if (problem := body_problem(body)) is not None:
            raise _RestError(400, "Invalid Form Body", 50035, body=_limit_error(problem))
        self._count_edit(int(match["channel"]), int(message["id"]))
        message = self._edit(message, body, int(message["flags"]))
        self.message_edits.append((int(message["id"]), body))
        return web.json_response(message)

    def _count_edit(self, channel_id: int, message_id: int) -> None:
        """Discord's edit bucket per channel: past the limit, 429 with ``retry_after`` (the
        seconds until the oldest edit leaves the window) and ``Retry-After``."""
        limit, window = self.message_edit_limit
        now = asyncio.get_running_loop().time()
        times = self._edit_times.setdefault(channel_id, collections.deque())
        while times and now - times[0] >= window:
            times.popleft()
        if len(times) >= limit:
            self.rate_limited_edits.append(message_id)
            retry_after = round(window - (now - times[0]), 3)
            message = "You are being rate limited."
            body = {"message": message, "retry_after": retry_after, "global": False}
            headers = {"Retry-After": f"{retry_after:g}"}
            raise _RestError(429, message, body=body, headers=headers)
        times.append(now)

    async def _delete_message(self, _request: web.Request, match: re.Match[str]) -> web.Response:
        message = self._own_message(match)
        del self.channel_messages[int(message["id"])]
        self.deleted_messages.append(int(message["id"]))
        return web.Response(status=204)

    async def _get_channel(self, _request: web.Request, match: re.Match[str]) -> web.Response:
        guild, channel_id = self._channel(int(match["channel"]))
        if not self.permissions(guild.id, self.bot_id, channel_id) & VIEW_CHANNEL:
            raise _RestError(403, "Missing Access", 50001)
        return web.json_response(channel_payload(guild, channel_id))


_RESPONSES_TO: dict[int, frozenset[int]] = {
    2: frozenset({4, 5, 9}),
    3: frozenset({4, 5, 6, 7, 9}),
    4: frozenset({8}),
}
"""Interaction type -> the callback types Discord takes for it (8: autocomplete only)."""


def _limit_error(problem: str, nested: str | None = None) -> JSON:
    """Discord's 50035 body for a broken component or choice limit: ``errors`` nested along
    the path (``components.0.components.5``), under ``data`` for an interaction callback."""
    path, _, message = problem.partition(": ")
    errors: JSON = {}
    keys = (*([nested] if nested else []), *path.split("."))
    _put(errors, keys, _form_error("BASE_TYPE_INVALID", message))
    return {"code": 50035, "message": "Invalid Form Body", "errors": errors}


def _embeds(body: JSON) -> list[JSON]:
    return [dict(e) for e in body.get("embeds") or []]


EMBED_LIMITS: dict[str, int] = {
    "title": 256,
    "description": 4096,
    "footer.text": 2048,
    "author.name": 256,
    "field.name": 256,
    "field.value": 1024,
    "fields": 25,
    "embeds": 10,
    "total": 6000,
}
"""Discord's embed limits, in characters (``total``: all of one embed's text together)."""


def _check_embeds(body: JSON, *, nested: str | None = None) -> None:
    """Refuse embeds as Discord does: 400 50035 "Invalid Form Body", ``errors`` naming the
    path (``embeds.0.title``, under ``data`` for an interaction callback) and the rule."""
    problems: JSON = {}
    embeds = body.get("embeds") or []
    if len(embeds) > EMBED_LIMITS["embeds"]:
        problems.update(_too_long(EMBED_LIMITS["embeds"]))
    for index, embed in enumerate(embeds):
        if found := _embed_problems(embed):
            problems[str(index)] = found
    if problems:
        errors: JSON = {"embeds": problems} if nested is None else {nested: {"embeds": problems}}
        message = "Invalid Form Body"
        body = {"message": message, "code": 50035, "errors": errors}
        raise _RestError(400, message, 50035, body=body)


def _embed_problems(embed: JSON) -> JSON:
    problems: JSON = {}
    texts = [
        (("title",), embed.get("title"), "title"),
        (("description",), embed.get("description"), "description"),
        (("footer", "text"), (embed.get("footer") or {}).get("text"), "footer.text"),
        (("author", "name"), (embed.get("author") or {}).get("name"), "author.name"),
    ]
    fields = embed.get("fields") or []
    if len(fields) > EMBED_LIMITS["fields"]:
        problems["fields"] = _too_long(EMBED_LIMITS["fields"])
    for index, field_ in enumerate(fields):
        for key in ("name", "value"):
            text = field_.get(key)
            texts.append((("fields", str(index), key), text, f"field.{key}"))
            if not text:
                required = _form_error("BASE_TYPE_REQUIRED", "This field is required")
                _put(problems, ("fields", str(index), key), required)
    total = 0
    for path, text, limit_name in texts:
        total += len(text or "")
        if text and len(text) > EMBED_LIMITS[limit_name]:
            _put(problems, path, _too_long(EMBED_LIMITS[limit_name]))
    for path in (("url",), ("thumbnail", "url"), ("image", "url")):
        url = embed.get(path[0]) if len(path) == 1 else (embed.get(path[0]) or {}).get("url")
        if url is not None and not str(url).startswith(("http://", "https://")):
            scheme = str(url).partition(":")[0]
            message = (
                f"Scheme \"{scheme}\" is not supported. Scheme must be one of ('http', 'https')."
            )
            _put(problems, path, _form_error("URL_TYPE_INVALID_SCHEME", message))
    if total > EMBED_LIMITS["total"] and not problems:
        size = EMBED_LIMITS["total"]
        problems.update(
            _form_error("MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {size}")
        )
    return problems


def _put(problems: JSON, path: tuple[str, ...], error: JSON) -> None:
    at = problems
    for key in path:
        at = at.setdefault(key, {})
    at.update(error)


def _too_long(limit: int) -> JSON:
    return _form_error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _form_error(code: str, message: str) -> JSON:
    return {"_errors": [{"code": code, "message": message}]}


def _event_guild(event_name: str, data: JSON) -> int | None:
    """The guild a dispatch concerns, which decides its shard (None: shard 0)."""
    key = "id" if event_name in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") else "guild_id"
    value = data.get(key)
    return None if value is None else int(value)


async def _await_in_order(pending: list[Awaitable[None]]) -> None:
    for awaitable in pending:
        await awaitable


def _log_hook_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("fake Discord: a voice_dropped hook failed", exc_info=exc)


def _voice_op_problem(d: object) -> tuple[str, str] | None:
    """Why an op 4 ``d`` is invalid, as (what ``gateway_errors`` records, the 4002 reason).

    Discord documents all four fields as required; ``channel_id`` may be null (a leave).
    """
    if not isinstance(d, dict):
        return "without an object d", "d must be an object"
    for name in ("guild_id", "channel_id", "self_mute", "self_deaf"):
        if name not in d:
            return f"without {name}", f"{name} is required"
    for name, nullable in (("guild_id", False), ("channel_id", True)):
        value = d[name]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int) or not _snowflake(value):
            return f"with {name}={value!r} (not a snowflake)", f"{name} must be a snowflake"
    for name in ("self_mute", "self_deaf"):
        if not isinstance(d[name], bool):
            return f"with {name}={d[name]!r} (not a boolean)", f"{name} must be a boolean"
    return None


def _snowflake(value: str | int) -> bool:
    text = str(value)
    return text.isascii() and text.isdigit() and int(text) < 1 << 64
