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
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

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


async def _alone(bot: Bot) -> None:
    bot.discord.members[LISTENER] = None
    await bot.service.voice_changed(GUILD)


async def test_an_idle_timeout_of_zero_leaves_as_soon_as_everyone_left(bot: Bot) -> None:
    bot.service.presence.idle_timeout = 3600  # the bot's own: far away
    bot.discord.members[LISTENER] = VOICE
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await bot.service.settings.set_idle_timeout(GUILD, True, "0")
    await _alone(bot)
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.discord.announced[-1].startswith("Everyone left")
    assert len(bot.service.queue(GUILD).upcoming) == 1  # the queue is kept


async def test_a_servers_own_timeout_wins_over_the_bots(bot: Bot) -> None:
    bot.service.presence.idle_timeout = 3600
    bot.discord.members[LISTENER] = VOICE
    await bot.service.play(GUILD, LISTENER, TEXT, "2 songs")
    await bot.service.settings.set_idle_timeout(GUILD, True, "1")
    await _alone(bot)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE  # not yet
    await asyncio.sleep(1.05)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) is None


async def test_24_7_pauses_for_an_empty_channel_but_never_leaves(bot: Bot) -> None:
    bot.service.presence.idle_timeout = 0.01
    bot.discord.members[LISTENER] = VOICE
    await bot.service.play(GUILD, LISTENER, TEXT, "1 songs")
    await bot.service.settings.set_always_on(GUILD, True, True)
    await bot.service.settings.set_idle_timeout(GUILD, True, "0")  # 24/7 wins
    await _alone(bot)
    await asyncio.sleep(0.05)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.lava.players[GUILD].paused
    bot.discord.members[LISTENER] = VOICE
    await bot.service.voice_changed(GUILD)
    assert not bot.lava.players[GUILD].paused
    await bot.end_track()  # the queue ends
    await asyncio.sleep(0.05)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) == VOICE
    await bot.service.settings.set_always_on(GUILD, True, False)
    await bot.service.presence.check_all()
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.discord.announced[-1].startswith("Nothing more was queued")


# --- queue limits ----------------------------------------------------------------------------


def _upcoming(bot: Bot) -> list[str]:
    return [e.title for e in bot.service.queue(GUILD, 10_000).upcoming]


async def test_the_queue_limit_refuses_a_song_and_trims_a_playlist(bot: Bot) -> None:
    await bot.service.settings.set_queue_limit(GUILD, True, 3)
    outcome = await bot.service.play(GUILD, LISTENER, TEXT, "5 songs")
    assert outcome.started
    assert len(outcome.added) == 4
    ((left,),) = [outcome.left_out]
    assert left.count == 1
    assert left.why.limit == 3
    with refused("The queue is full: this server allows 3 songs"):
        await bot.service.play(GUILD, LISTENER, TEXT, "song")
    assert len(_upcoming(bot)) == 3
    assert await bot.stored_titles() == bot.titles()


async def test_the_track_limit_refuses_a_long_song_and_leaves_it_out_of_a_playlist(
    bot: Bot,
) -> None:
    await bot.service.settings.set_track_limit(GUILD, True, "2:59")
    with refused(r"That song is 3:00 long: this server allows songs of up to 2:59\."):
        await bot.service.play(GUILD, LISTENER, TEXT, "song")
    await bot.service.settings.set_track_limit(GUILD, True, "3:00")
    outcome = await bot.service.play(GUILD, LISTENER, TEXT, "song")
    assert outcome.started


async def test_each_member_may_fill_only_their_share(bot: Bot) -> None:
    await bot.service.settings.set_queue_limit(GUILD, True, 10)
    await bot.service.settings.set_user_share(GUILD, True, 30)  # 3 songs each
    outcome = await bot.service.play(GUILD, LISTENER, TEXT, "6 songs")
    assert len(outcome.added) == 4  # one plays, three wait
    assert outcome.left_out[0].count == 2
    with refused("each member may have at most 3 songs waiting here \\(30% of the queue\\)"):
        await bot.service.play(GUILD, LISTENER, TEXT, "song")
    await bot.service.play(GUILD, BOB, TEXT, "song")  # Bob has his own share
    assert [e.requester_id for e in bot.service.queue(GUILD, 10).upcoming] == [LISTENER] * 3 + [BOB]


# --- order: next, and the fair queue ---------------------------------------------------------


async def test_play_next_goes_first_in_line(bot: Bot) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, "a 3 songs")
    outcome = await bot.service.play(GUILD, BOB, TEXT, "b 2 songs", play_next=True)
    assert outcome.position == 1
    assert _upcoming(bot) == ["b 2 songs #0", "b 2 songs #1", "a 3 songs #1", "a 3 songs #2"]
    await bot.service.play(GUILD, BOB, TEXT, "c", play_next=True)
    assert _upcoming(bot)[0] == "c"
    assert await bot.stored_titles() == bot.titles()


async def test_the_fair_queue_takes_members_in_turn(bot: Bot) -> None:
    """Bob's two songs were queued first; Alice's playlist of 100 cannot push them back."""
    await bot.service.settings.set_fair_queue(GUILD, True, True)
    await bot.service.play(GUILD, BOB, TEXT, "b 3 songs")  # one plays, two wait
    await bot.service.play(GUILD, LISTENER, TEXT, "a 100 songs")
    upcoming = bot.service.queue(GUILD, 10_000).upcoming
    owners = [e.requester_id for e in upcoming]
    assert owners[:4] == [BOB, LISTENER, BOB, LISTENER]
    assert owners[4:] == [LISTENER] * 98
    # Bob again: his 3rd upcoming song goes after Alice's 3rd, not behind her 100.
    await bot.service.play(GUILD, BOB, TEXT, "b2")
    owners = [e.requester_id for e in bot.service.queue(GUILD, 10_000).upcoming]
    assert owners.index(BOB, 3) == 5
    # next: first in line, fair or not.
    await bot.service.play(GUILD, LISTENER, TEXT, "n", play_next=True)
    assert _upcoming(bot)[0] == "n"
    assert await bot.stored_titles() == bot.titles()


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
