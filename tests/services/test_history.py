"""/history and /previous: the service rules, over the real repository on SQLite.

What counts as played: a track is recorded when it stops being the current track by any path
that moves the queue on (it ended, /skip, /skip to, a stuck track skipped, /stop, /leave) if it
was heard (it was playing, or stopped part-way), and not when Lavalink failed to load it; with
loop mode "this song" its repeats are one row, written when the queue finally moves past it.
/previous does not record the track it interrupts: that one goes back to the queue.
"""

from __future__ import annotations

from bot import lavalink
from bot.extensions.history import render_history, render_previous
from bot.services import errors as e
from bot.storage import HISTORY_LIMIT, LoopMode, PlayerStatus
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

STRANGER = 99


async def play(bot: Bot, query: str) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, query)


async def history(bot: Bot) -> list[str]:
    return [t.title for t in await bot.repo.history(GUILD)]


async def test_each_way_past_a_track_records_it_once(bot: Bot) -> None:
    await play(bot, "5 songs")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.TRACK)
    await bot.end_track()  # repeats: not a row per repeat
    await bot.end_track()
    assert await history(bot) == []
    await bot.service.skip(GUILD, LISTENER)
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.OFF)
    await bot.end_track()
    await bot.end_track(lavalink.TrackEndReason.LOAD_FAILED)  # never played: not recorded
    await bot.service.edits.skip_to(GUILD, LISTENER, 1)  # only the one playing is recorded
    assert await history(bot) == ["5 songs #3", "5 songs #1", "5 songs #0"]
    await play(bot, "2 songs")
    await bot.service.controls.stop(GUILD, LISTENER)
    await play(bot, "one more")
    await bot.service.controls.leave(GUILD, LISTENER)
    assert await history(bot) == [
        "one more",
        "5 songs #4",
        "5 songs #3",
        "5 songs #1",
        "5 songs #0",
    ]
    # Only tracks: the whole record is the queue entry's track, who asked, and when.
    newest = (await bot.repo.history(GUILD))[0]
    assert (newest.requester_id, newest.is_stream) == (LISTENER, False)
    assert (newest.encoded.startswith("enc"), newest.uri is not None) == (True, True)


async def test_a_track_never_heard_is_not_history(bot: Bot) -> None:
    await play(bot, "3 songs")
    bot.lava.players[GUILD].position = 30_000
    await bot.service.channel_deleted(GUILD, VOICE)  # stops part-way: it was heard
    await bot.service.skip(GUILD, LISTENER)
    assert await history(bot) == ["3 songs #0"]
    # The next one became current out of voice and never started.
    await bot.service.skip(GUILD, LISTENER)
    assert await history(bot) == ["3 songs #0"]
    # Nor one whose start the music server refused.
    await play(bot, "song b")
    bot.lava.fail = True
    await bot.service.skip(GUILD, LISTENER)
    bot.lava.fail = False
    await bot.service.controls.stop(GUILD, LISTENER)
    assert await history(bot) == ["3 songs #2", "3 songs #0"]


async def test_loop_queue_records_each_play(bot: Bot) -> None:
    await play(bot, "2 songs")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    for _ in range(3):
        await bot.end_track()
    assert await history(bot) == ["2 songs #0", "2 songs #1", "2 songs #0"]
    assert bot.titles() == ["2 songs #1", "2 songs #0"]


async def test_history_keeps_the_newest_and_renders_within_limits(bot: Bot) -> None:
    with refused("No song has played here yet"):
        await bot.service.history.recent(GUILD)
    await play(bot, f"{HISTORY_LIMIT + 3} songs")
    for _ in range(HISTORY_LIMIT + 2):
        await bot.end_track()
    view = await bot.service.history.recent(GUILD)
    assert [t.title for t in view.tracks] == [
        f"{HISTORY_LIMIT + 3} songs #{n}" for n in range(HISTORY_LIMIT + 1, 1, -1)
    ]
    embed = render_history(view)
    text = (embed.description or "") + "".join(f.value for f in embed.fields)
    assert f"`1.` [{HISTORY_LIMIT + 3} songs \\#{HISTORY_LIMIT + 1}](https://" in text
    assert f"<@{LISTENER}>" in text
    assert f"<t:{view.tracks[0].played_at_ms // 1000}:R>" in text
    assert len(embed.description or "") <= 4096


async def test_previous_plays_the_last_track_again_and_the_current_one_next(bot: Bot) -> None:
    await play(bot, "3 songs")
    await bot.end_track()
    await bot.service.skip(GUILD, LISTENER)
    assert bot.titles() == ["3 songs #2"]
    bot.lava.players[GUILD].position = 90_000

    outcome = await bot.service.previous(GUILD, LISTENER)
    assert outcome.track.title == "3 songs #1"
    assert outcome.pushed_back is not None
    assert outcome.pushed_back.title == "3 songs #2"
    assert (outcome.joined, outcome.problem) == (False, None)
    assert bot.titles() == ["3 songs #1", "3 songs #2"]
    player = bot.lava.players[GUILD]
    assert player.position == 0
    assert player.encoded == outcome.track.encoded
    assert render_previous(outcome).startswith(
        "Playing again from the start: [3 songs \\#1](https://example.com/"
    )
    assert "**3 songs #2** is next up." in render_previous(outcome)

    # A second /previous reaches one further back; the history row is consumed each time.
    await bot.service.previous(GUILD, LISTENER)
    assert bot.titles() == ["3 songs #0", "3 songs #1", "3 songs #2"]
    assert await history(bot) == []
    assert await bot.stored_titles() == bot.titles()
    with refused("nothing to go back to"):
        await bot.service.previous(GUILD, LISTENER)
    assert bot.titles() == ["3 songs #0", "3 songs #1", "3 songs #2"]
    # /skip goes back to where the user was.
    await bot.service.skip(GUILD, LISTENER)
    assert bot.titles() == ["3 songs #1", "3 songs #2"]


async def test_previous_after_the_queue_ended_and_after_leaving(bot: Bot, url: str) -> None:
    await play(bot, "song a")
    await bot.end_track()  # the queue ended; the bot is still in voice
    assert bot.titles() == []
    outcome = await bot.service.previous(GUILD, LISTENER)
    assert (outcome.track.title, outcome.pushed_back, outcome.joined) == ("song a", None, True)
    assert bot.lava.players[GUILD].encoded == outcome.track.encoded
    assert bot.service.player_state(GUILD).status is PlayerStatus.PLAYING  # type: ignore[union-attr]

    await bot.service.controls.leave(GUILD, LISTENER)  # records "song a" again
    assert bot.lava.voice_channel(GUILD) is None
    bot = await bot.crash(url)  # the history outlives a restart
    outcome = await bot.service.previous(GUILD, LISTENER, TEXT)
    assert outcome.joined
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.titles() == ["song a"]
    assert await bot.stored_titles() == ["song a"]
    await bot.repo.close()


async def test_previous_refusals_change_nothing(bot: Bot) -> None:
    with refused("nothing to go back to"):
        await bot.service.previous(GUILD, LISTENER)
    assert bot.lava.voice_channel(GUILD) is None  # no history: no join either
    await play(bot, "2 songs")
    await bot.end_track()
    # Someone outside the bot's channel.
    bot.discord.members[STRANGER] = 600
    with refused("Join my voice channel <#500> to play the previous song"):
        await bot.service.previous(GUILD, STRANGER)
    # A failed write: nothing changes, the row stays.
    bot.failures.arm()
    with refused("nothing was changed"):
        await bot.service.previous(GUILD, LISTENER)
    assert bot.titles() == ["2 songs #1"]
    assert await history(bot) == ["2 songs #0"]
    assert await bot.stored_titles() == ["2 songs #1"]
    # Out of voice, the caller must be in a channel to be joined.
    await bot.service.controls.leave(GUILD, LISTENER)
    bot.discord.members[LISTENER] = None
    with refused("Join a voice channel first"):
        await bot.service.previous(GUILD, LISTENER)
    assert await history(bot) == ["2 songs #1", "2 songs #0"]


async def test_a_previous_whose_write_fails_leaves_the_channel_it_joined(bot: Bot) -> None:
    await play(bot, "song a")
    await bot.service.controls.stop(GUILD, LISTENER)
    await bot.service.controls.leave(GUILD, LISTENER)
    bot.failures.arm()
    with refused("nothing was changed"):
        await bot.service.previous(GUILD, LISTENER)
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.titles() == []


async def test_previous_when_the_server_refuses_to_play(bot: Bot) -> None:
    await play(bot, "2 songs")
    await bot.end_track()
    bot.lava.fail = True
    outcome = await bot.service.previous(GUILD, LISTENER)
    assert isinstance(outcome.problem, e.WaitingForServer)
    assert bot.titles() == ["2 songs #0", "2 songs #1"]
    assert "unreachable" in render_previous(outcome)
