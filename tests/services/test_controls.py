"""/nowplaying, /seek, /stop and /leave: the service rules, over the real repository on SQLite.

Each change is checked where a user would notice it: the reply, the live player (the Lavalink
stand-in), and what a restart loads from the database. Edge cases of /seek, as chosen in
bot/services/controls.py: 0 is the start; the exact end and anything past it are refused; a
relative seek back past the start lands on 0.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import lavalink
from bot.extensions.controls import render_leave, render_now_playing, render_seek, render_stop
from bot.services import errors as e
from bot.services.timecode import SeekTarget, parse
from bot.storage import LoopMode, PlayerStatus, StoredGuild
from peers import tracks
from tests.services.fakes import GUILD, LISTENER, TEXT, VOICE, Bot, refused

STRANGER = 99


async def play(bot: Bot, query: str) -> None:
    await bot.service.play(GUILD, LISTENER, TEXT, query)


async def stored(bot: Bot) -> StoredGuild:
    (guild,) = [g for g in await bot.repo.load_guilds() if g.player.guild_id == GUILD]
    return guild


def serve(bot: Bot, info: tracks.TrackInfo, *, is_stream: bool | None = None) -> None:
    """The next search finds ``info`` as a real encoded track (artwork and all)."""
    encoded = tracks.encode_track(info)
    decoded = lavalink.decode_track(encoded)
    if is_stream is not None:  # what the load result says, whatever the string holds
        decoded = lavalink.TrackInfo(**{**_fields(decoded), "is_stream": is_stream})

    async def load(_identifier: str) -> lavalink.LoadResult:
        return lavalink.SearchResult(data=(lavalink.Track(encoded=encoded, info=decoded),))

    bot.lava.load_tracks = load  # type: ignore[method-assign]


def _fields(info: lavalink.TrackInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in info.__struct_fields__}


# --- the time format ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms", "direction"),
    [
        ("0", 0, 0),
        ("83", 83_000, 0),
        ("999999", 999_999_000, 0),
        ("1:23", 83_000, 0),
        ("01:23", 83_000, 0),
        ("0:00", 0, 0),
        ("59:59", 3_599_000, 0),
        ("120:00", 7_200_000, 0),
        ("1:02:03", 3_723_000, 0),
        ("0:00:05", 5_000, 0),
        ("+10", 10_000, 1),
        ("-10", 10_000, -1),
        ("+1:00", 60_000, 1),
        ("-0:05", 5_000, -1),
        ("+1:00:00", 3_600_000, 1),
        ("  1:23  ", 83_000, 0),
    ],
)
def test_every_accepted_format(text: str, ms: int, direction: int) -> None:
    assert parse(text) == SeekTarget(ms, direction)


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "abc", "1:2", "1:234", "1:60", "1:60:00", "1:02:60", "1:2:3", "1::23", ":23",
        "1:", "+", "-", "+-1", "++1", "--1", "1.5", "1,5", "1e3", "10s", "1m", "1 23",
        "1:23:45:67", "1234567", "+ 10", "٣", "\uff11\uff12", "1:2\uff13", "0x10", "-1:-1",
        "1:23 am",
    ],
)  # fmt: skip
def test_every_refused_format_names_the_ones_that_work(text: str) -> None:
    with refused(r"`83`.*`1:23`.*`1:02:03`.*`\+10`"):
        parse(text)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.sampled_from(["", "+", "-"]))
def test_written_times_read_back(hours: int, minutes: int, seconds: int, sign: str) -> None:
    direction = {"": 0, "+": 1, "-": -1}[sign]
    total = (hours * 3600 + minutes * 60 + seconds) * 1000
    assert parse(f"{sign}{hours}:{minutes:02}:{seconds:02}") == SeekTarget(total, direction)
    if not hours:
        assert parse(f"{sign}{minutes}:{seconds:02}") == SeekTarget(total, direction)
    assert parse(f"{sign}{total // 1000}") == SeekTarget(total, direction)


@given(st.text(max_size=20))
def test_any_text_is_a_time_or_a_polite_refusal(text: str) -> None:
    readable = re.fullmatch(r"\s*[+-]?[0-9]{1,6}(:[0-5][0-9]){0,2}\s*", text)
    if readable:
        assert parse(text).ms >= 0
    else:
        with pytest.raises(e.BadTimecode):
            parse(text)


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.sampled_from([-1, 0, 1]))
def test_a_resolved_position_is_never_negative(now: int, ms: int, direction: int) -> None:
    at = SeekTarget(ms, direction).resolve(now)
    assert at >= 0
    assert at == (ms if direction == 0 else max(0, now + direction * ms))


# --- /nowplaying ----------------------------------------------------------------------------


async def test_now_playing_shows_the_song_its_place_and_what_is_next(bot: Bot) -> None:
    with refused("Nothing is playing"):
        bot.service.controls.now_playing(GUILD)
    await play(bot, "3 songs")
    await bot.service.set_loop(GUILD, LISTENER, LoopMode.QUEUE)
    await bot.service.set_volume(GUILD, LISTENER, 80)
    view = bot.service.controls.now_playing(GUILD)
    assert view.current.title == "3 songs #0"
    assert view.next is not None
    assert view.next.title == "3 songs #1"
    assert (view.queued, view.volume, view.loop_mode) == (2, 80, LoopMode.QUEUE)
    assert view.filter_name == "off"
    assert view.artwork_url is None  # the stand-in's strings are no real tracks
    embed = render_now_playing(view)
    assert embed.title == "3 songs #0"
    assert f"<@{LISTENER}>" in [f.value for f in embed.fields]
    assert "0:00 / 3:00" in (embed.description or "")


async def test_artwork_is_decoded_from_the_track_and_streams_say_live(bot: Bot) -> None:
    art = "https://i.ytimg.com/vi/abc/maxresdefault.jpg"
    serve(bot, tracks.TrackInfo("abc", "Radio", "Station", 0, is_stream=True, artwork_url=art))
    await play(bot, "radio")
    view = bot.service.controls.now_playing(GUILD)
    assert view.artwork_url == art
    embed = render_now_playing(view)
    assert embed.thumbnail is not None
    assert embed.thumbnail.url == art
    assert "`LIVE`" in (embed.description or "")
    assert "🔘" not in (embed.description or "")


async def test_the_embed_stays_inside_discord_limits(bot: Bot) -> None:
    long = "Ünïcödé title " * 100
    serve(
        bot,
        tracks.TrackInfo(
            "x", long, "Author " * 100, 1000, uri="https://e.com/" + "a" * 3000,
            artwork_url="file:///etc/passwd",
        ),
    )  # fmt: skip
    await play(bot, "long")
    await play(bot, "long")
    embed = render_now_playing(bot.service.controls.now_playing(GUILD))
    assert embed.title is not None
    assert len(embed.title) <= 256
    assert embed.url is None  # too long for Discord
    assert embed.thumbnail is None  # not a web address
    assert len(embed.description or "") <= 4096
    assert all(len(f.value) <= 1024 and len(f.name) <= 256 for f in embed.fields)
    total = len(embed.title) + len(embed.description or "")
    total += sum(len(f.name) + len(f.value) for f in embed.fields)
    assert total <= 6000


# --- /seek ----------------------------------------------------------------------------------


async def test_seek_moves_the_player_and_a_restart_resumes_there(bot: Bot, url: str) -> None:
    await play(bot, "2 songs")
    outcome = await bot.service.controls.seek(GUILD, LISTENER, "1:00")
    assert (outcome.position_ms, outcome.problem) == (60_000, None)
    assert render_seek(outcome) == "Jumped to **1:00** in **2 songs #0**."
    assert bot.lava.players[GUILD].position == 60_000
    assert ("seek", GUILD) in bot.lava.calls
    assert (await stored(bot)).player.position_ms == 60_000
    now = bot.service.queue(GUILD).position_ms
    assert 60_000 <= now < 61_000

    bot = await bot.crash(url)
    assert 60_000 <= bot.service.queue(GUILD).position_ms < 61_000
    await bot.repo.close()


async def test_seek_edges_start_end_and_relative(bot: Bot) -> None:
    await play(bot, "song")  # 3:00 long
    assert (await bot.service.controls.seek(GUILD, LISTENER, "0")).position_ms == 0
    assert (await bot.service.controls.seek(GUILD, LISTENER, "2:59")).position_ms == 179_000
    for past in ("3:00", "180", "3:01", "1:00:00", "+10"):
        with refused(r"The song is 3:00 long: pick a time before its end"):
            await bot.service.controls.seek(GUILD, LISTENER, past)
    await bot.service.controls.seek(GUILD, LISTENER, "0:05")
    back = await bot.service.controls.seek(GUILD, LISTENER, "-10")
    assert back.position_ms == 0  # back past the start: the start
    forward = await bot.service.controls.seek(GUILD, LISTENER, "+1:10")
    assert 70_000 <= forward.position_ms < 71_000
    assert bot.lava.players[GUILD].position == forward.position_ms


async def test_seek_while_paused_stays_paused(bot: Bot) -> None:
    await play(bot, "song")
    await bot.service.pause(GUILD, LISTENER)
    outcome = await bot.service.controls.seek(GUILD, LISTENER, "1:23")
    assert outcome.paused
    assert "It stays paused" in render_seek(outcome)
    assert bot.lava.players[GUILD].paused
    assert bot.lava.players[GUILD].position == 83_000
    assert bot.service.queue(GUILD).position_ms == 83_000  # frozen there
    assert (await stored(bot)).player.paused


async def test_seek_refusals(bot: Bot) -> None:
    with refused("Nothing is playing"):
        await bot.service.controls.seek(GUILD, LISTENER, "10")
    with refused("can't read `soon`"):
        await bot.service.controls.seek(GUILD, LISTENER, "soon")
    await play(bot, "song")
    bot.discord.members[STRANGER] = VOICE + 1
    with refused(f"Join my voice channel <#{VOICE}> to seek"):
        await bot.service.controls.seek(GUILD, STRANGER, "10")
    assert ("seek", GUILD) not in bot.lava.calls


async def test_live_streams_and_unseekable_tracks_are_refused(bot: Bot) -> None:
    serve(bot, tracks.TrackInfo("live", "Radio", "Station", 0, is_stream=True))
    await play(bot, "radio")
    with refused("live stream"):
        await bot.service.controls.seek(GUILD, LISTENER, "10")
    await bot.service.controls.stop(GUILD, LISTENER)
    # The load result says seekable length, the track itself (what Lavalink plays) cannot seek.
    serve(bot, tracks.TrackInfo("odd", "Odd", "Source", 0, is_stream=True), is_stream=False)
    await play(bot, "odd")
    with refused("doesn't allow jumping"):
        await bot.service.controls.seek(GUILD, LISTENER, "0")
    assert ("seek", GUILD) not in bot.lava.calls


async def test_an_unstored_seek_changes_nothing(bot: Bot) -> None:
    await play(bot, "song")
    await bot.service.controls.seek(GUILD, LISTENER, "0:30")
    bot.failures.arm()
    with refused("couldn't save the new position"):
        await bot.service.controls.seek(GUILD, LISTENER, "2:00")
    assert bot.lava.players[GUILD].position == 30_000
    assert (await stored(bot)).player.position_ms == 30_000
    assert bot.service.queue(GUILD).position_ms < 120_000


async def test_a_seek_lavalink_refuses_is_told_and_stored_as_not_made(bot: Bot) -> None:
    await play(bot, "song")
    await bot.service.controls.seek(GUILD, LISTENER, "0:30")
    bot.lava.fail = True
    outcome = await bot.service.controls.seek(GUILD, LISTENER, "2:00")
    assert isinstance(outcome.problem, e.SeekRefused)
    assert 30_000 <= outcome.position_ms < 31_000
    assert render_seek(outcome) == (
        "The music server didn't take the new position, so the song stays where it was."
    )
    assert 30_000 <= (await stored(bot)).player.position_ms < 31_000


async def test_a_seek_out_of_voice_is_where_the_next_play_starts(bot: Bot) -> None:
    await play(bot, "2 songs")
    bot.lava.channels.pop(GUILD)
    await bot.service.handle_event(lavalink.VoiceDisconnected(GUILD, VOICE))
    outcome = await bot.service.controls.seek(GUILD, LISTENER, "1:00")
    assert outcome.waiting
    assert "use /play to bring me back" in render_seek(outcome)
    assert ("seek", GUILD) not in bot.lava.calls
    await play(bot, "more")
    assert bot.lava.players[GUILD].position == 60_000


# --- /stop ----------------------------------------------------------------------------------


async def test_stop_clears_everything_and_stays_in_the_channel(bot: Bot, url: str) -> None:
    with refused("Nothing is playing"):
        await bot.service.controls.stop(GUILD, LISTENER)
    await play(bot, "3 songs")
    guild = bot.service._guilds[GUILD]
    before = guild.changed_at
    outcome = await bot.service.controls.stop(GUILD, LISTENER)
    assert (outcome.cleared, outcome.problem) == (3, None)
    assert render_stop(outcome) == (
        "Stopped, and cleared the queue (3 tracks). I'm staying in the voice channel."
    )
    assert bot.lava.players[GUILD].encoded is None
    assert ("stop", GUILD) in bot.lava.calls
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.titles() == []
    assert guild.changed_at > before  # the reconciler lets it settle
    assert bot.service.reconciler._healer.promises() == []  # nothing promised any more
    with refused("Nothing is playing"):
        await bot.service.controls.stop(GUILD, LISTENER)

    bot = await bot.crash(url)
    saved = await stored(bot)
    assert saved.entries == ()
    assert (saved.player.status, saved.player.current_entry_id) == (PlayerStatus.IDLE, None)
    assert bot.service.queue(GUILD).current is None
    await bot.repo.close()


async def test_an_unstored_stop_changes_nothing(bot: Bot) -> None:
    await play(bot, "2 songs")
    bot.failures.arm()
    with refused("couldn't save the queue just now, so nothing was stopped or cleared"):
        await bot.service.controls.stop(GUILD, LISTENER)
    assert bot.titles() == ["2 songs #0", "2 songs #1"] == await bot.stored_titles()
    assert bot.lava.players[GUILD].encoded is not None
    assert ("stop", GUILD) not in bot.lava.calls


async def test_a_stop_lavalink_refuses_leaves_voice_and_says_so(bot: Bot, url: str) -> None:
    await play(bot, "2 songs")
    bot.lava.fail = True
    outcome = await bot.service.controls.stop(GUILD, LISTENER)
    assert isinstance(outcome.problem, e.StopRefused)
    assert render_stop(outcome) == (
        "Cleared the queue (2 tracks). The music server didn't stop the song, "
        "so I left the voice channel."
    )
    assert ("disconnect", GUILD) in bot.lava.calls
    assert bot.lava.voice_channel(GUILD) is None
    bot = await bot.crash(url)
    saved = await stored(bot)
    assert saved.entries == ()
    assert (saved.player.status, saved.player.voice_channel_id) == (PlayerStatus.IDLE, None)
    await bot.repo.close()


async def test_only_listeners_may_stop_or_make_it_leave(bot: Bot) -> None:
    await play(bot, "song")
    bot.discord.members[STRANGER] = VOICE + 1
    with refused(f"Join my voice channel <#{VOICE}> to stop the music"):
        await bot.service.controls.stop(GUILD, STRANGER)
    with refused(f"Join my voice channel <#{VOICE}> to make me leave"):
        await bot.service.controls.leave(GUILD, STRANGER)
    assert bot.titles() == ["song"]
    assert bot.lava.voice_channel(GUILD) == VOICE


# --- /leave ---------------------------------------------------------------------------------


async def test_leave_clears_the_queue_and_leaves(bot: Bot, url: str) -> None:
    with refused("I'm not in a voice channel, and the queue is empty"):
        await bot.service.controls.leave(GUILD, LISTENER)
    await play(bot, "2 songs")
    outcome = await bot.service.controls.leave(GUILD, LISTENER)
    assert (outcome.channel_id, outcome.cleared) == (VOICE, 2)
    assert render_leave(outcome) == f"Left <#{VOICE}> and cleared the queue (2 tracks)."
    assert ("disconnect", GUILD) in bot.lava.calls
    assert bot.lava.voice_channel(GUILD) is None
    assert bot.titles() == []
    with refused("I'm not in a voice channel"):
        await bot.service.controls.leave(GUILD, LISTENER)
    bot = await bot.crash(url)
    saved = await stored(bot)
    assert saved.entries == ()
    assert (saved.player.status, saved.player.voice_channel_id) == (PlayerStatus.IDLE, None)
    await bot.repo.close()


async def test_leave_after_stop_and_without_a_music_server(bot: Bot) -> None:
    await play(bot, "song")
    await bot.service.controls.stop(GUILD, LISTENER)
    bot.lava.fail = True  # the stand-in's disconnect, like the client's, still sends op 4
    outcome = await bot.service.controls.leave(GUILD, LISTENER)
    assert (outcome.channel_id, outcome.cleared) == (VOICE, 0)
    assert render_leave(outcome) == f"Left <#{VOICE}> and cleared the queue (0 tracks)."
    assert bot.lava.voice_channel(GUILD) is None


async def test_leave_out_of_voice_clears_a_kept_queue(bot: Bot) -> None:
    await play(bot, "2 songs")
    bot.lava.channels.pop(GUILD)
    await bot.service.handle_event(lavalink.VoiceDisconnected(GUILD, VOICE))
    outcome = await bot.service.controls.leave(GUILD, LISTENER)
    assert (outcome.channel_id, outcome.cleared) == (None, 2)
    assert render_leave(outcome) == "I wasn't in a voice channel; cleared the queue (2 tracks)."
    assert await bot.stored_titles() == []


async def test_an_unstored_leave_stays(bot: Bot) -> None:
    await play(bot, "2 songs")
    bot.failures.arm()
    with refused("so I stayed and nothing was cleared"):
        await bot.service.controls.leave(GUILD, LISTENER)
    assert bot.lava.voice_channel(GUILD) == VOICE
    assert bot.titles() == ["2 songs #0", "2 songs #1"] == await bot.stored_titles()
