"""The two outside parties as the service sees them: exactly what it uses, nothing more.

:class:`bot.lavalink.LavalinkClient` satisfies :class:`Lavalink` structurally (``bot/app.py``
passes one, and mypy checks it there), and so does the tests' in-memory stand-in. The client's
internals may change freely; only these names and signatures are relied on.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from bot import lavalink

from .notices import Announcement
from .views import ControllerView

__all__ = ["Delivery", "DiscordView", "Lavalink", "VoiceTruth"]


class Delivery(enum.Enum):
    """How an edit or deletion of a bot message went."""

    DONE = "done"
    GONE = "gone"
    """The message (or its channel) no longer exists."""
    FAILED = "failed"
    """Anything else (permissions, Discord's trouble); logged by the view."""


class VoiceTruth(Protocol):
    """What the reconciler reads to compare promises with what plays."""

    @property
    def available(self) -> bool:
        """Whether a node is ready to take requests now."""

    @property
    def node_names(self) -> tuple[str, ...]: ...

    def node_of(self, guild_id: int, *, connected: bool = True) -> str | None:
        """The node holding the guild's player (with ``connected=False``, also a dropped one)."""

    def snapshot(self, guild_id: int) -> lavalink.PlayerSnapshot | None:
        """The guild's live player and voice connection as the client knows them: the one
        place the service reads live playback state from (``None``: nothing held)."""

    def voice_channel(self, guild_id: int) -> int | None:
        """The bot's voice channel in the guild as Discord last reported it."""

    def voice_heard_at(self, guild_id: int) -> float:
        """``time.monotonic()`` of Discord's last voice update for the guild (0: none)."""

    def track_of(self, guild_id: int) -> tuple[str, Mapping[str, Any]] | None:
        """The player's track and its ``userData`` as the client knows them (no copy: the
        per-report path reads it ~500 times a second at 2,500 guilds)."""

    async def get_players(self, node_name: str) -> tuple[lavalink.Player, ...]: ...

    async def get_player(self, guild_id: int) -> lavalink.Player | None:
        """The guild's player as its node reports it (``None``: no connected node holds it;
        :class:`~bot.lavalink.NotFoundError`: the node has none)."""

    def events_pending(self, guild_id: int) -> bool:
        """Events of the guild received but not yet handled: the node is ahead of the service."""


class Lavalink(VoiceTruth, Protocol):
    """The Lavalink client as the queue service drives it."""

    @property
    def resume_timeout(self) -> int:
        """Seconds a node keeps players alive after this client's socket drops."""

    def voice_session_ended(self, guild_ids: Iterable[int]) -> None:
        """Forget voice credentials Discord ended without saying so."""

    async def refresh_voice(self, guild_id: int) -> bool:
        """Send the held voice credentials again; ``False``: none are held."""

    async def load_tracks(self, identifier: str) -> lavalink.LoadResult: ...

    async def connect(self, guild_id: int, channel_id: int) -> None: ...

    async def disconnect(self, guild_id: int) -> None: ...

    async def forget(self, guild_id: int) -> None: ...

    async def play(
        self,
        guild_id: int,
        encoded: str,
        *,
        position: int = 0,
        paused: bool = False,
        volume: int | None = None,
        filters: lavalink.Filters | None = None,
        user_data: dict[str, Any] | None = None,
    ) -> object: ...

    async def pause(self, guild_id: int, paused: bool = True) -> object: ...

    async def stop(self, guild_id: int) -> object: ...

    async def seek(self, guild_id: int, position: int) -> object: ...

    async def update_player(self, guild_id: int, update: lavalink.UpdatePlayer) -> object: ...

    async def clear_session(
        self,
        node_name: str,
        session_id: str,
        *,
        user_id: int,
        drop: Callable[[int], bool],
        expires_in: float,
    ) -> lavalink.SessionCleared:
        """Destroy the players of the guilds ``drop`` picks in another process's paused
        session, which keeps ``expires_in`` seconds for its other players."""


class DiscordView(Protocol):
    """What the service needs to know of, and say to, Discord."""

    def shard_of(self, guild_id: int) -> int:
        """The gateway shard ``guild_id`` is on: each has its own budget of voice joins."""

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        """The voice channel ``user_id`` is in, from the gateway cache."""

    def listeners(self, guild_id: int, channel_id: int) -> int:
        """How many people (bots not counted) are in voice channel ``channel_id`` now."""

    def humans_in(self, guild_id: int, channel_id: int) -> frozenset[int]:
        """Who (bots not counted) is in voice channel ``channel_id`` now, from the cache."""

    def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        """The member's role ids as last seen (``None``: the member is not known)."""

    def manages_guild(self, guild_id: int, user_id: int) -> bool:
        """The member owns the guild, or holds Manage Server or Administrator through a role
        (or @everyone); ``False`` when the cache cannot tell."""

    async def announce(self, channel_id: int, announcement: Announcement) -> None:
        """Post ``announcement`` in a text channel; failures are the implementation's to log."""

    async def post_controller(self, channel_id: int, view: ControllerView) -> int | None:
        """Post the now-playing controller; its message id, or ``None`` (logged) if refused."""

    async def edit_controller(
        self, channel_id: int, message_id: int, view: ControllerView
    ) -> Delivery:
        """Show ``view`` on the controller message ``message_id``."""

    async def delete_controller(self, channel_id: int, message_id: int) -> Delivery:
        """Delete the controller message ``message_id``."""
