"""The queue service when voice cannot be had: the bot leaves, says so, and keeps the queue.

Two ways it happens: Discord keeps refusing the voice connection while playing (the Lavalink
client gives up re-joining and reports :class:`~bot.lavalink.VoiceFailed`), or a join for
``/play`` fails (no voice credentials from Discord in time, or Lavalink refusing them). Either
way the bot must not sit in the channel in silence. Run over the real repository on SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot import lavalink
from bot.services import QueueService, in_turn, session_keeper
from bot.storage import Repository
from tests.services.fakes import (
    GUILD,
    LISTENER,
    TEXT,
    VOICE,
    Bot,
    FailingWrites,
    FakeDiscordView,
    RecordingLavalink,
    refused,
)


class RefusingLavalink(RecordingLavalink):
    """Joins fail with ``refusal`` while it is set; Discord has put the bot in the channel."""

    def __init__(self) -> None:
        super().__init__()
        self.refusal: lavalink.LavalinkError | None = None

    async def connect(self, guild_id: int, channel_id: int) -> None:
        if self.refusal is None:
            await super().connect(guild_id, channel_id)
            return
        self.calls.append(("connect", guild_id))
        self.channels[guild_id] = channel_id
        raise self.refusal


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/bot.db"


async def _start(url: str) -> Bot:
    repo = await Repository.open(url)
    lava, discord = RefusingLavalink(), FakeDiscordView()
    service = QueueService(repo, lava, discord)
    lava.set_listener(in_turn(session_keeper(repo), service.handle_event))
    await service.load()
    return Bot(repo, service, lava, discord, FailingWrites(repo._engine))


@pytest.fixture
async def bot(url: str) -> AsyncIterator[Bot]:
    app = await _start(url)
    yield app
    await app.service.controller.close()
    await app.repo.close()


def _refusing(bot: Bot) -> RefusingLavalink:
    assert isinstance(bot.lava, RefusingLavalink)
    return bot.lava


def _no_credentials() -> lavalink.LavalinkError:
    return lavalink.VoiceConnectError("Discord did not send voice credentials in time")


def _lavalink_refused() -> lavalink.LavalinkError:
    refused = lavalink.VoiceConnectError("500 on /v4/sessions/s/players/1: boom")
    refused.__cause__ = lavalink.ServerError(500, "boom", "/v4/sessions/s/players/1")
    return refused


@pytest.mark.parametrize(
    ("refusal", "told"),
    [
        (_no_credentials, "I couldn't join your voice channel, so nothing was added"),
        (_lavalink_refused, "couldn't take my voice connection just now, so nothing was added"),
    ],
)
async def test_a_failed_join_leaves_the_channel_and_adds_nothing(
    bot: Bot, refusal: Callable[[], lavalink.LavalinkError], told: str
) -> None:
    lava = _refusing(bot)
    lava.refusal = refusal()
    with refused(told):
        await bot.service.play(GUILD, LISTENER, TEXT, "song a")
    assert lava.calls == [("connect", GUILD), ("disconnect", GUILD)]
    assert lava.voice_channel(GUILD) is None
    assert bot.titles() == []
    assert GUILD not in {g.player.guild_id for g in await bot.repo.load_guilds()}

    # Asking again once voice works adds the song once, and plays it.
    lava.refusal = None
    outcome = await bot.service.play(GUILD, LISTENER, TEXT, "song a")
    assert outcome.started
    assert bot.titles() == ["song a"]
    assert await bot.stored_titles() == ["song a"]
    assert lava.players[GUILD].encoded == outcome.added[0].encoded


async def test_a_failed_join_keeps_an_interrupted_queue_as_it_was(bot: Bot, url: str) -> None:
    lava = _refusing(bot)
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await asyncio.sleep(0.05)
    await bot.service.handle_event(lavalink.VoiceFailed(GUILD, VOICE, 4006, ""))
    before = bot.service.queue(GUILD)
    assert before.interrupted

    lava.refusal = _no_credentials()
    with refused("nothing was added"):
        await bot.service.play(GUILD, LISTENER, TEXT, "song b")
    assert lava.calls[-2:] == [("connect", GUILD), ("disconnect", GUILD)]
    after = bot.service.queue(GUILD)
    assert after == before
    assert bot.titles() == ["2 songs #0", "2 songs #1"]
    bot = await bot.crash(url)
    assert bot.titles() == ["2 songs #0", "2 songs #1"]
    assert bot.service.queue(GUILD).interrupted
    assert bot.service.queue(GUILD).position_ms == before.position_ms
    await bot.repo.close()


async def test_voice_failed_leaves_keeps_the_position_and_says_so_once(bot: Bot, url: str) -> None:
    lava = bot.lava
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await asyncio.sleep(0.2)  # it plays a little
    failed = lavalink.VoiceFailed(GUILD, VOICE, 4006, "")
    await bot.service.handle_event(failed)

    assert lava.calls[-1] == ("disconnect", GUILD)
    assert lava.voice_channel(GUILD) is None
    assert bot.discord.announced == [
        f"I couldn't keep a voice connection in <#{VOICE}>. "
        "The queue is kept: use /play to try again."
    ]
    view = bot.service.queue(GUILD)
    assert view.interrupted
    assert view.current is not None
    assert view.current.title == "2 songs #0"
    stopped_at = view.position_ms
    assert stopped_at >= 150
    await asyncio.sleep(0.1)
    assert bot.service.queue(GUILD).position_ms == stopped_at  # nothing plays: frozen

    # A second report (another give-up before the leave landed) is not announced again.
    await bot.service.handle_event(failed)
    assert len(bot.discord.announced) == 1

    # A restart does not go back to that channel by itself: the users are to ask.
    bot = await bot.crash(url)
    lava = bot.lava
    await bot.service.handle_event(lavalink.SessionReady(lava.node, "fresh", False))
    await asyncio.sleep(0.05)
    assert ("connect", GUILD) not in lava.calls
    assert bot.service.queue(GUILD).interrupted

    # /play carries on with the same track at the same place, then the new one.
    outcome = await bot.service.play(GUILD, LISTENER, TEXT, "song c")
    assert not outcome.started
    assert lava.players[GUILD].encoded == view.current.encoded
    assert lava.players[GUILD].position == stopped_at
    assert bot.titles() == ["2 songs #0", "2 songs #1", "song c"]
    assert not bot.service.queue(GUILD).interrupted
    await bot.repo.close()


async def test_voice_failed_with_nothing_queued_only_leaves(bot: Bot) -> None:
    await bot.service.handle_event(lavalink.VoiceFailed(GUILD, VOICE, 4009, "timed out"))
    assert bot.lava.calls == [("disconnect", GUILD)]
    assert bot.discord.announced == []
