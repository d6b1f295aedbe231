"""Leaving and staying: an empty channel pauses the music, a listener brings it back, and the
bot leaves after the idle timeout (alone, or with the queue ended), even across a restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.services import presence as presence_module
from bot.storage import PlayerStatus
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot


async def _playing(bot: Bot, songs: str = "2 songs") -> None:
    bot.discord.members[LISTENER] = VOICE
    await bot.service.play(GUILD, LISTENER, TEXT, songs)
    assert not bot.lava.players[GUILD].paused


async def _leave(bot: Bot) -> None:
    bot.discord.members[LISTENER] = None
    await bot.service.voice_changed(GUILD)


async def _come_back(bot: Bot) -> None:
    bot.discord.members[LISTENER] = VOICE
    await bot.service.voice_changed(GUILD)


async def _stored(bot: Bot) -> tuple[int | None, bool, bool, int | None]:
    (stored,) = [g for g in await bot.repo.load_guilds() if g.player.guild_id == GUILD]
    player = stored.player
    return player.alone_since_ms, player.alone_paused, player.paused, player.voice_channel_id


async def test_an_empty_channel_pauses_and_a_listener_coming_back_plays_on(bot: Bot) -> None:
    await _playing(bot)
    await _leave(bot)
    assert bot.lava.players[GUILD].paused
    alone_since, alone_paused, paused, channel = await _stored(bot)
    assert alone_since is not None
    assert (alone_paused, paused, channel) == (True, True, VOICE)
    assert bot.service.queue(GUILD).paused

    await _come_back(bot)
    assert not bot.lava.players[GUILD].paused
    assert await _stored(bot) == (None, False, False, VOICE)


async def test_a_users_own_pause_is_not_undone_by_someone_coming_back(bot: Bot) -> None:
    await _playing(bot)
    await bot.service.pause(GUILD, LISTENER)
    await _leave(bot)
    await _come_back(bot)
    assert bot.lava.players[GUILD].paused
    assert await _stored(bot) == (None, False, True, VOICE)


async def test_alone_past_the_timeout_leaves_and_keeps_the_queue(bot: Bot) -> None:
    await _playing(bot, "3 songs")
    bot.service.presence.idle_timeout = 0.05
    await _leave(bot)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE  # not yet
    await asyncio.sleep(0.06)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) is None
    view = bot.service.queue(GUILD)
    assert view.interrupted
    assert not view.paused  # the bot's own pause ends with its stay
    assert len(bot.titles()) == 3
    assert await _stored(bot) == (None, False, False, None)
    assert bot.discord.announced[-1].startswith(f"Everyone left <#{VOICE}>, so I left too.")


async def test_the_timer_outlives_a_restart_without_starting_again(bot: Bot, url: str) -> None:
    await _playing(bot)
    await _leave(bot)
    left_at = time.monotonic()
    await asyncio.sleep(0.3)
    bot = await bot.crash(url)
    bot.discord.members[LISTENER] = None
    await bot.rebuild()
    bot.service.presence.idle_timeout = 1.0
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE  # not yet: the timer runs since leaving
    await asyncio.sleep(max(0.0, left_at + 1.05 - time.monotonic()))
    await bot.service.presence.check_all()
    # A second after everyone left; a timer started again at the restart would have 0.7 s.
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.service.queue(GUILD).interrupted


async def test_an_ended_queue_leaves_after_the_timeout_unless_it_is_zero(bot: Bot) -> None:
    await _playing(bot, "1 songs")
    await bot.end_track()
    assert bot.service.queue(GUILD).current is None
    presence = bot.service.presence
    presence.idle_timeout = 0  # never
    await asyncio.sleep(0.02)
    await presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE
    presence.idle_timeout = 0.01
    await presence.check_all()
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.service.queue(GUILD).current is None
    assert bot.discord.announced[-1] == (
        f"Nothing more was queued, so I left <#{VOICE}>. Use /play to start again."
    )
    stored = {g.player.guild_id: g for g in await bot.repo.load_guilds()}[GUILD]
    assert (stored.player.status, stored.player.voice_channel_id) == (PlayerStatus.IDLE, None)


async def test_a_failed_write_pauses_nothing_and_is_tried_again(bot: Bot) -> None:
    await _playing(bot)
    bot.failures.arm()
    await _leave(bot)
    assert not bot.lava.players[GUILD].paused  # memory and Lavalink as they were
    assert await _stored(bot) == (None, False, False, VOICE)
    await bot.service.presence.check_all()  # the next look pauses
    assert bot.lava.players[GUILD].paused


class _Counting:
    """Counts the looks at who listens (each reads hikari's cache in the bot)."""

    def __init__(self, bot: Bot) -> None:
        self.looks = 0
        listeners = bot.discord.listeners

        def counted(guild_id: int, channel_id: int) -> int:
            self.looks += 1
            return listeners(guild_id, channel_id)

        bot.discord.listeners = counted  # type: ignore[method-assign]


async def test_a_pass_looks_only_where_something_may_be_due(bot: Bot) -> None:
    await _playing(bot)
    presence = bot.service.presence
    await presence.check_all()  # the first pass looks at every guild in voice
    counting = _Counting(bot)
    for _ in range(3):
        await presence.check_all()
    assert counting.looks == 0  # someone listens, nothing is due: nothing to look at
    await _leave(bot)  # the event is judged at once; from now on the alone timer runs
    looks = counting.looks
    await presence.check_all()
    assert counting.looks == looks + 1


async def test_a_missed_voice_event_is_noticed_by_a_full_pass(bot: Bot) -> None:
    await _playing(bot)
    presence = bot.service.presence
    await presence.check_all()
    bot.discord.members[LISTENER] = None  # left, and the event never reached the bot
    await presence.check_all()
    assert not bot.lava.players[GUILD].paused  # not looked at between full passes
    presence.wake()  # a reconnect; or FULL_CHECK_S later
    await presence.check_all()
    assert bot.lava.players[GUILD].paused
    assert bot.service.queue(GUILD).paused


async def test_a_judgement_a_failed_write_left_half_way_is_judged_on_the_next_pass(
    bot: Bot,
) -> None:
    await _playing(bot)
    presence = bot.service.presence
    await presence.check_all()  # the full pass is spent: the next ones are targeted
    bot.failures.arm()
    await _leave(bot)
    assert not bot.lava.players[GUILD].paused
    await presence.check_all()
    assert bot.lava.players[GUILD].paused


async def test_a_full_pass_over_many_guilds_lets_other_work_run_between_them(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At thousands of guilds a full pass is tens of milliseconds of counting listeners: it
    # must not hold the event loop (commands, position reports) for all of it at once.
    monkeypatch.setattr(presence_module, "YIELD_EVERY", 2)
    bot.discord.members[LISTENER] = VOICE
    for guild_id in range(GUILD, GUILD + 5):
        await bot.service.play(guild_id, LISTENER, TEXT, "2 songs")
    presence = bot.service.presence
    presence.wake()  # a full pass is due
    full_pass = asyncio.create_task(presence.check_all())

    async def meanwhile() -> bool:
        return full_pass.done()

    assert await asyncio.create_task(meanwhile()) is False  # ran while the pass was going
    await full_pass
