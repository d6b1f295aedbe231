"""JSON builders for the fake Discord: users, members, channels, guilds, messages.

Why a separate module: the server logic in :mod:`tests.peers.fake_discord` stays readable when
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
    "ALL_PERMISSIONS",
    "JSON",
    "Guild",
    "channel_payload",
    "guild_create_payload",
    "member_payload",
    "message_payload",
    "now_iso",
    "user_payload",
    "voice_state_payload",
]

JSON = dict[str, Any]

# Every permission bit Discord had when these payloads were captured; what an admin holds.
ALL_PERMISSIONS = "2248473465835073"
TEXT_CHANNEL_TYPE = 0
VOICE_CHANNEL_TYPE = 2
_JOINED_AT = "2024-01-01T00:00:00.000000+00:00"


@dataclass
class Guild:
    """One guild as the fake knows it; mutable so tests can move users around."""

    id: int
    name: str
    text_channel_ids: list[int] = field(default_factory=list)
    voice_channel_ids: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    user_voice: dict[int, int] = field(default_factory=dict)
    owner_id: int = 222222222222222222


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


def member_payload(user: JSON, *, guild_id: int | None = None) -> JSON:
    """A guild member; interactions add ``permissions``, voice states carry one for the user."""
    payload: JSON = {
        "user": user,
        "nick": None,
        "avatar": None,
        "roles": [],
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
        "permission_overwrites": [],
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
    everyone = {
        "id": str(guild.id),
        "name": "@everyone",
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": 0,
        "permissions": ALL_PERMISSIONS,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
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
        "roles": [everyone],
        "emojis": [],
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
        "components": body.get("components") or [],
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
