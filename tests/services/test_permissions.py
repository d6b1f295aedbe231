"""Who may do what (services/permissions.py), over the real service and repository on SQLite.

The cast: ALICE queued the music; BOB and CAROL listen with her; DJ holds the DJ role; MOD has
Manage Server (or Administrator, or owns the server: the Discord view folds those into one
answer, checked end to end in tests/e2e/test_permissions.py). Everyone sits in the bot's
channel unless a test moves them. Each refusal is checked as users read it and for what it
did not change: the queue, and what Lavalink plays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.services.permissions import votes_needed
from bot.services.views import SkipOutcome, VoteCounted
from bot.storage import LoopMode
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

ALICE = LISTENER
BOB, CAROL, DAVE, DJ, MOD, MUSIC_BOT = 8, 9, 10, 11, 12, 13
DJ_ROLE = 900
OTHER_VOICE = 501


def set_dj_role(bot: Bot, role_id: int | None, *, percent: int = 50) -> None:
    """What /settings will store; until it does, the guild's settings are set in memory."""
    guild = bot.service._guild(GUILD)
    guild.settings = dataclasses.replace(
        guild.settings, dj_role_id=role_id, vote_skip_percent=percent
    )


def seat(bot: Bot, *users: int, channel: int | None = VOICE) -> None:
    for user in users:
        bot.discord.members[user] = channel


async def band(bot: Bot, *, songs: int = 3, role: int | None = DJ_ROLE) -> None:
    """ALICE, BOB, CAROL, DJ and MOD in voice; ALICE queued ``songs`` songs, BOB one more."""
    seat(bot, ALICE, BOB, CAROL, DJ, MOD)
    bot.discord.roles[DJ] = frozenset({DJ_ROLE, 77})
    bot.discord.roles[BOB] = frozenset({77})
    bot.discord.managers.add(MOD)
    set_dj_role(bot, role)
    await bot.service.play(GUILD, ALICE, TEXT, f"{songs} songs")
    await bot.service.play(GUILD, BOB, TEXT, "bob's song")


def playing(bot: Bot) -> str | None:
    player = bot.lava.players.get(GUILD)
    return player.encoded if player is not None else None


# --- threshold ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listeners", "percent", "needed"),
    [
        (1, 50, 1),
        (2, 50, 2),
        (3, 50, 2),
        (4, 50, 3),
        (5, 50, 3),
        (10, 50, 6),
        (3, 0, 1),
        (3, 33, 1),
        (3, 34, 2),
        (3, 66, 2),
        (3, 67, 3),
        (3, 100, 3),
        (7, 75, 6),
        (0, 50, 1),
    ],
)
def test_votes_needed_are_more_than_the_share_and_at_most_everyone(
    listeners: int, percent: int, needed: int
) -> None:
    assert votes_needed(listeners, percent) == needed


@given(st.integers(1, 500), st.integers(0, 100))
def test_votes_needed_is_the_smallest_count_over_the_share(listeners: int, percent: int) -> None:
    needed = votes_needed(listeners, percent)
    assert 1 <= needed <= listeners
    if needed < listeners:  # not capped: just over the share, and one fewer is not over it
        assert needed * 100 > listeners * percent >= (needed - 1) * 100


# --- no DJ role: everyone in the channel, as before ----------------------------------------


async def test_without_a_dj_role_every_listener_may_do_everything(bot: Bot) -> None:
    await band(bot, role=None)
    first = playing(bot)
    outcome = await bot.service.skip(GUILD, CAROL)
    assert isinstance(outcome, SkipOutcome)
    assert outcome.vote is None
    assert playing(bot) != first
    await bot.service.set_volume(GUILD, CAROL, 50)
    await bot.service.edits.remove(GUILD, CAROL, 1)
    await bot.service.controls.stop(GUILD, CAROL)
    assert bot.titles() == []


async def test_the_channel_rule_still_comes_first(bot: Bot) -> None:
    await band(bot)
    seat(bot, DJ, channel=OTHER_VOICE)
    with refused(rf"^Join my voice channel <#{VOICE}> to stop the music\.$"):
        await bot.service.controls.stop(GUILD, DJ)


# --- with a DJ role ------------------------------------------------------------------------

DJ_ONLY: list[tuple[str, Callable[[Bot, int], Awaitable[object]], str]] = [
    ("stop", lambda b, u: b.service.controls.stop(GUILD, u), "stop the music"),
    ("leave", lambda b, u: b.service.controls.leave(GUILD, u), "make me leave"),
    ("clear", lambda b, u: b.service.edits.clear(GUILD, u), "clear the queue"),
    ("shuffle", lambda b, u: b.service.edits.shuffle(GUILD, u), "shuffle the queue"),
    ("move", lambda b, u: b.service.edits.move(GUILD, u, 3, 1), "move songs"),
    ("volume", lambda b, u: b.service.set_volume(GUILD, u, 50), "change the volume"),
    ("filter", lambda b, u: b.service.set_filter(GUILD, u, "nightcore"), "change the filters"),
    ("seek", lambda b, u: b.service.controls.seek(GUILD, u, "0:30"), "seek"),
    ("loop", lambda b, u: b.service.set_loop(GUILD, u, LoopMode.QUEUE), "change the loop mode"),
    ("skip to", lambda b, u: b.service.edits.skip_to(GUILD, u, 2), "skip ahead in the queue"),
]


@pytest.mark.parametrize(("name", "act", "says"), DJ_ONLY, ids=[c[0] for c in DJ_ONLY])
async def test_a_member_without_the_role_is_refused_and_nothing_changes(
    bot: Bot, name: str, act: Callable[[Bot, int], Awaitable[object]], says: str
) -> None:
    await band(bot)
    before, stored_before = bot.titles(), await bot.stored_titles()
    settings, calls = bot.service.player_state(GUILD), len(bot.lava.calls)
    with refused(rf"^You need the DJ role <@&{DJ_ROLE}> \(or Manage Server\) to {says}\.$"):
        await act(bot, ALICE)  # queued most of it, still no DJ
    assert bot.titles() == before
    assert await bot.stored_titles() == stored_before
    assert bot.service.player_state(GUILD) == settings
    assert len(bot.lava.calls) == calls
    assert bot.lava.voice_channel(GUILD) == VOICE


@pytest.mark.parametrize("who", [DJ, MOD], ids=["dj role", "manage server"])
@pytest.mark.parametrize(("name", "act", "says"), DJ_ONLY, ids=[c[0] for c in DJ_ONLY])
async def test_djs_and_managers_act_freely(
    bot: Bot, who: int, name: str, act: Callable[[Bot, int], Awaitable[object]], says: str
) -> None:
    await band(bot)
    await act(bot, who)  # raises if refused


async def test_the_only_listener_is_a_dj(bot: Bot) -> None:
    await band(bot)
    seat(bot, BOB, CAROL, DJ, MOD, channel=None)
    await bot.service.set_volume(GUILD, ALICE, 40)
    assert bot.lava.players[GUILD].volume == 40
    seat(bot, CAROL)
    with refused("to change the volume"):
        await bot.service.set_volume(GUILD, ALICE, 60)


async def test_jumping_the_queue_and_going_back_need_a_dj(bot: Bot) -> None:
    await band(bot)
    await bot.service.skip(GUILD, ALICE)  # her own song: now in the history
    before, stored_before = bot.titles(), await bot.stored_titles()
    with refused(r"\(or Manage Server\) to put songs first in the queue\.$"):
        await bot.service.play(GUILD, BOB, TEXT, "bob's urgent song", play_next=True)
    with refused(r"\(or Manage Server\) to play the previous song\.$"):
        await bot.service.previous(GUILD, BOB)
    assert (bot.titles(), await bot.stored_titles()) == (before, stored_before)
    await bot.service.play(GUILD, DJ, TEXT, "the dj's song", play_next=True)
    assert bot.titles()[1] == "the dj's song"
    await bot.service.previous(GUILD, MOD)
    assert bot.titles()[:2] == ["3 songs #0", "3 songs #1"]


async def test_pause_and_resume_stay_open_and_play_too(bot: Bot) -> None:
    await band(bot)
    await bot.service.pause(GUILD, CAROL)
    assert bot.lava.players[GUILD].paused
    await bot.service.resume(GUILD, BOB)
    assert not bot.lava.players[GUILD].paused
    added = await bot.service.play(GUILD, CAROL, TEXT, "carol's song")
    assert added.position == 4


async def test_removing_is_free_for_ones_own_songs_only(bot: Bot) -> None:
    await band(bot)  # upcoming: alice #1, alice #2, bob's song
    removed = await bot.service.edits.remove(GUILD, BOB, 3)
    assert [r.title for r in removed.entries] == ["bob's song"]
    await bot.service.play(GUILD, BOB, TEXT, "bob again")
    with refused(r"\(or Manage Server\) to remove songs other people asked for\.$"):
        await bot.service.edits.remove(GUILD, BOB, 1)
    with refused("to remove songs other people asked for"):
        await bot.service.edits.remove(GUILD, BOB, 2, 3)  # alice's and his own
    assert bot.titles()[1:] == ["3 songs #1", "3 songs #2", "bob again"]
    await bot.service.edits.remove(GUILD, ALICE, 1, 2)
    assert bot.titles()[1:] == ["bob again"]


# --- vote skip -----------------------------------------------------------------------------


async def test_the_requester_skips_their_own_song_at_once(bot: Bot) -> None:
    await band(bot)
    outcome = await bot.service.skip(GUILD, ALICE)
    assert isinstance(outcome, SkipOutcome)
    assert outcome.skipped.title == "3 songs #0"
    assert outcome.vote is None


async def voters(bot: Bot) -> None:
    """ALICE's songs playing; ALICE, BOB, CAROL and DAVE listening (3 votes needed); the DJ
    and the manager elsewhere."""
    await band(bot)
    seat(bot, DJ, MOD, channel=OTHER_VOICE)
    seat(bot, DAVE)


async def vote(bot: Bot, user: int) -> VoteCounted:
    counted = await bot.service.skip(GUILD, user)
    assert isinstance(counted, VoteCounted), counted
    return counted


async def test_a_vote_skip_counts_each_voter_once_and_passes_over_the_share(bot: Bot) -> None:
    await voters(bot)
    seat(bot, MUSIC_BOT)
    bot.discord.bots.add(MUSIC_BOT)  # another bot in the channel does not count
    first = await vote(bot, BOB)
    assert (first.entry.title, first.votes, first.needed, first.again) == (
        "3 songs #0", 1, 3, False,
    )  # fmt: skip
    again = await vote(bot, BOB)
    assert (again.votes, again.needed, again.again) == (1, 3, True)
    second = await vote(bot, CAROL)
    assert (second.votes, second.needed) == (2, 3)
    assert bot.titles()[0] == "3 songs #0"
    assert playing(bot) == second.entry.encoded  # two votes of three: still playing
    passed = await bot.service.skip(GUILD, DAVE)
    assert isinstance(passed, SkipOutcome)
    assert passed.vote is not None
    assert (passed.vote.votes, passed.vote.needed, passed.skipped.title) == (3, 3, "3 songs #0")
    assert bot.titles()[0] == "3 songs #1"
    assert (await bot.stored_titles())[0] == "3 songs #1"
    after = await vote(bot, BOB)  # a new song: a new count
    assert (after.entry.title, after.votes) == ("3 songs #1", 1)


@pytest.mark.parametrize(
    ("percent", "needed"), [(0, 1), (25, 2), (50, 3), (74, 3), (75, 4), (100, 4)]
)
async def test_the_share_is_the_servers_choice(bot: Bot, percent: int, needed: int) -> None:
    await voters(bot)
    set_dj_role(bot, DJ_ROLE, percent=percent)
    counted = await bot.service.skip(GUILD, BOB)
    if needed == 1:
        assert isinstance(counted, SkipOutcome)
    else:
        assert isinstance(counted, VoteCounted)
        assert counted.needed == needed


async def test_a_track_change_resets_the_votes(bot: Bot) -> None:
    await voters(bot)
    await vote(bot, BOB)
    await vote(bot, CAROL)
    await bot.end_track()  # the song ends by itself: the next one starts a new count
    assert bot.titles()[0] == "3 songs #1"
    fresh = await vote(bot, CAROL)
    assert (fresh.entry.title, fresh.votes, fresh.needed, fresh.again) == (
        "3 songs #1", 1, 3, False,
    )  # fmt: skip


async def test_a_song_that_comes_round_again_is_a_new_count(bot: Bot) -> None:
    await band(bot)
    await bot.service.set_loop(GUILD, MOD, LoopMode.QUEUE)
    seat(bot, DJ, MOD, channel=OTHER_VOICE)
    seat(bot, DAVE)
    await vote(bot, BOB)
    for _ in range(4):  # the four songs once round: the first one is back
        await bot.end_track()
    assert bot.titles()[0] == "3 songs #0"
    back = await vote(bot, CAROL)
    assert (back.votes, back.again) == (1, False)


async def test_a_voter_who_leaves_no_longer_counts(bot: Bot) -> None:
    await voters(bot)
    await vote(bot, BOB)
    await vote(bot, CAROL)
    seat(bot, BOB, channel=None)
    await bot.service.voice_changed(GUILD)  # 3 listening: 2 needed, CAROL's vote alone
    assert bot.titles()[0] == "3 songs #0"
    seat(bot, BOB)  # back, but his vote is gone
    counted = await vote(bot, DAVE)
    assert (counted.votes, counted.needed) == (2, 3)


async def test_when_someone_leaves_the_remaining_votes_may_be_enough(bot: Bot) -> None:
    await voters(bot)
    await vote(bot, BOB)
    await vote(bot, CAROL)  # 2 of 3
    seat(bot, DAVE, channel=OTHER_VOICE)
    await bot.service.voice_changed(GUILD)  # 3 listening: 2 of 2
    assert bot.titles()[0] == "3 songs #1"
    assert (await bot.stored_titles())[0] == "3 songs #1"
    assert bot.discord.announced[-1] == (
        "Enough of those still listening voted, so I skipped **3 songs #0**. "
        "Now playing **3 songs #1**."
    )
    seat(bot, DAVE)
    await bot.service.voice_changed(GUILD)  # no vote open: nothing more happens
    assert bot.titles()[0] == "3 songs #1"


async def test_a_voice_change_without_a_vote_skips_nothing(bot: Bot) -> None:
    await voters(bot)
    seat(bot, CAROL, channel=None)
    await bot.service.voice_changed(GUILD)
    assert bot.titles()[0] == "3 songs #0"
    assert not bot.discord.announced


async def test_out_of_voice_a_skip_of_someone_elses_song_needs_a_dj(bot: Bot) -> None:
    await voters(bot)
    await bot.lava.disconnect(GUILD)  # the bot is in no channel now: nobody to vote with
    with refused(r"to skip other people's songs while I'm not in a voice channel\.$"):
        await bot.service.skip(GUILD, BOB)
    assert bot.titles()[0] == "3 songs #0"
