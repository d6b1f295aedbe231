"""In-memory stand-ins for the queue service's two outside parties: Lavalink and Discord.

:class:`RecordingLavalink` has the slice of :class:`bot.lavalink.LavalinkClient` the service
calls (it satisfies :class:`bot.services.Lavalink`). It keeps one player per guild the way
Lavalink does (a new track unpauses unless ``paused`` is sent; volume and filters persist
across tracks), records every call, and lets a test end the playing track as Lavalink would
(``TrackEndEvent``). Searching ``"N songs"`` yields a playlist of N new tracks; any other
search yields one new track.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
import sqlalchemy as sa

from bot import lavalink
from bot.extensions.sentences import announcement_text, error_text
from bot.lavalink.models import Playlist, PlaylistInfo
from bot.services import Announcement, QueueService, ServiceError, in_turn, session_keeper
from bot.services.ports import Delivery
from bot.services.views import ControllerView
from bot.storage import Repository

__all__ = [
    "GUILD",
    "LISTENER",
    "TEXT",
    "VOICE",
    "Bot",
    "FailingWrites",
    "FakeDiscordView",
    "LivePlayer",
    "RecordingLavalink",
    "refused",
    "track",
]

GUILD = 1
TEXT = 2
VOICE = 500
LISTENER = 7
_numbers = itertools.count(1)


def track(title: str, length: int = 180_000) -> lavalink.Track:
    n = next(_numbers)
    info = lavalink.TrackInfo(
        identifier=f"id{n}",
        is_seekable=True,
        author="Artist",
        length=length,
        is_stream=False,
        position=0,
        title=title,
        uri=f"https://example.com/{n}",
    )
    return lavalink.Track(encoded=f"enc{n}", info=info)


@dataclasses.dataclass
class LivePlayer:
    encoded: str | None = None
    user_data: dict[str, Any] = dataclasses.field(default_factory=dict)
    position: int = 0
    paused: bool = False
    volume: int = 100
    filters: lavalink.Filters | None = None
    tracks: dict[str, lavalink.Track] = dataclasses.field(default_factory=dict)


class RecordingLavalink:
    def __init__(self, node: str = "main") -> None:
        self.node = node
        self.listener: lavalink.EventListener | None = None
        self.players: dict[int, LivePlayer] = {}
        self.channels: dict[int, int] = {}
        self.calls: list[tuple[str, int]] = []
        self.fail = False
        """Every request raises :class:`lavalink.LavalinkError` (a node that went away)."""
        self.available = True
        self.players_gate: asyncio.Event | None = None
        """Set: :meth:`get_players` answers only once it is set (a request in flight)."""
        self.players_asked = asyncio.Event()
        self.players_read_singly = 0
        """Requests for one guild's player (:meth:`get_player`)."""
        self.pending_events: set[int] = set()
        """Guilds whose events the client received but has not handed to the service yet."""
        self.paused_sessions: dict[str, set[int]] = {}
        """Other processes' paused sessions on this node: id -> guilds with a player in it."""
        self.busy: dict[str, int] = {}
        """Session id -> how many more clears find it held by another process."""
        self.clears: list[tuple[str, float]] = []
        """``(session id, expires_in)`` of every clear asked for, in order."""

    # --- the LavalinkClient surface the service uses ---------------------------------------

    def set_listener(self, listener: lavalink.EventListener) -> None:
        self.listener = listener

    @property
    def node_names(self) -> tuple[str, ...]:
        return (self.node,)

    @property
    def resume_timeout(self) -> int:
        return 60

    def node_of(self, guild_id: int, *, connected: bool = True) -> str | None:
        return self.node if guild_id in self.players else None

    def events_pending(self, guild_id: int) -> bool:
        return guild_id in self.pending_events

    async def get_players(self, node_name: str) -> tuple[lavalink.Player, ...]:
        """The players as a node lists them when it answers (after :attr:`players_gate`)."""
        self.players_asked.set()
        if self.players_gate is not None:
            await self.players_gate.wait()
        listed = []
        for guild_id, live in self.players.items():
            track = None
            if live.encoded is not None:
                info = lavalink.TrackInfo(
                    identifier="x", is_seekable=True, author="", length=180_000,
                    is_stream=False, position=live.position, title="",
                )  # fmt: skip
                track = lavalink.Track(encoded=live.encoded, info=info, user_data=live.user_data)
            channel = self.channels.get(guild_id)
            listed.append(
                lavalink.Player(
                    guild_id=guild_id,
                    track=track,
                    volume=live.volume,
                    paused=live.paused,
                    state=lavalink.PlayerState(time=0, position=live.position, connected=True),
                    voice=lavalink.VoiceState("t", "e", "s", str(channel) if channel else None),
                )
            )
        return tuple(listed)

    async def get_player(self, guild_id: int) -> lavalink.Player | None:
        """One player as the node reports it (read as :meth:`get_players` reads them)."""
        self.players_read_singly += 1
        for player in await self.get_players(self.node):
            if player.guild_id == guild_id:
                return player
        raise lavalink.NotFoundError(404, "Player not found", f"/players/{guild_id}")

    def voice_session_ended(self, guild_ids: Iterable[int]) -> None:
        pass  # no credentials are held here: a connect always joins

    async def refresh_voice(self, guild_id: int) -> bool:
        return guild_id in self.channels

    def snapshot(self, guild_id: int) -> lavalink.PlayerSnapshot | None:
        player = self.players.get(guild_id)
        channel_id = self.channels.get(guild_id)
        if player is None and channel_id is None:
            return None
        return lavalink.PlayerSnapshot(
            guild_id=guild_id,
            node=self.node if player is not None else None,
            node_connected=player is not None and self.available,
            voice_channel_id=channel_id,
            voice_heard_at=0.0,
            encoded=player.encoded if player is not None else None,
            user_data=dict(player.user_data) if player is not None else {},
            paused=player is not None and player.paused,
            # No playerUpdate here: the service extrapolates from what it stored.
            position=None,
        )

    def voice_channel(self, guild_id: int) -> int | None:
        """Where the bot is in voice (for assertions)."""
        return self.channels.get(guild_id)

    def voice_heard_at(self, guild_id: int) -> float:
        return 0.0

    def track_of(self, guild_id: int) -> tuple[str, Mapping[str, Any]] | None:
        player = self.players.get(guild_id)
        if player is None or player.encoded is None:
            return None
        return player.encoded, player.user_data

    async def load_tracks(self, identifier: str) -> lavalink.LoadResult:
        terms = identifier.partition(":")[2]
        if match := re.search(r"(\d+) songs$", terms):
            tracks = tuple(track(f"{terms} #{i}") for i in range(int(match[1])))
            info = PlaylistInfo(name=terms)
            return lavalink.PlaylistResult(data=Playlist(info=info, tracks=tracks))
        return lavalink.SearchResult(data=(track(terms),))

    async def connect(self, guild_id: int, channel_id: int) -> None:
        self._request("connect", guild_id)
        self.channels[guild_id] = channel_id

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
    ) -> None:
        self._request("play", guild_id)
        player = self.players.setdefault(guild_id, LivePlayer())
        player.encoded, player.user_data = encoded, dict(user_data or {})
        player.position, player.paused = position, paused
        if volume is not None:
            player.volume = volume
        if filters is not None:
            player.filters = filters

    async def disconnect(self, guild_id: int) -> None:
        # Like the real client: a node that is down cannot fail a leave (op 4 goes to Discord).
        self.calls.append(("disconnect", guild_id))
        self.players.pop(guild_id, None)
        self.channels.pop(guild_id, None)

    async def forget(self, guild_id: int) -> None:
        self.calls.append(("forget", guild_id))
        self.players.pop(guild_id, None)
        self.channels.pop(guild_id, None)

    async def pause(self, guild_id: int, paused: bool = True) -> None:
        self._request("pause", guild_id)
        self.players.setdefault(guild_id, LivePlayer()).paused = paused

    async def stop(self, guild_id: int) -> None:
        self._request("stop", guild_id)
        if (player := self.players.get(guild_id)) is not None:
            player.encoded = None

    async def seek(self, guild_id: int, position: int) -> None:
        self._request("seek", guild_id)
        if (player := self.players.get(guild_id)) is not None:
            player.position = max(0, position)

    async def update_player(self, guild_id: int, update: lavalink.UpdatePlayer) -> None:
        self._request("update", guild_id)
        player = self.players.setdefault(guild_id, LivePlayer())
        if isinstance(update.paused, bool):
            player.paused = update.paused
        if isinstance(update.volume, int):
            player.volume = update.volume
        if isinstance(update.filters, lavalink.Filters):
            player.filters = update.filters

    async def clear_session(
        self,
        node_name: str,
        session_id: str,
        *,
        user_id: int,
        drop: Callable[[int], bool],
        expires_in: float,
    ) -> lavalink.SessionCleared:
        """As the client clears another process's paused session (see bot/lavalink/clearing)."""
        self.clears.append((session_id, expires_in))
        if self.fail or node_name != self.node:
            raise lavalink.UnreachableError("WebSocket: connection refused")
        if self.busy.get(session_id, 0) > 0:
            self.busy[session_id] -= 1
            return lavalink.SessionCleared(lavalink.ClearStatus.BUSY)
        players = self.paused_sessions.get(session_id)
        if players is None:
            return lavalink.SessionCleared(lavalink.ClearStatus.GONE)
        removed = frozenset(guild_id for guild_id in players if drop(guild_id))
        players -= removed
        if not players:
            del self.paused_sessions[session_id]
        return lavalink.SessionCleared(lavalink.ClearStatus.CLEARED, removed, len(players))

    # --- test controls ---------------------------------------------------------------------

    def end_event(
        self,
        guild_id: int,
        reason: lavalink.TrackEndReason = lavalink.TrackEndReason.FINISHED,
    ) -> lavalink.TrackEndEvent:
        """The event Lavalink sends when the guild's track ends; the track stops."""
        player = self.players[guild_id]
        assert player.encoded is not None, "nothing is playing"
        info = lavalink.TrackInfo(
            identifier="x", is_seekable=True, author="", length=1, is_stream=False,
            position=0, title="",
        )  # fmt: skip
        ended = lavalink.Track(encoded=player.encoded, info=info, user_data=player.user_data)
        player.encoded = None
        return lavalink.TrackEndEvent(guild_id, ended, reason)

    def _request(self, name: str, guild_id: int) -> None:
        if self.fail:
            raise lavalink.NoNodeAvailableError("no Lavalink node is connected")
        self.calls.append((name, guild_id))


class FakeDiscordView:
    """Everyone asked about is in :data:`VOICE` unless ``members`` says where; only those in
    ``members`` are counted as listening (``bots`` never are). ``roles`` (user -> role ids)
    and ``managers`` (hold Manage Server, Administrator or own the guild) are as the cache
    would tell; announcements are kept as users read them."""

    def __init__(self) -> None:
        self.members: dict[int, int | None] = {}
        self.shard_count = 1
        self.bots: set[int] = set()
        self.roles: dict[int, frozenset[int]] = {}
        self.managers: set[int] = set()
        self.announced: list[str] = []
        self.announced_in: list[int] = []
        """The channel of each announcement, in the same order."""
        self.controllers: dict[int, tuple[int, ControllerView]] = {}
        """Controller messages that exist now: id -> (channel, what it shows)."""
        self.controller_calls: list[tuple[str, int]] = []
        """``("post" | "edit" | "delete", message id)`` in order."""
        self.refuse: Delivery | None = None
        """Set: every edit and delete answers this, and a post is refused."""
        self._ids = itertools.count(1000)

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        return self.members.get(user_id, VOICE)

    def shard_of(self, guild_id: int) -> int:
        return (guild_id >> 22) % self.shard_count

    def listeners(self, guild_id: int, channel_id: int) -> int:
        return len(self.humans_in(guild_id, channel_id))

    def humans_in(self, guild_id: int, channel_id: int) -> frozenset[int]:
        return frozenset(
            user
            for user, channel in self.members.items()
            if channel == channel_id and user not in self.bots
        )

    def member_roles(self, guild_id: int, user_id: int) -> frozenset[int] | None:
        return self.roles.get(user_id, frozenset())

    def manages_guild(self, guild_id: int, user_id: int) -> bool:
        return user_id in self.managers

    async def announce(self, channel_id: int, announcement: Announcement) -> None:
        self.announced.append(announcement_text(announcement))
        self.announced_in.append(channel_id)

    async def post_controller(self, channel_id: int, view: ControllerView) -> int | None:
        if self.refuse is not None:
            return None
        message_id = next(self._ids)
        self.controllers[message_id] = (channel_id, view)
        self.controller_calls.append(("post", message_id))
        return message_id

    async def edit_controller(
        self, channel_id: int, message_id: int, view: ControllerView
    ) -> Delivery:
        self.controller_calls.append(("edit", message_id))
        if self.refuse is not None:
            return self.refuse
        if self.controllers.get(message_id, (None,))[0] != channel_id:
            return Delivery.GONE
        self.controllers[message_id] = (channel_id, view)
        return Delivery.DONE

    async def delete_controller(self, channel_id: int, message_id: int) -> Delivery:
        self.controller_calls.append(("delete", message_id))
        if self.refuse is not None:
            return self.refuse
        if self.controllers.pop(message_id, (None,))[0] != channel_id:
            return Delivery.GONE
        return Delivery.DONE


@contextlib.contextmanager
def refused(says: str) -> Iterator[None]:
    """The service refuses with a :class:`ServiceError` whose reply, as users read it,
    matches the regular expression ``says``."""
    with pytest.raises(ServiceError) as info:
        yield
    told = error_text(info.value)
    assert re.search(says, told), told


class FailingWrites:
    """Makes the next ``count`` database writes of a repository fail, as a full or locked disk
    would: the statement raises inside its transaction, which rolls back."""

    def __init__(self, engine: Any) -> None:
        self.pending = 0
        self.fired = 0
        self.controller = False
        sa.event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def arm(self, count: int = 1, *, controller: bool = False) -> None:
        """Fail the next ``count`` writes of the queue and player; with ``controller``, only
        the controller message's (its worker writes in the background, at moments a test
        arming a command's failure does not choose)."""
        self.pending = count
        self.controller = controller

    def _before(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if ("controller_messages" in statement) is not self.controller:
            return
        if self.pending and statement.lstrip().split()[0].upper() in _WRITES:
            self.pending -= 1
            self.fired += 1
            raise sqlite3.OperationalError("disk I/O error")


_WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})


@dataclasses.dataclass
class Bot:
    """One run of the bot: repository, service and its two outside parties."""

    repo: Repository
    service: QueueService
    lava: RecordingLavalink
    discord: FakeDiscordView
    failures: FailingWrites

    @classmethod
    async def start(cls, url: str, discord: FakeDiscordView | None = None) -> Bot:
        repo = await Repository.open(url)
        lava, discord = RecordingLavalink(), discord or FakeDiscordView()
        service = QueueService(repo, lava, discord)
        close = repo.close

        async def close_after_the_controller() -> None:
            # A run ends (a crash, a test's end) with no controller update or heartbeat still
            # on its way to a database that is closed; a crash says no last beat.
            await service.controller.close()
            await service.heartbeat.close(last_beat=False)
            await close()

        repo.close = close_after_the_controller  # type: ignore[method-assign]
        # Wired as the app does: the session id is stored, then the service reacts.
        lava.set_listener(in_turn(session_keeper(repo), service.handle_event))
        await service.load()
        return cls(repo, service, lava, discord, FailingWrites(repo._engine))

    async def crash(self, url: str, *, same_discord: bool = False) -> Bot:
        """The process dies (no shutdown) and a new one starts on the same database (and,
        with ``same_discord``, sees the messages the old one posted)."""
        await self.repo.close()
        return await Bot.start(url, self.discord if same_discord else None)

    async def rebuild(self) -> None:
        """A fresh Lavalink session is ready: wait until the service rebuilt the player."""
        assert self.lava.listener is not None
        await self.lava.listener(lavalink.SessionReady(self.lava.node, "fresh", False))
        current = self.service.queue(GUILD).current
        for _ in range(2000):
            player = self.lava.players.get(GUILD)
            if current is None or (player is not None and player.encoded == current.encoded):
                return
            await asyncio.sleep(0.001)
        raise AssertionError("the player was not rebuilt within 2 s")

    async def end_track(
        self, reason: lavalink.TrackEndReason = lavalink.TrackEndReason.FINISHED
    ) -> None:
        await self.service.handle_event(self.lava.end_event(GUILD, reason))

    def titles(self) -> list[str]:
        view = self.service.queue(GUILD, limit=1000)
        now = [view.current.title] if view.current else []
        return now + [e.title for e in view.upcoming]

    async def stored_titles(self) -> list[str]:
        stored = {g.player.guild_id: g for g in await self.repo.load_guilds()}[GUILD]
        current = [e.title for e in stored.entries if e.id == stored.player.current_entry_id]
        return current + [e.title for e in stored.entries if e.id != stored.player.current_entry_id]
