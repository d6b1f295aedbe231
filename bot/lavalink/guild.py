"""One guild's player as this client knows it: every per-guild fact lives in one object.

Discord's voice credentials, what was forwarded to Lavalink, the node holding the player,
what it plays (to rebuild it elsewhere), its last position report, the stall watch and the
back-off of voice repairs. Forgetting a guild drops this one object, so nothing per guild
outlives it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .filters import Filters
from .models import PlayerState, VoiceState

if TYPE_CHECKING:
    from .node import Node

__all__ = [
    "Attempts",
    "GuildPlayer",
    "GuildPlayers",
    "Playback",
    "PlayerSnapshot",
    "VoiceCredentials",
]


@dataclasses.dataclass(slots=True)
class Playback:
    """What a guild's player plays, as last sent or reported; enough to rebuild it elsewhere."""

    encoded: str
    user_data: dict[str, Any]
    paused: bool = False
    volume: int = 100
    end_time: int | None = None


@dataclasses.dataclass(slots=True)
class VoiceCredentials:
    """The bot's voice connection as Discord last described it, in two events of either order."""

    session_id: str | None = None
    channel_id: int | None = None
    token: str | None = None
    endpoint: str | None = None

    def complete(self) -> VoiceState | None:
        """All four values, as Lavalink takes them; ``None`` while one is missing."""
        if self.session_id and self.channel_id and self.token and self.endpoint:
            return VoiceState(self.token, self.endpoint, self.session_id, str(self.channel_id))
        return None


@dataclasses.dataclass(slots=True)
class Attempts:
    """Recent tries of one repair, for back-off; ``pending`` while one is scheduled."""

    times: list[float] = dataclasses.field(default_factory=list)
    pending: bool = False

    def recent(self, now: float, window: float) -> int:
        """How many tries fall within the last ``window`` seconds (older ones are dropped)."""
        self.times = [t for t in self.times if now - t < window]
        return len(self.times)


@dataclasses.dataclass(frozen=True, slots=True)
class PlayerSnapshot:
    """A guild's live player at one moment, as this client knows it (no request made)."""

    guild_id: int
    node: str | None
    """The node holding the player, connected or not (``None``: no player placed)."""
    node_connected: bool
    voice_channel_id: int | None
    """The bot's voice channel as Discord last reported it."""
    voice_heard_at: float
    """``time.monotonic()`` of Discord's last voice update for the guild (0: none yet)."""
    encoded: str | None
    """The track the player plays, as last sent or reported (``None``: nothing)."""
    user_data: dict[str, Any]
    paused: bool
    position: int | None
    """Milliseconds, extrapolated from the last report on the current track (``None``
    before the first, and while no track plays)."""


@dataclasses.dataclass(slots=True)
class GuildPlayer:
    """Everything the client holds about one guild's player and voice connection."""

    guild_id: int
    voice: VoiceCredentials = dataclasses.field(default_factory=VoiceCredentials)
    # The values last accepted by Lavalink, and on which Lavalink session.
    forwarded: VoiceState | None = None
    forwarded_to: str | None = None
    # The node holding this guild's player, and what it plays (to move it on failover).
    node: Node | None = None
    playback: Playback | None = None
    # Filters belong to the player, not the track: they outlive track changes.
    filters: Filters | None = None
    # The last playerUpdate and the wall-clock time it arrived.
    sample: tuple[PlayerState, float] | None = None
    # Position, monotonic time and track of the last movement seen, for the stall watch.
    progress: tuple[int, float, str] | None = None
    # Re-joins after a stale 4006, and re-sends after a transient close, for back-off.
    rejoins: Attempts = dataclasses.field(default_factory=Attempts)
    resends: Attempts = dataclasses.field(default_factory=Attempts)
    # Re-joining stopped and VoiceFailed went out; until the next connect() nothing more
    # is tried or reported for this guild.
    gave_up: bool = False
    error: Exception | None = None
    leaving: bool = False
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # time.monotonic() of Discord's last word on this guild's voice (state or server update).
    heard_at: float = 0.0
    # Voice, play and destroy requests for one guild never race.
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    def notify(self) -> None:
        """Wake whoever waits in ``connect()`` for the voice forwarding to settle."""
        self.changed.set()
        self.changed = asyncio.Event()

    def out_of_voice(self) -> None:
        """Discord has the bot in no channel here: every credential held is dead."""
        self.voice = VoiceCredentials()
        self.forward_again()
        self.notify()

    def forward_again(self) -> None:
        """Forget what Lavalink was sent, so the next credentials go out even if unchanged."""
        self.forwarded = self.forwarded_to = None

    def player_gone(self) -> None:
        """The node's player is gone (node restarted or lost); what it played is kept, to
        rebuild it from."""
        self.node = None
        self.forward_again()
        self.filters = None

    def reset(self) -> None:
        """The player was destroyed on purpose: nothing of it is kept."""
        self.player_gone()
        self.playback = None
        self.sample = None
        self.progress = None

    def position(self) -> int | None:
        """The position now (ms), extrapolated from the last ``playerUpdate``; ``None`` before
        the first, and while no track plays (the last report was of a track that ended).

        The clock runs only while voice is connected and the player is not paused, as
        Lavalink's does, and at the timescale filter's ``speed * rate``.
        """
        if self.sample is None or self.playback is None:
            return None  # a player with no track has no position, whatever it last reported
        state, received = self.sample
        if not state.connected or self.playback.paused:
            return state.position
        rate = 1.0
        timescale = self.filters.timescale if self.filters is not None else None
        if timescale is not None:
            rate = timescale.speed * timescale.rate
        return state.position + int((time.time() - received) * 1000 * rate)

    def freeze(self, now: float) -> None:
        """Pin the position where it stands now, as a disconnected sample."""
        position = self.position()
        if position is not None:
            state = PlayerState(time=int(now * 1000), position=position, connected=False)
            self.sample = (state, now)

    def stalled(self, state: PlayerState, stall_timeout: float) -> bool:
        """Record ``state``; whether the position stood still for ``stall_timeout`` seconds
        while the player should be playing (once per stall: the clock then restarts)."""
        playing = self.playback
        if playing is None or playing.paused or not state.connected:
            self.progress = None
            return False
        now = time.monotonic()
        last = self.progress
        if last is None or last[0] != state.position or last[2] != playing.encoded:
            self.progress = (state.position, now, playing.encoded)
            return False
        if now - last[1] < stall_timeout:
            return False
        self.progress = (state.position, now, playing.encoded)
        return True

    def snapshot(self) -> PlayerSnapshot:
        playing = self.playback
        return PlayerSnapshot(
            guild_id=self.guild_id,
            node=self.node.name if self.node is not None else None,
            node_connected=self.node is not None and self.node.available,
            voice_channel_id=self.voice.channel_id,
            voice_heard_at=self.heard_at,
            encoded=playing.encoded if playing is not None else None,
            user_data=dict(playing.user_data) if playing is not None else {},
            paused=playing is not None and playing.paused,
            position=self.position(),
        )


class GuildPlayers:
    """Every guild the client holds a :class:`GuildPlayer` for, by guild id."""

    __slots__ = ("_by_guild",)

    def __init__(self) -> None:
        self._by_guild: dict[int, GuildPlayer] = {}

    def get(self, guild_id: int) -> GuildPlayer | None:
        return self._by_guild.get(guild_id)

    def ensure(self, guild_id: int) -> GuildPlayer:
        player = self._by_guild.get(guild_id)
        if player is None:
            player = self._by_guild[guild_id] = GuildPlayer(guild_id)
        return player

    def drop(self, guild_id: int) -> None:
        self._by_guild.pop(guild_id, None)

    def on(self, node: Node) -> list[GuildPlayer]:
        """The players ``node`` holds (a list: callers change placements while iterating)."""
        return [player for player in self._by_guild.values() if player.node is node]

    def __iter__(self) -> Iterator[GuildPlayer]:
        return iter(list(self._by_guild.values()))

    def __len__(self) -> int:
        return len(self._by_guild)
