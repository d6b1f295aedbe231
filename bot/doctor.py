"""``/doctor``: the diagnosis of ``python -m bot check``, made by the running bot.

The Lavalink checks are :func:`bot.checkup.check_lavalink`'s, against the configured nodes. The
rest is what only the running bot can see: its gateway shards, its own connection to each node,
the database it already holds open (never a second one: ``check_database`` would migrate and
open a new repository), its permissions in the caller's text and voice channels, and the
server's player. Every finding is a :class:`bot.checkup.Finding`; nothing here raises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

import aiohttp
import hikari

from bot import lavalink
from bot.checkup import Finding, Status, check_lavalink
from bot.discord_view import ChannelAccess, ShardState
from bot.extensions.sentences import settings_text
from bot.services import PlayerState, QueueService
from bot.storage import PlayerStatus, Repository

__all__ = ["TEXT_NEEDS", "VOICE_NEEDS", "Doctor", "DoctorView"]

_log = logging.getLogger(__name__)

_P = hikari.Permissions
_Need = tuple[hikari.Permissions, str, str]
"""A permission, its name as Discord's settings show it, and what the bot needs it for."""

TEXT_NEEDS: tuple[_Need, ...] = (
    (_P.VIEW_CHANNEL, "View Channel", "to see the channel at all"),
    (_P.SEND_MESSAGES, "Send Messages", "to say what plays next and why music stopped"),
    (_P.EMBED_LINKS, "Embed Links", "for the links and previews in its messages"),
)
"""What the bot needs in the text channel it is used from."""
_THREAD_SEND: _Need = (
    _P.SEND_MESSAGES_IN_THREADS,
    "Send Messages in Threads",
    "to say what plays next and why music stopped",
)
VOICE_NEEDS: tuple[_Need, ...] = (
    (_P.VIEW_CHANNEL, "View Channel", "to see the channel at all"),
    (_P.CONNECT, "Connect", "to join it"),
    (_P.SPEAK, "Speak", "to be heard: without it the music plays to nobody"),
)
"""What the bot needs in the voice channel it plays in."""

_DISCORD = "Discord"
_PERMISSIONS = "Permissions"
_DATABASE = "Database"
_PLAYER = "Player"
_TITLE_LIMIT = 100


class DoctorView(Protocol):
    """What the doctor reads of Discord (:class:`bot.discord_view.HikariDiscordView`)."""

    def me(self) -> hikari.OwnUser | None: ...

    def shards(self) -> list[ShardState]: ...

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None: ...

    def channel_name(self, channel_id: int) -> str | None: ...

    def channel_access(self, guild_id: int, channel_id: int, user_id: int) -> ChannelAccess: ...


class Doctor:
    """Assembles ``/doctor``'s findings for one server and the member who asked."""

    def __init__(
        self,
        *,
        nodes: Sequence[lavalink.NodeConfig],
        client: lavalink.LavalinkClient,
        repository: Repository,
        service: QueueService,
        discord: DoctorView,
        secrets: Sequence[str] = (),
    ) -> None:
        self._nodes = tuple(nodes)
        self._client = client
        self._repository = repository
        self._service = service
        self._discord = discord
        self._secrets = tuple(s for s in secrets if s)

    async def examine(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int,
        *,
        app_permissions: hikari.Permissions | None = None,
    ) -> list[Finding]:
        """Everything checked, in the order shown: Discord, the bot's permissions in
        ``channel_id`` and in the caller's voice channel, each Lavalink node, the database,
        this server's player. ``app_permissions`` (Discord's own answer for ``channel_id``,
        from the interaction) is preferred to the cache's for that channel."""
        nodes, database = await asyncio.gather(self._lavalink(), self._database())
        findings = [
            *self._gateway(),
            *self._text_channel(guild_id, channel_id, app_permissions),
            *self._voice_channel(guild_id, user_id),
            *nodes,
            database,
            self._player(guild_id),
        ]
        return [self._redact(finding) for finding in findings]

    # --- Discord --------------------------------------------------------------------------

    def _gateway(self) -> list[Finding]:
        me = self._discord.me()
        who = f"as {_plain(me.username)} ({me.id})" if me is not None else "(not logged in yet)"
        shards = self._discord.shards()
        down = [shard.id for shard in shards if not shard.connected]
        if not shards:
            return [
                Finding(
                    _DISCORD,
                    Status.PROBLEM,
                    "no gateway shard is running",
                    "restart the bot; its log says why it stopped",
                )
            ]
        if down:
            return [
                Finding(
                    _DISCORD,
                    Status.WARNING,
                    f"shard(s) {', '.join(map(str, down))} of {shards[0].count} not connected "
                    "to Discord right now",
                    "they reconnect by themselves; if this lasts, check this machine's "
                    "connection to Discord",
                )
            ]
        latencies = [s.latency for s in shards if s.latency is not None]
        heartbeat = (
            f"heartbeat {max(latencies) * 1000:.0f} ms"
            if latencies
            else "heartbeat not measured yet"
        )
        count = shards[0].count
        connected = f"shard {shards[0].id} of {count}" if len(shards) == 1 else f"{count} shards"
        return [Finding(_DISCORD, Status.OK, f"connected {who}: {connected}, {heartbeat}")]

    def _text_channel(
        self, guild_id: int, channel_id: int, app_permissions: hikari.Permissions | None
    ) -> list[Finding]:
        me = self._discord.me()
        if me is None:
            return [self._unknown(f"<#{channel_id}>", "I do not know who I am yet")]
        access = self._discord.channel_access(guild_id, channel_id, int(me.id))
        needs = TEXT_NEEDS
        if access.is_thread:
            needs = (TEXT_NEEDS[0], _THREAD_SEND, TEXT_NEEDS[2])
        permissions = access.permissions
        if app_permissions is not None:
            mask = _mask(needs)
            if permissions is not None and permissions & mask != app_permissions & mask:
                # Discord's answer wins; a difference means a stale cache or a wrong rule.
                _log.warning(
                    "guild %s channel %s: my permissions from the cache (%s) differ from "
                    "Discord's (%s)",
                    guild_id,
                    channel_id,
                    permissions & mask,
                    app_permissions & mask,
                )
            permissions = app_permissions
        return self._permission_findings(access, permissions, needs)

    def _voice_channel(self, guild_id: int, user_id: int) -> list[Finding]:
        channel_id = self._discord.voice_channel_of(guild_id, user_id)
        if channel_id is None:
            return [
                Finding(
                    _PERMISSIONS,
                    Status.WARNING,
                    "you are in no voice channel, so I could not check my permissions in one",
                    "join the voice channel I should play in and run /doctor again to check it",
                )
            ]
        me = self._discord.me()
        if me is None:
            return [self._unknown(f"<#{channel_id}>", "I do not know who I am yet")]
        access = self._discord.channel_access(guild_id, channel_id, int(me.id))
        return self._permission_findings(access, access.permissions, VOICE_NEEDS)

    def _permission_findings(
        self,
        access: ChannelAccess,
        permissions: hikari.Permissions | None,
        needs: Sequence[_Need],
    ) -> list[Finding]:
        place = _place(access)
        if permissions is None:
            return [self._unknown(place, access.problem or "my cache lacks it")]
        missing = [need for need in needs if not permissions & need[0]]
        if not missing:
            names = ", ".join(name for _, name, _ in needs)
            return [Finding(_PERMISSIONS, Status.OK, f"in {place} I have {names}")]
        findings = []
        for _, name, why in missing:
            findings.append(
                Finding(
                    _PERMISSIONS,
                    Status.PROBLEM,
                    f"I lack {name} in {place}, which I need {why}",
                    f"give the bot's role {name} in {place} (Edit Channel → Permissions), "
                    "and check no overwrite for the bot denies it",
                )
            )
        return findings

    @staticmethod
    def _unknown(place: str, why: str) -> Finding:
        return Finding(
            _PERMISSIONS,
            Status.WARNING,
            f"cannot tell my permissions in {place}: {why}",
            "run /doctor again in a minute",
        )

    # --- Lavalink -------------------------------------------------------------------------

    async def _lavalink(self) -> list[Finding]:
        statuses = {status.name: status for status in self._client.node_statuses()}
        async with aiohttp.ClientSession() as http:
            per_node = await asyncio.gather(*(check_lavalink([node], http) for node in self._nodes))
        findings: list[Finding] = []
        for node, found in zip(self._nodes, per_node, strict=True):
            findings.extend(found)
            status = statuses.get(node.name)
            if status is not None:
                findings.append(_connection_finding(f"Lavalink {node.name}", status))
        return findings

    # --- database -------------------------------------------------------------------------

    async def _database(self) -> Finding:
        where = self._repository.description
        problem = await self._repository.check_writable()
        if problem is not None:
            return Finding(
                _DATABASE,
                Status.PROBLEM,
                f"{where} cannot be written: {problem}",
                "let the bot's user write the database and its folder, or stop whatever "
                "holds it locked",
            )
        return Finding(_DATABASE, Status.OK, f"{where}: open, takes writes")

    # --- this server's player -------------------------------------------------------------

    def _player(self, guild_id: int) -> Finding:
        state = self._service.player_state(guild_id)
        if state is None or (state.current is None and state.queued == 0):
            return Finding(_PLAYER, Status.OK, "nothing is playing or queued in this server")
        more = f"{state.queued} more queued" if state.queued else "nothing more queued"
        title = _title(state)
        if state.status is PlayerStatus.INTERRUPTED:
            return Finding(
                _PLAYER,
                Status.WARNING,
                f"the music was interrupted: {title} waits, {more}",
                "use /play to bring me back: it carries on where it stopped",
            )
        if state.current is None or state.status is not PlayerStatus.PLAYING:
            return Finding(_PLAYER, Status.OK, f"nothing is playing; {more}")
        where = ""
        if state.voice_channel_id is not None:
            name = self._discord.channel_name(state.voice_channel_id)
            where = f" in {_place(ChannelAccess(state.voice_channel_id, name))}"
        node = f" on node {state.node}" if state.node else ""
        paused = "paused on " if state.paused else "playing "
        settings = settings_text(state.volume, state.loop_mode, state.filter_name, ", ")
        return Finding(_PLAYER, Status.OK, f"{paused}{title}{where}{node}; {more}; {settings}")

    def _redact(self, finding: Finding) -> Finding:
        text, fix = finding.text, finding.fix
        for secret in self._secrets:  # never show a secret, whatever an error says
            text = text.replace(secret, "***")
            fix = fix.replace(secret, "***") if fix is not None else None
        return dataclasses.replace(finding, text=text, fix=fix)


def _connection_finding(area: str, status: lavalink.NodeStatus) -> Finding:
    if not status.up:
        return Finding(
            area,
            Status.WARNING,
            "the bot has no connection to it right now",
            "it reconnects by itself; if this lasts, the bot's log says why it cannot",
        )
    again = status.connects - 1
    history = f" (reconnected {again} time{'' if again == 1 else 's'})" if again > 0 else ""
    return Finding(area, Status.OK, f"the bot is connected to it{history}")


def _mask(needs: Sequence[_Need]) -> hikari.Permissions:
    mask = hikari.Permissions.NONE
    for permission, _, _ in needs:
        mask |= permission
    return mask


def _place(access: ChannelAccess) -> str:
    if access.name is None:
        return f"<#{access.channel_id}>"
    return "#" + _plain(access.name)


def _title(state: PlayerState) -> str:
    if state.current is None:
        return "the current song"
    return f"“{_plain(state.current.title[:_TITLE_LIMIT])}”"


def _plain(text: str) -> str:
    """A name from Discord or a title from the internet, kept from turning into markdown."""
    for ch in "\\*_~`|[]()<>@":
        text = text.replace(ch, "\\" + ch)
    return text
