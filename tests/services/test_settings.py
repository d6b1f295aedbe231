"""/settings in the service: who may, each range and its edges, the write rule, a restart, and
what each setting does (announcements, 24/7 and the idle timeout, the queue limits, the order
of /play next and of the fair queue)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bot.services.admission import MAX_QUEUE_LENGTH, MAX_VOLUME
from bot.services.settings import MAX_IDLE_TIMEOUT_S
from bot.storage import GuildSettings
from tests.services.fakes import GUILD, LISTENER, TEXT, Bot, refused

BOB = LISTENER + 1
NEWS = TEXT + 100


async def _stored(bot: Bot) -> GuildSettings | None:
    return {s.guild_id: s for s in await bot.repo.settings.load()}.get(GUILD)


# --- who may, ranges, the write rule ---------------------------------------------------------


async def test_only_managers_may_see_or_change_the_settings(bot: Bot) -> None:
    settings = bot.service.settings
    with refused("Manage Server"):
        settings.show(GUILD, False)
    with refused("Manage Server"):
        await settings.set_vote_skip(GUILD, False, 10)
    assert await _stored(bot) is None
    assert settings.show(GUILD, True).settings == GuildSettings(GUILD)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda s: s.set_default_volume(GUILD, True, -1), "from 0 to 200"),
        (lambda s: s.set_default_volume(GUILD, True, MAX_VOLUME + 1), "from 0 to 200"),
        (lambda s: s.set_idle_timeout(GUILD, True, "24:00:01"), "from 0:00 to 24:00:00"),
        (lambda s: s.set_idle_timeout(GUILD, True, "+10"), "can't read `\\+10` as a length"),
        (lambda s: s.set_idle_timeout(GUILD, True, "soon"), "can't read `soon`"),
        (lambda s: s.set_queue_limit(GUILD, True, 0), "from 1 to 10000 songs"),
        (lambda s: s.set_queue_limit(GUILD, True, MAX_QUEUE_LENGTH + 1), "from 1 to 10000"),
        (lambda s: s.set_track_limit(GUILD, True, "9"), "at least 0:10"),
        (lambda s: s.set_user_share(GUILD, True, 0), "from 1 to 100 %"),
        (lambda s: s.set_user_share(GUILD, True, 101), "from 1 to 100 %"),
        (lambda s: s.set_vote_skip(GUILD, True, -1), "from 0 to 100 %"),
        (lambda s: s.set_vote_skip(GUILD, True, 101), "from 0 to 100 %"),
    ],
)
async def test_values_out_of_range_are_refused_with_the_range(
    bot: Bot, change: object, says: str
) -> None:
    with refused(says):
        await change(bot.service.settings)  # type: ignore[operator]
    assert await _stored(bot) is None


async def test_the_edges_of_every_range_are_taken_and_stored(bot: Bot, url: str) -> None:
    s = bot.service.settings
    await s.set_default_volume(GUILD, True, MAX_VOLUME)
    await s.set_idle_timeout(GUILD, True, "24:00:00")
    await s.set_queue_limit(GUILD, True, 1)
    await s.set_track_limit(GUILD, True, "10")
    await s.set_user_share(GUILD, True, 100)
    await s.set_vote_skip(GUILD, True, 0)
    await s.set_dj_role(GUILD, True, 99)
    await s.set_announce(GUILD, True, enabled=True, channel_id=NEWS)
    await s.set_always_on(GUILD, True, True)
    view = await s.set_fair_queue(GUILD, True, True)
    expected = GuildSettings(
        GUILD,
        dj_role_id=99,
        default_volume=MAX_VOLUME,
        announce_channel_id=NEWS,
        always_on=True,
        idle_timeout_s=MAX_IDLE_TIMEOUT_S,
        max_queue_length=1,
        max_track_ms=10_000,
        user_share_percent=100,
        vote_skip_percent=0,
        fair_queue=True,
    )
    assert view.settings == expected
    assert await _stored(bot) == expected
    # Back to "none" where there is one; and a restart loads what was stored.
    await s.set_idle_timeout(GUILD, True, None)
    await s.set_track_limit(GUILD, True, None)
    await s.set_user_share(GUILD, True, None)
    await s.set_idle_timeout(GUILD, True, "0")
    bot = await bot.crash(url)
    loaded = bot.service.settings.show(GUILD, True).settings
    assert loaded == dataclasses.replace(
        expected, idle_timeout_s=0, max_track_ms=None, user_share_percent=None
    )
    await bot.repo.close()


async def test_a_failed_write_changes_nothing(bot: Bot) -> None:
    await bot.service.settings.set_vote_skip(GUILD, True, 70)
    bot.failures.arm()
    with refused("couldn't save"):
        await bot.service.settings.set_vote_skip(GUILD, True, 20)
    assert bot.service.settings.show(GUILD, True).settings.vote_skip_percent == 70
    stored = await _stored(bot)
    assert stored is not None
    assert stored.vote_skip_percent == 70


async def test_settings_without_a_player_load_and_go_with_the_guild(bot: Bot, url: str) -> None:
    """A server that chose settings before anything played keeps them over a restart; removing
    the bot from the server deletes them, also when the guild never had a player."""
    await bot.service.settings.set_queue_limit(GUILD, True, 5)
    assert await bot.repo.load_guilds() == []
    bot = await bot.crash(url)
    assert bot.service.settings.show(GUILD, True).settings.max_queue_length == 5
    assert GUILD in bot.service.guild_ids()
    await bot.service.guild_removed(GUILD)
    assert await _stored(bot) is None
    assert bot.service.settings.show(GUILD, True).settings == GuildSettings(GUILD)
    await bot.repo.close()


# --- announcements ---------------------------------------------------------------------------


def _controller_channels(bot: Bot) -> list[int]:
    """The channel of each now-playing controller that exists now."""
    return [channel for channel, _ in bot.discord.controllers.values()]


async def _settled(bot: Bot) -> None:
    async with asyncio.timeout(5):
        await bot.service.controller.settled()


async def test_the_controller_and_notices_go_to_the_announce_channel_or_nowhere(
    bot: Bot,
) -> None:
    bot.service.controller.interval = 0.02
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await _settled(bot)
    assert _controller_channels(bot) == [TEXT]  # where the music was asked for
    await bot.service.settings.set_announce(GUILD, True, enabled=True, channel_id=NEWS)
    await _settled(bot)
    assert _controller_channels(bot) == [NEWS]  # moved at once, not at the next song
    await bot.end_track()
    await _settled(bot)
    assert _controller_channels(bot) == [NEWS]
    await bot.service.settings.set_announce(GUILD, True, enabled=False)
    await _settled(bot)
    assert _controller_channels(bot) == []
    await bot.end_track()
    assert bot.service.queue(GUILD).current is None
    assert bot.discord.announced == []  # the queue finished, and nobody was told
    await bot.service.settings.set_announce(GUILD, True, enabled=True, channel_id=NEWS)
    await bot.service.play(GUILD, LISTENER, TEXT, "1 song")
    await bot.end_track()
    assert bot.discord.announced_in == [NEWS]  # "the queue has finished", in the chosen channel


async def test_a_failed_insert_changes_nothing(bot: Bot) -> None:
    await bot.service.settings.set_fair_queue(GUILD, True, True)
    await bot.service.play(GUILD, BOB, TEXT, "b 3 songs")
    before = bot.titles()
    bot.failures.arm()
    with refused("nothing was added"):
        await bot.service.play(GUILD, LISTENER, TEXT, "a 4 songs")
    assert bot.titles() == before
    assert await bot.stored_titles() == before


async def test_a_deleted_announce_channel_sends_notices_where_the_music_was_asked_for(
    bot: Bot, url: str
) -> None:
    bot.service.controller.interval = 0.02
    await bot.service.settings.set_announce(GUILD, True, enabled=True, channel_id=NEWS)
    await bot.service.play(GUILD, LISTENER, TEXT, "1 song")
    await bot.service.channel_deleted(GUILD, NEWS)
    await bot.end_track()
    assert bot.discord.announced_in == [TEXT]
    bot = await bot.crash(url)
    assert bot.service.settings.show(GUILD, True).settings.announce_channel_id is None
    await bot.repo.close()
