"""The reconciler's judgement, divergence by divergence, on the client's own typed players."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from bot import lavalink
from bot.lavalink import Player, PlayerState, Track, TrackInfo, VoiceState, same_track
from bot.services import player_lists as player_lists_module
from bot.services.guild import is_entry, now_ms
from bot.services.positions import anchored
from bot.services.reconciler import (
    FROZEN_AFTER,
    PASS_INTERVAL,
    Divergence,
    Promise,
    Reconciler,
    Sighting,
    diagnose,
)
from bot.storage import QueueEntry
from peers.catalogue import RICK
from peers.catalogue import TAKE_ON_ME as OTHER
from peers.tracks import TrackInfo as PeerTrackInfo
from peers.tracks import encode_track, with_position
from tests.services.fakes import GUILD, LISTENER, TEXT, Bot

CHANNEL = 42


def _entry(info: PeerTrackInfo, entry_id: int = 7) -> QueueEntry:
    return QueueEntry(
        id=entry_id,
        sort_key=1,
        added_at_ms=0,
        encoded=encode_track(info),
        title=info.title,
        author=info.author,
        length_ms=info.length,
        is_stream=False,
        uri=info.uri,
        requester_id=5,
    )


ENTRY = _entry(RICK)
PROMISE = Promise(guild_id=1, channel_id=CHANNEL, entry=ENTRY, paused=False, changed_at=0.0)


def _player(
    info: PeerTrackInfo | None = RICK,
    *,
    position: int = 10_000,
    paused: bool = False,
    connected: bool = True,
    user_data: dict[str, object] | None = None,
) -> Player:
    track = None
    if info is not None:
        encoded = with_position(encode_track(info), position)
        track = Track(
            encoded=encoded,
            info=TrackInfo(
                identifier=info.identifier,
                is_seekable=True,
                author=info.author,
                length=info.length,
                is_stream=False,
                position=position,
                title=info.title,
                uri=info.uri,
                source_name="youtube",
            ),
            user_data={"entry": ENTRY.id} if user_data is None else user_data,
        )
    return Player(
        guild_id=1,
        track=track,
        volume=100,
        paused=paused,
        state=PlayerState(time=0, position=position, connected=connected),
        voice=VoiceState("token", "endpoint", "session", str(CHANNEL)),
    )


def _is_entry(track: Track, entry: QueueEntry) -> bool:
    tagged = track.user_data.get("entry")
    if tagged is not None:
        return bool(tagged == entry.id)
    return same_track(track.encoded, entry.encoded)


def _judge(
    player: Player | None,
    *,
    bot_channel: int | None = CHANNEL,
    earlier: Sighting | None = None,
    now: float = 100.0,
    promise: Promise = PROMISE,
) -> Divergence | None:
    return diagnose(
        promise,
        bot_channel=bot_channel,
        player=player,
        is_entry=_is_entry,
        earlier=earlier,
        now=now,
    )


def test_everything_matching_is_no_divergence() -> None:
    assert _judge(_player()) is None


@pytest.mark.parametrize(
    ("player", "bot_channel", "expected"),
    [
        (_player(), None, Divergence.VOICE_GONE),
        (_player(), CHANNEL + 1, Divergence.VOICE_MOVED),
        (None, CHANNEL, Divergence.PLAYER_GONE),
        (_player(None), CHANNEL, Divergence.WRONG_TRACK),
        (_player(user_data={"entry": ENTRY.id + 1}), CHANNEL, Divergence.WRONG_TRACK),
        (_player(paused=True), CHANNEL, Divergence.PAUSE),
        (_player(connected=False), CHANNEL, Divergence.VOICE_DOWN),
    ],
)
def test_each_divergence_is_named(
    player: Player | None, bot_channel: int | None, expected: Divergence
) -> None:
    assert _judge(player, bot_channel=bot_channel) is expected


def test_voice_is_checked_before_the_player() -> None:
    # Out of voice, a missing player is a consequence: the re-join comes first.
    assert _judge(None, bot_channel=None) is Divergence.VOICE_GONE


def test_a_server_without_user_data_is_matched_by_the_track() -> None:
    assert _judge(_player(user_data={})) is None
    assert _judge(_player(OTHER, user_data={})) is Divergence.WRONG_TRACK


def test_a_paused_promise_is_kept_paused() -> None:
    paused = Promise(1, CHANNEL, ENTRY, paused=True, changed_at=0.0)
    assert _judge(_player(paused=True), promise=paused) is None
    assert _judge(_player(paused=False), promise=paused) is Divergence.PAUSE


def test_a_position_standing_still_long_enough_is_frozen() -> None:
    standing = Sighting(None, ENTRY.id, 10_000, at=100.0)
    assert _judge(_player(), earlier=standing, now=100.0 + FROZEN_AFTER) is Divergence.FROZEN
    # Not yet long enough, moved on, another entry, or paused: not frozen.
    assert _judge(_player(), earlier=standing, now=100.0 + FROZEN_AFTER / 2) is None
    assert _judge(_player(position=10_500), earlier=standing, now=110.0) is None
    other_entry = Sighting(None, ENTRY.id + 1, 10_000, at=100.0)
    assert _judge(_player(), earlier=other_entry, now=110.0) is None
    paused = Promise(1, CHANNEL, ENTRY, paused=True, changed_at=0.0)
    assert _judge(_player(paused=True), earlier=standing, now=110.0, promise=paused) is None


def test_a_track_at_its_end_is_finishing_not_frozen() -> None:
    end = RICK.length - 200
    standing = Sighting(None, ENTRY.id, end, at=100.0)
    assert _judge(_player(position=end), earlier=standing, now=110.0) is None


def test_same_track_ignores_the_position_only() -> None:
    rick = encode_track(RICK)
    assert same_track(rick, with_position(rick, 83_000))
    assert not same_track(rick, encode_track(OTHER))
    assert not same_track(rick, "not a track")


# --- a pass against the service, the node's list read while things happen ------------------


async def _two_songs_settled(bot: Bot) -> None:
    """The first of two songs plays, and the guild was left alone long enough to be judged."""
    await bot.service.play(GUILD, LISTENER, TEXT, "short song")
    await bot.service.play(GUILD, LISTENER, TEXT, "take on me")
    bot.service._guilds[GUILD].changed_at -= 60.0
    bot.lava.calls.clear()


async def _pass_with_the_request_held(bot: Bot) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A pass whose players request the node has not answered yet."""
    gate = bot.lava.players_gate = asyncio.Event()
    bot.lava.players_asked.clear()
    task = asyncio.create_task(bot.service.reconciler.run_pass())
    await asyncio.wait_for(bot.lava.players_asked.wait(), 2)
    return task, gate


async def test_a_track_ending_while_the_players_are_read_is_not_replayed(bot: Bot) -> None:
    # The node ends the song while the list is on its way; the end event reaches the service
    # only after the pass (still on the socket, or behind a position report).
    await _two_songs_settled(bot)
    task, gate = await _pass_with_the_request_held(bot)
    ended = bot.lava.end_event(GUILD)
    gate.set()
    await asyncio.wait_for(task, 2)
    await _settle_tasks()
    assert bot.lava.calls == []  # nothing replayed: the end event is on its way
    assert bot.service.reconciler.repairs == Counter()
    await bot.service.handle_event(ended)
    assert bot.titles() == ["take on me"]
    assert [name for name, _ in bot.lava.calls] == ["play"]  # the next song, once
    # The next pass, once settled, finds everything as promised.
    bot.lava.players_gate = None
    bot.lava.calls.clear()
    bot.service._guilds[GUILD].changed_at -= 60.0
    await bot.service.reconciler.run_pass()
    await bot.service.reconciler.run_pass()
    assert bot.lava.calls == []
    assert bot.service.reconciler.repairs == Counter()


async def test_a_track_change_handled_during_the_request_is_judged_next_pass(bot: Bot) -> None:
    # The service moves on while the list is read: the reading belongs to neither promise.
    await _two_songs_settled(bot)
    task, gate = await _pass_with_the_request_held(bot)
    await bot.service.handle_event(bot.lava.end_event(GUILD))
    bot.lava.end_event(GUILD)  # and the next song ends on the node before it answers
    gate.set()
    await asyncio.wait_for(task, 2)
    await _settle_tasks()
    assert [name for name, _ in bot.lava.calls] == ["play"]  # only the service's advance
    assert bot.service.reconciler.repairs == Counter()


async def test_a_lost_end_event_is_repaired_by_the_next_pass(bot: Bot) -> None:
    # The song stopped and no event ever comes: the second sighting is repaired.
    await _two_songs_settled(bot)
    bot.lava.end_event(GUILD)
    await bot.service.reconciler.run_pass()
    await _settle_tasks()
    assert bot.lava.calls == []
    await bot.service.reconciler.run_pass()
    await _settle_tasks()
    assert bot.service.reconciler.repairs == Counter({Divergence.WRONG_TRACK: 1})
    assert [name for name, _ in bot.lava.calls] == ["play"]
    assert bot.lava.players[GUILD].encoded == bot.service._guilds[GUILD].current.encoded  # type: ignore[union-attr]


async def test_an_end_event_still_queued_for_the_service_is_waited_for(bot: Bot) -> None:
    # The node has ended the song and its TrackEnd waits in the client's queue behind slower
    # events for longer than two passes: no pass replays the song meanwhile.
    await _two_songs_settled(bot)
    bot.lava.end_event(GUILD)
    bot.lava.pending_events.add(GUILD)
    for _ in range(3):
        await bot.service.reconciler.run_pass()
        await _settle_tasks()
    assert bot.lava.calls == []
    assert bot.service.reconciler.repairs == Counter()
    bot.lava.pending_events.clear()  # delivered: had it been lost, the passes repair it now
    for _ in range(2):
        await bot.service.reconciler.run_pass()
        await _settle_tasks()
    assert [name for name, _ in bot.lava.calls] == ["play"]


async def _settle_tasks() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_woken_pass_comes_back_once_for_the_guilds_still_settling(bot: Bot) -> None:
    # After a reconnect the guilds it touched are still settling: they are judged as soon as
    # they settle, not an interval later (after op 9 that is the difference between silence
    # for a second and for a whole interval), and only once: no pass chases every change.
    await bot.service.play(GUILD, LISTENER, TEXT, "short song")  # changed just now
    healer = bot.service.reconciler._healer  # type: ignore[attr-defined]
    reconciler = Reconciler(bot.lava, healer, is_entry, interval=60.0, settle=0.3)
    left = await reconciler.run_pass()
    assert left is not None
    assert 0 < left <= 0.3
    reconciler.start()
    try:
        reconciler.wake()
        async with asyncio.timeout(5):  # far below the 60 s interval
            # The first, the woken one, its follow-up; passes come with no event to wait on.
            while reconciler.passes < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        assert reconciler.passes == 3
    finally:
        await reconciler.close()


async def test_a_woken_pass_comes_back_for_a_guild_that_was_busy(bot: Bot) -> None:
    # A command held the guild when the reconnect's pass came: it is judged half a second
    # later, not an interval later.
    await _two_songs_settled(bot)
    healer = bot.service.reconciler._healer  # type: ignore[attr-defined]
    reconciler = Reconciler(bot.lava, healer, is_entry, interval=60.0)
    guild = bot.service._guilds[GUILD]
    await guild.lock.acquire()
    reconciler.start()
    try:
        reconciler.wake()
        async with asyncio.timeout(5):
            while reconciler.passes < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await reconciler.run_pass() is not None  # still busy: judged later
        guild.lock.release()
        async with asyncio.timeout(5):  # far below the 60 s interval
            while reconciler.passes < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert await reconciler.run_pass() is None  # judged: nothing left for later
    finally:
        if guild.lock.locked():
            guild.lock.release()
        await reconciler.close()


# --- guilds the node vouched for: judged without its list ----------------------------------


def _agreeing_report(bot: Bot, *, connected: bool = True) -> lavalink.PlayerStateUpdate:
    """A ``playerUpdate`` at the position the guild's anchor names now."""
    position = anchored(bot.service._guilds[GUILD])
    state = lavalink.PlayerState(time=now_ms(), position=position, connected=connected)
    return lavalink.PlayerStateUpdate(GUILD, state)


async def _pass_listed(bot: Bot) -> bool:
    """Run a pass; whether it asked the node for its players."""
    bot.lava.players_asked.clear()
    await bot.service.reconciler.run_pass()
    await _settle_tasks()
    return bot.lava.players_asked.is_set()


async def test_a_guild_heard_from_lately_needs_no_list_of_the_nodes_players(bot: Bot) -> None:
    await _two_songs_settled(bot)
    assert await _pass_listed(bot)  # nothing heard yet: the node's list is read
    bot.service.position_reported(_agreeing_report(bot))
    assert not await _pass_listed(bot)
    assert bot.lava.calls == []
    assert bot.service.reconciler.repairs == Counter()


async def test_a_heard_guild_whose_bot_left_voice_is_still_repaired(bot: Bot) -> None:
    # The voice state is the bot's own knowledge: a fresh report does not excuse it.
    await _two_songs_settled(bot)
    bot.service.position_reported(_agreeing_report(bot))
    del bot.lava.channels[GUILD]
    assert not await _pass_listed(bot)
    assert bot.service.reconciler.repairs == Counter({Divergence.VOICE_GONE: 1})


@pytest.mark.parametrize(
    "why",
    ["disconnected", "drifted", "stands at its correction", "paused since", "next track", "stale"],
)
async def test_a_report_vouches_only_for_what_it_agreed_with(bot: Bot, why: str) -> None:
    await _two_songs_settled(bot)
    report = _agreeing_report(bot, connected=why != "disconnected")
    if why in ("drifted", "stands at its correction"):  # it said the promise was off
        state = report.state
        report = lavalink.PlayerStateUpdate(
            GUILD, lavalink.PlayerState(state.time, state.position + 5_000, state.connected)
        )
    correcting = bot.service._reactions.position_reported(report)
    if correcting is not None:
        await correcting
    if why == "stands at its correction":
        # A stalled player: the next report stands where the last one was, which agrees
        # with the anchor it corrected (within the drift allowed) but shows no progress.
        bot.service.position_reported(report)
    elif why == "paused since":
        await bot.service.pause(GUILD, LISTENER)
    elif why == "next track":
        await bot.service.handle_event(bot.lava.end_event(GUILD))
    elif why == "stale":
        heard = bot.service._guilds[GUILD].heard
        assert heard is not None
        bot.service._guilds[GUILD].heard = heard._replace(at=heard.at - PASS_INTERVAL - 5)
    bot.service._guilds[GUILD].changed_at -= 60.0
    assert await _pass_listed(bot)


async def test_a_track_the_node_lost_is_found_once_its_reports_stop(bot: Bot) -> None:
    await _two_songs_settled(bot)
    bot.service.position_reported(_agreeing_report(bot))
    bot.lava.players[GUILD].encoded = None  # the node lost its track; its reports stop
    assert not await _pass_listed(bot)  # heard a moment ago: trusted for one more pass
    assert bot.service.reconciler.repairs == Counter()
    heard = bot.service._guilds[GUILD].heard
    assert heard is not None
    bot.service._guilds[GUILD].heard = heard._replace(at=heard.at - PASS_INTERVAL - 5)
    for _ in range(2):  # seen twice: a track with no end event, not one just ending
        assert await _pass_listed(bot)
    assert bot.service.reconciler.repairs == Counter({Divergence.WRONG_TRACK: 1})


@pytest.mark.parametrize("singly_up_to", [0, 16])
async def test_a_node_with_few_guilds_to_read_is_asked_for_each_not_for_its_list(
    bot: Bot, singly_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lost track found either way; with one guild to read, its player alone is asked for
    # (at 10,000 guilds the whole list is 10 MB of JSON).
    monkeypatch.setattr(player_lists_module, "SINGLY_UP_TO", singly_up_to)
    await _two_songs_settled(bot)
    bot.lava.players[GUILD].encoded = None
    for _ in range(2):
        await bot.service.reconciler.run_pass()
        await _settle_tasks()
    assert bot.service.reconciler.repairs == Counter({Divergence.WRONG_TRACK: 1})
    assert bot.lava.players_read_singly == (2 if singly_up_to else 0)
