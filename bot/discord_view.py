"""The bot's view of Discord, backed by hikari's cache and REST client.

:class:`HikariDiscordView` is what the queue service and ``/doctor`` know of Discord: who sits
in which voice channel, the gateway's shards, and what the bot may do in a channel.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import hikari

from bot.extensions.controller import render_controller
from bot.extensions.sentences import announcement_text
from bot.permissions import permissions_in
from bot.services.notices import Announcement
from bot.services.ports import Delivery
from bot.services.views import ControllerView

__all__ = ["ROLES_SEEN_LIMIT", "ChannelAccess", "HikariDiscordView", "ShardState"]

_log = logging.getLogger(__name__)

ROLES_SEEN_LIMIT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class ShardState:
    """One gateway shard as hikari holds it now."""

    id: int
    count: int
    connected: bool
    latency: float | None
    """Heartbeat round trip in seconds; ``None`` before the first acknowledgement."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelAccess:
    """What one member may do in one channel, from the cache.

    ``permissions`` is ``None`` when the cache lacks something it needs; ``problem`` then says
    what. A thread's permissions are its parent channel's.
    """

    channel_id: int
    name: str | None
    is_thread: bool = False
    is_voice: bool = False
    permissions: hikari.Permissions | None = None
    problem: str | None = None


class HikariDiscordView:
    """Implements :class:`bot.services.DiscordView` (and ``/doctor``'s view) for a
    ``hikari.GatewayBot``."""

    def __init__(self, bot: hikari.GatewayBot) -> None:
        self._bot = bot
        self._roles_seen: dict[tuple[int, int], frozenset[int]] = {}
        """Members' roles as their latest interaction carried them (see :meth:`saw_member`)."""

    def saw_member(self, member: hikari.Member) -> None:
        """``member`` as an interaction just carried it: the freshest word on their roles.

        The bot holds no GUILD_MEMBERS intent, so the cache learns of a role given or taken
        only from the member's next voice state; a command is always preceded by its own
        interaction, so the rules read the roles it carried. Kept small: an entry per member
        who used the bot, forgotten all at once past :data:`ROLES_SEEN_LIMIT`.
        """
        if len(self._roles_seen) >= ROLES_SEEN_LIMIT:
            self._roles_seen.clear()
        key = (int(member.guild_id), int(member.user.id))
        self._roles_seen[key] = frozenset(int(r) for r in member.role_ids)

    def shard_of(self, guild_id: int) -> int:
        return hikari.snowflakes.calculate_shard_id(self._bot, guild_id)

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        state = self._bot.cache.get_voice_state(guild_id, user_id)
        return int(state.channel_id) if state is not None and state.channel_id else None

    def listeners(self, guild_id: int, channel_id: int) -> int:
        states = self._bot.cache.get_voice_states_view_for_channel(guild_id, channel_id)
        # Cached voice states carry their member; one without is a person, not a bot.
        return sum(1 for state in states.values() if not (state.member and state.member.is_bot))

    def humans_in(self, guild_id: int, channel_id: int) -> frozenset[int]:
        states = self._bot.cache.get_voice_states_view_for_channel(guild_id, channel_id)
        return frozenset(
            int(user_id)
            for user_id, state in states.items()
            if not (state.member and state.member.is_bot)
        )

    def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        if (seen := self._roles_seen.get((guild_id, user_id))) is not None:
            return seen
        # Else as their voice state (or the guild's first payload) last carried them.
        member = self._bot.cache.get_member(guild_id, user_id)
        return None if member is None else frozenset(int(r) for r in member.role_ids)

    def manages_guild(self, guild_id: int, user_id: int) -> bool:
        cache = self._bot.cache
        guild = cache.get_guild(guild_id)
        if guild is not None and int(guild.owner_id) == user_id:
            return True
        member = cache.get_member(guild_id, user_id)
        role_ids = self.member_roles(guild_id, user_id)
        if guild is None or role_ids is None:
            return False
        roles = cache.get_roles_view_for_guild(guild_id)
        held = permissions_in(
            guild_id=guild_id,
            owner_id=int(guild.owner_id),
            member_id=user_id,
            role_ids=role_ids,
            role_permissions={int(r): role.permissions for r, role in roles.items()},
            overwrites={},  # the guild's own permissions: no channel's overwrites
            timed_out=member is not None and member.communication_disabled_until() is not None,
        )
        return bool(held & hikari.Permissions.MANAGE_GUILD)

    async def announce(self, channel_id: int, announcement: Announcement) -> None:
        text = announcement_text(announcement)
        try:
            await self._bot.rest.create_message(
                channel_id, text, user_mentions=False, role_mentions=False, mentions_everyone=False
            )
        except hikari.HikariError as exc:
            # Missing permissions or a deleted channel must not break playback.
            _log.warning("could not post in channel %s: %s", channel_id, exc)

    # --- the now-playing controller (rendered by bot.extensions.controller) --------------------

    async def post_controller(self, channel_id: int, view: ControllerView) -> int | None:
        embed, components = render_controller(view)
        try:
            message = await self._bot.rest.create_message(
                channel_id, embed=embed, components=components, user_mentions=False
            )
        except hikari.HikariError as exc:
            _log.warning("could not post the controller in channel %s: %s", channel_id, exc)
            return None
        return int(message.id)

    async def edit_controller(
        self, channel_id: int, message_id: int, view: ControllerView
    ) -> Delivery:
        embed, components = render_controller(view)
        try:
            await self._bot.rest.edit_message(
                channel_id, message_id, embed=embed, components=components, user_mentions=False
            )
        except hikari.HikariError as exc:
            return _failed("edit", channel_id, message_id, exc)
        return Delivery.DONE

    async def delete_controller(self, channel_id: int, message_id: int) -> Delivery:
        try:
            await self._bot.rest.delete_message(channel_id, message_id)
        except hikari.HikariError as exc:
            return _failed("delete", channel_id, message_id, exc)
        return Delivery.DONE

    # --- for /doctor ----------------------------------------------------------------------

    def me(self) -> hikari.OwnUser | None:
        """Who the bot is logged in as (``None`` before READY)."""
        return self._bot.get_me()

    def shards(self) -> list[ShardState]:
        states = []
        for shard in sorted(self._bot.shards.values(), key=lambda s: s.id):
            latency = shard.heartbeat_latency
            states.append(
                ShardState(
                    id=shard.id,
                    count=shard.shard_count,
                    connected=shard.is_connected,
                    latency=None if math.isnan(latency) or math.isinf(latency) else latency,
                )
            )
        return states

    def channel_name(self, channel_id: int) -> str | None:
        channel = self._bot.cache.get_guild_channel(channel_id)
        return channel.name if channel is not None else None

    def channel_access(self, guild_id: int, channel_id: int, user_id: int) -> ChannelAccess:
        """``user_id``'s permissions in ``channel_id``, as Discord computes them from the roles
        and overwrites the gateway sent (see :mod:`bot.permissions`)."""
        cache = self._bot.cache
        is_thread = False
        channel: hikari.PermissibleGuildChannel | None = cache.get_guild_channel(channel_id)
        if channel is None and (thread := cache.get_thread(channel_id)) is not None:
            is_thread = True
            channel = cache.get_guild_channel(thread.parent_id)
        if channel is None or channel.guild_id != guild_id:
            return ChannelAccess(channel_id, None, problem="I do not know this channel")
        access = ChannelAccess(
            int(channel.id),
            channel.name,
            is_thread=is_thread,
            is_voice=isinstance(channel, hikari.GuildVoiceChannel | hikari.GuildStageChannel),
        )
        guild = cache.get_guild(guild_id)
        member = cache.get_member(guild_id, user_id)
        if guild is None or member is None:
            return dataclasses.replace(access, problem="this server is not in my cache yet")
        roles = cache.get_roles_view_for_guild(guild_id)
        if guild_id not in roles:
            return dataclasses.replace(access, problem="this server's roles are not in my cache")
        permissions = permissions_in(
            guild_id=guild_id,
            owner_id=int(guild.owner_id),
            member_id=user_id,
            role_ids=[int(role_id) for role_id in member.role_ids],
            role_permissions={int(r): role.permissions for r, role in roles.items()},
            overwrites={int(t): o for t, o in channel.permission_overwrites.items()},
            timed_out=member.communication_disabled_until() is not None,
        )
        return dataclasses.replace(access, permissions=permissions)


def _failed(what: str, channel_id: int, message_id: int, exc: hikari.HikariError) -> Delivery:
    """A refused edit or delete: gone (404: the message or channel no longer exists), or
    failed for another reason (logged)."""
    if isinstance(exc, hikari.NotFoundError):
        return Delivery.GONE
    _log.warning("could not %s message %s in channel %s: %s", what, message_id, channel_id, exc)
    return Delivery.FAILED
