"""The Discord gateway bot as this project runs it: what it listens to and keeps, how it talks.

hikari's defaults suit a bot that reads everything; this one needs voice states, members,
roles and channels (who listens, who may do what, where to answer), and nothing else.
"""

from __future__ import annotations

import hikari

from bot.config import Settings

__all__ = ["CACHED", "INTENTS", "gateway_bot"]

INTENTS = hikari.Intents.GUILDS | hikari.Intents.GUILD_VOICE_STATES
CACHED = (
    hikari.api.CacheComponents.GUILDS
    | hikari.api.CacheComponents.GUILD_CHANNELS
    | hikari.api.CacheComponents.GUILD_THREADS
    | hikari.api.CacheComponents.ROLES
    | hikari.api.CacheComponents.MEMBERS
    | hikari.api.CacheComponents.VOICE_STATES
    | hikari.api.CacheComponents.ME
)
"""What hikari keeps of what Discord sends: what voice, permissions and channels need."""


def gateway_bot(settings: Settings) -> hikari.GatewayBot:
    """A hikari ``GatewayBot`` for ``settings`` (not started)."""
    return hikari.GatewayBot(
        settings.discord_token,
        rest_url=settings.discord_api_url,
        intents=INTENTS,
        # hikari closes each REST connection after its request by default (for Windows);
        # kept alive, a controller edit or an interaction answer needs no new connection
        # (and, against Discord, no new TLS handshake).
        http_settings=hikari.impl.HTTPSettings(force_close_transports=False),
        # Only what the bot reads: a server's emojis, stickers, invites and messages would
        # cost memory per server (hundreds of emojis in some) and serve nothing.
        cache_settings=hikari.impl.CacheSettings(components=CACHED),
        banner=None,
        logs=None,
        # Its advice (run with -O) is a line of noise in every start and every failure.
        suppress_optimization_warning=True,
    )
