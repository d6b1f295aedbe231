"""The queue service's view of Discord, backed by hikari's cache and REST client."""

from __future__ import annotations

import logging

import hikari

__all__ = ["HikariDiscordView"]

_log = logging.getLogger(__name__)


class HikariDiscordView:
    """Implements :class:`bot.services.DiscordView` for a ``hikari.GatewayBot``."""

    def __init__(self, bot: hikari.GatewayBot) -> None:
        self._bot = bot

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        state = self._bot.cache.get_voice_state(guild_id, user_id)
        return int(state.channel_id) if state is not None and state.channel_id else None

    def listeners(self, guild_id: int, channel_id: int) -> int:
        states = self._bot.cache.get_voice_states_view_for_channel(guild_id, channel_id)
        # Cached voice states carry their member; one without is a person, not a bot.
        return sum(1 for state in states.values() if not (state.member and state.member.is_bot))

    async def announce(self, channel_id: int, text: str) -> None:
        try:
            await self._bot.rest.create_message(
                channel_id, text, user_mentions=False, role_mentions=False, mentions_everyone=False
            )
        except hikari.HikariError as exc:
            # Missing permissions or a deleted channel must not break playback.
            _log.warning("could not post in channel %s: %s", channel_id, exc)
