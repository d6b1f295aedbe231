"""JSON builders for the fake Discord: users, members, channels, guilds, messages.

Why a separate module: the server logic in :mod:`peers.fake_discord` stays readable when
the (long) payload shapes live here. Every shape is a superset of the smallest payload hikari 2.6's
entity factory accepts (checked by deleting keys one at a time), filled in with what Discord
really sends, so a deserialiser change in hikari shows up as a failing self-test, not a silent
drop (hikari swallows payloads it cannot parse).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "EVERY_PERMISSION",
    "JSON",
    "MEMBER_OVERWRITE",
    "ROLE_OVERWRITE",
    "Guild",
    "Overwrite",
    "Role",
    "channel_payload",
    "guild_create_payload",
    "guild_roles_payload",
    "member_payload",
    "message_payload",
    "now_iso",
    "numbered_components",
    "overwrite_payload",
    "role_payload",
    "user_payload",
    "voice_state_payload",
]

JSON = dict[str, Any]

# Every permission that is neither administrator nor moderation (as captured): the fake's
# @everyone holds it by default, so nothing is forbidden until a test forbids it, and channel
# overwrites still take effect (ADMINISTRATOR would override them).
ALL_PERMISSIONS = "2248473465835073"
ADMINISTRATOR = 1 << 3
EVERY_PERMISSION = (1 << 53) - 1
"""Every bit up to BYPASS_SLOWMODE (1 << 52): what the owner and an administrator hold."""
ROLE_OVERWRITE = 0
MEMBER_OVERWRITE = 1
TEXT_CHANNEL_TYPE = 0
VOICE_CHANNEL_TYPE = 2
_JOINED_AT = "2024-01-01T00:00:00.000000+00:00"


@dataclass
class Role:
    """A role besides @everyone (whose permissions are :attr:`Guild.everyone_permissions`).

    ``bot_id``: the role Discord creates for a bot invited with permissions (``managed``, with
    ``tags.bot_id``); it cannot be given to anyone else.
    """

    id: int
    name: str
    permissions: int = 0
    position: int = 1
    bot_id: int | None = None


@dataclass
class Overwrite:
    """A channel permission overwrite for a role (@everyone's id is the guild's) or a member."""

    id: int
    type: int  # ROLE_OVERWRITE or MEMBER_OVERWRITE
    allow: int = 0
    deny: int = 0


@dataclass
class Guild:
    """One guild as the fake knows it; mutable so tests can move users around.

    Permissions: ``everyone_permissions`` (the @everyone role), ``roles`` (the others),
    ``member_roles`` (user id -> role ids, the bot included) and ``overwrites`` (channel id ->
    its permission overwrites). The defaults forbid nothing.
    """

    id: int
    name: str
    text_channel_ids: list[int] = field(default_factory=list)
    voice_channel_ids: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    user_voice: dict[int, int] = field(default_factory=dict)
    owner_id: int = 222222222222222222
    everyone_permissions: int = int(ALL_PERMISSIONS)
    roles: list[Role] = field(default_factory=list)
    member_roles: dict[int, list[int]] = field(default_factory=dict)
    overwrites: dict[int, list[Overwrite]] = field(default_factory=dict)
    emojis: int = 0
    """Custom emojis the server has (a real one: up to hundreds); sent in GUILD_CREATE."""

    def role(self, role_id: int) -> Role | None:
        return next((role for role in self.roles if role.id == role_id), None)


def now_iso() -> str:
    """Discord timestamps are ISO 8601 with microseconds and an explicit UTC offset."""
    return datetime.datetime.now(datetime.UTC).isoformat()


def user_payload(user_id: int, username: str, *, bot: bool = False) -> JSON:
    """A user object; ``avatar`` and ``discriminator`` are required by hikari."""
    return {
        "id": str(user_id),
        "username": username,
        "discriminator": "0",
        "global_name": None if bot else username.title(),
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def member_payload(
    user: JSON, *, guild_id: int | None = None, roles: list[int] | None = None
) -> JSON:
    """A guild member; interactions add ``permissions``, voice states carry one for the user.

    ``roles`` never lists @everyone (Discord leaves it implied)."""
    payload: JSON = {
        "user": user,
        "nick": None,
        "avatar": None,
        "roles": [str(role_id) for role_id in roles or []],
        "joined_at": _JOINED_AT,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    return payload


def channel_payload(guild: Guild, channel_id: int) -> JSON:
    """A guild channel; text channels need ``topic``, voice ones ``bitrate`` and ``user_limit``."""
    voice = channel_id in guild.voice_channel_ids
    ids = guild.text_channel_ids + guild.voice_channel_ids
    payload: JSON = {
        "id": str(channel_id),
        "type": VOICE_CHANNEL_TYPE if voice else TEXT_CHANNEL_TYPE,
        "guild_id": str(guild.id),
        "name": f"voice-{ids.index(channel_id)}" if voice else f"text-{ids.index(channel_id)}",
        "position": ids.index(channel_id),
        "permission_overwrites": [
            overwrite_payload(o) for o in guild.overwrites.get(channel_id, [])
        ],
        "parent_id": None,
        "nsfw": False,
        "flags": 0,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }
    if voice:
        payload.update(bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
    else:
        payload.update(topic=None, default_auto_archive_duration=1440)
    return payload


def overwrite_payload(overwrite: Overwrite) -> JSON:
    """Discord sends ``type`` as 0 (role) or 1 (member), ``allow``/``deny`` as strings."""
    return {
        "id": str(overwrite.id),
        "type": overwrite.type,
        "allow": str(overwrite.allow),
        "deny": str(overwrite.deny),
    }


def role_payload(
    role_id: int, name: str, permissions: int, *, position: int = 0, bot_id: int | None = None
) -> JSON:
    """A role; a bot's own role is ``managed`` and says whose it is in ``tags``."""
    payload: JSON = {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": bot_id is not None,
        "mentionable": False,
        "flags": 0,
    }
    if bot_id is not None:
        payload["tags"] = {"bot_id": str(bot_id)}
    return payload


def guild_roles_payload(guild: Guild) -> list[JSON]:
    """@everyone (id = the guild's, position 0), then the guild's other roles."""
    everyone = role_payload(guild.id, "@everyone", guild.everyone_permissions)
    others = [
        role_payload(r.id, r.name, r.permissions, position=r.position, bot_id=r.bot_id)
        for r in guild.roles
    ]
    return [everyone, *others]


def voice_state_payload(
    guild_id: int,
    user_id: int,
    channel_id: int | None,
    session_id: str,
    *,
    self_mute: bool = False,
    self_deaf: bool = False,
    member: JSON | None = None,
) -> JSON:
    """A voice state; all ten flags and ids are required by hikari's deserialiser."""
    payload: JSON = {
        "guild_id": str(guild_id),
        "channel_id": None if channel_id is None else str(channel_id),
        "user_id": str(user_id),
        "session_id": session_id,
        "deaf": False,
        "mute": False,
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_video": False,
        "self_stream": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if member is not None:
        payload["member"] = member
    return payload


def guild_create_payload(
    guild: Guild,
    *,
    members: list[JSON],
    voice_states: list[JSON],
) -> JSON:
    """GUILD_CREATE: every list key must be present (empty is fine) or hikari drops the event."""
    channel_ids = guild.text_channel_ids + guild.voice_channel_ids
    channels = []
    for cid in channel_ids:
        channel = channel_payload(guild, cid)
        del channel["guild_id"]  # Discord omits it inside GUILD_CREATE
        channels.append(channel)
    return {
        "id": str(guild.id),
        "unavailable": False,
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "owner_id": str(guild.owner_id),
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
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": None,
        "nsfw_level": 0,
        "nsfw": False,
        "large": False,
        "member_count": len(guild.members) + 1,
        "joined_at": _JOINED_AT,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "premium_progress_bar_enabled": False,
        "safety_alerts_channel_id": None,
        "roles": guild_roles_payload(guild),
        "emojis": [_emoji_payload(guild.id + 5_000 + n, f"emoji{n}") for n in range(guild.emojis)],
        "stickers": [],
        "channels": channels,
        "threads": [],
        "members": members,
        "voice_states": voice_states,
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def _emoji_payload(emoji_id: int, name: str) -> JSON:
    # Without the Manage Expressions permission Discord leaves out "user".
    return {
        "id": str(emoji_id),
        "name": name,
        "roles": [],
        "require_colons": True,
        "managed": False,
        "animated": False,
        "available": True,
    }


def message_payload(
    message_id: int,
    channel_id: int,
    author: JSON,
    body: JSON,
    *,
    flags: int = 0,
    webhook_id: int | None = None,
    guild_id: int | None = None,
    edited: bool = False,
) -> JSON:
    """A message as Discord returns it after a create or an edit, built from the request body."""
    embeds = [{"type": "rich", **embed} for embed in body.get("embeds") or []]
    payload: JSON = {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": body.get("content") or "",
        "timestamp": now_iso(),
        "edited_timestamp": now_iso() if edited else None,
        "tts": bool(body.get("tts", False)),
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds,
        "components": numbered_components(body.get("components") or []),
        "pinned": False,
        "type": 0,
        "flags": flags,
    }
    if webhook_id is not None:
        payload["webhook_id"] = str(webhook_id)
        payload["application_id"] = str(webhook_id)
    if guild_id is not None:
        payload["guild_id"] = str(guild_id)
    return payload


def numbered_components(rows: list[JSON]) -> list[JSON]:
    """Components as Discord stores them: each one given a numeric ``id`` (1, 2, ... depth
    first, the action rows included) unless the bot chose its own."""
    taken = {c["id"] for row in rows for c in (row, *(row.get("components") or [])) if "id" in c}
    numbers = (n for n in range(1, 10_000) if n not in taken)
    numbered = []
    for row in rows:
        row_id = row["id"] if "id" in row else next(numbers)
        children = [
            c if "id" in c else {**c, "id": next(numbers)} for c in row.get("components") or []
        ]
        numbered.append({**row, "id": row_id, "components": children})
    return numbered
