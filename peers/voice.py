"""Discord's voice server, as Lavalink meets it: which voice credentials connect."""

from __future__ import annotations

from peers.fake_discord import FakeDiscord, VoiceCredentials
from peers.fake_lavalink import VoiceCheck

__all__ = ["discord_voice_check", "voice_of"]


def voice_of(creds: VoiceCredentials) -> dict[str, str]:
    """The voice object Lavalink must hold for these credentials."""
    return {
        "token": creds.token,
        "endpoint": creds.endpoint,
        "sessionId": creds.session_id,
        "channelId": str(creds.channel_id),
    }


def discord_voice_check(discord: FakeDiscord) -> VoiceCheck:
    """Discord's voice server: only the guild's latest session id + token + endpoint connect.

    The channel must be where Discord has the bot now (a moderator may have moved it).
    Anything else (a new session id with the previous token, say) is refused with 4006, as a
    real voice server refuses a session it does not know.
    """

    def check(guild_id: int, voice: dict[str, str]) -> int | None:
        latest = [c for c in discord.voice_credentials if c.guild_id == guild_id]
        if not latest or discord.bot_voice_channel(guild_id) is None:
            return 4006
        expected = {**voice_of(latest[-1]), "channelId": str(discord.bot_voice_channel(guild_id))}
        return None if voice == expected else 4006

    return check
