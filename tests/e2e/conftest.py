"""End-to-end harness: the real bot against the fake Discord and the fake Lavalink.

Every test here fails on a swallowed error. hikari hides payloads it cannot parse (only the
loop's exception handler hears), turns listener errors into ``ExceptionEvent``, and lightbulb
only logs failed commands; so the harness records the loop's exception handler, every log
record at ERROR or above, and (in-process) every ``hikari.ExceptionEvent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeGuard

import hikari
import pytest

from bot import lavalink as lavalink_client
from bot.app import MusicBot
from bot.config import Settings, load_settings
from bot.services.reconciler import PASS_INTERVAL
from peers.catalogue import (
    PLAYLIST,
    PLAYLIST_URL,
    RICK,
    SHORT_SONG,
    TAKE_ON_ME,
    catalogue,
)
from peers.discord_payloads import Guild
from peers.fake_discord import (
    ALICE,
    GUILD,
    OTHER_VOICE_CHANNEL,
    TEXT_CHANNEL,
    VOICE_CHANNEL,
    FakeDiscord,
)
from peers.fake_lavalink import FakeLavalink, Player
from peers.process import bot_environment

# the fake guild's ids and the catalogue's songs, re-exported
__all__ = [
    "ALICE",
    "GUILD",
    "OTHER_VOICE_CHANNEL",
    "PLAYLIST",
    "PLAYLIST_URL",
    "RICK",
    "SHORT_SONG",
    "TAKE_ON_ME",
    "TEXT_CHANNEL",
    "VOICE_CHANNEL",
    "catalogue",
    "controller_messages",
    "wait_for_controller",
]


PACING = lavalink_client.Pacing(rejoin_delays=(0.0, 0.3, 0.6), update_retries=(0.05, 0.2))
"""The Lavalink client's back-offs, shortened: these tests check what the bot does between
tries, not how long it waits. One test runs with the production ones and checks them
(test_voice.py, stale credentials re-joined backed off and capped)."""


@dataclasses.dataclass
class ErrorLog:
    """Errors nobody was meant to swallow; a test that expects one says so with ``allow``."""

    records: list[str] = dataclasses.field(default_factory=list)
    allowed: list[str] = dataclasses.field(default_factory=list)

    def allow(self, fragment: str) -> None:
        self.allowed.append(fragment)

    def add(self, text: str) -> None:
        self.records.append(text)

    def unexpected(self) -> list[str]:
        return [r for r in self.records if not any(a in r for a in self.allowed)]


class _ErrorHandler(logging.Handler):
    def __init__(self, errors: ErrorLog) -> None:
        super().__init__(logging.ERROR)
        self._errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self._errors.add(f"log {record.name}: {record.getMessage()}")


@pytest.fixture
async def errors() -> AsyncIterator[ErrorLog]:
    """Set up first and checked last, after the bot and the peers have closed."""
    log = ErrorLog()
    handler = _ErrorHandler(log)
    root = logging.getLogger()
    root.addHandler(handler)
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, ctx: log.add(f"loop: {ctx.get('message')} {ctx.get('exception')!r}")
    )
    yield log
    root.removeHandler(handler)
    unexpected = log.unexpected()
    assert not unexpected, "swallowed errors:\n" + "\n".join(unexpected)


@pytest.fixture
async def discord(errors: ErrorLog) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake
        assert not fake.unhandled, f"the bot called REST routes the fake lacks: {fake.unhandled}"


@pytest.fixture
async def lavalink(errors: ErrorLog) -> AsyncIterator[FakeLavalink]:
    fake = FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.2)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(discord: FakeDiscord, lavalink: FakeLavalink, tmp_path: Path) -> Settings:
    return load_settings(
        bot_environment(discord, lavalink, tmp_path / "data" / "bot.db"), env_file=None
    )


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings,
    discord: FakeDiscord,
    lavalink: FakeLavalink | Sequence[FakeLavalink],
    errors: ErrorLog,
    *,
    reconcile_interval: float = PASS_INTERVAL,
    pacing: lavalink_client.Pacing = PACING,
) -> AsyncIterator[MusicBot]:
    """Start the bot in this process and wait until it can take commands and play.

    With several nodes it waits until the bot holds a session on each and has their first
    ``stats`` (so placement by load is decided on real numbers, not on a race).
    """
    app = MusicBot(settings, reconcile_interval=reconcile_interval, pacing=pacing)
    nodes = [lavalink] if isinstance(lavalink, FakeLavalink) else list(lavalink)

    async def on_exception(event: hikari.ExceptionEvent[hikari.Event]) -> None:
        errors.add(f"hikari ExceptionEvent: {event.exception!r}")

    app.bot.subscribe(hikari.ExceptionEvent, on_exception)
    await app.start()
    try:
        await discord.wait_until_ready()
        for node in nodes:
            await wait_for_lavalink_session(node)
        if len(nodes) > 1:
            await nodes[0].wait_for(
                lambda: len(app.lavalink.stats) == len(nodes), what="stats from every node"
            )
        yield app
    finally:
        await app.close()


async def wait_for_lavalink_session(lavalink: FakeLavalink, timeout: float = 10.0) -> str:
    await lavalink.wait_for(
        lambda: any(not s.paused for s in lavalink.sessions.values()),
        timeout=timeout,
        what="the bot's Lavalink session",
    )
    return next(s.id for s in lavalink.sessions.values() if not s.paused)


@pytest.fixture
async def bot(
    settings: Settings, discord: FakeDiscord, lavalink: FakeLavalink, errors: ErrorLog
) -> AsyncIterator[MusicBot]:
    async with running_bot(settings, discord, lavalink, errors) as app:
        yield app


# --- several guilds and several nodes ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FakeGuild:
    """One guild of the multi-guild world, with the one user who sits in its voice channel."""

    id: int
    text: int
    voice: int
    other_voice: int
    user: int


GUILDS = (
    FakeGuild(GUILD, TEXT_CHANNEL, VOICE_CHANNEL, OTHER_VOICE_CHANNEL, ALICE),
    FakeGuild(
        333333333333333334, 444444444444444451, 444444444444444452, 444444444444444453,
        555555555555555556,
    ),
    FakeGuild(
        333333333333333335, 444444444444444461, 444444444444444462, 444444444444444463,
        555555555555555557,
    ),
)  # fmt: skip


def discord_guild(guild: FakeGuild) -> Guild:
    return Guild(
        id=guild.id,
        name=f"Guild {guild.id % 1000}",
        text_channel_ids=[guild.text],
        voice_channel_ids=[guild.voice, guild.other_voice],
        members=[guild.user],
        user_voice={guild.user: guild.voice},
    )


@pytest.fixture
async def discord_guilds(errors: ErrorLog) -> AsyncIterator[FakeDiscord]:
    """A fake Discord with the three guilds of :data:`GUILDS`."""
    async with FakeDiscord(guilds=[discord_guild(g) for g in GUILDS]) as fake:
        yield fake
        assert not fake.unhandled, f"the bot called REST routes the fake lacks: {fake.unhandled}"


MakeNodes = Callable[[int], Awaitable[list[FakeLavalink]]]


@pytest.fixture
async def make_nodes(errors: ErrorLog) -> AsyncIterator[MakeNodes]:
    """``await make_nodes(n)``: n running fake Lavalink nodes, stopped after the test."""
    made: list[FakeLavalink] = []

    async def make(count: int) -> list[FakeLavalink]:
        nodes = [
            FakeLavalink(catalogue=catalogue(), time_scale=1.0, player_update_interval=0.2)
            for _ in range(count)
        ]
        for node in nodes:
            await node.start()
        made.extend(nodes)
        return nodes

    yield make
    for node in made:
        await node.stop()


def placements(nodes: Sequence[FakeLavalink], guild_id: int) -> list[tuple[int, Player]]:
    """Every player the guild has, as (node index, player), in any session (paused too)."""
    return [
        (index, session.players[guild_id])
        for index, node in enumerate(nodes)
        for session in node.sessions.values()
        if guild_id in session.players
    ]


def holder(nodes: Sequence[FakeLavalink], guild_id: int) -> int | None:
    """Index of the one node holding a player for the guild (None: no node; two: an error)."""
    found = placements(nodes, guild_id)
    assert len(found) <= 1, f"guild {guild_id} has {len(found)} players: {found}"
    return found[0][0] if found else None


def playing(player: Player | None, title: str) -> TypeGuard[Player]:
    """Audio is flowing for ``title``: loaded, voice connected, not paused."""
    return (
        player is not None
        and player.running
        and player.track is not None
        and (player.track.title == title)
    )


async def holds(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert that ``predicate`` stays true for ``seconds`` (for things that must NOT happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        await asyncio.sleep(0.02)
    assert predicate(), what


async def set_dj_role(discord: FakeDiscord, guild_id: int, role_id: int | None) -> None:
    """Alice (Manage Server) sets the guild's DJ role with ``/settings dj``, as a server would."""
    if role_id is None:
        interaction = await discord.invoke("settings dj off", guild_id=guild_id)
    else:
        interaction = await discord.invoke("settings dj set", {"role": role_id}, guild_id=guild_id)
    reply = await interaction.reply()
    assert reply.text.startswith("**DJ role**"), reply.text


# --- the now-playing controller ---------------------------------------------------------------


def controller_messages(discord: FakeDiscord) -> list[dict[str, object]]:
    """Every now-playing controller message that exists now (a message with ``player:``
    buttons)."""
    return [
        message
        for message in discord.channel_messages.values()
        if any(
            str(component.get("custom_id", "")).startswith("player:")
            for row in message.get("components") or []
            for component in row.get("components") or []
        )
    ]


async def wait_for_controller(discord: FakeDiscord, title: str, timeout: float = 10.0) -> int:
    """Until the one controller message shows ``title``; its id."""

    def shown() -> int | None:
        found = controller_messages(discord)
        if len(found) != 1 or [e.get("title") for e in found[0]["embeds"]] != [title]:  # type: ignore[attr-defined]
            return None
        return int(str(found[0]["id"]))

    await discord.wait_for(lambda: shown() is not None, timeout, f"a controller showing {title}")
    message_id = shown()
    assert message_id is not None
    return message_id
