"""The client's only contact with hikari: voice events in, gateway op 4 out.

hikari's own voice component stays idle (we never call ``bot.voice.connect_to``), so these
listeners see the raw voice events and Lavalink, not hikari, opens the voice connection.
"""

from __future__ import annotations

import logging

import hikari

from .client import LavalinkClient

__all__ = ["HikariVoiceGateway", "attach"]

_log = logging.getLogger(__name__)


class HikariVoiceGateway:
    """A :class:`~.client.VoiceGateway` that sends op 4 through a hikari ``GatewayBot``."""

    def __init__(self, bot: hikari.GatewayBot) -> None:
        self._bot = bot

    async def update_voice_state(self, guild_id: int, channel_id: int | None) -> None:
        # Deafened: the bot never listens, and Discord then sends it no audio at all.
        if channel_id is None:
            await self._bot.update_voice_state(guild_id, None)
        else:
            await self._bot.update_voice_state(guild_id, channel_id, self_deaf=True)


def attach(bot: hikari.GatewayBot, client: LavalinkClient) -> None:
    """Forward the bot's own voice events from ``bot`` to ``client``."""

    async def on_voice_state(event: hikari.VoiceStateUpdateEvent) -> None:
        if event.state.user_id != client.user_id:
            return
        client.handle_voice_state(event.guild_id, event.state.session_id, event.state.channel_id)

    async def on_voice_server(event: hikari.VoiceServerUpdateEvent) -> None:
        client.handle_voice_server(event.guild_id, event.token, event.raw_endpoint)

    bot.subscribe(hikari.VoiceStateUpdateEvent, on_voice_state)
    bot.subscribe(hikari.VoiceServerUpdateEvent, on_voice_server)
